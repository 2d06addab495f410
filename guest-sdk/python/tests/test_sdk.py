"""Unit tests of the orbit package under CPython, against the bindings that
componentize-py generates (``componentize-py bindings``) with the host
functions replaced by fakes. No component is built.

Run: ``python3 -m unittest discover -s guest-sdk/python/tests`` with
``ORBIT_COMPONENTIZE_PY`` (or ``target/test-deps/python-sdk-venv``) giving
componentize-py; the tests are skipped without it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
SDK = HERE.parent
REPO = SDK.parent.parent
WIT = REPO / "wit"


def componentize_py() -> str | None:
    tool = os.environ.get("ORBIT_COMPONENTIZE_PY") or str(REPO / "target/test-deps/python-sdk-venv/bin/componentize-py")
    return tool if Path(tool).is_file() else None


_TMP: tempfile.TemporaryDirectory[str] | None = None


def setUpModule() -> None:
    global _TMP
    tool = componentize_py()
    if tool is None:
        raise unittest.SkipTest("componentize-py is not installed")
    _TMP = tempfile.TemporaryDirectory(prefix="orbit-sdk-test-")
    bindings = Path(_TMP.name) / "bindings"
    subprocess.run([tool, "-d", str(WIT), "-w", "agent", "bindings", str(bindings)], check=True, capture_output=True)
    # A copy of the SDK, so that no __pycache__ lands in the repository.
    shutil.copytree(SDK / "orbit", Path(_TMP.name) / "sdk" / "orbit")
    sys.path[:0] = [str(bindings), str(Path(_TMP.name) / "sdk")]
    for name in [m for m in sys.modules if m == "orbit" or m.startswith("orbit.")]:
        del sys.modules[name]


def tearDownModule() -> None:
    if _TMP is not None:
        _TMP.cleanup()


class Fakes:
    """Replaces the binding functions of interfaces with recorders."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.saved: List[Any] = []

    def set(self, iface: str, func: str, fn: Any) -> None:
        module = importlib.import_module("wit_world.imports." + iface)
        self.saved.append((module, func, getattr(module, func)))

        def recorder(*args: Any) -> Any:
            self.calls.append((iface, func, args))
            return fn(*args)

        setattr(module, func, recorder)

    def restore(self) -> None:
        for module, func, original in reversed(self.saved):
            setattr(module, func, original)


def wit_err(code: str, message: str = "m") -> Exception:
    from componentize_py_types import Err
    from wit_world.imports import types

    return Err(types.Error(code=types.ErrorCode[code], message=message))


def raiser(exc: Exception) -> Any:
    def f(*args: Any) -> Any:
        raise exc

    return f


