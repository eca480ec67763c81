"""LinkProtocol over StringTransport (no sockets): matching, late answers, dropped links."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import StringTransport

from protocol.codec import Codec
from protocol.framing import Deframer, frame
from terminal.inspector import masked_bytes, safe_hex
from terminal.link import LinkDown, LinkProtocol, Traffic

CODEC = Codec()
PAN = "4111111111111111"


def _proto() -> tuple[LinkProtocol, StringTransport, list[Traffic], list[str]]:
    seen: list[Traffic] = []
    lost: list[str] = []
    proto = LinkProtocol(CODEC, seen.append, lambda: lost.append("lost"))
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, seen, lost


def _answer(mti: str, stan: str, code: str = "00") -> bytes:
    fields = {"t": mti, "3": "000000", "11": stan, "39": code, "41": "TERM0001",
              "42": "MERCHANT0000001"}
    return frame(CODEC.encode(fields))


def _sale(stan: str) -> dict[str, str]:
    return {"t": "0200", "2": PAN, "3": "000000", "4": "000000001000", "11": stan,
            "41": "TERM0001", "42": "MERCHANT0000001", "49": "156"}


def test_response_matched_by_mti_and_stan_even_split_bytewise() -> None:
    """Two requests in flight are each answered by the frame with their STAN, fed one byte
    at a time and out of order."""
    proto, transport, _, _ = _proto()
    got: dict[str, str] = {}
    for stan in ("000001", "000002"):
        proto.request(_sale(stan)).addCallback(lambda f: got.__setitem__(f["11"], f["39"]))
    assert len(Deframer().feed(transport.value())) == 2
    for byte in _answer("0210", "000002", "05") + _answer("0210", "000001"):
        proto.dataReceived(bytes([byte]))
    assert got == {"000001": "00", "000002": "05"}


def test_late_response_ignored_by_terminal() -> None:
    """reliability T4: after a request is cancelled (its timeout), its 0210 is reported as late
    (unmatched) and never delivered, while a 0410 for the same STAN still reaches the
    reversal that waits for it."""
    proto, _, seen, _ = _proto()
    original = proto.request(_sale("000007"))
    failures: list[object] = []
    original.addErrback(lambda f: failures.append(f.type))
    original.cancel()
    assert failures == [CancelledError]
    reversal: Deferred[dict[str, str]] = proto.request(
        {"t": "0400", "3": "000000", "4": "000000001000", "11": "000007", "41": "TERM0001",
         "42": "MERCHANT0000001", "49": "156"})
    answers: list[str] = []
    reversal.addCallback(lambda f: answers.append(f["t"]))
    proto.dataReceived(_answer("0210", "000007"))
    proto.dataReceived(_answer("0410", "000007"))
    assert answers == ["0410"]
    assert [(t.mti, t.late) for t in seen if t.direction == "received"] == [
        ("0210", True), ("0410", False)]


def test_connection_lost_fails_waiting_requests() -> None:
    """A dropped connection errbacks every pending request with LinkDown."""
    proto, _, _, lost = _proto()
    errors: list[object] = []
    proto.request(_sale("000003")).addErrback(lambda f: errors.append(f.type))
    proto.connectionLost()
    assert errors == [LinkDown] and lost == ["lost"]


def test_hex_dump_masks_pan_and_track() -> None:
    """The inspector's hex dump shows neither the PAN's middle digits nor track data."""
    fields = _sale("000001")
    raw = CODEC.encode(fields)
    dump = "\n".join(safe_hex(raw, fields))
    assert PAN.encode() in raw and PAN.encode() not in masked_bytes(raw, fields)
    assert "411111******1111" in "".join(line[-16:] for line in dump.splitlines())
    track_fields = {**fields, "35": f"{PAN}=30121010000000000"}
    del track_fields["2"]
    raw2 = CODEC.encode(track_fields)
    masked = masked_bytes(raw2, track_fields)
    assert PAN[6:].encode() not in masked and b"=3012" not in masked
    assert len(masked) == len(raw2)


def test_undecodable_frame_is_reported_and_scrubbed() -> None:
    """Junk from the host is logged as undecodable; a PAN inside it is masked in the dump."""
    proto, _, seen, _ = _proto()
    junk = b"0210" + PAN.encode()
    proto.dataReceived(frame(junk))
    assert seen[-1].note.startswith("undecodable")
    assert PAN.encode() not in masked_bytes(seen[-1].raw, seen[-1].fields)
