"""A tiny blocking client for the host's admin API (bench, soak and crash tools)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminCallError(RuntimeError):
    """The admin API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class AdminClient:
    """Bearer-token JSON calls to ``http://host:port``."""

    def __init__(self, port: int, token: str, host: str = "127.0.0.1",
                 timeout: float = 10.0) -> None:
        self.base = f"http://{host}:{port}"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: object = None) -> Any:
        """One call; JSON answers are parsed, text answers returned as str."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read().decode()
                kind = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except ValueError:
                message = text
            raise AdminCallError(exc.code, message) from None
        return json.loads(raw) if "json" in kind else raw

    def get(self, path: str) -> Any:
        """GET ``path``."""
        return self.call("GET", path)

    def post(self, path: str, body: object) -> Any:
        """POST ``body`` as JSON."""
        return self.call("POST", path, body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return self.call("DELETE", path)
