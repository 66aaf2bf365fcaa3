// Parses each card with Microsoft's adaptivecards library at schema 1.5 and reports every
// validation event (parse events plus validateProperties failures). Reads from stdin a JSON
// array of {"name": str, "card": object}; writes a JSON array of {"name", "events": [...]}.
"use strict";
const path = require("path");
const AC = require(path.join(__dirname, "..", "node_modules", "adaptivecards", "dist", "adaptivecards.js"));

function describe(e) {
  return {
    phase: AC.ValidationPhase[e.phase],
    event: AC.ValidationEvent[e.event],
    message: e.message,
  };
}

function check(entry) {
  // An entry may name its surface's version ("1.3" for link unfurls); 1.5 otherwise.
  const version = entry.version === "1.3" ? AC.Versions.v1_3 : AC.Versions.v1_5;
  const context = new AC.SerializationContext(version);
  const card = new AC.AdaptiveCard();
  card.parse(entry.card, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) {
    events.push(describe(context.getEventAt(i)));
  }
  for (const e of card.validateProperties().validationEvents) {
    events.push(describe(e));
  }
  return { name: entry.name, events: events };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const entries = JSON.parse(input);
  process.stdout.write(JSON.stringify(entries.map(check)));
});
