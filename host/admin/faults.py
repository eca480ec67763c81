"""Admin routes for fault injection, registered through :func:`host.admin.api.route`::

    GET    /faults          {"faults": [...]}  every rule with its counters, PANs masked
    POST   /faults          body: one rule object or a list of them -> 201 {"faults": [added]}
    DELETE /faults          remove every rule -> {"deleted": n}
    DELETE /faults/{id}     remove one rule -> {"deleted": 1}, or 404

A rule is the JSON form of :class:`host.faults.FaultRule`; a bad rule is 400 with the message
naming the member. The registry comes from ``AdminContext.extras["faults"]`` (the runtime puts
its :class:`host.faults.actions.FaultHook` there, in both layouts: with front processes the
engine matches the rules); without it the routes answer 503.
These routes touch no database, so they run on the loop, not in the worker thread.
"""

from __future__ import annotations

from typing import Any

from host.admin.api import AdminContext, AdminRequest, AdminResponse, HttpError, route
from host.faults.rules import FaultError, FaultRegistry, FaultRule
from protocol.admin_models import Deleted, FaultList

FAULT_BODY: Any = FaultRule | list[FaultRule]
"""``POST /faults`` takes one rule or a list of them (the document's request body)."""


def _registry(ctx: AdminContext) -> FaultRegistry:
    hook: Any = ctx.extras.get("faults")
    registry = getattr(hook, "registry", hook)
    if not isinstance(registry, FaultRegistry):
        raise HttpError(503, "fault injection is not available in this host")
    return registry


@route("GET", "/faults", model=FaultList, errors=(503,))
def list_faults(ctx: AdminContext, req: AdminRequest) -> FaultList:
    """Every fault rule with its counters."""
    return FaultList.model_validate({"faults": _registry(ctx).list()})


@route("POST", "/faults", model=FaultList, status=201, body=FAULT_BODY, errors=(503,))
def add_faults(ctx: AdminContext, req: AdminRequest) -> AdminResponse:
    """Add one rule or a list of rules (all or none)."""
    registry = _registry(ctx)
    if not isinstance(req.body, dict | list):
        raise HttpError(400, "the body must be a fault rule object or a list of them")
    try:
        added = registry.add_json(req.body)
    except FaultError as exc:
        raise HttpError(400, str(exc)) from None
    ctx.log.event("audit", action="faults_added", faults=[a["id"] for a in added])
    return AdminResponse(FaultList.model_validate({"faults": added}), status=201)


@route("DELETE", "/faults", model=Deleted, errors=(503,))
def clear_faults(ctx: AdminContext, req: AdminRequest) -> Deleted:
    """Remove every rule."""
    n = _registry(ctx).clear()
    ctx.log.event("audit", action="faults_cleared", count=n)
    return Deleted(deleted=n)


@route("DELETE", "/faults/{id}", model=Deleted, errors=(404, 503))
def delete_fault(ctx: AdminContext, req: AdminRequest) -> Deleted:
    """Remove one rule by id."""
    fault_id = req.params["id"]
    if not _registry(ctx).delete(fault_id):
        raise HttpError(404, f"no such fault: {fault_id!r}")
    ctx.log.event("audit", action="fault_deleted", fault=fault_id)
    return Deleted(deleted=1)
