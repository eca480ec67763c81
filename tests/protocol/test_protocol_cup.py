"""The China UnionPay POS profile against frames written out by hand from the public layouts.

Each golden frame below is annotated field by field (TPDU, 6-byte BCD header, BCD MTI, binary
bitmap, then each field in the CUP encoding) and was assembled by hand, not by poslab's encoder;
MACs were computed with psec's TDES (the written-out CUP ECB MAC in ``security_oracle``). Each
frame must decode to its fields and re-encode to the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from protocol import Codec, TxnType, ValidationError
from protocol.cup import CUP_MAC_MTIS, CUP_PROFILE, CUP_TABLE
from protocol.cup_messages import UPLOAD_END, UPLOAD_RECORDS, parse_cup_request
from protocol.cup_private import (
    CupTotals,
    De60,
    De61,
    SchemeTotals,
    SettlementResult,
    UploadRecord,
    parse_upload,
    upload_text,
)
from protocol.messages import response_mti
from protocol.security import Key, KeyAlgorithm, WorkingKeys, get_mac_scheme
from protocol.validate import validate_fields

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from security_oracle import reference_cup_mac  # noqa: E402

CODEC = Codec(CUP_PROFILE)
TMK = "0123456789ABCDEFFEDCBA9876543210"
MAK = "FEDCBA98765432100123456789ABCDEF"
MAC_KEY = bytes.fromhex(TMK)  # the MAC key of the financial frames below
REQUEST_TPDU, RESPONSE_TPDU = "6000020000", "6000000002"
HEADER = "603100000000"
TID, MID, CNY = "5445524D30303031", "4D45524348414E5430303030303031", "313536"
IDS = {"41": "TERM0001", "42": "MERCHANT0000001"}
PAN = "6212345678901234"

GOLDEN: dict[str, tuple[TxnType | None, dict[str, str], list[str]]] = {
    "sale_0200": (TxnType.SALE, {
        "t": "0200", "2": PAN, "3": "000000", "4": "000000010000", "11": "000123", "22": "021",
        "25": "00", **IDS, "49": "156", "60": "2200000100050", "64": "4437374344363145"}, [
        REQUEST_TPDU, HEADER,
        "0200",  # MTI, 2 bytes BCD
        "7020048000C08011",  # bitmap: 2 3 4 11 22 25 41 42 49 60 64
        "16" "6212345678901234",  # DE2: LL 16 digits (BCD), 8 bytes
        "000000",  # DE3 sale
        "000000010000",  # DE4 100.00
        "000123",  # DE11 trace
        "0021",  # DE22 n3, left-padded: swiped
        "00",  # DE25 normal presentment
        TID, MID,  # DE41, DE42 ASCII
        CNY,  # DE49 "156" ASCII
        "0013" "2200000100050F",  # DE60: LLL 13 digits; 22 sale | batch 000001 | 000 | 5 | 0
        "4437374344363145",  # DE64: CUP ECB MAC "D77CD61E" as ASCII
    ]),
    "sale_0210": (None, {
        "t": "0210", "2": PAN, "3": "000000", "4": "000000010000", "11": "000123",
        "12": "103000", "13": "1204", "15": "1204", "25": "00", "32": "01020000",
        "37": "433810000001", "38": "123456", "39": "00", **IDS, "49": "156",
        "60": "2200000100050", "64": "3134433730443446"}, [
        RESPONSE_TPDU, HEADER,  # destination and source swapped
        "0210",
        "703A00810EC08011",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 64
        "16" "6212345678901234", "000000", "000000010000", "000123",
        "103000",  # DE12 hhmmss
        "1204",  # DE13 MMDD
        "1204",  # DE15 settlement date
        "00",
        "08" "01020000",  # DE32: LL 8 digits, acquirer institution
        "343333383130303030303031",  # DE37 RRN "433810000001" ASCII
        "313233343536",  # DE38 "123456"
        "3030",  # DE39 "00"
        TID, MID, CNY,
        "0013" "2200000100050F",
        "3134433730443446",  # DE64 "14C70D4F"
    ]),
    "refund_0220": (TxnType.REFUND, {
        "t": "0220", "2": PAN, "3": "200000", "4": "000000003000", "11": "000124",
        "22": "021", "25": "00", "37": "433810000001", **IDS, "49": "156",
        "60": "2500000100050", "61": "0000010001231204", "64": "4541413843434533"}, [
        REQUEST_TPDU, HEADER,
        "0220",  # a refund is an advice-class message
        "7020048008C08019",  # 2 3 4 11 22 25 37 41 42 49 60 61 64
        "16" "6212345678901234",
        "200000",  # DE3 refund
        "000000003000",  # DE4 30.00, at most what remains of the sale
        "000124", "0021", "00",
        "343333383130303030303031",  # DE37: the original sale's RRN
        TID, MID, CNY,
        "0013" "2500000100050F",  # DE60.1 25 refund
        "0016" "0000010001231204",  # DE61: orig batch 000001 | orig trace 000123 | 12-04
        "4541413843434533",  # DE64 "EAA8CCE3"
    ]),
    "refund_0230": (None, {
        "t": "0230", "3": "200000", "4": "000000003000", "11": "000124", "12": "103500",
        "13": "1204", "15": "1204", "25": "00", "37": "433810000002", "39": "00", **IDS,
        "49": "156", "54": "0090156C000000007000", "60": "2500000100050",
        "61": "0000010001231204", "64": "3731434430453741"}, [
        RESPONSE_TPDU, HEADER,
        "0230",
        "303A00800AC08419",  # 3 4 11 12 13 15 25 37 39 41 42 49 54 60 61 64
        "200000", "000000003000", "000124", "103500", "1204", "1204", "00",
        "343333383130303030303032",  # DE37 "433810000002": the refund's own RRN
        "3030", TID, MID, CNY,
        "0020",  # DE54: LLL 20 characters, ASCII
        "3030" "3930" "313536" "43" "303030303030303037303030",  # 00 | 90 | 156 | C | 70.00
        "0013" "2500000100050F", "0016" "0000010001231204",  # DE60, DE61 echoed
        "3731434430453741",  # DE64 "71CD0E7A"
    ]),
    "void_0200": (TxnType.VOID, {
        "t": "0200", "2": PAN, "3": "200000", "4": "000000010000", "11": "000128",
        "22": "021", "25": "00", "37": "433810000001", **IDS, "49": "156",
        "60": "2300000100050", "61": "000001000123", "64": "3741304242384436"}, [
        REQUEST_TPDU, HEADER,
        "0200",  # a void is a financial request, told from a sale by DE3 and 60.1
        "7020048008C08019",  # 2 3 4 11 22 25 37 41 42 49 60 61 64
        "16" "6212345678901234",
        "200000",  # DE3 void
        "000000010000",  # DE4: the whole of the original sale
        "000128", "0021", "00",
        "343333383130303030303031",  # DE37: the original sale's RRN
        TID, MID, CNY,
        "0013" "2300000100050F",  # DE60.1 23 void
        "0012" "000001000123",  # DE61: LLL 12 digits; orig batch 000001 | orig trace 000123
        "3741304242384436",  # DE64 "7A0BB8D6"
    ]),
    "void_0210": (None, {
        "t": "0210", "2": PAN, "3": "200000", "4": "000000010000", "11": "000128",
        "12": "104000", "13": "1204", "15": "1204", "25": "00", "32": "01020000",
        "37": "433810000004", "38": "123456", "39": "00", **IDS, "49": "156",
        "60": "2300000100050", "61": "000001000123", "64": "3331343642313341"}, [
        RESPONSE_TPDU, HEADER,
        "0210",
        "703A00810EC08019",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 61 64
        "16" "6212345678901234", "200000", "000000010000", "000128",
        "104000", "1204", "1204", "00",  # DE12 hhmmss, DE13 MMDD, DE15, DE25
        "08" "01020000",  # DE32
        "343333383130303030303034",  # DE37 "433810000004": the void's own RRN
        "313233343536",  # DE38 "123456": the original's authorization code, echoed
        "3030", TID, MID, CNY,
        "0013" "2300000100050F", "0012" "000001000123",  # DE60, DE61 echoed
        "3331343642313341",  # DE64 "3146B13A"
    ]),
    "preauth_0100": (TxnType.AUTHORIZATION, {
        "t": "0100", "2": PAN, "3": "030000", "4": "000000050000", "11": "000129",
        "22": "021", "25": "06", **IDS, "49": "156", "60": "1000000100050",
        "64": "4342324541303736"}, [
        REQUEST_TPDU, HEADER,
        "0100",  # authorization request
        "7020048000C08011",  # 2 3 4 11 22 25 41 42 49 60 64
        "16" "6212345678901234",
        "030000",  # DE3 pre-authorization
        "000000050000",  # DE4 500.00
        "000129", "0021",
        "06",  # DE25 06: pre-authorization
        TID, MID, CNY,
        "0013" "1000000100050F",  # DE60.1 10 pre-authorization
        "4342324541303736",  # DE64 "CB2EA076"
    ]),
    "preauth_0110": (None, {
        "t": "0110", "2": PAN, "3": "030000", "4": "000000050000", "11": "000129",
        "12": "104500", "13": "1204", "15": "1204", "25": "06", "32": "01020000",
        "37": "433810000005", "38": "654321", "39": "00", **IDS, "49": "156",
        "60": "1000000100050", "64": "3139313838414246"}, [
        RESPONSE_TPDU, HEADER,
        "0110",
        "703A00810EC08011",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 64
        "16" "6212345678901234", "030000", "000000050000", "000129",
        "104500", "1204", "1204", "06", "08" "01020000",
        "343333383130303030303035",  # DE37 "433810000005"
        "363534333231",  # DE38 "654321": the code the completion quotes
        "3030", TID, MID, CNY,
        "0013" "1000000100050F",
        "3139313838414246",  # DE64 "19188ABF"
    ]),
    "completion_0200": (TxnType.COMPLETION, {
        "t": "0200", "2": PAN, "3": "000000", "4": "000000045000", "11": "000130",
        "22": "021", "25": "06", "38": "654321", **IDS, "49": "156",
        "60": "2000000100050", "61": "0000010001291204", "64": "4644314330374438"}, [
        REQUEST_TPDU, HEADER,
        "0200",
        "7020048004C08019",  # 2 3 4 11 22 25 38 41 42 49 60 61 64
        "16" "6212345678901234",
        "000000",  # DE3 as a sale; DE25 and 60.1 make it a completion
        "000000045000",  # DE4 450.00, within the pre-authorized 500.00
        "000130", "0021",
        "06",  # DE25 06: pre-authorization
        "363534333231",  # DE38: the pre-authorization's code
        TID, MID, CNY,
        "0013" "2000000100050F",  # DE60.1 20 completion request
        "0016" "0000010001291204",  # DE61: orig batch 000001 | orig trace 000129 | 12-04
        "4644314330374438",  # DE64 "FD1C07D8"
    ]),
    "completion_0210": (None, {
        "t": "0210", "2": PAN, "3": "000000", "4": "000000045000", "11": "000130",
        "12": "105000", "13": "1204", "15": "1204", "25": "06", "32": "01020000",
        "37": "433810000006", "38": "654321", "39": "00", **IDS, "49": "156",
        "60": "2000000100050", "61": "0000010001291204", "64": "3439393734324245"}, [
        RESPONSE_TPDU, HEADER,
        "0210",
        "703A00810EC08019",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 61 64
        "16" "6212345678901234", "000000", "000000045000", "000130",
        "105000", "1204", "1204", "06", "08" "01020000",
        "343333383130303030303036",  # DE37 "433810000006"
        "363534333231",  # DE38 echoed
        "3030", TID, MID, CNY,
        "0013" "2000000100050F", "0016" "0000010001291204",
        "3439393734324245",  # DE64 "499742BE"
    ]),
    "auth_cancel_0100": (TxnType.AUTH_CANCEL, {
        "t": "0100", "2": PAN, "3": "200000", "4": "000000050000", "11": "000132",
        "22": "021", "25": "06", "38": "654321", **IDS, "49": "156",
        "60": "1100000100050", "61": "0000010001291204", "64": "3433303145384138"}, [
        REQUEST_TPDU, HEADER,
        "0100",  # the cancel is an authorization-class message, as the pre-authorization
        "7020048004C08019",  # 2 3 4 11 22 25 38 41 42 49 60 61 64
        "16" "6212345678901234",
        "200000",  # DE3 20: a cancel
        "000000050000",  # DE4: the whole pre-authorized 500.00
        "000132", "0021",
        "06",  # DE25 06: pre-authorization
        "363534333231",  # DE38: the pre-authorization's code
        TID, MID, CNY,
        "0013" "1100000100050F",  # DE60.1 11 pre-authorization cancel
        "0016" "0000010001291204",  # DE61: orig batch 000001 | orig trace 000129 | 12-04
        "3433303145384138",  # DE64 "4301E8A8"
    ]),
    "auth_cancel_0110": (None, {
        "t": "0110", "2": PAN, "3": "200000", "4": "000000050000", "11": "000132",
        "12": "105500", "13": "1204", "15": "1204", "25": "06", "32": "01020000",
        "37": "433810000007", "38": "654321", "39": "00", **IDS, "49": "156",
        "60": "1100000100050", "61": "0000010001291204", "64": "4346434630323746"}, [
        RESPONSE_TPDU, HEADER,
        "0110",
        "703A00810EC08019",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 61 64
        "16" "6212345678901234", "200000", "000000050000", "000132",
        "105500", "1204", "1204", "06", "08" "01020000",
        "343333383130303030303037",  # DE37 "433810000007": the cancel's own RRN
        "363534333231",  # DE38 echoed
        "3030",  # DE39 "00": the hold is released
        TID, MID, CNY,
        "0013" "1100000100050F", "0016" "0000010001291204",  # DE60, DE61 echoed
        "4346434630323746",  # DE64 "CFCF027F"
    ]),
    "completion_advice_0220": (TxnType.COMPLETION, {
        "t": "0220", "2": PAN, "3": "000000", "4": "000000045000", "11": "000133",
        "22": "021", "25": "06", "38": "654321", **IDS, "49": "156",
        "60": "2400000100050", "61": "0000010001291204", "64": "3232323835313830"}, [
        REQUEST_TPDU, HEADER,
        "0220",  # the offline completion is an advice, as the refund
        "7020048004C08019",  # 2 3 4 11 22 25 38 41 42 49 60 61 64
        "16" "6212345678901234",
        "000000",  # DE3 as a sale
        "000000045000",  # DE4 450.00, within the pre-authorized 500.00
        "000133", "0021",
        "06",  # DE25 06: pre-authorization
        "363534333231",  # DE38: the pre-authorization's code
        TID, MID, CNY,
        "0013" "2400000100050F",  # DE60.1 24 completion advice
        "0016" "0000010001291204",  # DE61: orig batch 000001 | orig trace 000129 | 12-04
        "3232323835313830",  # DE64 "22285180"
    ]),
    "completion_advice_0230": (None, {
        "t": "0230", "2": PAN, "3": "000000", "4": "000000045000", "11": "000133",
        "12": "110500", "13": "1204", "15": "1204", "25": "06", "37": "433810000009",
        "38": "654321", "39": "00", **IDS, "49": "156", "60": "2400000100050",
        "61": "0000010001291204", "64": "3130303741354633"}, [
        RESPONSE_TPDU, HEADER,
        "0230",
        "703A00800EC08019",  # 2 3 4 11 12 13 15 25 37 38 39 41 42 49 60 61 64: no DE32
        "16" "6212345678901234", "000000", "000000045000", "000133",
        "110500", "1204", "1204", "06",
        "343333383130303030303039",  # DE37 "433810000009": the completion's own RRN
        "363534333231",  # DE38 echoed
        "3030", TID, MID, CNY,
        "0013" "2400000100050F", "0016" "0000010001291204",
        "3130303741354633",  # DE64 "1007A5F3"
    ]),
    "completion_void_0200": (TxnType.VOID_COMPLETION, {
        "t": "0200", "2": PAN, "3": "200000", "4": "000000045000", "11": "000134",
        "22": "021", "25": "06", "37": "433810000006", **IDS, "49": "156",
        "60": "2100000100050", "61": "000001000130", "64": "4639443545303533"}, [
        REQUEST_TPDU, HEADER,
        "0200",
        "7020048008C08019",  # 2 3 4 11 22 25 37 41 42 49 60 61 64
        "16" "6212345678901234",
        "200000",  # DE3 20: a void
        "000000045000",  # DE4: the whole completed 450.00
        "000134", "0021",
        "06",  # DE25 06: pre-authorization
        "343333383130303030303036",  # DE37: the completion's RRN
        TID, MID, CNY,
        "0013" "2100000100050F",  # DE60.1 21 completion void
        "0012" "000001000130",  # DE61: orig batch 000001 | orig trace 000130 (the completion)
        "4639443545303533",  # DE64 "F9D5E053"
    ]),
    "completion_void_0210": (None, {
        "t": "0210", "2": PAN, "3": "200000", "4": "000000045000", "11": "000134",
        "12": "111000", "13": "1204", "15": "1204", "25": "06", "32": "01020000",
        "37": "433810000008", "38": "654321", "39": "00", **IDS, "49": "156",
        "60": "2100000100050", "61": "000001000130", "64": "3043454130343832"}, [
        RESPONSE_TPDU, HEADER,
        "0210",
        "703A00810EC08019",  # 2 3 4 11 12 13 15 25 32 37 38 39 41 42 49 60 61 64
        "16" "6212345678901234", "200000", "000000045000", "000134",
        "111000", "1204", "1204", "06", "08" "01020000",
        "343333383130303030303038",  # DE37 "433810000008": the completion void's own RRN
        "363534333231",  # DE38 "654321": the pre-authorization's code, echoed
        "3030", TID, MID, CNY,
        "0013" "2100000100050F", "0012" "000001000130",  # DE60, DE61 echoed
        "3043454130343832",  # DE64 "0CEA0482"
    ]),
    "reversal_0400": (TxnType.REVERSAL, {
        "t": "0400", "2": PAN, "3": "000000", "4": "000000010000", "11": "000123",
        "22": "021", "25": "00", "39": "98", **IDS, "49": "156", "60": "2200000100050",
        "64": "3439453536394242"}, [
        REQUEST_TPDU, HEADER,
        "0400",
        "7020048002C08011",  # 2 3 4 11 22 25 39 41 42 49 60 64
        "16" "6212345678901234", "000000", "000000010000",
        "000123",  # the sale's own trace: a reversal reuses it
        "0021", "00",
        "3938",  # DE39 "98": reason, no response received
        TID, MID, CNY,
        "0013" "2200000100050F",  # the original's DE60
        "3439453536394242",  # DE64 "49E569BB"
    ]),
    "reversal_0410": (None, {
        "t": "0410", "2": PAN, "3": "000000", "4": "000000010000", "11": "000123",
        "12": "103100", "13": "1204", "15": "1204", "25": "00", "32": "01020000",
        "37": "433810000003", "39": "00", **IDS, "49": "156", "60": "2200000100050",
        "64": "3336423232453632"}, [
        RESPONSE_TPDU, HEADER,
        "0410",
        "703A00810AC08011",  # 2 3 4 11 12 13 15 25 32 37 39 41 42 49 60 64 (no DE38)
        "16" "6212345678901234", "000000", "000000010000", "000123",
        "103100", "1204", "1204", "00", "08" "01020000",
        "343333383130303030303033",  # DE37 "433810000003"
        "3030",  # DE39 "00": reversed
        TID, MID, CNY,
        "0013" "2200000100050F",
        "3336423232453632",  # DE64 "36B22E62"
    ]),
    "sign_on_0800": (TxnType.SIGN_ON, {
        "t": "0800", "11": "000001", **IDS, "60": "00000001004", "63": "001"}, [
        REQUEST_TPDU, HEADER,
        "0800",
        "0020000000C00012",  # 11 41 42 60 63
        "000001", TID, MID,
        "0011" "00000001004F",  # DE60: 00 | batch 000001 | 004 triple-key sign-on
        "0003" "303031",  # DE63: LLL 3, operator "001" ASCII
    ]),
    "sign_on_0810": (None, {
        "t": "0810", "11": "000001", "12": "103000", "13": "1204", "32": "01020000",
        "37": "433800000001", "39": "00", **IDS, "60": "00000002004",
        "62": "4230EF1CB26849551FD1B02B237AF9AEAD7614FE"
              "1FD1B02B237AF9AE1A4D672DCA6CB3357B83586D"
              "1A4D672DCA6CB3354230EF1CB26849554FA9846C"}, [
        RESPONSE_TPDU, HEADER,
        "0810",
        "003800010AC00014",  # 11 12 13 32 37 39 41 42 60 62
        "000001", "103000", "1204", "08" "01020000",
        "343333383030303030303031",  # DE37 "433800000001"
        "3030", TID, MID,
        "0011" "00000002004F",  # DE60.2: the host's batch, 000002
        "0060",  # DE62: LLL 60 bytes, three keys under the TMK, each + 4-byte check value
        "4230EF1CB26849551FD1B02B237AF9AE" "AD7614FE",  # PIN key, KCV
        "1FD1B02B237AF9AE1A4D672DCA6CB335" "7B83586D",  # MAC key, KCV
        "1A4D672DCA6CB3354230EF1CB2684955" "4FA9846C",  # data key, KCV
    ]),
    "sign_on_single_0800": (TxnType.SIGN_ON, {
        "t": "0800", "11": "000002", **IDS, "60": "00000001001", "63": "001"}, [
        REQUEST_TPDU, HEADER,
        "0800",
        "0020000000C00012",  # 11 41 42 60 63
        "000002", TID, MID,
        "0011" "00000001001F",  # DE60: 00 | batch 000001 | 001 single-length key sign-on
        "0003" "303031",
    ]),
    "sign_on_single_0810": (None, {
        "t": "0810", "11": "000002", "12": "103001", "13": "1204", "32": "01020000",
        "37": "433800000002", "39": "00", **IDS, "60": "00000002001",
        "62": "4230EF1CB268495500B8CC69" "1FD1B02B237AF9AEA68CDCA9"}, [
        RESPONSE_TPDU, HEADER,
        "0810",
        "003800010AC00014",  # 11 12 13 32 37 39 41 42 60 62
        "000002", "103001", "1204", "08" "01020000",
        "343333383030303030303032",  # DE37 "433800000002"
        "3030", TID, MID,
        "0011" "00000002001F",
        "0024",  # DE62: LLL 24 bytes, two single DES keys under the TMK, each + 4-byte KCV
        "4230EF1CB2684955" "00B8CC69",  # PIN key 89ABCDEF01234567 (one TDES-ECB block), KCV
        "1FD1B02B237AF9AE" "A68CDCA9",  # MAC key FEDCBA9876543210, KCV
    ]),
    "sign_off_0820": (TxnType.SIGN_OFF, {
        "t": "0820", "11": "000131", **IDS, "60": "00000001002"}, [
        REQUEST_TPDU, HEADER,
        "0820",
        "0020000000C00010",  # 11 41 42 60
        "000131", TID, MID,
        "0011" "00000001002F",  # DE60: 00 | batch 000001 | 002 sign-off
    ]),
    "sign_off_0830": (None, {
        "t": "0830", "11": "000131", "12": "180000", "13": "1204", "32": "01020000",
        "37": "433800000002", "39": "00", **IDS, "60": "00000001002"}, [
        RESPONSE_TPDU, HEADER,
        "0830",
        "003800010AC00010",  # 11 12 13 32 37 39 41 42 60: no MAC on 0830
        "000131", "180000", "1204", "08" "01020000",
        "343333383030303030303032",  # DE37 "433800000002"
        "3030", TID, MID,
        "0011" "00000001002F",
    ]),
    "settlement_0500": (TxnType.SETTLEMENT, {
        "t": "0500", "11": "000125", **IDS,
        "48": "000000010000001000000003000001" "0" "000000000000000000000000000000" "0",
        "49": "156", "60": "00000001201", "63": "001"}, [
        REQUEST_TPDU, HEADER,
        "0500",
        "0020000000C18012",  # 11 41 42 48 49 60 63
        "000125", TID, MID,
        "0062",  # DE48: LLL 62 digits, 31 bytes
        "000000010000" "001" "000000003000" "001" "0",  # domestic: debits, credits, flag
        "000000000000" "000" "000000000000" "000" "0",  # foreign
        CNY,
        "0011" "00000001201F",  # DE60.3 201: settlement
        "0003" "303031",
    ]),
    "settlement_0510": (None, {
        "t": "0510", "11": "000125", "12": "110000", "13": "1204", "15": "1204",
        "32": "01020000", "37": "433800000003", "39": "00", **IDS,
        "48": "000000010000001000000003000001" "1" "000000000000000000000000000000" "1",
        "49": "156", "60": "00000001201", "63": "001"}, [
        RESPONSE_TPDU, HEADER,
        "0510",
        "003A00010AC18012",  # 11 12 13 15 32 37 39 41 42 48 49 60 63: no MAC on 0510
        "000125", "110000", "1204", "1204", "08" "01020000",
        "343333383030303030303033",  # DE37 "433800000003"
        "3030",  # DE39 "00" whether the totals agree or not
        TID, MID,
        "0062",  # DE48: the terminal's totals echoed
        "000000010000" "001" "000000003000" "001" "1",  # domestic, flag 1: balanced
        "000000000000" "000" "000000000000" "000" "1",  # foreign, the same flag
        CNY,
        "0011" "00000001201F", "0003" "303031",  # DE60, DE63 echoed
    ]),
    "upload_0320": (TxnType.BATCH_UPLOAD, {
        "t": "0320", "11": "000126", **IDS,
        "48": "01" "00" "000123" "00006212345678901234" "000000010000",
        "60": "00000001201"}, [
        REQUEST_TPDU, HEADER,
        "0320",
        "0020000000C10010",  # 11 41 42 48 60
        "000126", TID, MID,
        "0042",  # DE48: LLL 42 digits
        "01",  # one record
        "00" "000123" "00006212345678901234" "000000010000",  # domestic | trace | PAN | 100.00
        "0011" "00000001201F",
    ]),
    "upload_0330": (None, {
        "t": "0330", "11": "000126", "12": "110100", "13": "1204", "32": "01020000",
        "37": "433800000004", "39": "00", **IDS,
        "48": "01" "00" "000123" "00006212345678901234" "000000010000",
        "60": "00000001201"}, [
        RESPONSE_TPDU, HEADER,
        "0330",
        "003800010AC10010",  # 11 12 13 32 37 39 41 42 48 60: no MAC on 0330
        "000126", "110100", "1204", "08" "01020000",
        "343333383030303030303034",  # DE37 "433800000004"
        "3030", TID, MID,
        "0042" "01" "00" "000123" "00006212345678901234" "000000010000",  # DE48 echoed
        "0011" "00000001201F",
    ]),
    "upload_end_0320": (TxnType.BATCH_UPLOAD, {
        "t": "0320", "11": "000127", **IDS, "48": "0001", "60": "00000001207"}, [
        REQUEST_TPDU, HEADER,
        "0320",
        "0020000000C10010",  # 11 41 42 48 60
        "000127", TID, MID,
        "0004" "0001",  # DE48: LLL 4 digits, the number of records uploaded
        "0011" "00000001207F",  # DE60.3 207: end of the batch upload
    ]),
    "upload_end_0330": (None, {
        "t": "0330", "11": "000127", "12": "110200", "13": "1204", "32": "01020000",
        "37": "433800000005", "39": "00", **IDS, "48": "0001", "60": "00000001207"}, [
        RESPONSE_TPDU, HEADER,
        "0330",
        "003800010AC10010",  # 11 12 13 32 37 39 41 42 48 60
        "000127", "110200", "1204", "08" "01020000",
        "343333383030303030303035",  # DE37 "433800000005"
        "3030", TID, MID,
        "0004" "0001",  # DE48 echoed
        "0011" "00000001207F",
    ]),
}


def _wire(name: str) -> bytes:
    return bytes.fromhex("".join(GOLDEN[name][2]))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_frame_decodes_to_its_fields_and_re_encodes_byte_identical(name: str) -> None:
    """A hand-built CUP frame decodes to the annotated fields and encodes back to its bytes."""
    _, fields, _ = GOLDEN[name]
    wire = _wire(name)
    tpdu, decoded = CODEC.decode(wire)
    assert decoded == {**fields, "h": HEADER}
    assert CODEC.encode(decoded, tpdu) == wire


@pytest.mark.parametrize("name", sorted(n for n, (txn, _, _) in GOLDEN.items() if txn))
def test_golden_request_is_identified_and_complete(name: str) -> None:
    """Each request is told apart by MTI + DE3 + DE25 + DE60 and carries its mandatory fields."""
    txn, fields, _ = GOLDEN[name]
    assert CUP_PROFILE.identify(fields["t"], fields.get("3"), fields) is txn
    assert CUP_PROFILE.missing_field(fields) is None


@pytest.mark.parametrize("name", sorted(n for n, (txn, _, _) in GOLDEN.items() if txn))
def test_golden_request_is_read_into_its_typed_message(name: str) -> None:
    """The profile's reader turns each golden request into its transaction and CUP facts."""
    txn, fields, _ = GOLDEN[name]
    read_txn, request = parse_cup_request(fields, CUP_PROFILE)
    assert read_txn is txn
    facts = request.cup_data
    assert facts is not None and facts.de60.text() == fields["60"]


