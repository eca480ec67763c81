"""The terminal in Simplified Chinese: the message catalogue, the choice of language, the
签购单 receipt and pilot runs of the TUI in both languages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from rich.cells import cell_len
from term_helpers import drive, result, sale, screen_text
from textual.pilot import Pilot

from protocol.codes import RefundReason, ResponseCode, RuleId
from terminal import cli, i18n, receipt
from terminal.app import LINK_STATES, OUTCOME_TITLES, PosApp
from terminal.config import TerminalConfig
from terminal.journal import Txn, TxnKind, TxnStatus

CATALOGUE = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES"
TERMINAL_DIR = Path(i18n.__file__).parent


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """Every test leaves the process in English, whatever it switched to."""
    yield
    i18n.use(i18n.ENGLISH)


def _po() -> Any:
    with (CATALOGUE / "poslab.po").open("rb") as f:
        return read_po(f)


def message_ids() -> set[str]:
    """Every text the terminal shows: marked in its code, plus the enum texts it translates
    (transaction kinds, refund reasons, response-code meanings, the DE44 rules' explanations)."""
    found = {msg if isinstance(msg, str) else msg[0]
             for _f, _l, msg, _c, _x in extract_from_dir(
                 str(TERMINAL_DIR), [("**.py", "python")],
                 keywords={"_": None, "N_": None, "ngettext": (1, 2)})}
    found |= {k.heading for k in TxnKind} | {r.label for r in RefundReason}
    found |= {rc.text for rc in ResponseCode} | {r.explanation for r in RuleId}
    return found | set(LINK_STATES) | set(OUTCOME_TITLES)


def test_every_message_has_a_chinese_translation() -> None:
    """Each message id of the terminal has a non-empty, non-fuzzy zh-CN translation."""
    translated = set()
    for message in _po():
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.id and all(texts) and not message.fuzzy:
            translated |= set(message.id) if isinstance(message.id, tuple) else {message.id}
    missing = sorted(message_ids() - translated)
    assert not missing, f"untranslated: {missing}"


def test_translations_keep_every_placeholder() -> None:
    """A translation names the same {placeholders} as its English text, so format() works."""
    for message in _po():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"\{(\w+)", ids[0]))
        for text in texts:
            assert set(re.findall(r"\{(\w+)", text)) == wanted, message.id


def test_committed_mo_matches_the_po() -> None:
    """The packaged .mo holds exactly the .po's translations (run `make i18n` after edits)."""
    with (CATALOGUE / "poslab.mo").open("rb") as f:
        compiled = read_mo(f)
    def table(catalogue: Any) -> dict[Any, tuple[str, ...]]:
        return {(m.context, tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id):
                tuple(m.string) if isinstance(m.string, (list, tuple)) else (m.string,)
                for m in catalogue if m.id}

    assert table(compiled) == table(_po())


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh-CN"),
    ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),
    ({"LANG": "zh_TW.UTF-8"}, "en"),
])
def test_language_from_the_locale_variables(environ: dict[str, str], expected: str) -> None:
    """LC_ALL, then LC_MESSAGES, then LANG decide; only zh_CN chooses Simplified Chinese."""
    assert i18n.from_environment(environ) == expected


def test_cli_lang_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """--lang wins; without it LANG=zh_CN picks Chinese; an unknown --lang is refused."""
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    args, _ = cli.parse_command_line([])
    assert cli.build_config(args).lang == "zh-CN"
    args, _ = cli.parse_command_line(["--lang", "en"])
    assert cli.build_config(args).lang == "en"
    with pytest.raises(SystemExit) as exc:
        cli.parse_command_line(["--lang", "fr"])
    assert exc.value.code == 2


def _txn(kind: TxnKind, status: TxnStatus = TxnStatus.APPROVED, code: str = "00") -> Txn:
    return Txn(seq=1, kind=kind, stan="000123", batch="000007", amount_minor=1250,
               currency="CNY", processing_code="000000", transmitted_at="1204100000",
               local_time="2026-12-04T10:00:00+08:00", masked_pan="621234******1265",
               card_name="UnionPay approve", entry_mode="05", status=status,
               response_code=code, rrn="123456789012", approval_code="A1B2C3",
               original_rrn="123456789000" if kind is not TxnKind.SALE else None)


