"""The generated admin token works where the README puts it: ``--token $TOKEN``."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from host.runtime import TOKEN_ENV, resolve_admin_token
from scenarios.cli import _parser as scenarios_parser


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def test_token_from_unlucky_random_bytes_is_still_an_argument(monkeypatch: Any) -> None:
    """Random bytes that base64 would turn into a leading '-' still give a token that
    `poslab-scenarios run ... --token TOKEN` reads as the token, not as an option."""
    monkeypatch.setattr(secrets, "token_bytes", lambda n=32: b"\xf8" + bytes(n - 1))
    token = resolve_admin_token(None, None)
    assert not token.startswith("-")
    args = scenarios_parser().parse_args(["run", "qa/", "--token", token])
    assert args.token == token


def test_generated_tokens_never_start_with_a_dash() -> None:
    """Thousands of real draws: none begins with '-', all are long and shell-safe."""
    tokens = {resolve_admin_token(None, None) for _ in range(3000)}
    assert len(tokens) == 3000
    assert all(len(t) >= 32 and t.isalnum() for t in tokens)
    assert not [t for t in tokens if t.startswith("-")]