def test_golden_uploads_carry_records_then_the_closing_count() -> None:
    """The 201 upload is read as its records; the closing 207 as the number of records sent."""
    _, records = parse_cup_request(GOLDEN["upload_0320"][1], CUP_PROFILE)
    _, closing = parse_cup_request(GOLDEN["upload_end_0320"][1], CUP_PROFILE)
    assert records.cup_data.de60.network_code == UPLOAD_RECORDS
    assert closing.cup_data.de60.network_code == UPLOAD_END
    assert closing.cup_data.record_count == len(records.cup_data.records)


def test_golden_settlement_answer_echoes_the_totals_flagged_balanced() -> None:
    """The 0510's DE48 is the 0500's totals with both result flags set to 1 (balanced)."""
    asked = CupTotals.parse(GOLDEN["settlement_0500"][1]["48"])
    answered = CupTotals.parse(GOLDEN["settlement_0510"][1]["48"])
    assert answered == CupTotals(asked.domestic, asked.foreign, SettlementResult.BALANCED)


@pytest.mark.parametrize("name", sorted(n for n, (_, f, _) in GOLDEN.items()
                                         if f["t"] in CUP_MAC_MTIS))
def test_golden_mac_is_the_cup_ecb_mac_of_mti_to_de63(name: str) -> None:
    """DE64 is the CUP ECB MAC of the bytes from the MTI up to DE64, per psec and per poslab."""
    body = _wire(name)[5 + 6:]  # past the TPDU and the message header
    span, mac = body[:-8], body[-8:]
    assert GOLDEN[name][1]["64"] == mac.hex().upper()
    assert reference_cup_mac(MAC_KEY, span) == mac
    key = Key.from_hex(TMK, KeyAlgorithm.TDES_2KEY)
    assert get_mac_scheme(CUP_PROFILE.mac_scheme or "").compute(key, span) == mac


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_frame_carries_a_mac_exactly_when_its_mti_is_maced(name: str) -> None:
    """Financial messages carry DE64; 0320/0330, 0500/0510, 0800/0810 and 0820/0830 do not."""
    fields = GOLDEN[name][1]
    assert ("64" in fields) == (fields["t"] in CUP_MAC_MTIS)


