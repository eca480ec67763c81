"""Receipt slips: pure rendering of a journal line into the lines of a printed slip.

Both copies show the PAN masked (first six and last four on the merchant copy, last four only
on the customer copy), the entry mode, RRN, approval code and amount. Refunds and voids carry
their heading, original reference and reason; signature lines follow card-scheme custom: the
cardholder signs a sale, the merchant signs a refund or void.

In Simplified Chinese (``--lang zh-CN``) the slip takes the layout of a Chinese POS sales slip
(签购单): one labelled line each for merchant name, merchant and terminal number, card,
transaction type (消费 / 撤销 / 退货), batch, voucher (trace) and reference number, and amount.
Widths are counted in terminal cells, so a Chinese character takes two.
"""

from __future__ import annotations

import enum
from pathlib import Path

from rich.cells import cell_len

from protocol.codes import EntryMode, RefundReason, response_text
from protocol.money import Money
from terminal import i18n, times
from terminal.config import TerminalConfig
from terminal.i18n import N_, _
from terminal.journal import Txn, TxnKind, TxnStatus

WIDTH = 32
DEFAULT_ZONE = TerminalConfig.timezone


class Copy(enum.StrEnum):
    """Which copy of the slip."""

    MERCHANT = N_("MERCHANT COPY")
    CUSTOMER = N_("CUSTOMER COPY")


def _pair(left: str, right: str) -> str:
    gap = max(WIDTH - cell_len(left) - cell_len(right), 1)
    return f"{left}{' ' * gap}{right}"