@pytest.mark.parametrize(("kind", "name"), [(TxnKind.SALE, "消费"), (TxnKind.VOID, "撤销"),
                                            (TxnKind.REFUND, "退货")])
def test_chinese_receipt_is_a_sales_slip(kind: TxnKind, name: str) -> None:
    """In zh-CN the slip has the 签购单 fields, the transaction type in Chinese, the card
    masked, and no line wider than the paper."""
    i18n.use(i18n.CHINESE)
    lines = receipt.render(_txn(kind), receipt.Copy.MERCHANT, "MERCHANT0000001", "TERM0001")
    text = "\n".join(lines)
    for label in ("签购单", "商户名称", "商户编号", "终端编号", "批次号", "凭证号", "参考号",
                  "金额", "商户存根"):
        assert label in text
    assert re.search(r"卡号 +621234\*\*\*\*\*\*1265", text)
    assert re.search(f"交易类型 +{name}", text)
    assert re.search(r"批次号 +000007", text) and re.search(r"凭证号 +000123", text)
    assert re.search(r"参考号 +123456789012", text) and "12.50" in text
    assert all(cell_len(line) <= receipt.WIDTH for line in lines)


def test_chinese_receipt_declined_says_why_in_chinese() -> None:
    """A declined slip gives the code, its meaning and the host's rule explanation in Chinese,
    wrapped to the paper."""
    i18n.use(i18n.CHINESE)
    txn = _txn(TxnKind.SALE, TxnStatus.DECLINED, "51")
    txn.explanation = RuleId.INSUFFICIENT_FUNDS.explanation
    lines = receipt.render(txn, receipt.Copy.CUSTOMER, "MERCHANT0000001", "TERM0001")
    text = "\n".join(lines)
    assert "交易失败 51" in text and "余额不足" in text and "持卡人存根" in text
    assert "卡内余额不足" in text and all(cell_len(line) <= receipt.WIDTH for line in lines)
    assert "621234******1265" not in text and "**** 1265" in text


def test_english_receipt_is_unchanged_by_the_catalogue() -> None:
    """English stays the default and keeps the English layout."""
    text = "\n".join(receipt.render(_txn(TxnKind.SALE), receipt.Copy.MERCHANT,
                                    "MERCHANT0000001", "TERM0001"))
    assert "MERCHANT COPY" in text and "签购单" not in text and "SALE" in text


def test_tui_in_chinese_sale_and_decline(config: TerminalConfig, run: Any) -> None:
    """With --lang zh-CN the menu, prompts, result, receipt and footer keys are Chinese, a
    decline shows the response code's Chinese meaning, and the saved receipt is a 签购单."""
    seen: dict[str, str] = {}

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        seen["menu"] = screen_text(pilot)
        await pilot.press("1", *"1250", "enter")
        seen["card"] = screen_text(pilot)
        await pilot.press("i")
        seen["approved"] = await result(app, pilot)
        await pilot.press("enter")
        seen["declined"] = await sale(app, pilot, "100", card_down=3)
        await pilot.press("7")
        seen["settings"] = screen_text(pilot)

    drive(replace(config, lang="zh-CN"), run, script)
    assert all(w in seen["menu"] for w in ("消费", "退货", "撤销", "结算", "主菜单", "在线"))
    assert re.search(r"账务日期 \d\d月\d\d日", seen["menu"])
    assert "请刷卡、插卡或挥卡" in seen["card"] and "插卡" in seen["card"]
    assert "交易成功" in seen["approved"] and "签购单" in seen["approved"]
    assert "交易失败 05 拒绝交易" in seen["declined"]
    assert "返回" in seen["settings"] and "主管密码 开/关" in seen["settings"]
    assert "Back" not in seen["settings"]
    files = sorted((config.data_dir / "receipts").glob("*.txt"))
    assert files and "签购单" in files[0].read_text(encoding="utf-8")


def test_tui_in_english_by_default(config: TerminalConfig, run: Any) -> None:
    """Without --lang the same screens are English (the default)."""
    seen: dict[str, str] = {}

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        seen["menu"] = screen_text(pilot)
        seen["declined"] = await sale(app, pilot, "100", card_down=3)

    drive(config, run, script)
    assert "Main menu" in seen["menu"] and "消费" not in seen["menu"]
    assert "DECLINED 05 Do not honour" in seen["declined"]
