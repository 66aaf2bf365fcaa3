"""Teams in the sandbox: a Bot Connector that accepts only bot tokens the sandbox issued, and
simulated Teams users who install the bot, write to it and press its cards' buttons.

Routes (one blueprint, `create_blueprint`):

- Bot Connector under `{base}/teams/` (the `serviceUrl` of every activity the sandbox sends):
  `POST v3/conversations`, `POST v3/conversations/{id}/activities[/{replyTo}]`,
  `PUT v3/conversations/{id}/activities/{activityId}`, `GET v3/conversations/{id}/members`.
- The Connector's signing keys: `{base}/botframework/v1/.well-known/openidconfiguration`.
- Control, under `/_sandbox/teams/`: the bot's endpoint, users' installs, messages, button
  presses, blocking, and what the bot sent; a relay for a Teams client such as the
  Agents Playground (`POST /_sandbox/teams/channel`).
- `GET /teams`: each user's chat with the cards, for a person watching the demo.
"""

from sandbox.teams.routes import create_blueprint

__all__ = ["create_blueprint"]
