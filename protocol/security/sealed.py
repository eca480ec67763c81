"""A base for values that hold secrets: they refuse to be pickled or copied into bytes.

Pickling is how secrets leak "by accident" (a cache, a multiprocessing queue, a debugger
dump). A sealed value raises instead; a caller who really must move the secret takes it
out with ``get_secret_value()``, which is easy to find in review.
"""

from __future__ import annotations

from typing import NoReturn, Self, SupportsIndex


class Sealed:
    """Immutable holder of secret material: no ``__dict__``, no pickling, copies are itself."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} holds secret material and cannot be pickled;"
            " take it out explicitly with get_secret_value()"
        )

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: object) -> Self:
        return self
