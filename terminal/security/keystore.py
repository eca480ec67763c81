"""The terminal's long-lived keys in its data directory: the TMK, or a DUKPT initial key + KSN.

Files (JSON, written atomically, mode 0600 from the moment they exist):

* ``tmk.json`` -- ``{"algorithm": "TDES-2", "key": HEX, "kcv": HEX}``; the KCV is checked
  every time the file is read, so a damaged file is refused, not used.
* ``dukpt.json`` -- ``{"initial_key": HEX, "kcv": HEX, "ksn": 20 HEX}``; the KSN is the one
  last used and is rewritten before each transaction that uses the next one.

A file that others may read (group or world bits) is refused with the ``chmod`` to run, as
ssh refuses a private key: a key that may have been read is not a test key one trusts. Error
messages name the file and what is wrong, never a key digit.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.security import (
    MASTER_KEY_ALGORITHMS,
    TDES_DUKPT,
    DukptTerminal,
    Key,
    KeyAlgorithm,
    Ksn,
    SecurityError,
)

TMK_FILE = "tmk.json"
DUKPT_FILE = "dukpt.json"


class KeyStoreError(ValueError):
    """A key file is unreadable, malformed, too open, or fails its check value."""


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path``, atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing leftover
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


def _read_private(path: Path) -> dict[str, Any] | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path}: readable by others (mode {stat.S_IMODE(mode):o}); "
                            f"run chmod 600 {path}, or import the key again")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyStoreError(f"{path}: cannot read the key file ({type(exc).__name__})") \
            from None
    if not isinstance(doc, dict):
        raise KeyStoreError(f"{path}: not a key file (expected a JSON object)")
    return doc


def _text(doc: dict[str, Any], key: str, path: Path) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise KeyStoreError(f"{path}: missing or non-text {key!r}")
    return value


def parse_algorithm(text: str, where: str) -> KeyAlgorithm:
    """The :class:`KeyAlgorithm` named ``text`` (``TDES-2``, ``TDES-3``, ``AES-128``)."""
    # Single DES exists as a working-key kind only; it is no master key.
    named = {a.value: a for a in MASTER_KEY_ALGORITHMS}
    algorithm = named.get(text.upper())
    if algorithm is None:
        raise KeyStoreError(f"{where}: unknown key algorithm {text!r}; one of "
                            f"{', '.join(named)}")
    return algorithm


@dataclass(frozen=True)
class KeyStore:
    """The key files of one terminal data directory."""

    data_dir: Path

    @property
    def tmk_path(self) -> Path:
        """Where the TMK lives."""
        return self.data_dir / TMK_FILE

    @property
    def dukpt_path(self) -> Path:
        """Where the DUKPT initial key and KSN live."""
        return self.data_dir / DUKPT_FILE

    # -- TMK ---------------------------------------------------------------------------------

    def save_tmk(self, tmk: Key) -> None:
        """Store ``tmk`` (replacing any earlier one) with its check value."""
        write_private(self.tmk_path, {"algorithm": tmk.algorithm.value,
                                      "key": tmk.get_secret_value().hex().upper(),
                                      "kcv": tmk.kcv().hex().upper()})

    def load_tmk(self) -> Key | None:
        """The stored TMK, None when there is none; :class:`KeyStoreError` when it is bad."""
        path = self.tmk_path
        doc = _read_private(path)
        if doc is None:
            return None
        algorithm = parse_algorithm(_text(doc, "algorithm", path), str(path))
        try:
            return Key.from_hex(_text(doc, "key", path), algorithm, kcv=_text(doc, "kcv", path),
                                what=f"TMK in {path}")
        except SecurityError as exc:
            raise KeyStoreError(str(exc)) from None

    # -- DUKPT -------------------------------------------------------------------------------

    def save_dukpt(self, device: DukptTerminal[Ksn], initial_key: Key) -> None:
        """Store the initial key and the KSN last used."""
        write_private(self.dukpt_path, {"initial_key": initial_key.get_secret_value().hex()
                                        .upper(), "kcv": initial_key.kcv().hex().upper(),
                                        "ksn": str(device.ksn)})

    def load_dukpt(self) -> tuple[DukptTerminal[Ksn], Key] | None:
        """The DUKPT device (initial key + last KSN), None when the terminal uses none."""
        path = self.dukpt_path
        doc = _read_private(path)
        if doc is None:
            return None
        try:
            key = Key.from_hex(_text(doc, "initial_key", path), TDES_DUKPT.algorithm,
                               kcv=_text(doc, "kcv", path), what=f"DUKPT initial key in {path}")
            ksn = Ksn.from_hex(_text(doc, "ksn", path))
        except SecurityError as exc:
            raise KeyStoreError(str(exc)) from None
        return DukptTerminal(TDES_DUKPT, key, ksn), key
