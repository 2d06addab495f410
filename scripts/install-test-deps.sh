#!/usr/bin/env bash
# Installs everything `cargo test` needs beyond the Rust toolchain: the
# wasm32-wasip2 target, and into target/test-deps/ (nothing global) the real
# MCP servers the `tools` tests call and the real MCP clients the
# orbit-server tests use (scripts/install-mcp-client-deps.sh). Idempotent:
# re-running skips what is already there at the pinned version.
#
#   target/test-deps/npm    @modelcontextprotocol/server-everything (stdio and streamable HTTP)
#   target/test-deps/venv   mcp-server-time (stdio), in a Python virtualenv
#   target/test-deps/schemathesis-venv   schemathesis (fuzzes the REST API from its OpenAPI document)
#   target/test-deps/python-sdk-venv     componentize-py (builds Python agents: `orbit run agent.py`)
#   target/test-deps/js-sdk              jco and componentize-js (builds JS/TS agents: `orbit run agent.ts`)
#
# and, for the dashboard's browser test (crates/orbit-server/tests/dashboard.rs):
#   chromium (Debian's package, with apt-get, when none is on the PATH)
#   crates/orbit-server/tests/browser/node_modules   playwright-core and axe-core (`npm ci` of its lockfile)
set -euo pipefail
cd "$(dirname "$0")/.."

EVERYTHING_VERSION=2026.8.31
TIME_VERSION=2026.10.19
SCHEMATHESIS_VERSION=4.32.5
# Keep in step with orbit_sdk::COMPONENTIZE_PY_VERSION.
COMPONENTIZE_PY_VERSION=0.25.1

rustup target add wasm32-wasip2

DEPS="${ORBIT_TEST_DEPS:-target/test-deps}"
mkdir -p "$DEPS"

command -v node >/dev/null && command -v npm >/dev/null || {
    echo "install-test-deps: node and npm are required (Node 18 or later)" >&2
    exit 1
}
command -v python3 >/dev/null || { echo "install-test-deps: python3 is required" >&2; exit 1; }

# Chromium for the dashboard's browser test: Debian's package (playwright's
# own browser download is not used). `$CHROMIUM` names another one.
if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then
    echo "chromium: using \$CHROMIUM=$CHROMIUM"
elif command -v chromium >/dev/null; then
    echo "chromium already installed ($(command -v chromium))"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
else
    echo "install-test-deps: chromium is required by the dashboard's browser test; install it with" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core" >&2
    echo "or set CHROMIUM to a Chromium executable" >&2
    exit 1
fi

pkg_json="$DEPS/npm/node_modules/@modelcontextprotocol/server-everything/package.json"
if [ -f "$pkg_json" ] && grep -q "\"version\": \"$EVERYTHING_VERSION\"" "$pkg_json"; then
    echo "server-everything $EVERYTHING_VERSION already installed"
else
    npm install --no-audit --no-fund --prefix "$DEPS/npm" "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION"
fi

if [ ! -x "$DEPS/venv/bin/python" ]; then
    python3 -m venv "$DEPS/venv" || {
        rm -rf "$DEPS/venv"
        echo "install-test-deps: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if "$DEPS/venv/bin/python" -m pip show mcp-server-time 2>/dev/null | grep -q "^Version: $TIME_VERSION$"; then
    echo "mcp-server-time $TIME_VERSION already installed"
else
    "$DEPS/venv/bin/python" -m pip install -q --disable-pip-version-check "mcp-server-time==$TIME_VERSION"
fi

# Its own virtualenv: its dependencies must not move mcp-server-time's.
if [ ! -x "$DEPS/schemathesis-venv/bin/python" ]; then
    python3 -m venv "$DEPS/schemathesis-venv"
fi
if "$DEPS/schemathesis-venv/bin/python" -m pip show schemathesis 2>/dev/null | grep -q "^Version: $SCHEMATHESIS_VERSION$"; then
    echo "schemathesis $SCHEMATHESIS_VERSION already installed"
else
    "$DEPS/schemathesis-venv/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The Python guest toolchain, as `orbit sdk install python` installs it.
if [ ! -x "$DEPS/python-sdk-venv/bin/python" ]; then
    python3 -m venv "$DEPS/python-sdk-venv"
fi
if "$DEPS/python-sdk-venv/bin/python" -m pip show componentize-py 2>/dev/null | grep -q "^Version: $COMPONENTIZE_PY_VERSION$"; then
    echo "componentize-py $COMPONENTIZE_PY_VERSION already installed"
else
    "$DEPS/python-sdk-venv/bin/python" -m pip install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# The markdown example's pure-Python dependencies, bundled into its component.
md=guest-sdk/python/examples/markdown
if [ ! -d "$md/vendor/markdown_it" ]; then
    "$DEPS/python-sdk-venv/bin/python" -m pip install -q --disable-pip-version-check --target "$md/vendor" -r "$md/requirements.txt"
fi

# The JavaScript/TypeScript guest toolchain, as `orbit sdk install js`
# installs it: `npm ci` of the committed lockfile (jco with the
# componentize-js and preview2-shim overrides it needs).
js="$DEPS/js-sdk"
if [ -x "$js/node_modules/.bin/jco" ] && cmp -s guest-sdk/js/toolchain/package-lock.json "$js/package-lock.json"; then
    echo "jco toolchain already installed"
else
    mkdir -p "$js"
    cp guest-sdk/js/toolchain/package.json guest-sdk/js/toolchain/package-lock.json "$js/"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The JS examples' own npm dependencies (bundled into their components).
for lock in guest-sdk/js/examples/*/package-lock.json; do
    [ -f "$lock" ] || continue
    ex="$(dirname "$lock")"
    # npm's own node_modules/.package-lock.json differs from the lockfile
    # (it drops the root entry), so a copy of what was installed marks it.
    if [ ! -d "$ex/node_modules" ] || ! cmp -s "$lock" "$ex/node_modules/.orbit-installed-lock"; then
        (cd "$ex" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$lock" "$ex/node_modules/.orbit-installed-lock"
    else
        echo "$ex packages already installed"
    fi
done

# The dashboard's browser test: playwright-core and axe-core, `npm ci` of the
# committed lockfile; the copy of the lockfile it was installed from marks it
# current (dashboard.rs compares the two).
browser=crates/orbit-server/tests/browser
if [ -d "$browser/node_modules" ] && cmp -s "$browser/package-lock.json" "$browser/node_modules/.orbit-installed-lock"; then
    echo "browser test packages already installed"
else
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$browser/package-lock.json" "$browser/node_modules/.orbit-installed-lock"
fi

echo "test dependencies ready in $DEPS"

# The MCP inspector CLI, the conformance suite and Node 22 for orbit-server.
scripts/install-mcp-client-deps.sh