def test_golden_frames_cover_every_message_of_the_profile() -> None:
    """Each CUP route's request MTI and its response MTI have at least one golden frame."""
    mtis = {fields["t"] for _, fields, _ in GOLDEN.values()}
    routed = {mti for route in CUP_PROFILE.routes for mti in route.mtis}
    assert routed <= mtis
    assert {response_mti(mti) for mti in routed} <= mtis
    txns = {txn for txn, _, _ in GOLDEN.values() if txn}
    assert {route.txn for route in CUP_PROFILE.routes} <= txns


def test_sign_on_response_keys_unwrap_under_the_tmk_with_their_check_values() -> None:
    """The 0810's DE62 is PIN, MAC and data key under the TMK, each KCV checking."""
    block = bytes.fromhex(GOLDEN["sign_on_0810"][1]["62"])
    keys = WorkingKeys.unwrap(Key.from_hex(TMK, KeyAlgorithm.TDES_2KEY), block,
                              KeyAlgorithm.TDES_2KEY)
    assert keys.mac.kcv(4).hex().upper() == "7B83586D"
    assert keys.data is not None and keys.data.kcv(4).hex().upper() == "4FA9846C"
    assert Key.from_hex(MAK, KeyAlgorithm.TDES_2KEY).kcv() == keys.mac.kcv()


