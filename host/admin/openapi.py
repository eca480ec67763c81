"""The admin API as an OpenAPI 3.1 document, generated from the route table and the models of
:mod:`protocol.admin_models`; served at ``GET /openapi.json`` (without a token: it describes
the API and holds no data) and printed by ``poslab-host openapi``.

Each route contributes its path and query parameters, its request body's schema, its success
answer (JSON from its model, or text such as CSV) and the error statuses it may answer, every
error with the :class:`~protocol.admin_models.ErrorBody` schema. pydantic writes the JSON
schemas; this module only arranges them into the document.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, TypeAdapter

from host.admin.api import (
    JSON_TYPE,
    ROUTES,
    AdminContext,
    AdminRequest,
    AdminResponse,
    Route,
    RouteTable,
    route,
)
from protocol.admin_models import ErrorBody

TITLE = "poslab-host admin API"
VERSION = "1"
_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad request: a malformed parameter or body",
                401: "Missing or wrong bearer token", 404: "No such object or endpoint",
                409: "Conflict with the object's state or the host's mode",
                503: "The feature is not available in this host"}


class _Schemas:
    """The document's ``components.schemas``, filled as routes refer to types."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def ref(self, kind: Any, mode: str = "serialization") -> dict[str, Any]:
        """A schema for ``kind``: a ``$ref`` to a component for a model, inline otherwise."""
        schema = TypeAdapter(kind).json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.named.update(schema.pop("$defs", {}))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.named[kind.__name__] = schema
            return {"$ref": _REF.format(model=kind.__name__)}
        return schema


def _operation(r: Route, schemas: _Schemas) -> dict[str, Any]:
    doc = (r.handler.__doc__ or "").strip().splitlines()
    op: dict[str, Any] = {
        "operationId": r.handler.__name__,
        "summary": doc[0] if doc else f"{r.method} {r.pattern}",
        "tags": [r.pattern.split("/")[1]],
    }
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in r.params]
    params += [{"name": q.name, "in": "query", "required": False, "description": q.description,
                "schema": q.schema} for q in r.query]
    if params:
        op["parameters"] = params
    if r.body is not None:
        op["requestBody"] = {"required": True, "content": {
            JSON_TYPE: {"schema": schemas.ref(r.body, mode="validation")}}}
    content: dict[str, Any] = {}
    if r.model is not None:
        content[JSON_TYPE] = {"schema": schemas.ref(r.model)}
    if r.text_type is not None:
        content[r.text_type] = {"schema": {"type": "string"}}
    if not content:
        content[JSON_TYPE] = {"schema": {"type": "object"}}
    op["responses"] = {str(r.status): {"description": _STATUS_TEXT.get(r.status, "OK"),
                                       "content": content}}
    error = {JSON_TYPE: {"schema": schemas.ref(ErrorBody)}}
    statuses = {400, *r.errors} | ({404} if r.params else set())
    if r.pattern != "/openapi.json":
        statuses.add(401)
    else:
        op["security"] = []
    for status in sorted(statuses):
        op["responses"][str(status)] = {"description": _STATUS_TEXT[status], "content": error}
    return op


def document(routes: RouteTable = ROUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in ``routes``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for r in routes.routes:
        paths.setdefault(r.pattern, {})[r.method.lower()] = _operation(r, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Read and steer a running poslab-host: transactions, ledger, "
                                "refund reviews, the simulated clock, settlement, faults. "
                                "Amounts are integer minor units; PANs are masked."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.named.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def document_text() -> str:
    """The document as indented JSON text (what ``poslab-host openapi`` prints)."""
    return json.dumps(document(), indent=2)


@route("GET", "/openapi.json")
def openapi(ctx: AdminContext, req: AdminRequest) -> AdminResponse:
    """This document: every admin route, its parameters, bodies and answers."""
    return AdminResponse(document())
