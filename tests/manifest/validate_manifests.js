// Validates Teams app manifests against the official schema their "$schema" names, with
// Microsoft's @microsoft/app-manifest (it bundles the schemas, so this runs offline).
// Reads from stdin a JSON array of {"name": str, "manifest": object}; writes a JSON array of
// {"name": str, "errors": [str]}.
"use strict";
const path = require("path");
const { AppManifestUtils } = require(
  path.join(__dirname, "..", "node_modules", "@microsoft", "app-manifest"),
);

async function check(entry) {
  const errors = await AppManifestUtils.validateAgainstSchema(entry.manifest);
  return { name: entry.name, errors: errors };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const entries = JSON.parse(input);
  const results = [];
  for (const entry of entries) {
    results.push(await check(entry));
  }
  process.stdout.write(JSON.stringify(results));
});
