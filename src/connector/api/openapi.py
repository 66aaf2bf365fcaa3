"""The OpenAPI 3.1 document, made from the declared operations, and a browsable page of it.

The page is rendered on the server from the same document, so it works without a CDN.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from connector import __version__
from connector.api.routing import Api, Operation
from connector.errors import Problem

_PARAM = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Malformed JSON or request",
    401: "Missing or invalid API key",
    403: "The key lacks the scope",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    422: "Invalid value; the problem names the field",
}


def build_document(apis: list[Api]) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for api in apis:
        for op in api.operations:
            body = op.documented_body or op.body
            models.update(m for m in (body, op.response) if m is not None)
    ordered: list[type[BaseModel]] = [*sorted(models, key=lambda m: m.__name__), Problem]
    _, defs = models_json_schema(
        [(m, "validation") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for api in apis:
        for op in api.operations:
            path = _PARAM.sub(r"{\1}", api.url_prefix + op.rule)
            paths.setdefault(path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DealBridge API",
            "version": __version__,
            "description": (
                "The CRM's side of DealBridge: push deals and pipelines, read interactions "
                "and funnel analytics. Authenticate with `Authorization: Bearer <API key>` "
                "(create one with `dealbridge keys create`). Errors are RFC 9457 "
                "problem+json naming the failing field."
            ),
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        doc["description"] = op.description
    if op.scope is None:
        doc["security"] = []
    else:
        doc["x-scope"] = op.scope
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in op.path_params.items()
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if params:
        doc["parameters"] = params
    body = op.documented_body or op.body
    if body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _REASONS.get(op.status, "OK")}
    if op.response is not None and op.status != 204:
        ok["content"] = {"application/json": {"schema": _ref(op.response)}}
    responses[str(op.status)] = ok
    if op.status == 201 and op.method == "PUT":
        responses["200"] = {"description": "Updated", "content": ok.get("content", {})}
    errors = set(op.errors)
    if op.scope is not None:
        errors.add(401)  # every operation with a scope needs a key
    if op.scope == "write":
        errors.add(403)
    if op.query is not None or op.path_params:
        errors.add(422)  # a query or path value can be invalid
    if op.body is not None:
        errors.update({400, 413, 422})
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
    doc["responses"] = responses
    return doc


def docs_page(document: dict[str, Any]) -> str:
    """A plain HTML page listing every operation, its parameters and schemas."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>DealBridge API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;"
        "padding:0 1em;color:#222}code,pre{background:#f4f4f6;padding:2px 4px;border-radius:4px}"
        "pre{padding:.8em;overflow:auto}.op{border:1px solid #ddd;border-radius:8px;padding:"
        ".5em 1em;margin:1em 0}.m{font-weight:700;display:inline-block;min-width:4.5em}"
        "details summary{cursor:pointer}</style></head><body>",
        f"<h1>DealBridge API <small>{esc(document['info']['version'])}</small></h1>",
        f"<p>{esc(document['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a> (OpenAPI 3.1)</p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append("<div class='op'>")
            parts.append(
                f"<div><span class='m'>{esc(method.upper())}</span> <code>{esc(path)}</code>"
                f" — {esc(op['summary'])}</div>"
            )
            if op.get("description"):
                parts.append(f"<p>{esc(op['description'])}</p>")
            scope = op.get("x-scope")
            parts.append(f"<p>Scope: <code>{esc(scope)}</code></p>" if scope else "<p>No key.</p>")
            for param in op.get("parameters", []):
                parts.append(
                    f"<div>· <code>{esc(param['name'])}</code> ({esc(param['in'])}"
                    f"{', required' if param.get('required') else ''})</div>"
                )
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                name = body["schema"]["$ref"].rsplit("/", 1)[-1]
                parts.append(f"<div>Body: <a href='#schema-{esc(name)}'>{esc(name)}</a></div>")
            codes = ", ".join(esc(code) for code in op["responses"])
            parts.append(f"<div>Answers: {codes}</div></div>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(
            f"<details id='schema-{esc(name)}'><summary><code>{esc(name)}</code></summary>"
            f"<pre>{esc(json.dumps(schema, indent=2))}</pre></details>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def blueprint(apis: list[Api]) -> Blueprint:
    bp = Blueprint("openapi", __name__)
    cache: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = build_document(apis)
        return cache["doc"]  # type: ignore[no-any-return]

    @bp.get("/api/openapi.json")
    def openapi_json() -> Response:
        return jsonify(document())

    @bp.get("/api/docs")
    def api_docs() -> Response:
        return Response(docs_page(document()), mimetype="text/html")

    return bp