def test_single_length_sign_on_response_keys_unwrap_as_single_des() -> None:
    """The 001 0810's DE62 is two single DES keys, each one block under the TMK with the
    4-byte check value of DES over eight zero bytes."""
    block = bytes.fromhex(GOLDEN["sign_on_single_0810"][1]["62"])
    keys = WorkingKeys.unwrap(Key.from_hex(TMK, KeyAlgorithm.TDES_2KEY), block,
                              KeyAlgorithm.DES)
    assert keys.pin == Key.from_hex("89ABCDEF01234567", KeyAlgorithm.DES)
    assert keys.mac == Key.from_hex("FEDCBA9876543210", KeyAlgorithm.DES)
    assert keys.data is None and keys.mac.kcv(4).hex().upper() == "A68CDCA9"


def test_refund_and_void_are_told_apart_by_de60_not_by_mti_and_code_alone() -> None:
    """0200/20 is a void only with 60.1 23; 0220/20 is a refund only with 60.1 25."""
    refund = GOLDEN["refund_0220"][1]
    assert CUP_PROFILE.identify("0220", "200000", {**refund, "60": "2300000100050"}) is None
    void = {**refund, "t": "0200", "60": "2300000100050"}
    assert CUP_PROFILE.identify("0200", "200000", void) is TxnType.VOID
    assert CUP_PROFILE.message_for(TxnType.REFUND) == ("0220", "200000")


