"""One-line texts for the messages commands print: an error's first line, a database URL
without its password."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, else its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url  # only for a URL: a file path needs none

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: show only the scheme
        return url.split("://", 1)[0] + "://..."