class SdkTest(unittest.TestCase):
    def setUp(self) -> None:
        self.fakes = Fakes()
        import orbit

        self.orbit = orbit

    def tearDown(self) -> None:
        self.fakes.restore()

    def test_error(self) -> None:
        orbit = self.orbit
        e = orbit.Error("invalid-input", "empty input")
        self.assertEqual((e.code, e.message, str(e)), ("invalid-input", "empty input", "invalid-input: empty input"))
        self.assertEqual(orbit.Error("NOT_FOUND").code, "not-found")
        self.assertEqual(orbit.Error("not-found").message, "not found")
        self.assertEqual(orbit.Error.too_large("x"), orbit.Error("too-large", "x"))
        with self.assertRaises(ValueError):
            orbit.Error("nope", "x")  # type: ignore[arg-type]
        self.assertEqual(len(orbit.ERROR_CODES), 7)

    def test_host_errors_become_orbit_errors(self) -> None:
        orbit = self.orbit
        for code in ["NOT_FOUND", "INVALID_INPUT", "TOO_LARGE", "LIMIT_EXCEEDED", "PERMISSION_DENIED", "UNAVAILABLE", "INTERNAL"]:
            self.fakes.set("storage", "get", raiser(wit_err(code, "host says")))
            with self.assertRaises(orbit.Error) as cm:
                orbit.storage.get("k")
            self.assertEqual(cm.exception.code, code.lower().replace("_", "-"))
            self.assertEqual(cm.exception.message, "host says")
            self.assertIsNone(cm.exception.__cause__)
            self.fakes.restore()

    def test_cache(self) -> None:
        orbit = self.orbit
        self.fakes.set("cache", "increment", lambda k, d: 5)
        self.fakes.set("cache", "get", lambda k: b"h\xc3\xa9" if k == "t" else None)
        self.fakes.set("cache", "set", lambda k, v, t: None)
        self.fakes.set("cache", "delete", lambda k: True)
        n = orbit.cache.increment("calls")
        self.assertEqual((n, type(n)), (5, int))
        self.assertEqual(self.fakes.calls[-1], ("cache", "increment", ("calls", 1)))
        self.assertEqual(orbit.cache.get_text("t"), "hé")
        self.assertIsNone(orbit.cache.get("x"))
        self.assertIsNone(orbit.cache.get_text("x"))
        orbit.cache.set("k", bytearray(b"ab"), ttl_ms=10)
        self.assertEqual(self.fakes.calls[-1], ("cache", "set", ("k", b"ab", 10)))
        orbit.cache.set_text("k", "é")
        self.assertEqual(self.fakes.calls[-1], ("cache", "set", ("k", b"\xc3\xa9", None)))
        self.assertTrue(orbit.cache.delete("k"))
        with self.assertRaises(TypeError):
            orbit.cache.set("k", "text")  # type: ignore[arg-type]
        with self.assertRaises(orbit.Error) as cm:
            orbit.cache.increment("k", 2**63)
        self.assertEqual(cm.exception.code, "invalid-input")
        with self.assertRaises(orbit.Error):
            orbit.cache.set("k", b"", ttl_ms=-1)

    def test_storage(self) -> None:
        orbit = self.orbit
        from wit_world.imports import storage as wit

        meta = wit.ObjectMeta(key="a", size=3, content_type="text/plain", modified_ms=9)
        pages = {None: wit.ObjectPage(objects=[meta], next_cursor="c1"), "c1": wit.ObjectPage(objects=[meta], next_cursor=None)}
        self.fakes.set("storage", "list", lambda p, c, l: pages[c])
        self.fakes.set("storage", "head", lambda k: meta)
        self.fakes.set("storage", "put", lambda k, v, t: None)
        self.fakes.set("storage", "get", lambda k: b"\xff")
        page = orbit.storage.list("a")
        self.assertEqual(page.objects[0], orbit.storage.ObjectMeta("a", 3, "text/plain", 9))
        self.assertEqual(self.fakes.calls[-1], ("storage", "list", ("a", None, 1000)))
        self.assertEqual(len(orbit.storage.list_all("")), 2)
        self.assertEqual(orbit.storage.head("a").size, 3)
        orbit.storage.put_text("a", "x")
        self.assertEqual(self.fakes.calls[-1], ("storage", "put", ("a", b"x", "text/plain; charset=utf-8")))
        with self.assertRaises(orbit.Error) as cm:
            orbit.storage.get_text("a")
        self.assertEqual(cm.exception.code, "invalid-input")
        with self.assertRaises(orbit.Error):
            orbit.storage.list("", None, 2**32)

    def test_list_all_stops_on_a_cursor_that_does_not_advance(self) -> None:
        orbit = self.orbit
        from wit_world.imports import storage as wit

        self.fakes.set("storage", "list", lambda p, c, l: wit.ObjectPage(objects=[], next_cursor="same"))
        self.assertEqual(orbit.storage.list_all(""), [])
        self.assertEqual(len(self.fakes.calls), 2)

    def test_log(self) -> None:
        orbit = self.orbit
        from wit_world.imports import log as wit

        self.fakes.set("log", "log", lambda level, message: None)
        orbit.log.info("call 1")
        orbit.log.warning("w")
        orbit.log.log("trace", "t")
        self.assertEqual(
            [c[2] for c in self.fakes.calls],
            [(wit.Level.INFO, "call 1"), (wit.Level.WARN, "w"), (wit.Level.TRACE, "t")],
        )
        with self.assertRaises(ValueError):
            orbit.log.log("loud", "x")  # type: ignore[arg-type]

    def test_db(self) -> None:
        orbit = self.orbit
        from wit_world.imports import db as wit

        self.fakes.set("db", "execute", lambda sql, params: 2)
        orbit.db.execute("INSERT", [None, True, -1, 1.5, "s", b"b", bytearray(b"y")])
        self.assertEqual(
            self.fakes.calls[-1][2][1],
            [
                wit.Value_Null(),
                wit.Value_Integer(1),
                wit.Value_Integer(-1),
                wit.Value_Real(1.5),
                wit.Value_Text("s"),
                wit.Value_Blob(b"b"),
                wit.Value_Blob(b"y"),
            ],
        )
        self.fakes.set(
            "db",
            "query",
            lambda sql, params: wit.Rows(
                columns=["id", "Name"],
                rows=[[wit.Value_Integer(1), wit.Value_Text("a")], [wit.Value_Null(), wit.Value_Blob(b"z")]],
            ),
        )
        rows = orbit.db.query("SELECT")
        self.assertEqual(rows.rows, [[1, "a"], [None, b"z"]])
        self.assertEqual([r["name"] for r in rows], ["a", b"z"])
        self.assertEqual(rows[0], [1, "a"])
        self.assertEqual(rows.scalar(), 1)
        self.assertEqual(rows.dicts()[1], {"id": None, "Name": b"z"})
        self.fakes.set("db", "batch", lambda sts: [1, 2, 3])
        self.assertEqual(orbit.db.batch(["A", ("B", [1]), orbit.db.Statement("C", ["x"])]), [1, 2, 3])
        self.assertEqual(
            self.fakes.calls[-1][2][0],
            [
                wit.Statement(sql="A", params=[]),
                wit.Statement(sql="B", params=[wit.Value_Integer(1)]),
                wit.Statement(sql="C", params=[wit.Value_Text("x")]),
            ],
        )
        with self.assertRaises(TypeError):
            orbit.db.execute("X", [object()])  # type: ignore[list-item]
        with self.assertRaises(TypeError):
            orbit.db.execute("X", "abc")  # type: ignore[arg-type]

    def test_fetch(self) -> None:
        orbit = self.orbit
        from wit_world.imports import fetch as wit

        def fake(req: Any) -> Any:
            return wit.Response(status=201, headers=[wit.Header(name="Content-Type", value="application/json")], body=b'{"ok":1}')

        self.fakes.set("fetch", "fetch", fake)
        resp = orbit.fetch.post("https://x/", json={"a": "é"}, secrets=["S"], timeout_ms=10)
        req = self.fakes.calls[-1][2][0]
        self.assertEqual((req.method, req.url, req.body, req.timeout_ms, req.secrets), ("POST", "https://x/", '{"a":"é"}'.encode(), 10, ["S"]))
        self.assertEqual(req.headers, [wit.Header(name="content-type", value="application/json")])
        self.assertEqual((resp.status, resp.ok, resp.header("content-type"), resp.json()), (201, True, "application/json", {"ok": 1}))
        orbit.fetch.get("https://x/", headers=[("a", "1"), ("a", "2")])
        req = self.fakes.calls[-1][2][0]
        self.assertEqual((req.method, req.body, req.timeout_ms, req.secrets, len(req.headers)), ("GET", b"", None, [], 2))

    def test_ai(self) -> None:
        orbit = self.orbit
        from wit_world.imports import ai as wit

        self.fakes.set(
            "ai",
            "chat",
            lambda req: wit.ChatResponse(text="hi", finish_reason=wit.FinishReason.CONTENT_FILTER, usage=wit.Usage(input_tokens=3, output_tokens=4)),
        )
        reply = orbit.ai.chat("p", "m", [("system", "s"), {"role": "user", "content": "u"}, orbit.ai.Message("assistant", "a")], max_tokens=5, temperature=1, json=True)
        req = self.fakes.calls[-1][2][0]
        self.assertEqual([(m.role, m.content) for m in req.messages], [(wit.Role.SYSTEM, "s"), (wit.Role.USER, "u"), (wit.Role.ASSISTANT, "a")])
        self.assertEqual(req.options, wit.ChatOptions(max_tokens=5, temperature=1.0, json=True))
        self.assertEqual((reply.text, reply.finish_reason, reply.usage.output_tokens), ("hi", "content-filter", 4))
        orbit.ai.chat("p", "m", "just text")
        self.assertEqual(self.fakes.calls[-1][2][0].messages, [wit.Message(role=wit.Role.USER, content="just text")])
        self.fakes.set("ai", "embed", lambda p, m, i: [[0.5, 1.0]])
        self.assertEqual(orbit.ai.embed("p", "m", ["a"]), [[0.5, 1.0]])
        with self.assertRaises(TypeError):
            orbit.ai.embed("p", "m", "a")
        with self.assertRaises(ValueError):
            orbit.ai.chat("p", "m", [("robot", "x")])

    def test_jobs(self) -> None:
        orbit = self.orbit
        from wit_world.imports import jobs as wit
        from wit_world.imports import types

        statuses: Dict[str, Any] = {
            "q": wit.JobStatus_Queued(),
            "r": wit.JobStatus_Running("run1"),
            "s": wit.JobStatus_Succeeded(wit.JobOutput(run_id="run2", output="out")),
            "f": wit.JobStatus_Failed(wit.JobFailure(run_id=None, error=types.Error(code=types.ErrorCode.LIMIT_EXCEEDED, message="fuel"))),
        }
        self.fakes.set("jobs", "status", lambda i: statuses[i])
        self.assertEqual(orbit.jobs.status("q"), orbit.jobs.Queued())
        self.assertEqual(orbit.jobs.status("r"), orbit.jobs.Running("run1"))
        self.assertEqual(orbit.jobs.status("s"), orbit.jobs.Succeeded("run2", "out"))
        failed = orbit.jobs.status("f")
        self.assertEqual((failed.state, failed.finished, failed), ("failed", True, orbit.jobs.Failed(None, orbit.Error("limit-exceeded", "fuel"))))
        self.assertEqual(orbit.jobs.wait("s"), "out")
        with self.assertRaises(orbit.Error) as cm:
            orbit.jobs.wait("f")
        self.assertEqual(cm.exception.code, "limit-exceeded")
        self.fakes.set("jobs", "invoke", lambda n, i: i.upper())
        self.fakes.set("jobs", "enqueue", lambda n, i: "id")
        self.assertEqual((orbit.jobs.invoke("j", "x"), orbit.jobs.enqueue("j", "x")), ("X", "id"))

    def test_tools(self) -> None:
        orbit = self.orbit
        from wit_world.imports import tools as wit

        self.fakes.set("tools", "list", lambda: [wit.ToolInfo(server="s", name="t", description="d", input_schema='{"type":"object"}')])
        self.assertEqual(orbit.tools.list(), [orbit.tools.ToolInfo("s", "t", "d", {"type": "object"})])
        self.fakes.set(
            "tools",
            "call",
            lambda s, t, a: wit.ToolResult(content='[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]', is_error=False),
        )
        result = orbit.tools.call("s", "t", {"x": 1})
        self.assertEqual(self.fakes.calls[-1][2], ("s", "t", '{"x":1}'))
        self.assertEqual((result.text(), result.is_error), ("a\nb", False))
        with self.assertRaises(orbit.Error) as cm:
            orbit.tools.call("s", "t", {"x": object()})
        self.assertEqual(cm.exception.code, "invalid-input")
        self.fakes.set("tools", "call", lambda s, t, a: wit.ToolResult(content="not json", is_error=True))
        with self.assertRaises(orbit.Error) as cm:
            orbit.tools.call_json("s", "t", "{}")
        self.assertEqual(cm.exception.code, "internal")

    def test_world(self) -> None:
        orbit = self.orbit
        from componentize_py_types import Err
        from wit_world.imports import types

        import orbit._agent as registry
        from orbit._world import WitWorld

        logged: List[Any] = []
        self.fakes.set("log", "log", lambda level, message: logged.append((level.name, message)))
        saved = registry._registered
        self.addCleanup(setattr, registry, "_registered", saved)
        registry._registered = None
        world = WitWorld()
        with self.assertRaises(Err) as cm:
            world.run("x")
        self.assertEqual(cm.exception.value.code, types.ErrorCode.INTERNAL)

        @orbit.agent
        def run(input: str) -> str:
            if input == "fail":
                raise orbit.Error("invalid-input", "empty input")
            if input == "crash":
                open("/no/such/dir/file")
            if input == "int":
                return 3  # type: ignore[return-value]
            return input.upper()

        self.assertEqual(run("a"), "A")
        self.assertEqual(world.run("hello"), "HELLO")
        with self.assertRaises(Err) as cm:
            world.run("fail")
        self.assertEqual(cm.exception.value, types.Error(code=types.ErrorCode.INVALID_INPUT, message="empty input"))
        with self.assertRaises(Err) as cm:
            world.run("crash")
        err = cm.exception.value
        self.assertEqual(err.code, types.ErrorCode.INTERNAL)
        self.assertNotIn("/", err.message)
        self.assertNotIn("Traceback", err.message)
        self.assertEqual(logged[-1][0], "ERROR")
        self.assertIn('File "test_sdk.py"', logged[-1][1])
        self.assertNotIn(str(HERE), logged[-1][1])
        with self.assertRaises(Err) as cm:
            world.run("int")
        self.assertEqual(cm.exception.value.code, types.ErrorCode.INTERNAL)

        def other(input: str) -> str:
            return input

        with self.assertRaises(RuntimeError):
            orbit.agent(other)


class WithoutBindingsTest(unittest.TestCase):
    def test_import_without_bindings(self) -> None:
        code = (
            "import orbit, orbit.storage\n"
            "try:\n    orbit.cache.get('k')\nexcept RuntimeError as e:\n    print('RuntimeError', e)\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(SDK / "orbit", Path(tmp) / "orbit")
            out = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, check=True)
        self.assertIn("RuntimeError the orbit:runtime bindings are not available", out.stdout)


if __name__ == "__main__":
    unittest.main()
