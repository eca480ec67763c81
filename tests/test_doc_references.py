"""Every ``*.md`` file named in code, comments, config and docs is a file in this repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A path-like token ending in .md; "self.mdr_percent" and URLs are not references.
_MD = re.compile(r"(?<![\w/.:-])((?:\.{1,2}/)?[\w][\w./-]*\.md)(?![\w-])")
_URL = re.compile(r"[a-z]+://\S+")
_LINK_TEXT = re.compile(r"\[[^\]]*\]\(")  # [shown text](target): only the target is a path
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".txt", ".tcss", ".sh"}
TEXT_NAMES = {"Makefile", "run"}


def repository_files() -> list[Path]:
    """The files git tracks or would track (ignored build output and the venv left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def md_references(text: str) -> list[tuple[int, str]]:
    """(line number, reference) for each ``*.md`` path named in ``text``, URLs excluded."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _MD.finditer(_LINK_TEXT.sub("(", _URL.sub(" ", line))):
            found.append((number, match.group(1)))
    return found


def resolves(source: Path, reference: str) -> bool:
    """A reference resolves against the naming file's folder, the repository root or docs/
    (code builds ``ROOT / "docs" / "scenarios.md"`` from a bare name)."""
    return any((base / reference).is_file() for base in (source.parent, ROOT, ROOT / "docs"))


def test_reference_finder_reads_what_it_should() -> None:
    """Paths and bare names count, in prose and markdown links; URLs and attributes do not."""
    text = ("see docs/qa-guide.md, [qa.md](scenarios.md) and ../README.md\n"
            "self.mdr_percent; https://example.com/a/b.md; notes.md §2\n")
    assert md_references(text) == [(1, "docs/qa-guide.md"), (1, "scenarios.md"),
                                   (1, "../README.md"), (2, "notes.md")]
    assert not resolves(ROOT / "host" / "cli.py", "notes.md")
    assert resolves(ROOT / "host" / "cli.py", "docs/qa-guide.md")


def test_every_md_reference_resolves() -> None:
    """No comment, docstring, config or document points at a Markdown file that is not here."""
    files = [p for p in repository_files()
             if (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES) and p != Path(__file__)]
    assert len(files) > 100 and ROOT / "README.md" in files
    dangling = [
        f"{path.relative_to(ROOT)}:{number}: {ref}"
        for path in files
        for number, ref in md_references(path.read_text(encoding="utf-8", errors="replace"))
        if not resolves(path, ref)
    ]
    assert not dangling, "\n".join(dangling)
