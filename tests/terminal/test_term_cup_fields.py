"""The inspector's names for the CUP subfields."""

from __future__ import annotations

import pytest

from terminal.cup_fields import subfields


@pytest.mark.parametrize(("de60", "named"), [
    ("1000000100050", "10  pre-authorization"),
    ("1100000100050", "11  pre-authorization cancel"),
    ("2000000100050", "20  completion"),
    ("2100000100050", "21  completion void"),
    ("2400000100050", "24  completion advice"),
    ("2500000100050", "25  refund"),
])
def test_de60_names_every_transaction_type_the_host_handles(de60: str, named: str) -> None:
    """60.1 of each pre-authorization family message and of a refund is named, not bare."""
    assert ("60.1", "Transaction type", named) in subfields("60", {"60": de60})
