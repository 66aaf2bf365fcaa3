"""What a new admin opens first: `/` and `/api/docs` read well, without a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from flask import Flask
from flask.testing import FlaskClient

from tests.connector.conftest import make_app


class _Page(HTMLParser):
    """The page's text outside <code>/<pre>, its ids and which <details> are closed."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.code_depth = 0
        self.ids: dict[str, str] = {}
        self.closed: set[str] = set()
        self.links: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in {"code", "pre"}:
            self.code_depth += 1
        if values.get("id"):
            self.ids[str(values["id"])] = tag
            if tag == "details" and "open" not in values:
                self.closed.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag in {"script", "link"}:
            self.scripts.append(str(values.get("src") or values.get("href") or "inline"))

    def handle_endtag(self, tag: str) -> None:
        if tag in {"code", "pre"}:
            self.code_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.code_depth:
            self.text.append(data)


def _docs(client: FlaskClient) -> tuple[_Page, str]:
    answer = client.get("/api/docs")
    assert answer.status_code == 200
    page = _Page()
    body = answer.get_data(as_text=True)
    page.feed(body)
    return page, body


def test_the_docs_render_markdown_instead_of_showing_backticks(client: FlaskClient) -> None:
    page, body = _docs(client)
    assert "`" not in "".join(page.text)
    assert "<code>Authorization: Bearer &lt;API key&gt;</code>" in body
    assert "<code>status=needs_choice</code>" in body  # a docstring's ``literal``


def test_each_query_parameter_shows_its_type_default_and_allowed_values(
    client: FlaskClient,
) -> None:
    _, body = _docs(client)
    start = body.index("/api/v1/interactions</code>")
    section = body[start : body.index("class='op'", start)]
    text = re.sub(r"<[^>]+>", "", section)
    for words in ("limit", "integer", "default 100", "1 to 1000", "needs_choice", "cancelled"):
        assert words in text
    assert "Meetings this rep attended" in text  # the parameter's meaning


def test_schema_links_land_on_an_open_section(client: FlaskClient) -> None:
    page, _ = _docs(client)
    targets = [link[1:] for link in page.links if link.startswith("#")]
    assert targets, "the page links to its schemas"
    for target in targets:
        assert target in page.ids, target
        assert target not in page.closed, f"#{target} lands on a closed section"
    assert page.scripts == [] or all(not s.startswith("http") for s in page.scripts)


def test_the_start_page_says_what_this_is_in_html_and_json(client: FlaskClient) -> None:
    html = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 200
    assert html.mimetype == "text/html"
    page = _Page()
    page.feed(html.get_data(as_text=True))
    assert "DealBridge" in "".join(page.text)
    assert "/api/docs" in page.links
    assert "/healthz" in page.links
    as_json = client.get("/", headers={"Accept": "application/json"})
    assert as_json.status_code == 200
    assert as_json.json["docs"] == "/api/docs"
    assert as_json.json["openapi"] == "/api/openapi.json"
    assert "sandbox" not in as_json.json  # a real tenant: no sandbox to link to


def test_on_the_sandbox_the_start_page_links_to_it(app: Flask, tmp_path, migrated_template) -> None:  # type: ignore[no-untyped-def]
    sandboxed = make_app(
        tmp_path / "s.db",
        migrated_template,
        graph_base_url="http://127.0.0.1:5999",
        login_base_url="http://127.0.0.1:5999",
    )
    client = sandboxed.test_client()
    as_json = client.get("/", headers={"Accept": "application/json"}).json
    assert as_json["sandbox"] == {
        "outlook": "http://127.0.0.1:5999/",
        "teams": "http://127.0.0.1:5999/teams",
    }
    page = _Page()
    page.feed(client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True))
    assert "http://127.0.0.1:5999/teams" in page.links
