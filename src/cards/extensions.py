"""Message-extension invokes and their answers: search (`composeExtension/query`) and link
unfurling (`composeExtension/queryLink`), in the shapes the Teams docs prescribe.

Teams docs, "Respond to search command": the invoke's `value` has `commandId`, `parameters`
(`[{"name", "value"}]`; a default query when the extension opens has `initialRun` = `"true"`)
and `queryOptions` (`skip`, `count`). The answer is HTTP 200 with
`{"composeExtension": {"type": "result", "attachmentLayout": "list", "attachments": [...]}}`;
an Adaptive Card attachment must carry a `preview` (a hero or thumbnail card), or no preview
is shown. `type: "message"` with `text` shows plain text instead of results.

"Link unfurling": the invoke's `value` is `{"url": ...}`; the answer has the same envelope,
only its first attachment is used, it must include a `preview`, and the card is Adaptive
Cards 1.3 or earlier. No attachment: nothing unfurls.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from cards.actions import CARD_CONTENT_TYPE, CardActionError

QUERY = "composeExtension/query"
QUERY_LINK = "composeExtension/queryLink"
THUMBNAIL_CONTENT_TYPE = "application/vnd.microsoft.card.thumbnail"
INITIAL_RUN = "initialRun"
SEARCH_COMMAND = "searchDeals"
"""The manifest's search command id."""
SEARCH_PARAMETER = "searchText"
"""The manifest's search command parameter."""
RESULTS_MAX = 25
"""Teams asks for 25 at a time (`queryOptions.count`); never more than this."""


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="allow"
    )


class QueryParameter(_Wire):
    """One search box value."""

    name: str
    value: Any = None


class QueryOptions(_Wire):
    """Paging."""

    skip: int = Field(default=0, ge=0, le=10_000)
    count: int = Field(default=RESULTS_MAX, ge=0, le=1000)


class ExtensionQuery(_Wire):
    """The `value` of a `composeExtension/query` invoke."""

    command_id: str = Field(min_length=1, max_length=64)
    parameters: list[QueryParameter] = Field(default_factory=list, max_length=10)
    query_options: QueryOptions = Field(default_factory=QueryOptions)

    @property
    def initial_run(self) -> bool:
        """The default query Teams sends when the extension opens (`initialRun` in the manifest)."""
        return any(p.name == INITIAL_RUN for p in self.parameters)

    @property
    def text(self) -> str:
        """What the rep typed ("" for the default query); at most 200 characters."""
        for parameter in self.parameters:
            if parameter.name != INITIAL_RUN and isinstance(parameter.value, str):
                return " ".join(parameter.value.split())[:200]
        return ""

    @property
    def count(self) -> int:
        return min(self.query_options.count or RESULTS_MAX, RESULTS_MAX)


class LinkQuery(_Wire):
    """The `value` of a `composeExtension/queryLink` invoke."""

    url: str = Field(min_length=1, max_length=2048)


def parse_query(value: object) -> ExtensionQuery:
    """The search invoke's value; CardActionError (for the rep) when it cannot be read."""
    try:
        return ExtensionQuery.model_validate(value)
    except ValidationError as e:
        raise CardActionError("This search could not be read.") from e


def parse_link(value: object) -> LinkQuery:
    """The unfurl invoke's value; CardActionError when it cannot be read."""
    try:
        return LinkQuery.model_validate(value)
    except ValidationError as e:
        raise CardActionError("This link could not be read.") from e


class Preview(BaseModel):
    """What the result list (or the compose box, for an unfurl) shows: a thumbnail card."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    subtitle: str | None = None
    text: str | None = None


def attachment(card: dict[str, Any], preview: Preview) -> dict[str, Any]:
    """One result: the Adaptive Card sent when chosen, with its thumbnail preview."""
    return {
        "contentType": CARD_CONTENT_TYPE,
        "content": card,
        "preview": {
            "contentType": THUMBNAIL_CONTENT_TYPE,
            "content": preview.model_dump(exclude_none=True),
        },
    }


def result_response(attachments: list[dict[str, Any]]) -> dict[str, Any]:
    """`type: result`, `attachmentLayout: list`: the search results (or the unfurled card)."""
    layout: Literal["list"] = "list"
    return {
        "composeExtension": {
            "type": "result",
            "attachmentLayout": layout,
            "attachments": attachments,
        }
    }


def text_response(text: str) -> dict[str, Any]:
    """`type: message`: plain text where results would be (e.g. "not a rep")."""
    return {"composeExtension": {"type": "message", "text": text}}
