"""The HTTP application served by `sluice serve`."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from sluice import metrics, ui
from sluice.api import routes, tracking
from sluice.service import Sluice


def create_app(sluice: Sluice) -> FastAPI:
    app = FastAPI(title="Sluice", openapi_url="/api/openapi.json", docs_url="/api/docs")
    app.state.sluice = sluice
    routes.install(app)
    app.include_router(tracking.router)
    ui.install(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    metrics_registry = metrics.registry_for(sluice.db, sluice.clock.now)

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        """Prometheus metrics (see docs/deployment.md)."""
        refused = metrics.refusal(request, sluice.settings.metrics_token)
        if refused is not None:
            return refused
        return Response(metrics.exposition(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        """Readiness: the database answers."""
        if sluice.db.ping():
            return {"status": "ok"}
        response.status_code = 503
        return {"status": "database unreachable"}

    return app
