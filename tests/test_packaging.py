"""Packaging guard: our five import names, console scripts and import layers."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PACKAGES = ("terminal", "host", "protocol", "scenarios", "webshell")


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=REPO_ROOT, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip


def test_top_level_names_belong_to_poslab() -> None:
    """Our five import names come from this distribution only, and from this checkout."""
    owners = importlib.metadata.packages_distributions()
    for name in PACKAGES:
        # The editable install's dist-info and the checkout's own poslab.egg-info (on sys.path
        # when run from the repository root) both say "poslab": one owner, maybe listed twice.
        # Another distribution shipping the same name shows up here as a second owner.
        assert sorted(set(owners.get(name, []))) == ["poslab"], (name, owners.get(name))
        module = importlib.import_module(name)
        assert module.__file__ is not None, f"{name} is a namespace package, not ours"
        assert Path(module.__file__).resolve().is_relative_to(REPO_ROOT), module.__file__


def test_import_layers_hold() -> None:
    """lint-imports passes: scenarios -> terminal | host -> protocol, never sideways or up."""
    result = _run(VENV_BIN / "lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["poslab-host", "poslab-terminal", "poslab-scenarios"])
def test_console_scripts_print_their_version(script: str) -> None:
    """Each console script is installed and `--version` prints the distribution's version."""
    result = _run(VENV_BIN / script, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{script} {importlib.metadata.version('poslab')}"


@pytest.mark.parametrize("package", ["host", "terminal", "scenarios"])
def test_python_dash_m_help(package: str) -> None:
    """`python -m host|terminal|scenarios --help` exits 0 with a usage line."""
    result = _run(sys.executable, "-m", package, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_the_message_catalogue_ships_with_protocol() -> None:
    """The zh-CN catalogue the terminal and the host console share is package data of
    ``protocol`` (where both may import it), so an installed poslab can speak Chinese."""
    import fnmatch
    import tomllib

    from protocol import i18n

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["protocol"]
    package = REPO_ROOT / "protocol"
    assert i18n.LOCALE_DIR.resolve().is_relative_to(package)
    shipped = [p for p in i18n.LOCALE_DIR.rglob("*") if p.is_file()]
    assert {p.name for p in shipped} == {"poslab.po", "poslab.mo"}
    for path in shipped:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
