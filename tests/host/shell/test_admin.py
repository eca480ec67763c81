"""The admin API over real HTTP: the auth matrix, each endpoint's shape, errors, metrics."""

from __future__ import annotations

import asyncio
import io
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from shell_helpers import TOKEN, IsoClient, sale

from host.admin import AdminContext, RouteTable, admin_site
from host.logs import MessageLog

ENDPOINTS = [
    ("GET", "/health", None),
    ("GET", "/transactions/000000000001", None),
    ("GET", "/transactions?tid=TERM0001&stan=000001", None),
    ("GET", "/ledger/balances", None),
    ("GET", "/ledger/verify", None),
    ("GET", "/reviews", None),
    ("POST", "/reviews/1/approve", {"approver": "alice", "note": "ok"}),
    ("POST", "/reviews/1/reject", {"approver": "bob", "reason": "fraud"}),
    ("GET", "/metrics", None),
]


def call(port: int, method: str, path: str, body: object = None, token: str | None = TOKEN,
         raw: bytes | None = None) -> tuple[int, str, dict[str, str]]:
    """One blocking HTTP call: (status, body text, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode(), _lower(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), _lower(err.headers)


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def http(run: Any, *args: Any, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
    """Make the blocking call off the loop, so the host on that loop can answer it."""
    return run(asyncio.to_thread(call, *args, **kwargs))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_auth_matrix(start_host: Any, run: Any, method: str, path: str, body: object) -> None:
    """Every endpoint: no or wrong token -> 401 plus an audit line; the right token works."""
    host = start_host()
    no = http(run, host.admin_port, method, path, body, token=None)
    wrong = http(run, host.admin_port, method, path, body, token=TOKEN + "x")
    right = http(run, host.admin_port, method, path, body)
    assert (no[0], wrong[0], right[0]) == (401, 401, 200)
    assert json.loads(no[1]) == {"error": "missing or wrong bearer token"}
    audits = [json.loads(x) for x in host.log_lines() if '"action":"admin_auth_failed"' in x]
    assert [a["reason"] for a in audits] == ["missing token", "wrong token"]
    assert all(a["path"] == path.split("?")[0] for a in audits)


def test_endpoint_shapes(start_host: Any, run: Any) -> None:
    """Each core endpoint answers JSON of the documented shape."""
    host = start_host()
    port = host.admin_port

    def get(path: str) -> Any:
        status, text, headers = http(run, port, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json"
        return json.loads(text)

    assert get("/health") == {"status": "ok", "database": "fake", "transactions": 0,
                              "posting_groups": 0, "strict": False,
                              "allow_unknown_terminals": False, "open_connections": 0}
    assert get("/transactions/000000000001")["rrn"] == "000000000001"
    page = get("/transactions?tid=T1&stan=000007")
    assert [(t["rrn"], t["terminal_id"], t["stan"]) for t in page["transactions"]] == [
        ("000000000001", "T1", "000007")]
    assert (page["next"], page["asked"]) == (None, {"limit": 500, "cursor": None})
    assert get("/transactions?limit=2&cursor=41")["asked"] == {"limit": 2, "cursor": "41"}
    assert get("/ledger/balances") == {"merchant_payable:M1": {"USD": 0}}
    assert get("/ledger/verify")["ok"] is True
    assert get("/reviews?state=pending_review")["reviews"][0]["id"] == 1
    assert get("/reviews?state=approved") == {"reviews": []}
    status, text, _ = http(run, port, "POST", "/reviews/1/approve", {"approver": "alice"})
    assert (status, json.loads(text)["state"]) == (200, "approved")
    status, text, _ = http(run, port, "POST", "/reviews/1/reject",
                           {"approver": "bob", "reason": "duplicate"})
    assert (status, json.loads(text)["reason"]) == (200, "duplicate")


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "error"), [
    ("GET", "/nope", {}, 404, "no such endpoint: /nope"),
    ("GET", "/transactions/999999999999", {}, 404, "no transaction with RRN 999999999999"),
    ("DELETE", "/health", {}, 405, "method not allowed; use GET"),
    ("POST", "/reviews/1/approve", {"raw": b"{not json"}, 400, "not valid JSON"),
    ("POST", "/reviews/1/approve", {"body": {}}, 400, "'approver' is required"),
    ("POST", "/reviews/1/approve", {"body": {"approver": 7}}, 400, "must be a str"),
    ("POST", "/reviews/1/reject", {"body": {"approver": "a"}}, 400, "'reason' is required"),
    ("POST", "/reviews/x/approve", {"body": {"approver": "a"}}, 404, "no such id"),
    ("POST", "/reviews/2/approve", {"body": {"approver": "a"}}, 404, "no review 2"),
    ("GET", "/transactions?stan=12a", {}, 400, "stan must be digits"),
    ("GET", "/transactions?limit=0", {}, 400, "limit must be a whole number from 1 to 1000"),
    ("GET", "/transactions?limit=5000", {}, 400, "limit must be a whole number from 1 to"),
    ("GET", "/transactions?cursor=abc", {}, 400, "cursor must be the 'next' value"),
    ("GET", "/reviews?state=pending", {}, 400, "state must be one of pending_review, approved"),
    ("GET", "/transactions/%FF", {}, 400, "the path is not valid UTF-8"),
    ("GET", "/health/", {}, 200, None),
])
def test_errors_are_json_with_status(start_host: Any, run: Any, method: str, path: str,
                                     kwargs: dict[str, Any], status: int,
                                     error: str | None) -> None:
    """Bad paths, methods, bodies and ids get the right status and a JSON error (a trailing
    slash is no error)."""
    host = start_host()
    got, text, headers = http(run, host.admin_port, method, path, **kwargs)
    assert got == status
    assert error is None or error in json.loads(text)["error"]
    if status == 405:
        assert headers["allow"] == "GET"


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                     r"-?[0-9.e+]+$")


def test_metrics_text_parses_and_counts(start_host: Any, run: Any) -> None:
    """/metrics is valid Prometheus text and counts requests by MTI and RC with latency."""
    host = start_host()

    async def traffic() -> None:
        client = await IsoClient.connect(host.iso_port)
        await client.request(sale(stan="000001"))
        await client.request(sale(stan="000002", amount_minor=1005))  # fake declines ..05
        client.close()

    run(traffic())
    status, text, headers = http(run, host.admin_port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) \w+ .+$", line), line
            continue
        assert _SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples['poslab_requests_total{mti="0200",rc="00"}'] == 1
    assert samples['poslab_requests_total{mti="0200",rc="05"}'] == 1
    assert samples["poslab_request_latency_ms_count"] == 2
    assert samples['poslab_request_latency_ms_bucket{le="+Inf"}'] == 2
    assert samples["poslab_connections_total"] == 1


def _scrape(run: Any, host: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by the Prometheus client's own text parser."""
    status, text, _ = http(run, host.admin_port, "GET", "/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_move_by_one_per_sale(start_host: Any, run: Any) -> None:
    """One approved sale moves its requests counter and the latency histogram count by one."""
    host = start_host()

    async def one_sale(stan: str) -> None:
        client = await IsoClient.connect(host.iso_port)
        await client.request(sale(stan=stan))
        client.close()

    run(one_sale("000001"))
    before = _scrape(run, host)
    run(one_sale("000002"))
    after = _scrape(run, host)
    approved = ("poslab_requests_total", (("mti", "0200"), ("rc", "00")))
    count = ("poslab_request_latency_ms_count", ())
    assert (before[approved], after[approved]) == (1, 2)
    assert (before[count], after[count]) == (1, 2)
    assert after[("poslab_request_latency_ms_bucket", (("le", "+Inf"),))] == 2
    assert not any(name.endswith("_created") for name, _ in after)


def test_route_table_for_extension_modules(run: Any) -> None:
    """Routes added by other modules match with path params; 404 and 405 are told apart."""
    from twisted.internet import reactor

    table = RouteTable()
    table.add("POST", "/clock/advance", lambda ctx, req: {"adv": True})
    table.add("GET", "/settlements/{date}", lambda ctx, req: req.params)
    with pytest.raises(ValueError, match="already registered"):
        table.add("POST", "/clock/advance", lambda ctx, req: None)
    ctx = AdminContext(None, None, None, MessageLog(io.StringIO()))  # type: ignore[arg-type]
    port = reactor.listenTCP(0, admin_site(ctx, TOKEN, table),  # type: ignore[attr-defined]
                             interface="127.0.0.1")
    try:
        found = http(run, port.getHost().port, "GET", "/settlements/2025-03-14")
        not_found = http(run, port.getHost().port, "GET", "/settlements/2025/03")
        wrong_method = http(run, port.getHost().port, "GET", "/clock/advance")
    finally:
        run(port.stopListening())
    assert (found[0], json.loads(found[1])) == (200, {"date": "2025-03-14"})
    assert (not_found[0], wrong_method[0]) == (404, 405)
    assert wrong_method[2]["allow"] == "POST"


def test_a_mounted_resource_is_served_behind_the_token(run: Any) -> None:
    """A twisted.web Resource mounted on a path answers below it, and only with the token."""
    from twisted.internet import reactor
    from twisted.web.resource import Resource

    class Echo(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:  # noqa: N802 - Twisted naming
            return b"rest=" + b"/".join(request.postpath)

    table = RouteTable()
    table.mount("/events", lambda ctx: Echo())
    ctx = AdminContext(None, None, None, MessageLog(io.StringIO()))  # type: ignore[arg-type]
    port = reactor.listenTCP(0, admin_site(ctx, TOKEN, table),  # type: ignore[attr-defined]
                             interface="127.0.0.1")
    try:
        served = http(run, port.getHost().port, "GET", "/events/live")
        refused = http(run, port.getHost().port, "GET", "/events/live", token=None)
    finally:
        run(port.stopListening())
    assert (served[0], served[1]) == (200, "rest=live")
    assert refused[0] == 401