def test_preauthorization_family_is_told_apart_by_de25_and_de60() -> None:
    """DE25 06 and 60.1 make the family: 0100/20 11 a cancel, 0220/00 24 a completion advice,
    0200/20 21 a completion void; with DE25 00 none of them is; route(COMPLETION) is the
    0200 request."""
    cases = {"auth_cancel_0100": "00", "completion_advice_0220": "00",
             "completion_void_0200": "00"}
    for name, other_pos in cases.items():
        txn, fields, _ = GOLDEN[name]
        assert CUP_PROFILE.identify(fields["t"], fields["3"], fields) is txn
        assert CUP_PROFILE.identify(fields["t"], fields["3"], {**fields, "25": other_pos}) \
            is None
    sale_void = {**GOLDEN["completion_void_0200"][1], "60": "2300000100050"}
    assert CUP_PROFILE.identify("0200", "200000", sale_void) is None  # 23 wants DE25 00
    assert CUP_PROFILE.message_for(TxnType.COMPLETION) == ("0200", "000000")
    assert CUP_PROFILE.message_for(TxnType.AUTH_CANCEL) == ("0100", "200000")
    assert CUP_PROFILE.message_for(TxnType.VOID_COMPLETION) == ("0200", "200000")


def test_cancel_is_read_with_the_code_and_original_it_names() -> None:
    """The cancel's typed message carries DE38 and DE61 in its CUP facts and no RRN (the host
    finds the pre-authorization by them); a cancel without DE38 misses 38."""
    fields = GOLDEN["auth_cancel_0100"][1]
    _, request = parse_cup_request(fields, CUP_PROFILE)
    facts = request.cup_data
    assert (facts.approval_code, facts.original.trace, facts.original.date_mmdd) == (
        "654321", "000129", "1204")
    assert request.original_rrn == ""
    assert request.mti == "0100"
    no_code = dict(fields)
    del no_code["38"]
    assert CUP_PROFILE.missing_field(no_code) == "38"


