#!/usr/bin/env bash
# Installs the guest target, builds Orbit and the example guests, and runs
# the Markdown renderer on a real document through `orbit run`, with the
# embedded defaults (redb run store, no server). Then lists the run.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
cargo build -p orbit-cli
cargo build --profile guest --target wasm32-wasip2 --target-dir target/guests -p markdown-guest -p wordfreq-guest -p hello-cli
export ORBIT_HOME="${ORBIT_HOME:-$PWD/.orbit}"
orbit=target/debug/orbit
guests=target/guests/wasm32-wasip2/guest
# Workspaces are created explicitly; the first run creates `default`, owned
# by the local OS user (as a handle: lowercase, other characters as '-').
owner="$(id -un | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n-' '-' | sed 's/^[-_]*//')"
$orbit workspace show default > /dev/null 2>&1 || $orbit workspace create default --owner "${owner:-operator}"
$orbit run "$guests/markdown_guest.wasm" --input-file examples/markdown/sample.md > target/sample.html 2> target/markdown-run.txt \
  || { cat target/markdown-run.txt; exit 1; }
cat target/markdown-run.txt
echo "rendered examples/markdown/sample.md -> target/sample.html ($(wc -c < target/sample.html) bytes)"
$orbit run "$guests/wordfreq_guest.wasm" --input-file examples/wordfreq/data/GPL-3.txt
$orbit run "$guests/hello-cli.wasm" --input-file examples/markdown/sample.md
$orbit runs list --limit 5
# The Markdown run in detail: status, fuel, one span per host call, logs.
$orbit runs show "$(awk '/^run /{print $2}' target/markdown-run.txt | tail -n1)"
