"""The terminal's languages: English and Simplified Chinese from poslab's one gettext catalogue,
shared with the host console and kept in :mod:`protocol.i18n` (``protocol/locale``).

Every text a person reads on the TUI or a receipt goes through :func:`_` (or is marked with
:func:`N_` where it is defined and translated where it is shown), so the English text is the
message id. ``--lang``, else ``LC_ALL``, ``LC_MESSAGES`` or ``LANG`` naming ``zh_CN``, chooses
the language once per process with :func:`use`.
"""

from __future__ import annotations

from protocol.i18n import (
    CHINESE,
    DOMAIN,
    ENGLISH,
    LANGUAGES,
    LOCALE_DIR,
    N_,
    _,
    current,
    from_environment,
    meaning,
    ngettext,
    use,
)

__all__ = ["CHINESE", "DOMAIN", "ENGLISH", "LANGUAGES", "LOCALE_DIR", "N_", "_", "current",
           "from_environment", "meaning", "ngettext", "use"]