def test_completion_request_and_advice_keep_their_own_mti() -> None:
    """A CUP completion read as the typed completion keeps the MTI it was sent with: 0200
    for the request, 0220 for the advice."""
    for name, mti in (("completion_0200", "0200"), ("completion_advice_0220", "0220")):
        _, request = parse_cup_request(GOLDEN[name][1], CUP_PROFILE)
        assert request.mti == mti


def test_sign_on_comes_in_single_double_and_triple_key_kinds() -> None:
    """60.3 001 (single-length DES keys), 003 and 004 are sign-ons, 005 is none; the sign-on
    poslab's terminal sends is still the 004 one."""
    base = GOLDEN["sign_on_0800"][1]
    for code in ("001", "003", "004"):
        fields = {**base, "60": f"00000001{code}"}
        assert CUP_PROFILE.identify("0800", None, fields) is TxnType.SIGN_ON
    assert CUP_PROFILE.identify("0800", None, {**base, "60": "00000001005"}) is None
    assert CUP_PROFILE.message_for(TxnType.SIGN_ON) == ("0800", None)


def test_strict_checks_name_the_missing_cup_field() -> None:
    """A refund without DE61 (original data) misses 61; a sale without card data misses 2."""
    refund = dict(GOLDEN["refund_0220"][1])
    del refund["61"]
    assert CUP_PROFILE.missing_field(refund) == "61"
    sale = dict(GOLDEN["sale_0200"][1])
    del sale["2"]
    assert CUP_PROFILE.missing_field(sale) == "2"


