/**
 * An agent that exercises every wrapper of the SDK against the real host
 * and returns a JSON report of what each call gave (used by ../e2e.mjs,
 * which compares it with primitives.expected.json). A port of
 * guest-sdk/python/tests/agents/primitives.py.
 *
 * Input: a JSON object: `job` names a stored job to invoke and enqueue,
 * `base` the URL of a local echo server, `closed` a URL nothing answers
 * (each part is skipped without its key).
 */

import { ai, cache, db, fetch, jobs, log, OrbitError, storage, tools } from "orbit";

type Report = Record<string, unknown>;

/** Record `fn()`'s value under `name`, or the error it threw: an OrbitError as `{error, message}`, another as `{thrown, message}`. */
function attempt(report: Report, name: string, fn: () => unknown): void {
  try {
    report[name] = fn();
  } catch (e) {
    if (e instanceof OrbitError) {
      report[name] = { error: e.code, message: e.message };
    } else if (e instanceof Error) {
      report[name] = { thrown: e.constructor.name, message: e.message };
    } else {
      throw e;
    }
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return "Uint8Array";
  return typeof v;
}

interface Args {
  job?: string;
  base?: string;
  closed?: string;
}

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body: string;
  body_hex: string;
}

export function run(input: string): string {
  const args = (input ? JSON.parse(input) : {}) as Args;
  const r: Report = {};

  // log: every level.
  for (const level of log.LEVELS) log.log(level, `a ${level} line`);
  log.warning("a warning line");
  attempt(r, "log.log(bad level)", () => log.log("loud" as log.Level, "x"));

  // storage
  storage.put("t/a.bin", new Uint8Array([0, 1, 255]), "application/octet-stream");
  storage.putText("t/b.txt", "héllo");
  r["storage.get"] = Array.from(storage.get("t/a.bin"));
  r["storage.getText"] = storage.getText("t/b.txt");
  const meta = storage.head("t/b.txt");
  r["storage.head"] = [meta.key, meta.size, meta.contentType, meta.modifiedMs > 0, typeof meta.size];
  const page = storage.list("t/", null, 1);
  r["storage.list(limit=1)"] = [page.objects.map((m) => m.key), page.nextCursor !== null];
  r["storage.listAll"] = storage.listAll("t/").map((m) => m.key);
  r["storage.delete"] = [storage.delete("t/a.bin"), storage.delete("t/a.bin")];
  attempt(r, "storage.get(missing)", () => storage.get("t/a.bin"));
  attempt(r, "storage.put(bad key)", () => storage.put("../x", new Uint8Array(0), "text/plain"));
  storage.put("t/c", new Uint8Array([0xff]), "x/y");
  attempt(r, "storage.getText(not utf-8)", () => storage.getText("t/c"));
  attempt(r, "storage.put(a string)", () => storage.put("t/d", "text" as unknown as Uint8Array));
  storage.put("t/e", new Uint16Array([0x0201]).buffer);
  r["storage.put(ArrayBuffer)"] = Array.from(storage.get("t/e"));
  attempt(r, "storage.list(limit out of range)", () => storage.list("t/", null, 2 ** 32));

  // cache
  cache.set("k", new Uint8Array([1, 2]), 60_000);
  cache.setText("t", "tëxt");
  r["cache.get"] = Array.from(cache.get("k") ?? new Uint8Array(0));
  r["cache.getText"] = cache.getText("t");
  r["cache.get(missing)"] = cache.get("nope");
  r["cache.delete"] = [cache.delete("k"), cache.delete("k")];
  r["cache.increment"] = [cache.increment("n"), cache.increment("n", 41), cache.increment("n", -50n)];
  r["cache.increment type"] = typeof cache.increment("n", 0);
  attempt(r, "cache.increment(not a number)", () => cache.increment("t"));
  cache.setText("big", String(2n ** 63n - 1n));
  attempt(r, "cache.increment(overflow)", () => cache.increment("big", 1));
  attempt(r, "cache.increment(delta out of range)", () => cache.increment("x", 2n ** 64n));
  attempt(r, "cache.increment(fractional delta)", () => cache.increment("x", 1.5));
  attempt(r, "cache.get(empty key)", () => cache.get(""));
  attempt(r, "cache.set(ttl out of range)", () => cache.set("k", new Uint8Array(0), -1));
  // Past 2^53 a number is no longer exact: increment throws, incrementBig is exact.
  cache.setText("safe", String(2 ** 53 - 2));
  r["cache.increment(to MAX_SAFE_INTEGER)"] = cache.increment("safe");
  attempt(r, "cache.increment(past MAX_SAFE_INTEGER)", () => cache.increment("safe"));
  r["cache.getText(after the throw)"] = cache.getText("safe");
  r["cache.incrementBig"] = String(cache.incrementBig("safe", 2n ** 62n));
  r["cache.incrementBig type"] = typeof cache.incrementBig("safe", 0);
  attempt(r, "cache.increment(below MIN_SAFE_INTEGER)", () => cache.increment("neg", -(2 ** 53)));

  // db
  db.execute("DROP TABLE IF EXISTS t");
  r["db.execute(create)"] = db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)");
  r["db.execute(insert)"] = db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)", [
    -(2n ** 63n),
    1.5,
    "ü",
    new Uint8Array([0, 255]),
    null,
    true,
    -0.25,
    "",
    new TextEncoder().encode("x").buffer,
    7,
  ]);
  const big = db.queryBig("SELECT i, r, s, b AS B, n FROM t WHERE i < ? ORDER BY i", [10]);
  r["db.queryBig.columns"] = big.columns;
  r["db.queryBig.rows"] = big.arrays().map((row) =>
    row.map((v) => (v instanceof Uint8Array ? hex(v) : typeof v === "bigint" ? `${v}n` : v)),
  );
  r["db.queryBig.types"] = [...big.row(0)].map(describe);
  attempt(r, "db.query(integer past 2^53)", () => db.query("SELECT i FROM t ORDER BY i").length);
  const rows = db.query("SELECT i, r, s, b AS B, n FROM t WHERE i > ? ORDER BY i", [0]);
  r["db.query.rows"] = rows.arrays().map((row) => row.map((v) => (v instanceof Uint8Array ? hex(v) : v)));
  r["db.query.types"] = [...rows.row(0)].map(describe);
  const first = rows.row(0);
  r["db.row by name"] = [
    first.get("s"),
    first.get("b") instanceof Uint8Array,
    first.get("missing", "default"),
    first.toObject()["n"],
    first.get("I"),
    rows.columnIndex("b"),
    rows.columnIndex("nope"),
  ];
  attempt(r, "db.row.get(missing)", () => first.get("missing"));
  r["db.objects"] = rows.objects().map((o) => Object.keys(o).join(","));
  r["db.scalar"] = db.query("SELECT count(*) FROM t").scalar();
  r["db.real param"] = db.query("SELECT typeof(?), typeof(?), typeof(?)", [{ tag: "real", val: 2 }, 2, 2.5]).arrays()[0];
  r["db.batch"] = db.batch([
    ["UPDATE t SET s = ? WHERE i = ?", ["one", 1]],
    { sql: "DELETE FROM t WHERE i = ?", params: [-(2n ** 63n)] },
    "INSERT INTO t (i) VALUES (2)",
  ]);
  r["db.after batch"] = db.query("SELECT i, s FROM t ORDER BY i").arrays();
  attempt(r, "db.query(syntax)", () => db.query("SELEC 1"));
  attempt(r, "db.execute(returns rows)", () => db.execute("SELECT 1"));
  attempt(r, "db.execute(attach)", () => db.execute("ATTACH DATABASE 'x' AS x"));
  attempt(r, "db.batch(rolled back)", () => db.batch(["INSERT INTO t (i) VALUES (3)", "INSERT INTO nope VALUES (1)"]));
  r["db.after failed batch"] = db.query("SELECT count(*) FROM t WHERE i = 3").scalar();
  attempt(r, "db.execute(bad param)", () => db.execute("SELECT ?", [{} as unknown as null]));
  attempt(r, "db.execute(param out of range)", () => db.execute("SELECT ?", [2n ** 63n]));

  // fetch. `base` is a local echo server (../e2e.mjs allows 127.0.0.1 in
  // fetch.json and binds the secret TOKEN to it); `closed` a local port
  // that nothing listens on.
  const base = args.base;
  const closed = args.closed;
  if (base) {
    let resp = fetch.get(base + "/get?q=1", { headers: { "x-test": "yes" }, secrets: ["TOKEN"], timeoutMs: 5000 });
    let echo = resp.json() as Echo;
    r["fetch.get"] = [resp.status, resp.ok, resp.header("X-ECHO"), echo.method, echo.path, echo.headers["x-test"], echo.headers["authorization"]];
    resp = fetch.post(base + "/post", undefined, { json: { a: [1, "é"] } });
    echo = resp.json() as Echo;
    r["fetch.post(json)"] = [resp.status, echo.method, echo.body, echo.headers["content-type"]];
    resp = fetch.request("PUT", base + "/put", {
      body: new Uint8Array([0, 1]),
      headers: [
        ["x-a", "1"],
        ["x-a", "2"],
      ],
    });
    r["fetch.request(put bytes)"] = [resp.status, (resp.json() as Echo).body_hex];
    resp = fetch.post(base + "/text", "plain é");
    r["fetch.post(text)"] = [(resp.json() as Echo).body, resp.headerAll("x-echo")];
    resp = fetch.fetch({ method: "DELETE", url: base + "/status/404" });
    r["fetch.fetch(404)"] = [resp.status, resp.ok, (JSON.parse(resp.text()) as Echo).path];
    attempt(r, "fetch.request(bad header)", () => fetch.request("GET", base + "/", { headers: { x: "a\r\nb" } }).status);
    attempt(r, "fetch.post(unknown secret)", () => fetch.post(base + "/", "x", { secrets: ["NOPE"] }).status);
    attempt(r, "fetch.post(body and json)", () => fetch.post(base + "/", "x", { json: 1 }).status);
  }
  if (closed) {
    attempt(r, "fetch.get(closed port)", () => fetch.get(closed, { timeoutMs: 2000 }).status);
  }
  attempt(r, "fetch.get(unresolvable host)", () => fetch.get("http://orbit-sdk-test.invalid/", { timeoutMs: 2000 }).status);
  attempt(r, "fetch.get(loopback denied)", () => fetch.get("http://[::1]:9/").status);
  attempt(r, "fetch.get(bad url)", () => fetch.get("not a url").status);

  // ai and tools: nothing configured in this workspace.
  attempt(r, "ai.chat(no provider)", () => ai.chat("nope", "m", "hi", { maxTokens: 5, temperature: 0.5 }).text);
  attempt(r, "ai.send(no provider)", () =>
    ai.send({ provider: "nope", model: "m", messages: [["system", "be brief"], { role: "user", content: "hi" }], options: { json: true } }).text,
  );
  attempt(r, "ai.chat(bad role)", () => ai.chat("nope", "m", [["robot" as ai.Role, "hi"]]).text);
  attempt(r, "ai.embed(no provider)", () => ai.embed("nope", "m", ["a"]));
  attempt(r, "tools.list", () => tools.list().map((t) => t.name));
  attempt(r, "tools.call(no server)", () => tools.call("nope", "echo", { message: "x" }).text());
  attempt(r, "tools.call(array arguments)", () => tools.call("nope", "echo", [1] as unknown as Record<string, unknown>).text());
  // The engine's own message follows "tool arguments are not JSON: ".
  attempt(r, "tools.call(bigint argument)", () => {
    try {
      return tools.call("nope", "echo", { n: 1n }).text();
    } catch (e) {
      if (e instanceof OrbitError) return [e.code, e.message.startsWith("tool arguments are not JSON: ")];
      throw e;
    }
  });

  // jobs
  const job = args.job;
  attempt(r, "jobs.invoke(missing)", () => jobs.invoke("no-such-job", "x"));
  attempt(r, "jobs.status(bad id)", () => jobs.status("not-a-uuid"));
  attempt(r, "jobs.status(unknown id)", () => jobs.status("01a22e46-4b42-722e-8b3a-86653c9ca476"));
  if (job) {
    attempt(r, "jobs.invoke", () => jobs.invoke(job, "from parent"));
    attempt(r, "jobs.invoke(child error)", () => jobs.invoke(job, ""));
    const id = jobs.enqueue(job, "queued input");
    const st = jobs.status(id);
    // The queue's workers run alongside: by the time the status is read,
    // one may have claimed the job. Either way it is not finished.
    r["jobs.enqueue+status"] = [id.length, st.state === "queued" || st.state === "running", st.finished];
  }

  // OrbitError itself.
  const e = new OrbitError("NOT_FOUND" as "not-found");
  r["OrbitError"] = [e.code, e.message, String(e), e instanceof Error, e.name, JSON.stringify(OrbitError.tooLarge("big"))];
  attempt(r, "OrbitError(bad code)", () => new OrbitError("nope" as "internal"));

  return JSON.stringify(r, null, 1);
}