def _center(text: str) -> str:
    return (" " * max((WIDTH - cell_len(text)) // 2, 0) + text).rstrip()


def _wrap(text: str) -> list[str]:
    """Lines of at most WIDTH cells, broken between words, or anywhere in text without spaces
    (Chinese)."""
    lines, line = [], ""
    for word in text.split():
        while cell_len(word) > WIDTH:
            cut = len(word)
            while cell_len(word[:cut]) > WIDTH:
                cut -= 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        if line and cell_len(line) + 1 + cell_len(word) > WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


def render(txn: Txn, copy: Copy, merchant_id: str, terminal_id: str,
           merchant_name: str = "POSLAB DEMO STORE", timezone: str = DEFAULT_ZONE) -> list[str]:
    """The lines of one copy of the slip for ``txn``.

    Pairs of short fields share a line so a whole copy fits an 80x24 screen beside the flow.
    The date is the host's (see :mod:`terminal.times`) in the merchant's ``timezone``.
    Outside English the slip takes the 签购单 layout (see the module docstring).
    """
    if i18n.current() != i18n.ENGLISH:
        return _slip(txn, copy, merchant_id, terminal_id, merchant_name, timezone)
    rule = "-" * WIDTH
    lines = [_center(merchant_name), _pair(f"MID {merchant_id}", f"TID {terminal_id}"),
             _pair(f"BATCH {txn.batch}", f"STAN {txn.stan}"),
             _pair("DATE", times.when(txn, times.zone(timezone))),
             f" {txn.kind.heading} ".center(WIDTH, "-")]
    if txn.masked_pan:
        shown = txn.masked_pan if copy is Copy.MERCHANT else "**** " + txn.masked_pan[-4:]
        lines.append(_pair("CARD", shown))
    if txn.entry_mode:
        lines.append(_pair("ENTRY", EntryMode(txn.entry_mode).label))
    if txn.original_rrn:
        lines.append(_pair("ORIG RRN", txn.original_rrn))
    if txn.reason:
        lines.append(_pair("REASON", RefundReason(txn.reason).label))
    lines.append(_pair(f"RRN {txn.rrn or '-'}", f"AUTH {txn.approval_code or '-'}"))
    sign = "-" if txn.kind is not TxnKind.SALE else ""
    amount = Money(txn.amount_minor, txn.currency)
    lines += [rule, _pair("AMOUNT", f"{txn.currency} {sign}{amount.format()}"), rule]
    lines += _verdict(txn)
    if txn.approved:
        signer = "CARDHOLDER" if txn.kind is TxnKind.SALE else "MERCHANT"
        if copy is Copy.MERCHANT:
            lines += ["", "X" + "_" * (WIDTH - 1), _center(f"{signer} SIGNATURE")]
        if txn.kind is TxnKind.SALE:
            lines.append(_center("I agree to pay the above total"))
    lines.append(_center(f"*** {copy.value} ***"))
    return lines


def _slip(txn: Txn, copy: Copy, merchant_id: str, terminal_id: str, merchant_name: str,
          timezone: str) -> list[str]:
    """The 签购单 layout: one labelled line per field, the amount between rules."""
    rule = "-" * WIDTH
    lines = [_center(_("SALES SLIP")), _pair(_("Merchant name"), merchant_name),
             _pair(_("Merchant no."), merchant_id), _pair(_("Terminal no."), terminal_id)]
    if txn.masked_pan:
        shown = txn.masked_pan if copy is Copy.MERCHANT else "**** " + txn.masked_pan[-4:]
        lines.append(_pair(_("Card no."), shown))
    lines += [_pair(_("Transaction type"), _(txn.kind.heading)),
              _pair(_("Batch no."), txn.batch), _pair(_("Voucher no."), txn.stan),
              _pair(_("Date/time"), times.when(txn, times.zone(timezone)))]
    if txn.original_rrn:
        lines.append(_pair(_("Original ref. no."), txn.original_rrn))
    if txn.reason:
        lines.append(_pair(_("Reason"), _(RefundReason(txn.reason).label)))
    lines += [_pair(_("Reference no."), txn.rrn or "-"),
              _pair(_("Auth. code"), txn.approval_code or "-")]
    sign = "-" if txn.kind is not TxnKind.SALE else ""
    amount = Money(txn.amount_minor, txn.currency)
    lines += [rule, _pair(_("Amount"), f"{txn.currency} {sign}{amount.format()}"), rule]
    lines += _verdict(txn)
    if txn.approved:
        if copy is Copy.MERCHANT:
            signer = _("CARDHOLDER SIGNATURE") if txn.kind is TxnKind.SALE else _(
                "MERCHANT SIGNATURE")
            lines += ["", "X" + "_" * (WIDTH - 1), _center(signer)]
        if txn.kind is TxnKind.SALE:
            lines += [_center(line) for line in _wrap(_("I agree to pay the above total"))]
    lines.append(_center(f"*** {_(copy.value)} ***"))
    return lines


def _verdict(txn: Txn) -> list[str]:
    if txn.status is TxnStatus.APPROVED:
        return [_center(_("APPROVED"))]
    if txn.status is TxnStatus.DECLINED:
        code = txn.response_code or "--"
        out = [_center(_("DECLINED {code}").format(code=code)),
               _center(i18n.meaning(response_text(code)))]
        if txn.explanation and txn.explanation != response_text(code):
            out += _wrap(_(txn.explanation))
        return out
    return [_center(_("NO RESPONSE - REVERSED")),
            *_wrap(_("This transaction did not complete. No money has moved."))]


def text(txn: Txn, merchant_id: str, terminal_id: str, timezone: str = DEFAULT_ZONE) -> str:
    """Both copies, as one printable text."""
    merchant = render(txn, Copy.MERCHANT, merchant_id, terminal_id, timezone=timezone)
    customer = render(txn, Copy.CUSTOMER, merchant_id, terminal_id, timezone=timezone)
    return "\n".join(merchant + ["", "- " * (WIDTH // 2), ""] + customer) + "\n"


def save(txn: Txn, data_dir: Path, merchant_id: str, terminal_id: str,
         timezone: str = DEFAULT_ZONE) -> Path:
    """Write both copies under ``data_dir/receipts`` and return the file's path."""
    folder = data_dir / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"B{txn.batch}-S{txn.stan}-{txn.kind.value}.txt"
    path.write_text(text(txn, merchant_id, terminal_id, timezone), encoding="utf-8")
    return path