def test_pan_in_a_bcd_field_must_be_digits() -> None:
    """The table refuses letters in BCD DE2 and names the field."""
    fields = {**GOLDEN["sale_0200"][1], "2": "62123456789A1234"}
    with pytest.raises(ValidationError) as info:
        validate_fields(fields, CUP_TABLE)
    assert info.value.field == "2"


def test_de60_and_de61_round_trip() -> None:
    """DE60 splits into type, batch, network code and flags; DE61 into batch, trace, date."""
    de60 = De60.parse("2200000100050")
    assert (de60.type_code, de60.batch, de60.network_code, de60.read_capability) == \
        ("22", "000001", "000", "5")
    assert de60.text() == "2200000100050"
    assert De60.parse("00000001004").network_code == "004"
    de61 = De61.parse("0000010001231204")
    assert (de61.batch, de61.trace, de61.date_mmdd) == ("000001", "000123", "1204")
    assert de61.text() == "0000010001231204"


@pytest.mark.parametrize(("parse", "text", "message"), [
    (De60.parse, "2200", "must be 8 or"),
    (De60.parse, "22A00001", "digits"),
    (De61.parse, "000001", "12 or 16"),
])
def test_private_field_errors_name_the_field(parse, text, message) -> None:  # type: ignore[no-untyped-def]
    """A short or non-digit DE60/DE61 is a validation error naming the field."""
    with pytest.raises(ValidationError, match=message) as info:
        parse(text)
    assert info.value.field in ("60", "61")


