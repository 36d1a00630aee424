"""The HTTP application served by `sluice serve`."""

from __future__ import annotations

from fastapi import FastAPI, Response

from sluice import ui
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

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        """Readiness: the database answers."""
        if sluice.db.ping():
            return {"status": "ok"}
        response.status_code = 503
        return {"status": "database unreachable"}

    return app
