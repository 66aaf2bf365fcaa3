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
from connector.api.routing import MAX_ID, Api, Operation
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


_CONVERTER = re.compile(r"<(?:([a-z_]+)(?:\(([^)]*)\))?:)?([a-z_]+)>")


def _path_schemas(rule: str) -> dict[str, dict[str, Any]]:
    """Each path parameter's schema as the route's converter takes it: ``<int:x>`` an id
    (check_path refuses one beyond the columns), ``<string(maxlength=N):x>`` 1 to N characters."""
    schemas: dict[str, dict[str, Any]] = {}
    for converter, arguments, name in _CONVERTER.findall(rule):
        if converter == "int":
            schemas[name] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            continue
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        limit = re.search(r"maxlength=(\d+)", arguments)
        if limit:
            schema["maxLength"] = int(limit.group(1))
        schemas[name] = schema
    return schemas


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
    converters = _path_schemas(op.rule)
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": text,
            "schema": converters.get(name, {"type": "string"}),
        }
        for name, text in op.path_params.items()
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if prop.get("description"):
                param["description"] = prop["description"]
            params.append(param)
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
    for status, meaning in op.also.items():
        responses[str(status)] = {"description": meaning, "content": ok.get("content", {})}
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


_INLINE = re.compile(r"``(.+?)``|`([^`]+)`|\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    """Escape, then render inline Markdown: ``code`` (and reST's double backticks), **bold**."""
    out: list[str] = []
    last = 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        code = match.group(1) or match.group(2)
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        else:
            out.append(f"<strong>{html.escape(match.group(3))}</strong>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def markdown(text: str) -> str:
    """The Markdown of descriptions and docstrings as HTML: paragraphs, ``-`` lists, inline
    code and bold. Enough for what we write; everything else is escaped text."""
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith(("- ", "* ")):
            items: list[str] = []
            for line in lines:
                if line.startswith(("- ", "* ")):
                    items.append(line[2:])
                elif items:
                    items[-1] += " " + line
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "".join(blocks)


def _schema_link(name: str) -> str:
    esc = html.escape(name)
    return f"<a href='#schema-{esc}'>{esc}</a>"


def _type_of(schema: dict[str, Any]) -> str:
    """A schema's type in words, with links to named schemas (HTML)."""
    if "$ref" in schema:
        return _schema_link(schema["$ref"].rsplit("/", 1)[-1])
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        kinds = [_type_of(v) for v in variants if v.get("type") != "null"]
        nullable = any(v.get("type") == "null" for v in variants)
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{html.escape(str(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{html.escape(str(schema['const']))}</code>"
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type_of(schema['additionalProperties'])}"
    fmt = schema.get("format")
    return html.escape(f"{kind} ({fmt})" if fmt else str(kind))


def _limits(schema: dict[str, Any]) -> list[str]:
    """Allowed values and the default of a schema, in words (HTML)."""
    found: list[str] = []
    for variant in [schema, *(schema.get("anyOf") or [])]:
        low, high = variant.get("minimum"), variant.get("maximum")
        if low is not None and high is not None:
            found.append(f"{low} to {high}")
        elif low is not None:
            found.append(f"at least {low}")
        elif high is not None:
            found.append(f"at most {high}")
        if variant.get("exclusiveMinimum") is not None:
            found.append(f"more than {variant['exclusiveMinimum']}")
        if variant.get("minLength") is not None or variant.get("maxLength") is not None:
            found.append(
                f"{variant.get('minLength', 0)} to {variant.get('maxLength', '…')} characters"
            )
        if variant.get("maxItems") is not None:
            found.append(f"up to {variant['maxItems']} items")
        if variant.get("pattern"):
            found.append(f"matching <code>{html.escape(variant['pattern'])}</code>")
    if "default" in schema:
        found.append(f"default {html.escape(json.dumps(schema['default']))}")
    return found


def _describe(schema: dict[str, Any]) -> str:
    meaning = schema.get("description") or ""
    limits = _limits(schema)
    text = markdown(meaning) if meaning else ""
    if limits:
        text += f"<p class='limits'>{'; '.join(limits)}</p>"
    return text


def _parameters(op: dict[str, Any]) -> str:
    params = op.get("parameters", [])
    if not params:
        return ""
    rows = []
    for param in params:
        schema = param.get("schema", {})
        described = {**schema, "description": param.get("description") or schema.get("description")}
        rows.append(
            f"<tr><td><code>{html.escape(param['name'])}</code></td>"
            f"<td>{html.escape(param['in'])}{', required' if param.get('required') else ''}</td>"
            f"<td>{_type_of(schema)}</td><td>{_describe(described)}</td></tr>"
        )
    return (
        "<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning, allowed values"
        "</th></tr>" + "".join(rows) + "</table>"
    )


def _schema_section(name: str, schema: dict[str, Any]) -> str:
    esc = html.escape
    parts = [f"<section id='schema-{esc(name)}' class='schema'><h3>{esc(name)}</h3>"]
    if schema.get("description"):
        parts.append(markdown(schema["description"]))
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if properties:
        parts.append("<table><tr><th>field</th><th>type</th><th>meaning, allowed values</th></tr>")
        for field, prop in properties.items():
            flag = " <em>required</em>" if field in required else ""
            parts.append(
                f"<tr><td><code>{esc(field)}</code>{flag}</td><td>{_type_of(prop)}</td>"
                f"<td>{_describe(prop)}</td></tr>"
            )
        parts.append("</table>")
    elif "enum" in schema or "type" in schema:
        parts.append(f"<p>{_type_of(schema)}</p>")
    parts.append(
        f"<details><summary>JSON Schema</summary><pre>{esc(json.dumps(schema, indent=2))}</pre>"
        "</details></section>"
    )
    return "".join(parts)


def docs_page(document: dict[str, Any]) -> str:
    """The API as one HTML page rendered here from the document (no script, no CDN): each
    operation with its rendered description, parameters (type, meaning, allowed values,
    default) and answers; each schema as an open section the operations link to."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>DealBridge API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2em auto;"
        "padding:0 1em;color:#222}code,pre{background:#f4f4f6;padding:2px 4px;border-radius:4px}"
        "pre{padding:.8em;overflow:auto}.op{border:1px solid #ddd;border-radius:8px;padding:"
        ".5em 1em;margin:1em 0}.m{font-weight:700;display:inline-block;min-width:4.5em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border-top:1px solid #eee;padding:"
        ".2em .6em;text-align:left;vertical-align:top}td p{margin:0}.limits{color:#555}"
        "details summary{cursor:pointer}:target{background:#fffbe6}</style></head><body>",
        f"<h1>DealBridge API <small>{esc(document['info']['version'])}</small></h1>",
        markdown(document["info"]["description"]),
        "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a> (OpenAPI 3.1)."
        " Schemas: <a href='#schemas'>below</a>.</p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(f"<div class='op' id='op-{esc(op['operationId'])}'>")
            parts.append(
                f"<div><span class='m'>{esc(method.upper())}</span> <code>{esc(path)}</code>"
                f" — {_inline(op['summary'])}</div>"
            )
            if op.get("description"):
                parts.append(markdown(op["description"]))
            scope = op.get("x-scope")
            parts.append(f"<p>Scope: <code>{esc(scope)}</code></p>" if scope else "<p>No key.</p>")
            parts.append(_parameters(op))
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                name = body["schema"]["$ref"].rsplit("/", 1)[-1]
                parts.append(f"<div>Body: {_schema_link(name)}</div>")
            answers = []
            for code, response in op["responses"].items():
                media: dict[str, Any] = next(iter(response.get("content", {}).values()), {})
                ref = media.get("schema", {}).get("$ref", "")
                shown = f" {_schema_link(ref.rsplit('/', 1)[-1])}" if ref else ""
                answers.append(f"{esc(code)} {esc(response['description'])}{shown}")
            parts.append(f"<div>Answers: {'; '.join(answers)}</div></div>")
    parts.append("<h2 id='schemas'>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(_schema_section(name, schema))
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