def test_settlement_totals_round_trip_and_flag_the_result() -> None:
    """DE48 totals: domestic and foreign halves; the host answers with flag 1 or 2."""
    totals = CupTotals.parse(GOLDEN["settlement_0500"][1]["48"])
    assert totals.domestic == SchemeTotals(10000, 1, 3000, 1)
    assert totals.foreign == SchemeTotals()
    assert totals.result is SettlementResult.SENT
    answered = CupTotals(totals.domestic, totals.foreign, SettlementResult.BALANCED)
    assert answered.text()[30] == "1" and answered.text()[61] == "1"
    assert CupTotals.parse(answered.text()) == answered


def test_settlement_totals_refuse_disagreeing_flags() -> None:
    """The two halves' result flags must agree."""
    text = "0" * 30 + "1" + "0" * 30 + "2"
    with pytest.raises(ValidationError, match="flags"):
        CupTotals.parse(text)


def test_upload_records_round_trip_without_showing_the_pan() -> None:
    """0320 records parse to card type, trace, PAN and amount; their repr hides the PAN."""
    records = parse_upload(GOLDEN["upload_0320"][1]["48"])
    assert records == [UploadRecord(False, "000123", PAN, 10000)]
    assert upload_text(records) == GOLDEN["upload_0320"][1]["48"]
    assert PAN not in repr(records)


def test_upload_refuses_a_count_that_does_not_match() -> None:
    """A record count that disagrees with the digits is named."""
    with pytest.raises(ValidationError, match="count 2"):
        parse_upload("02" + "0" * 40)
