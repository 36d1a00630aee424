"""The OpenAPI document at `/api/openapi.json`.

Routes parse their bodies themselves (so that a batch keeps its valid items and a flow
may come as YAML), so FastAPI cannot see the request models; `body_doc` names them in
the route's `openapi_extra`, and `install` adds their schemas to the document's
components. `errors_doc` describes the error answers of each dialect.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sluice.api import schemas

_REQUEST_MODELS: dict[str, type[BaseModel]] = {}
_REF = "#/components/schemas/{model}"

_DESCRIPTIONS = {
    400: "The request as a whole is unusable (not JSON, no list, too many items).",
    401: "Missing or wrong credentials, or a wrong `site_uuid`.",
    404: "No such flow, session, visitor or template.",
    409: "The session is not in a state that allows this.",
    412: "`If-Match` names a version that is no longer the current one: nothing was saved.",
    413: "The body is larger than 5 MiB.",
    422: "Invalid: every problem is listed.",
}


def body_doc(model: type[BaseModel], *, yaml: bool = False) -> dict[str, Any]:
    """`openapi_extra` declaring `model` as the JSON (and maybe YAML) request body."""
    _REQUEST_MODELS[model.__name__] = model
    schema = {"schema": {"$ref": _REF.format(model=model.__name__)}}
    content = {"application/json": schema}
    if yaml:
        content["application/yaml"] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


def errors_doc(*statuses: int, bento: bool = False) -> dict[int | str, dict[str, Any]]:
    doc: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if bento:
            model: type[BaseModel] = schemas.BentoError
        else:
            model = schemas.Invalid if status == 422 else schemas.Detail
        doc[status] = {"model": model, "description": _DESCRIPTIONS[status]}
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            separate_input_output_schemas=False,
        )
        _, definitions = models_json_schema(
            [(m, "validation") for m in _REQUEST_MODELS.values()], ref_template=_REF
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in definitions.get("$defs", {}).items():
            components.setdefault(name, schema)
        # FastAPI documents its own 422 on every route with parameters; ours has
        # `loc` as one string (errors.py).
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = schemas.Invalid.model_json_schema(ref_template=_REF)
            components["HTTPValidationError"].pop("$defs", None)
            components["ValidationError"] = schemas.Problem.model_json_schema()
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
