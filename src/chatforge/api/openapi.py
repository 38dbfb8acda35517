"""The OpenAPI document, adjusted to what the error handlers really send.

FastAPI documents every 422 as its own ``HTTPValidationError`` (``detail`` a list), but
``api/errors.py`` answers validation failures and domain ``Invalid`` errors alike as
``{"detail": str, "code": str, "errors"?: [...]}``; and error bodies are always JSON, even on
routes whose success is plain text.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from chatforge.api.schemas import ErrorOut, InvalidOut

REF = "#/components/schemas/{model}"


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model)}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorOut, InvalidOut):
        found = model.model_json_schema(ref_template=REF)
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for operation in _operations(document):
        for status, response in operation.get("responses", {}).items():
            if status == "422":
                response["content"] = _json("InvalidOut")
            elif status.startswith(("4", "5")):
                response["content"] = _json("ErrorOut")
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [
        operation
        for item in document.get("paths", {}).values()
        for method, operation in item.items()
        if method in methods
    ]
