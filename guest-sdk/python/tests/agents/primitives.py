"""An agent that exercises every wrapper of the SDK against the real host
and returns a JSON report of what each call gave (used by ../e2e.sh).

Input: a JSON object: ``job`` names a stored job to invoke and enqueue,
``base`` the URL of a local echo server, ``closed`` a URL nothing answers
(each part is skipped without its key).
"""

import json
from typing import Any, Callable, Dict

import orbit


def attempt(report: Dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    """Record ``fn()``'s value, or the orbit.Error it raised, under ``name``."""
    try:
        report[name] = fn()
    except orbit.Error as e:
        report[name] = {"error": e.code, "message": e.message}


@orbit.agent
def run(input: str) -> str:
    args = json.loads(input) if input else {}
    r: Dict[str, Any] = {}

    # log: every level.
    for level in orbit.log.LEVELS:
        orbit.log.log(level, f"a {level} line")
    orbit.log.warning("a warning line")

    # storage
    orbit.storage.put("t/a.bin", b"\x00\x01\xff", "application/octet-stream")
    orbit.storage.put_text("t/b.txt", "héllo")
    r["storage.get"] = list(orbit.storage.get("t/a.bin"))
    r["storage.get_text"] = orbit.storage.get_text("t/b.txt")
    meta = orbit.storage.head("t/b.txt")
    r["storage.head"] = [meta.key, meta.size, meta.content_type, meta.modified_ms > 0]
    page = orbit.storage.list("t/", None, 1)
    r["storage.list(limit=1)"] = [[m.key for m in page.objects], page.next_cursor is not None]
    r["storage.list_all"] = [m.key for m in orbit.storage.list_all("t/")]
    r["storage.delete"] = [orbit.storage.delete("t/a.bin"), orbit.storage.delete("t/a.bin")]
    attempt(r, "storage.get(missing)", lambda: orbit.storage.get("t/a.bin"))
    attempt(r, "storage.put(bad key)", lambda: orbit.storage.put("../x", b"", "text/plain"))
    orbit.storage.put("t/c", b"\xff", "x/y")
    attempt(r, "storage.get_text(not utf-8)", lambda: orbit.storage.get_text("t/c"))

    # cache
    orbit.cache.set("k", b"\x01\x02", ttl_ms=60_000)
    orbit.cache.set_text("t", "tëxt")
    r["cache.get"] = list(orbit.cache.get("k") or b"")
    r["cache.get_text"] = orbit.cache.get_text("t")
    r["cache.get(missing)"] = orbit.cache.get("nope")
    r["cache.delete"] = [orbit.cache.delete("k"), orbit.cache.delete("k")]
    r["cache.increment"] = [orbit.cache.increment("n"), orbit.cache.increment("n", 41), orbit.cache.increment("n", -50)]
    r["cache.increment type"] = type(orbit.cache.increment("n", 0)).__name__
    attempt(r, "cache.increment(not a number)", lambda: orbit.cache.increment("t"))
    orbit.cache.set_text("big", str(2**63 - 1))
    attempt(r, "cache.increment(overflow)", lambda: orbit.cache.increment("big", 1))
    attempt(r, "cache.increment(delta out of range)", lambda: orbit.cache.increment("x", 2**64))
    attempt(r, "cache.get(empty key)", lambda: orbit.cache.get(""))

    # db
    orbit.db.execute("DROP TABLE IF EXISTS t")
    r["db.execute(create)"] = orbit.db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
    r["db.execute(insert)"] = orbit.db.execute(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)",
        [-(2**63), 1.5, "ü", b"\x00\xff", None, True, -0.25, "", bytearray(b"x"), 7],
    )
    rows = orbit.db.query("SELECT i, r, s, b AS B, n FROM t WHERE i < ? ORDER BY i", [10])
    r["db.query.columns"] = rows.columns
    r["db.query.rows"] = [[v.hex() if isinstance(v, bytes) else v for v in row] for row in rows]
    r["db.query.types"] = [type(v).__name__ for v in rows[0]]
    r["db.row by name"] = [rows[1]["s"], rows[1]["b"] == b"x", rows[0].get("missing", "default"), rows[0].as_dict()["n"]]
    r["db.scalar"] = orbit.db.query("SELECT count(*) FROM t").scalar()
    r["db.batch"] = orbit.db.batch(
        [
            ("UPDATE t SET s = ? WHERE i = ?", ["one", 1]),
            orbit.db.Statement("DELETE FROM t WHERE i = ?", [-(2**63)]),
            "INSERT INTO t (i) VALUES (2)",
        ]
    )
    r["db.after batch"] = orbit.db.query("SELECT i, s FROM t ORDER BY i").tuples()
    attempt(r, "db.query(syntax)", lambda: orbit.db.query("SELEC 1"))
    attempt(r, "db.execute(returns rows)", lambda: orbit.db.execute("SELECT 1"))
    attempt(r, "db.execute(attach)", lambda: orbit.db.execute("ATTACH DATABASE 'x' AS x"))
    attempt(r, "db.batch(rolled back)", lambda: orbit.db.batch(["INSERT INTO t (i) VALUES (3)", "INSERT INTO nope VALUES (1)"]))
    r["db.after failed batch"] = orbit.db.query("SELECT count(*) FROM t WHERE i = 3").scalar()

    # fetch. `base` is a local echo server (../e2e.sh allows 127.0.0.1 in
    # fetch.json and binds the secret TOKEN to it); `closed` a local port
    # that nothing listens on.
    base = args.get("base")
    closed = args.get("closed")
    if base:
        resp = orbit.fetch.get(base + "/get?q=1", headers={"x-test": "yes"}, secrets=["TOKEN"], timeout_ms=5000)
        echo = resp.json()
        r["fetch.get"] = [resp.status, resp.ok, resp.header("X-ECHO"), echo["method"], echo["path"], echo["headers"].get("x-test"), echo["headers"].get("authorization")]
        resp = orbit.fetch.post(base + "/post", json={"a": [1, "é"]})
        echo = resp.json()
        r["fetch.post(json)"] = [resp.status, echo["method"], echo["body"], echo["headers"].get("content-type")]
        resp = orbit.fetch.request("PUT", base + "/put", body=b"\x00\x01", headers=[("x-a", "1"), ("x-a", "2")])
        r["fetch.request(put bytes)"] = [resp.status, resp.json()["body_hex"]]
        resp = orbit.fetch.fetch(orbit.fetch.Request("DELETE", base + "/status/404"))
        r["fetch.fetch(404)"] = [resp.status, resp.ok, json.loads(resp.text())["path"]]
        attempt(r, "fetch.request(bad header)", lambda: orbit.fetch.request("GET", base + "/", headers={"x": "a\r\nb"}).status)
        attempt(r, "fetch.post(unknown secret)", lambda: orbit.fetch.post(base + "/", b"x", secrets=["NOPE"]).status)
    if closed:
        attempt(r, "fetch.get(closed port)", lambda: orbit.fetch.get(closed, timeout_ms=2000).status)
    attempt(r, "fetch.get(unresolvable host)", lambda: orbit.fetch.get("http://orbit-sdk-test.invalid/", timeout_ms=2000).status)
    attempt(r, "fetch.get(loopback denied)", lambda: orbit.fetch.get("http://[::1]:9/").status)
    attempt(r, "fetch.get(bad url)", lambda: orbit.fetch.get("not a url").status)

    # ai and tools: nothing configured in this workspace.
    attempt(r, "ai.chat(no provider)", lambda: orbit.ai.chat("nope", "m", "hi", max_tokens=5, temperature=0.5).text)
    attempt(r, "ai.embed(no provider)", lambda: orbit.ai.embed("nope", "m", ["a"]))
    attempt(r, "tools.list", lambda: [t.name for t in orbit.tools.list()])
    attempt(r, "tools.call(no server)", lambda: orbit.tools.call("nope", "echo", {"message": "x"}).text())

    # jobs
    job = args.get("job")
    attempt(r, "jobs.invoke(missing)", lambda: orbit.jobs.invoke("no-such-job", "x"))
    attempt(r, "jobs.status(bad id)", lambda: orbit.jobs.status("not-a-uuid"))
    attempt(r, "jobs.status(unknown id)", lambda: orbit.jobs.status("01a22e46-4b42-722e-8b3a-86653c9ca476"))
    if job:
        attempt(r, "jobs.invoke", lambda: orbit.jobs.invoke(job, "from parent"))
        attempt(r, "jobs.invoke(child error)", lambda: orbit.jobs.invoke(job, ""))
        job_id = orbit.jobs.enqueue(job, "queued input")
        st = orbit.jobs.status(job_id)
        # The queue's workers run alongside: by the time the status is read,
        # one may have claimed the job. Either way it is not finished.
        unfinished = st.state in ("queued", "running") and type(st).__name__ in ("Queued", "Running")
        r["jobs.enqueue+status"] = [len(job_id), unfinished, st.finished]
    return json.dumps(r, ensure_ascii=False, indent=1)
