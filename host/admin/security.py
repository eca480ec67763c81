"""Admin route for terminal keys, registered through :func:`host.admin.api.route`::

    GET /security/keys   {"terminals": [{tid, algorithm, kcv, source, mac, key_management,
                          signed_on, pin_key_kcv, mac_key_kcv}]}

Check values only: no key, clear or sealed, ever leaves the host through the admin API.
"""

from __future__ import annotations

from typing import Any

from host.admin.api import AdminContext, AdminRequest, HttpError, route
from protocol.admin_models import SecurityKeys


@route("GET", "/security/keys", model=SecurityKeys, errors=(503,))
def list_keys(ctx: AdminContext, req: AdminRequest) -> Any:
    """Every terminal with a TMK or security settings: algorithms and check values."""
    security = getattr(ctx.service, "security", None)
    engine = getattr(ctx.service, "engine", None)
    if security is None or engine is None:
        raise HttpError(503, "this host has no key store")

    def read() -> SecurityKeys:
        with engine.connect() as conn:
            return SecurityKeys.model_validate({"terminals": security.describe(conn)})

    return ctx.call(read)
