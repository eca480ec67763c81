"""The host console in Simplified Chinese from the terminal's catalogue (now protocol/locale):
every console text translated, --lang and LANG, the panels' labels, holiday names."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from textual.pilot import Pilot

import host.console
from host.cli import build_parser
from host.console.app import ConsoleApp
from host.console.cli import console_language
from host.console.model import calendar_days
from host.console.serve import tab_command
from protocol import i18n

sys.path.insert(0, str(Path(__file__).parent))

from console_fakes import FakeApi  # noqa: E402
from test_console_snapshots import WIDE, _ready  # noqa: E402

CONSOLE_DIR = Path(host.console.__file__).parent
CN = {"country": "CN", "subdivision": None, "timezone": "Asia/Shanghai"}


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """Every test leaves the process in English, whatever it switched to."""
    yield
    i18n.use(i18n.ENGLISH)


def test_every_console_text_has_a_chinese_translation() -> None:
    """Each text marked in host/console (with its context) has a zh-CN translation."""
    with (i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "poslab.po").open("rb") as f:
        catalogue = read_po(f)
    translated = {(m.context, m.id) for m in catalogue
                  if m.id and m.string and not m.fuzzy and isinstance(m.id, str)}
    marked = {(context, msg if isinstance(msg, str) else msg[0])
              for _f, _l, msg, _c, context in extract_from_dir(
                  str(CONSOLE_DIR), [("**.py", "python")],
                  keywords={"_": None, "N_": None, "pgettext": ((1, "c"), 2)})}
    assert len(marked) > 100
    assert not sorted(marked - translated, key=str), "untranslated"


def test_lang_option_and_the_locale_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """--lang wins; without it LANG=zh_CN picks Chinese; a browser tab gets the same --lang;
    an unknown --lang is refused."""
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    parser = build_parser()
    assert console_language(parser.parse_args(["console"])) == "zh-CN"
    assert console_language(parser.parse_args(["console", "--lang", "en"])) == "en"
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert console_language(parser.parse_args(["console"])) == "en"
    argv = tab_command("http://127.0.0.1:8584", None, "default", "zh-CN")
    assert argv[argv.index("--lang") + 1] == "zh-CN"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["console", "--lang", "fr"])
    assert exc.value.code == 2


def _screen(pilot: Pilot[Any]) -> str:
    strips = pilot.app.screen._compositor.render_strips()  # noqa: SLF001
    return "\n".join(strip.text for strip in strips)


def test_each_panel_shows_chinese_labels(run: Any) -> None:
    """With lang zh-CN at 80x24: Chinese tabs, keys, columns, message types, the refund board,
    T-accounts (借/贷, account names), clock and review states; amounts keep the ISO code."""

    async def script() -> dict[str, str]:
        app = ConsoleApp(FakeApi(), lang=i18n.CHINESE)  # type: ignore[arg-type]
        seen: dict[str, str] = {}
        async with app.run_test(size=(80, 24)) as pilot:
            await _ready(pilot)
            for key in "12345":
                await pilot.press(key)
                await pilot.pause()
                seen[key] = _screen(pilot)
        return seen

    seen = run(script())
    wanted = {
        "1": ("1 报文", "2 退货", "3 账务分录", "4 时钟", "5 审核", "报文流", "应答码", "消费",
              "退货", "125.00 CNY", "加 1 小时", "下一日切", "批准", "拒绝", "退出"),
        "2": ("退货流程", "原交易已核实", "已申请退货", "审核 / 批准", "待审核：已批准 1/2",
              "原因 RETURN", "凭证 receipt", "批次未结"),
        "3": ("应付商户款:MERCHANT0000001", "卡组织清算款", "审核中退货", "借 │ 贷",
              "40.00 CNY 贷", "哈希链：校验通过"),
        "4": ("时钟与日历", "模拟时钟", "营业日 2026-03-02", "下一日切：03-02 15:00:00",
              "周一 03-02  营业日", "周六 03-07  周末"),
        "5": ("编号", "参考号", "金额", "待审核", "1/2"),
    }
    missing = {key: [w for w in words if w not in seen[key]] for key, words in wanted.items()}
    assert not any(missing.values()), missing
    english = ("Ladder", "Refund life cycle", "approve", "business date", "pending_review",
               "scheme_settlement", "Dr", "156", "palette")
    assert not [w for text in seen.values() for w in english if w in text]


def test_snapshot_wide_screen_in_chinese(snap_compare: Any) -> None:
    """--lang zh-CN at 200x50: the five panels side by side, every label Chinese."""

    def app() -> ConsoleApp:
        return ConsoleApp(FakeApi(), lang=i18n.CHINESE)  # type: ignore[arg-type]

    assert snap_compare(app(), terminal_size=WIDE, run_before=_ready)


def test_holidays_have_their_chinese_names_in_chinese() -> None:
    """The calendar strip names 春节 in Chinese and Spring Festival in English."""
    i18n.use(i18n.CHINESE)
    day = calendar_days(CN, "2026-02-16T16:30:00+00:00", 1)[0]  # 02-17 00:30 in Shanghai
    assert day.label == "节假日：春节" and day.weekday == "周二"
    i18n.use(i18n.ENGLISH)
    day = calendar_days(CN, "2026-02-16T16:30:00+00:00", 1)[0]
    assert day.label == "holiday: Chinese New Year (Spring Festival)" and day.weekday == "Tue"
