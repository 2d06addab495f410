"""End-to-end check of the Python SDK with the real Orbit binary.

Builds agents exactly as the Orbit CLI does (a work directory with a copy
of ``wit/``, the ``orbit`` package, and the ``orbit_app.py`` shim, built with
``componentize-py -d wit -w agent componentize orbit_app -p . -p SRC_DIR``),
runs them with ``target/debug/orbit run`` in a fresh data directory, and
compares the example ports with the Rust example components when those are
built. Prints ``N passed, N failed``; exits 1 on a failure.

Usage: python3 guest-sdk/python/tests/e2e.py [--keep]
Environment: ORBIT (the binary, default target/debug/orbit),
ORBIT_COMPONENTIZE_PY (default target/test-deps/python-sdk-venv/bin/componentize-py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
SDK = HERE.parent
REPO = SDK.parent.parent
ORBIT = os.environ.get("ORBIT", str(REPO / "target/debug/orbit"))
CPY = os.environ.get("ORBIT_COMPONENTIZE_PY", str(REPO / "target/test-deps/python-sdk-venv/bin/componentize-py"))
RUST_GUESTS = REPO / "target/guests/wasm32-wasip2/guest"

SHIM = (
    "import {module}  # noqa: F401  (registers the @orbit.agent function)\n"
    "from orbit._world import WitWorld  # noqa: F401\n"
)

SMALLEST = '''import orbit

@orbit.agent
def run(input: str) -> str:
    n = orbit.cache.increment("calls", 1)
    orbit.log.info(f"call {n}")
    if not input:
        raise orbit.Error("invalid-input", "empty input")
    return input.upper()
'''

ERRORS = '''import orbit

@orbit.agent
def run(input: str) -> str:
    if input == "crash":
        return str(1 // 0)
    if input == "oserror":
        open("/etc/passwd")
    if input == "not-str":
        return 42  # type: ignore[return-value]
    if input == "host-error":
        return orbit.storage.get_text("no/such/key")
    if input == "exit":
        raise SystemExit(3)
    return "ok"
'''

passed = 0
failed = 0
notes: List[str] = []


def check(name: str, ok: bool, detail: Any = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}: {str(detail)[:2000]}")


class Orbit:
    def __init__(self, home: Path) -> None:
        self.env = dict(os.environ, ORBIT_HOME=str(home))
        self.env.pop("ORBIT_TOKEN", None)

    def cmd(self, *args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ORBIT, *args], env=self.env, capture_output=True, text=True, input=stdin)

    def run(self, wasm: Path, input: Optional[str] = None, *extra: str) -> Dict[str, Any]:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write(input or "")
        try:
            args = ["run", str(wasm), "--json", *extra]
            if input is not None:
                args += ["--input-file", f.name]
            p = self.cmd(*args)
        finally:
            os.unlink(f.name)
        try:
            record: Dict[str, Any] = json.loads(p.stdout)
        except ValueError:
            raise RuntimeError(f"orbit run {wasm.name}: {p.stderr[-2000:]}") from None
        return record


def build(work_root: Path, name: str, src_dir: Path, module: str = "agent") -> Path:
    """Build ``src_dir/module.py`` as the CLI does; returns the component."""
    work = work_root / f"build-{name}"
    work.mkdir()
    shutil.copytree(REPO / "wit", work / "wit")
    shutil.copytree(SDK / "orbit", work / "orbit", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "orbit_app.py").write_text(SHIM.format(module=module))
    out = work / "app.wasm"
    started = time.monotonic()
    p = subprocess.run(
        [CPY, "-q", "-d", "wit", "-w", "agent", "componentize", "orbit_app", "-p", ".", "-p", str(src_dir), "-o", str(out)],
        cwd=work,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    elapsed = time.monotonic() - started
    if p.returncode != 0 or not out.is_file():
        raise RuntimeError(f"build of {name} failed:\n{p.stdout}{p.stderr}")
    notes.append(f"built {name}: {elapsed:.1f} s, {out.stat().st_size:,} bytes")
    return out


def source_dir(root: Path, name: str, text: str) -> Path:
    d = root / f"src-{name}"
    d.mkdir()
    (d / "agent.py").write_text(text)
    return d


def logs(record: Dict[str, Any]) -> List[str]:
    return [line["message"] for line in record.get("logs", [])]


def main() -> int:
    keep = "--keep" in sys.argv
    root = Path(tempfile.mkdtemp(prefix="orbit-python-e2e-"))
    echo: Optional[subprocess.Popen[bytes]] = None
    try:
        home = root / "data"
        home.mkdir()
        orbit = Orbit(home)
        p = orbit.cmd("workspace", "create", "default", "--owner", "you")
        check("workspace create", p.returncode == 0, p.stderr)

        # 1. The smallest agent, exactly as given.
        smallest = build(root, "smallest", source_dir(root, "smallest", SMALLEST))
        r1 = orbit.run(smallest, "hello")
        check("smallest: output HELLO", r1["status"] == "succeeded" and r1["output"] == "HELLO", r1)
        check("smallest: log 'call 1'", logs(r1) == ["call 1"], logs(r1))
        notes.append(f"smallest agent: {r1['fuel_consumed']:,} fuel, {r1['duration_us']} us")
        r2 = orbit.run(smallest, "again")
        check("smallest: second run logs 'call 2'", r2["output"] == "AGAIN" and logs(r2) == ["call 2"], r2)
        r3 = orbit.run(smallest)
        check(
            "smallest: empty input gives invalid-input 'empty input'",
            r3["status"] == "failed" and r3["error"]["code"] == "invalid-input" and r3["error"]["message"] == "empty input",
            r3,
        )

        # 2. Exceptions that are not orbit.Error.
        errors = build(root, "errors", source_dir(root, "errors", ERRORS))
        for case, code in [("crash", "internal"), ("oserror", "internal"), ("not-str", "internal"), ("exit", "internal"), ("host-error", "not-found")]:
            r = orbit.run(errors, case)
            err = r.get("error") or {}
            msg = err.get("message", "")
            check(
                f"errors: {case} gives {code} without traceback or path",
                r["status"] == "failed" and err.get("code") == code and "/" not in msg and "Traceback" not in msg,
                r,
            )
            if case == "crash":
                text = "\n".join(logs(r))
                check("errors: the traceback is logged with file names only", 'File "agent.py", line 6, in run' in text and "/" not in text.replace("1 // 0", ""), text)

        # 3. Every wrapper against the real host.
        prim_src = root / "src-primitives"
        prim_src.mkdir()
        shutil.copy(HERE / "agents/primitives.py", prim_src / "agent.py")
        primitives = build(root, "primitives", prim_src)
        p = orbit.cmd("jobs", "add", "upper", str(smallest))
        check("jobs add upper", p.returncode == 0, p.stderr)
        port_file = root / "echo.port"
        echo = subprocess.Popen([sys.executable, str(HERE / "echo_server.py"), str(port_file)])
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        port = int(port_file.read_text())
        (home / "fetch.json").write_text(json.dumps({"allow_ips": ["127.0.0.1/32"]}))
        p = orbit.cmd("secret", "set", "TOKEN", "--host", f"http://127.0.0.1:{port}", "--header", "Authorization", "--template", "Bearer {}", stdin="s3cret-value\n")
        check("secret set TOKEN", p.returncode == 0, p.stderr)
        closed = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/"
        r = orbit.run(primitives, json.dumps({"job": "upper", "base": f"http://127.0.0.1:{port}", "closed": closed}))
        check("primitives: run succeeded", r["status"] == "succeeded", r)
        got = json.loads(r["output"]) if r["status"] == "succeeded" else {}
        expected = json.loads((HERE / "agents/primitives.expected.json").read_text())
        for key, want in expected.items():
            check(f"primitives: {key}", got.get(key) == want, f"got {got.get(key)!r}, want {want!r}")
        check("primitives: every level logged", [l["level"] for l in r.get("logs", [])][:5] == ["trace", "debug", "info", "warn", "error"], r.get("logs"))

        # 4. Examples, compared with the Rust example components.
        examples = SDK / "examples"
        rust_md = RUST_GUESTS / "markdown_guest.wasm"
        rust_wf = RUST_GUESTS / "wordfreq_guest.wasm"
        rust_mcp = RUST_GUESTS / "mcp_tools_guest.wasm"

        if (examples / "markdown/vendor/markdown_it").is_dir():
            markdown = build(root, "markdown", examples / "markdown")
            docs = {
                "sample.md": (REPO / "examples/markdown/sample.md").read_text(),
                "README.md": (REPO / "README.md").read_text(),
                "edge cases": "Takes ~8 s and ~380 MB; ~~old~~ new\n\n| a | b |\n|:-|-:|\n| `x\\|y` | ![i *j*](u v \"t\") |\n\nText[^n].\n\n[^n]: Note\n    more\n\n0. zero\n\n<div>\n*raw*\n</div>\n",
                "empty": "",
            }
            for name, doc in docs.items():
                py = orbit.run(markdown, doc)
                check(f"markdown: {name} renders", py["status"] == "succeeded", py)
                if name == "sample.md":
                    notes.append(f"markdown (Python) on sample.md: {py['fuel_consumed']:,} fuel")
                if rust_md.is_file():
                    rs = orbit.run(rust_md, doc)
                    check(f"markdown: {name} is the Rust example's output", py.get("output") == rs.get("output"), (py.get("output", "")[:300], rs.get("output", "")[:300]))
                    check(f"markdown: {name} logs the Rust example's line", logs(py) == logs(rs), (logs(py), logs(rs)))
                    if name == "sample.md":
                        notes.append(f"markdown (Rust) on sample.md: {rs['fuel_consumed']:,} fuel")
            if not rust_md.is_file():
                notes.append(f"{rust_md} is missing: markdown not compared")
        else:
            notes.append("markdown example skipped: its dependencies are not installed in examples/markdown/vendor (see its requirements.txt)")

        wordfreq = build(root, "wordfreq", examples / "wordfreq")
        gpl = (REPO / "examples/wordfreq/data/GPL-3.txt").read_text()
        texts = {
            "GPL-3.txt": gpl,
            "unit test": "The cat and the hat. THE END, cat's hat!",
            "unicode": "Ünïcödé wörds: naïve café, ΣΟΦΙΑ σοφία; 東京タワー 3.14 1,000 can't won’t e-mail don't_stop 🇫🇷🇩🇪 👍🏽 x\u200dy",
        }
        for name, text in texts.items():
            py = orbit.run(wordfreq, text)
            check(f"wordfreq: {name} runs (cache miss)", py["status"] == "succeeded" and json.loads(py["output"])["cached"] is False, py)
            if name == "GPL-3.txt":
                notes.append(f"wordfreq (Python) on GPL-3.txt: {py['fuel_consumed']:,} fuel")
            if rust_wf.is_file():
                # The Rust agent finds the Python agent's cache entry ...
                rs = orbit.run(rust_wf, text)
                check(f"wordfreq: {name}: Rust reads the Python cache entry", logs(rs) == ["cache hit"], logs(rs))
                same = json.loads(rs["output"]) == dict(json.loads(py["output"]), cached=True)
                check(f"wordfreq: {name}: same result as Rust", same, (py["output"][:400], rs["output"][:400]))
                check(f"wordfreq: {name}: byte-identical JSON", rs["output"] == py["output"].replace('"cached":false', '"cached":true'), (py["output"][:200], rs["output"][:200]))
        if rust_wf.is_file():
            # ... and the Python agent finds the Rust agent's.
            text = gpl[:5000] + " rust-first"
            rs = orbit.run(rust_wf, text)
            py = orbit.run(wordfreq, text)
            check("wordfreq: Python reads the Rust cache entry", logs(py) == ["cache hit"] and py["output"] == rs["output"].replace('"cached":false', '"cached":true'), (logs(py), py["output"][:200], rs["output"][:200]))
            notes.append(f"wordfreq (Rust) on GPL-3.txt: {orbit.run(rust_wf, gpl + ' ')['fuel_consumed']:,} fuel (cache miss)")
        else:
            notes.append(f"{rust_wf} is missing: wordfreq not compared")

        mcp = build(root, "mcp-tools", examples / "mcp-tools")
        everything = REPO / "target/test-deps/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
        time_server = REPO / "target/test-deps/venv/bin/mcp-server-time"
        r = orbit.run(mcp, "hi")
        check("mcp-tools: without servers it fails with not-found", r["status"] == "failed" and (r.get("error") or {}).get("code") == "not-found", r)
        if everything.is_file() and time_server.is_file() and shutil.which("node"):
            p1 = orbit.cmd("tools", "add", "everything", "--command", f"node {everything} stdio")
            p2 = orbit.cmd("tools", "add", "time", "--command", str(time_server))
            check("tools add everything, time", p1.returncode == 0 and p2.returncode == 0, p1.stderr + p2.stderr)
            for text in ["hello tools", ""]:
                py = orbit.run(mcp, text)
                check(f"mcp-tools: runs with input {text!r}", py["status"] == "succeeded", py)
                if rust_mcp.is_file() and py["status"] == "succeeded":
                    rs = orbit.run(rust_mcp, text)
                    a, b = json.loads(py["output"]), json.loads(rs["output"])
                    # The time differs between the two runs; everything else is the same.
                    same = {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}
                    check(f"mcp-tools: {text!r}: same as Rust (but the time)", same and type(a["time"]) is type(b["time"]), (a, b))
                    shape = isinstance(a["time"], dict) and sorted(a["time"]) == sorted(b["time"]) and list(a) == list(b)
                    check(f"mcp-tools: {text!r}: same keys, in the same order", shape, (py["output"][:300], rs["output"][:300]))
                    check(f"mcp-tools: {text!r}: same log", logs(py) == logs(rs), (logs(py), logs(rs)))
        else:
            notes.append("MCP test servers missing (scripts/install-test-deps.sh): mcp-tools run only without servers")
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for n in notes:
        print(f"note  {n}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
