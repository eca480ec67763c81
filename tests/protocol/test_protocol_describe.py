"""describe(): a field-by-field explanation for logs, the inspector and trainers (item 9)."""

from __future__ import annotations

from protocol_samples import samples

from protocol import Codec, describe, describe_fields
from protocol.specs import field_table

SPECS = field_table("iso87")


def test_refund_renders_every_field_with_name_and_meaning() -> None:
    """Each field of a refund gets one line: DE number, table name, value and its meaning."""
    refund = samples()["refund_0200"]
    lines = describe(refund).splitlines()
    keys = sorted((k for k in refund.to_fields() if k != "t"), key=int)
    assert len(lines) == 1 + len(keys)
    assert lines[0].startswith("MTI") and lines[0].endswith("0200  Financial request")
    for line, key in zip(lines[1:], keys, strict=True):
        assert line.startswith(f"DE{key} ") and SPECS[key].name in line, line
    text = "\n".join(lines)
    expected = [
        "200000  refund",  # DE3 processing code meaning
        "000000004000  40.00 CNY",  # DE4 amount with its DE49 currency
        "reason=return, evidence=RMA-42, operator=01",  # DE48 items by name
        "000000000123  original's RRN",  # DE37 in a request refers to the sale
        "156  CNY",  # DE49
        "012  manual, no PIN",  # DE22
        "0315103000  15/03 10:30:00",  # DE7 as day/month time
        "2701  expires 01/27",  # DE14
    ]  # fmt: skip
    for fragment in expected:
        assert fragment in text, fragment


def test_decline_explains_the_rule_and_the_remaining_amount() -> None:
    """A refund decline shows the response text, the DE44 rule and the DE54 remaining amount."""
    text = describe(samples()["refund_decline_0210"])
    assert "13  Invalid amount" in text
    assert "REFUND_EXCEEDS_REMAINING  Refund exceeds the remaining refundable amount" in text
    assert "remaining refundable 25.00 CNY" in text


def test_other_meanings() -> None:
    """DE90, DE70, DE60 and DE3 of reversals, network and reconciliation messages are explained."""
    assert "original 0200 STAN 000102 sent 15/03 10:29:59" in describe(
        samples()["reversal_0401_de90"]
    )
    assert "301  echo test" in describe(samples()["echo_0800"])
    recon = describe(samples()["recon_960000"])
    assert "960000  close batch after upload" in recon and "batch 000001" in recon


def test_typed_message_and_decoded_fields_describe_alike() -> None:
    """describe() of a typed message equals describe() of its decoded field dict."""
    codec = Codec()
    for message in samples().values():
        _, fields = codec.decode(codec.encode(message.to_fields()))
        assert describe(fields) == describe(message)


def test_malformed_values_are_shown_without_meaning_instead_of_raising() -> None:
    """Unreadable DE48/DE22/DE7/DE54 and unknown fields render; describe never raises."""
    fields = {"t": "0999", "48": "RS9", "22": "99x", "7": "99", "54": "junk", "130": "?"}
    lines = {line.key: line for line in describe_fields(fields)}
    assert lines["48"].value == "RS9" and lines["48"].meaning == ""
    assert lines["22"].meaning == "" and lines["7"].meaning == "" and lines["54"].meaning == ""
    assert lines["130"].name == "Unknown field"
    assert lines["t"].meaning == ""
