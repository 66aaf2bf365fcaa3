"""A small typed model of the Adaptive Cards 1.5 elements our cards use.

Only what Teams renders at schema 1.5: anything newer cannot be expressed here, and every model
forbids unknown fields, so a typo fails at build time instead of rendering as nothing.
Serialise with `AdaptiveCard.to_json()` (camelCase, no nulls).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"

Spacing = Literal["None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"]
TextColor = Literal["Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"]
TextSize = Literal["Small", "Default", "Medium", "Large", "ExtraLarge"]
TextWeight = Literal["Lighter", "Default", "Bolder"]
ContainerStyle = Literal["default", "emphasis", "good", "attention", "warning", "accent"]
ActionStyle = Literal["default", "positive", "destructive"]


class CardObject(BaseModel):
    """Base of every card object: camelCase on the wire, immutable, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


# --- actions ---------------------------------------------------------------------------------


class SubmitAction(CardObject):
    """Action.Submit: posts `data` (merged with the inputs) as a message activity's `value`."""

    type: Literal["Action.Submit"] = "Action.Submit"
    title: str
    """Button label."""
    data: dict[str, Any]
    """Sent back to the bot; carries `verb` because Action.Submit has none of its own."""
    associated_inputs: Literal["auto", "none"] | None = None
    """`none` sends no input values (and so skips their validation)."""
    style: ActionStyle | None = None


class ExecuteAction(CardObject):
    """Action.Execute: an `adaptiveCard/action` invoke; the bot answers with the new card."""

    type: Literal["Action.Execute"] = "Action.Execute"
    title: str | None = None
    """Button label (a refresh action has none)."""
    verb: str
    """What the bot should do."""
    data: dict[str, Any]
    """Ids and the card's version stamp; the inputs' values are merged in by the client."""
    associated_inputs: Literal["auto", "none"] | None = None
    """`none` sends no input values (and so skips their validation)."""
    style: ActionStyle | None = None
    fallback: SubmitAction | None = None
    """What clients without Universal Actions render instead."""


class OpenUrlAction(CardObject):
    """Action.OpenUrl: opens a web page."""

    type: Literal["Action.OpenUrl"] = "Action.OpenUrl"
    title: str
    url: str


class ShowCardAction(CardObject):
    """Action.ShowCard: unfolds a sub-card (inputs and their own buttons) under the actions."""

    type: Literal["Action.ShowCard"] = "Action.ShowCard"
    title: str
    card: SubCard


Action = Annotated[
    ExecuteAction | SubmitAction | OpenUrlAction | ShowCardAction, Field(discriminator="type")
]
SelectAction = Annotated[ExecuteAction | OpenUrlAction, Field(discriminator="type")]


# --- elements --------------------------------------------------------------------------------


class TextBlock(CardObject):
    """A paragraph of text; `{{DATE(...)}}`/`{{TIME(...)}}` are shown in the viewer's zone."""

    type: Literal["TextBlock"] = "TextBlock"
    text: str
    wrap: bool = True
    style: Literal["default", "heading"] | None = None
    size: TextSize | None = None
    weight: TextWeight | None = None
    color: TextColor | None = None
    is_subtle: bool | None = None
    max_lines: int | None = None
    spacing: Spacing | None = None
    separator: bool | None = None


class Fact(CardObject):
    """One title/value row of a FactSet."""

    title: str
    value: str


class FactSet(CardObject):
    """Title/value rows."""

    type: Literal["FactSet"] = "FactSet"
    facts: list[Fact]
    spacing: Spacing | None = None
    separator: bool | None = None


class Column(CardObject):
    """One column of a ColumnSet."""

    type: Literal["Column"] = "Column"
    items: list[Element]
    width: str | None = None
    """`auto`, `stretch` or a weight such as `"2"`."""
    vertical_content_alignment: Literal["Top", "Center", "Bottom"] | None = None


class ColumnSet(CardObject):
    """Columns side by side."""

    type: Literal["ColumnSet"] = "ColumnSet"
    columns: list[Column]
    spacing: Spacing | None = None
    separator: bool | None = None
    select_action: SelectAction | None = None


class Container(CardObject):
    """A group of elements, optionally styled."""

    type: Literal["Container"] = "Container"
    items: list[Element]
    style: ContainerStyle | None = None
    spacing: Spacing | None = None
    separator: bool | None = None
    select_action: SelectAction | None = None


class ActionSet(CardObject):
    """Buttons inside the body (for per-row actions)."""

    type: Literal["ActionSet"] = "ActionSet"
    actions: list[Action]
    spacing: Spacing | None = None


class Choice(CardObject):
    """One choice of an Input.ChoiceSet."""

    title: str
    value: str


class TextInput(CardObject):
    """Input.Text: its value is sent under `id`."""

    type: Literal["Input.Text"] = "Input.Text"
    id: str
    label: str | None = None
    placeholder: str | None = None
    is_multiline: bool | None = None
    max_length: int | None = None
    is_required: bool | None = None
    error_message: str | None = None
    spacing: Spacing | None = None


class ChoiceSetInput(CardObject):
    """Input.ChoiceSet: the chosen `value` is sent under `id`."""

    type: Literal["Input.ChoiceSet"] = "Input.ChoiceSet"
    id: str
    choices: list[Choice]
    label: str | None = None
    placeholder: str | None = None
    style: Literal["compact", "expanded"] | None = None
    value: str | None = None
    is_required: bool | None = None
    error_message: str | None = None
    spacing: Spacing | None = None


Element = Annotated[
    TextBlock | FactSet | ColumnSet | Container | ActionSet | TextInput | ChoiceSetInput,
    Field(discriminator="type"),
]


# --- the card --------------------------------------------------------------------------------


class Refresh(CardObject):
    """Teams invokes `action` when one of `user_ids` views the card, to show the current state."""

    action: ExecuteAction
    user_ids: list[str] | None = Field(default=None, max_length=60)
    """Teams refreshes automatically for at most 60 users."""


class SubCard(CardObject):
    """The card an Action.ShowCard unfolds; it inherits the outer card's schema and version."""

    type: Literal["AdaptiveCard"] = "AdaptiveCard"
    body: list[Element]
    actions: list[Action] | None = None


class AdaptiveCard(CardObject):
    """The card itself, schema version 1.5 (the most Teams bots may send), or 1.3 for a link
    unfurl (Teams docs, Link unfurling: "supports Adaptive Cards version 1.3 and earlier"); a
    1.3 card must use nothing newer (no Action.Execute, no refresh, no heading style)."""

    schema_url: str = Field(default=SCHEMA_URL, alias="$schema")
    type: Literal["AdaptiveCard"] = "AdaptiveCard"
    version: Literal["1.3", "1.5"] = "1.5"
    body: list[Element]
    actions: list[Action] | None = None
    refresh: Refresh | None = None
    fallback_text: str | None = None
    """Shown by clients that cannot render the card."""

    @model_validator(mode="after")
    def _nothing_newer_than_its_version(self) -> AdaptiveCard:
        if self.version == "1.3":
            dumped = repr(self.model_dump(by_alias=True, exclude_none=True))
            if self.refresh is not None or "Action.Execute" in dumped or "'heading'" in dumped:
                raise ValueError("a 1.3 card cannot carry Action.Execute, refresh or headings")
        return self

    def to_json(self) -> dict[str, Any]:
        """The card as a JSON-ready dict, as Teams expects it."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


SubCard.model_rebuild()
ShowCardAction.model_rebuild()
Column.model_rebuild()
Container.model_rebuild()
ColumnSet.model_rebuild()
AdaptiveCard.model_rebuild()
