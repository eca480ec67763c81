"""The host's admin API: HTTP/JSON on a loopback port, klein on the host's reactor.

:mod:`host.admin.api` is what route modules use; :mod:`host.admin.site` serves the routes;
:mod:`host.admin.openapi` describes them. The route modules below register their routes when
imported: a new one is added to this list.
"""

from host.admin import (  # noqa: F401  (register routes)
    core,
    events,
    faults,
    openapi,
    security,
    settlement,
)
from host.admin.api import (
    AdminContext,
    AdminRequest,
    AdminResponse,
    HttpError,
    RouteTable,
    mount,
    route,
)
from host.admin.site import admin_site, error_answer

__all__ = ["AdminContext", "AdminRequest", "AdminResponse", "HttpError", "RouteTable",
           "admin_site", "error_answer", "mount", "route"]
