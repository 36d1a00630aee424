"""The "Why not?" page: why a visitor got a flow, or one of its steps, or why not
(sluice/explain.py), reached from the Flows tab of the visitor's profile."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from sluice.api.auth import sluice_of
from sluice.explain import UnknownStep
from sluice.service import Sluice, VisitorNotFound
from sluice.store import flows as flow_store
from sluice.store.flows import UnknownFlow
from sluice.ui import auth, canvas, render
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def flow_choices(sluice: Sluice) -> list[dict[str, Any]]:
    """Every flow, for the profile's list of "Why not?" links: `key`, `name`, `status`."""
    with sluice.db.read() as conn:
        return [
            {"key": f.key, "name": f.name, "status": f.status.value}
            for f in flow_store.list_flows(conn)
        ]


def _steps(sluice: Sluice, key: str) -> list[tuple[str, str]]:
    """The current version's steps as (id, label), in order, for the step picker: the
    id is what the page (and the API) takes, the label what a person reads."""
    with sluice.db.read() as conn:
        flow = sluice.catalog.flow(conn, key, flow_store.get_flow(conn, key).version)
    return canvas.labels(flow.definition.steps)


@router.get("/why-not")
def why_not(
    request: Request,
    email: Annotated[str, Query(max_length=320)],
    flow: Annotated[str, Query(max_length=64)],
    step: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        explanation = sluice.explain(email, flow, step or None)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{flow}'.")
    except UnknownStep as error:
        return render.page(
            request, "error.html", status=422, title="No such step", message=f"{error}."
        )
    return render.page(
        request,
        "why_not.html",
        answer=explanation.as_dict(),
        steps=_steps(sluice, flow),
    )
