"""poslab's languages: English, the text written in the code, and Simplified Chinese from the
gettext catalogue ``protocol/locale/zh_CN/LC_MESSAGES/poslab.po``.

One catalogue serves every screen a person reads: the terminal's TUI and receipts and the host
console. It lives here, in the layer both import, because neither may import the other. Every
such text goes through :func:`_` (or :func:`pgettext` where one English word means two things,
or is marked with :func:`N_` where it is defined and translated where it is shown), so the
English text is the message id. The compiled ``poslab.mo`` is committed next to its ``.po`` and
packaged with ``protocol``; ``make i18n`` compiles it again after the ``.po`` changes (tests
check that the two agree). The language is chosen once per process with :func:`use`: the
program's ``--lang``, else :func:`from_environment` (``LC_ALL``, ``LC_MESSAGES`` or ``LANG``
naming ``zh_CN``), else English.

Standard library only (``gettext``), so ``protocol`` stays free of screens and databases.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "poslab"
LOCALE_DIR = Path(__file__).parent / "locale"
ENGLISH = "en"
CHINESE = "zh-CN"
LANGUAGES = (ENGLISH, CHINESE)
"""The ``--lang`` values."""

_CATALOGUES = {CHINESE: "zh_CN"}
_translations: gettext.NullTranslations = gettext.NullTranslations()
_language = ENGLISH


def from_environment(environ: Mapping[str, str]) -> str:
    """The language the locale variables ask for: the first of ``LC_ALL``, ``LC_MESSAGES``,
    ``LANG`` that is set decides (POSIX order); ``zh_CN`` (or ``zh-CN``) means Chinese."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return CHINESE if value.replace("-", "_").lower().startswith("zh_cn") else ENGLISH
    return ENGLISH


def use(language: str) -> None:
    """Show every later text in ``language`` (one of :data:`LANGUAGES`)."""
    global _translations, _language
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose from {', '.join(LANGUAGES)}")
    if language == ENGLISH:
        _translations = gettext.NullTranslations()
    else:
        # fallback=False: a missing catalogue is a packaging fault, not a reason for English.
        _translations = gettext.translation(DOMAIN, LOCALE_DIR, [_CATALOGUES[language]])
    _language = language


def current() -> str:
    """The language in use."""
    return _language


def _(message: str) -> str:
    """``message`` (English, the message id) in the language in use."""
    return _translations.gettext(message)


def pgettext(context: str, message: str) -> str:
    """``message`` as meant in ``context`` (an English word with two meanings: a review that
    is ``approved`` is not a transaction that is)."""
    return _translations.pgettext(context, message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural message for ``count``, in the language in use."""
    return _translations.ngettext(singular, plural, count)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention extraction tools know
    """Mark ``message`` for the catalogue where it is defined; :func:`_` translates it later."""
    return message


def meaning(text: str) -> str:
    """A response-code meaning (``protocol.codes.response_text``) in the language in use; an
    unknown code's generic ``Response code NN`` keeps its number."""
    prefix = "Response code "
    if text.startswith(prefix):
        return _("Response code {code}").format(code=text[len(prefix):])
    return _(text)
