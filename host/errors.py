"""Domain errors the host's core raises for a command it cannot carry out.

::

    DomainError          a command refused; ``message`` says what is wrong
     +-- Invalid         the command itself is malformed (no approver, no reason ...)
     +-- NotFound        it names something that does not exist (an unknown review)
     +-- Conflict        it contradicts the current state (a review already decided, the
                         same approver twice)

The core knows nothing of HTTP: the admin layer maps these to 400, 404 and 409 in one place
(:func:`host.admin.error_answer`).
"""

from __future__ import annotations


class DomainError(Exception):
    """A command the core refused; :attr:`message` says what is wrong and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """The command is malformed or over a configured limit."""


class NotFound(DomainError):
    """The command names something that does not exist."""


class Conflict(DomainError):
    """The command contradicts the current state."""
