/**
 * Unit tests of the SDK and of the examples' pure helpers, under Node
 * (`node --test guest-sdk/js/tests/`), against a fake host: the TypeScript
 * is bundled by `_bundle.mjs` with the toolchain's rolldown (found beside
 * `ORBIT_JCO`, in target/test-deps/js-sdk, or in guest-sdk/js/toolchain
 * after `npm ci` there; skipped without any).
 *
 * What the real host does is checked by `e2e.mjs`.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { before, describe, test } from "node:test";

import { SDK, haveToolchain, load, witError } from "./_bundle.mjs";

const skip = haveToolchain() ? false : "the toolchain is not installed (npm ci in guest-sdk/js/toolchain)";

/** The SDK, bundled with the fake host. */
let orbit;
/** Log lines the fake host received: [level, message]. */
let logs;

function host(fake) {
  logs = [];
  globalThis.__orbitHost = {
    log: { log: (level, message) => logs.push([level, message]) },
    ...fake,
  };
}

describe("the SDK against a fake host", { skip }, () => {
  before(async () => {
    orbit = await load(path.join(SDK, "src/index.ts"));
  });

  describe("OrbitError", () => {
    test("holds a code and a message; the message defaults to the code's description", () => {
      const e = new orbit.OrbitError("not-found");
      assert.equal(e.code, "not-found");
      assert.equal(e.message, "not found");
      assert.equal(e.name, "OrbitError");
      assert.ok(e instanceof Error);
      assert.equal(String(e), "not-found: not found");
      assert.deepEqual(JSON.parse(JSON.stringify(e)), { code: "not-found", message: "not found" });
      assert.equal(new orbit.OrbitError("internal", "boom").message, "boom");
    });

    test("normalizes NOT_FOUND and not_found, refuses unknown codes with a RangeError", () => {
      assert.equal(new orbit.OrbitError("NOT_FOUND").code, "not-found");
      assert.equal(new orbit.OrbitError("limit_exceeded").code, "limit-exceeded");
      assert.throws(() => new orbit.OrbitError("nope"), (e) => e instanceof RangeError && /unknown orbit error code "nope"/.test(e.message));
      assert.throws(() => new orbit.OrbitError(3), RangeError);
    });

    test("has a factory per code, and ERROR_CODES in WIT order", () => {
      assert.deepEqual(orbit.ERROR_CODES, ["not-found", "invalid-input", "too-large", "limit-exceeded", "permission-denied", "unavailable", "internal"]);
      const made = [
        orbit.OrbitError.notFound(),
        orbit.OrbitError.invalidInput(),
        orbit.OrbitError.tooLarge(),
        orbit.OrbitError.limitExceeded(),
        orbit.OrbitError.permissionDenied(),
        orbit.OrbitError.unavailable(),
        orbit.OrbitError.internal("x"),
      ];
      assert.deepEqual(made.map((e) => e.code), orbit.ERROR_CODES);
    });

    test("instanceof recognizes an OrbitError of another copy of the SDK", async () => {
      const other = await load(path.join(SDK, "src/index.ts"));
      assert.notEqual(other.OrbitError, orbit.OrbitError);
      assert.ok(new other.OrbitError("internal") instanceof orbit.OrbitError);
      assert.ok(!(new Error("x") instanceof orbit.OrbitError));
      assert.ok(!({ code: "internal", message: "x" } instanceof orbit.OrbitError));
      class Mine extends orbit.OrbitError {}
      assert.ok(new Mine("internal") instanceof orbit.OrbitError);
      assert.ok(!(new orbit.OrbitError("internal") instanceof Mine));
    });
  });

  describe("host errors", () => {
    test("a WIT err becomes an OrbitError with the host's code and message", () => {
      host({ storage: { get: () => { throw witError("not-found", "not found"); } } });
      assert.throws(() => orbit.storage.get("k"), (e) => e instanceof orbit.OrbitError && e.code === "not-found" && e.message === "not found");
      // jco's ComponentError is not an Error: any value with a payload counts.
      host({ storage: { get: () => { throw { payload: { code: "too-large", message: "too large" } }; } } });
      assert.throws(() => orbit.storage.get("k"), (e) => e.code === "too-large");
    });

    test("an unknown code from the host becomes internal", () => {
      host({ cache: { get: () => { throw witError("weird", "?"); } } });
      assert.throws(() => orbit.cache.get("k"), (e) => e instanceof orbit.OrbitError && e.code === "internal" && e.message === "?");
    });

    test("anything else the binding throws passes through", () => {
      host({ cache: { get: () => { throw new TypeError("lowering"); } } });
      assert.throws(() => orbit.cache.get("k"), TypeError);
    });
  });

  describe("integers", () => {
    test("s64 parameters take numbers and bigints, refuse fractions (TypeError) and out-of-range values (invalid-input)", () => {
      const seen = [];
      host({ cache: { increment: (key, delta) => (seen.push(delta), 5n) } });
      assert.equal(orbit.cache.increment("n"), 5);
      assert.equal(orbit.cache.increment("n", -3), 5);
      assert.equal(orbit.cache.increment("n", 2n ** 63n - 1n), 5);
      assert.equal(orbit.cache.increment("n", -(2n ** 63n)), 5);
      assert.deepEqual(seen, [1n, -3n, 2n ** 63n - 1n, -(2n ** 63n)]);
      assert.throws(() => orbit.cache.increment("n", 1.5), TypeError);
      assert.throws(() => orbit.cache.increment("n", NaN), TypeError);
      assert.throws(() => orbit.cache.increment("n", "1"), TypeError);
      for (const bad of [2n ** 63n, -(2n ** 63n) - 1n, 2 ** 63]) {
        assert.throws(
          () => orbit.cache.increment("n", bad),
          (e) => e instanceof orbit.OrbitError && e.code === "invalid-input" && e.message === "delta is out of range (-9223372036854775808 to 9223372036854775807)",
        );
      }
      assert.equal(seen.length, 4, "nothing out of range reaches the host");
    });

    test("increment returns a number while it is exact, throws a RangeError beyond; incrementBig returns the bigint", () => {
      let value = 2n ** 53n - 2n;
      host({ cache: { increment: (key, delta) => (value += delta) } });
      assert.equal(orbit.cache.increment("n"), 2 ** 53 - 1);
      assert.throws(() => orbit.cache.increment("n"), (e) => e instanceof RangeError && /9007199254740992/.test(e.message) && /cache\.incrementBig/.test(e.message));
      assert.equal(orbit.cache.incrementBig("n", 1), 2n ** 53n + 1n);
      value = -(2n ** 53n);
      assert.throws(() => orbit.cache.increment("n", 0), RangeError);
    });

    test("u64 and u32 parameters: ttlMs and limit", () => {
      const ttls = [];
      host({ cache: { set: (k, v, ttl) => ttls.push(ttl) }, storage: { list: (p, c, limit) => ({ objects: [], nextCursor: limit === 7 ? undefined : "x" }) } });
      orbit.cache.set("k", new Uint8Array(0));
      orbit.cache.set("k", new Uint8Array(0), null);
      orbit.cache.set("k", new Uint8Array(0), 60_000);
      orbit.cache.set("k", new Uint8Array(0), 2n ** 64n - 1n);
      assert.deepEqual(ttls, [undefined, undefined, 60_000n, 2n ** 64n - 1n]);
      assert.throws(() => orbit.cache.set("k", new Uint8Array(0), -1), (e) => e.code === "invalid-input" && e.message === "ttlMs is out of range (0 to 18446744073709551615)");
      assert.equal(orbit.storage.list("", null, 7).nextCursor, null);
      assert.throws(() => orbit.storage.list("", null, 2 ** 32), (e) => e.code === "invalid-input" && e.message === "limit is out of range (0 to 4294967295)");
    });
  });

  describe("bytes and text", () => {
    test("bytes parameters take Uint8Array, ArrayBuffer, typed arrays and DataView; a string is a TypeError with a hint", () => {
      const stored = [];
      host({ storage: { put: (k, v, ct) => stored.push([Array.from(v), ct]) } });
      orbit.storage.put("a", new Uint8Array([1, 2]));
      orbit.storage.put("a", new Uint8Array([9, 1, 2, 9]).subarray(1, 3).buffer.slice(1, 3));
      orbit.storage.put("a", new DataView(new Uint8Array([7, 1, 2, 7]).buffer, 1, 2), "x/y");
      orbit.storage.putText("a", "é");
      assert.deepEqual(stored, [
        [[1, 2], "application/octet-stream"],
        [[1, 2], "application/octet-stream"],
        [[1, 2], "x/y"],
        [[0xc3, 0xa9], "text/plain; charset=utf-8"],
      ]);
      assert.throws(() => orbit.storage.put("a", "text"), (e) => e instanceof TypeError && /use storage\.putText\(\) for a string/.test(e.message));
      assert.throws(() => orbit.storage.put(1, new Uint8Array(0)), TypeError);
    });

    test("text getters decode UTF-8 strictly, keep a BOM, and refuse invalid UTF-8 with invalid-input", () => {
      host({ storage: { get: (k) => (k === "bad" ? new Uint8Array([0xff]) : new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0xc3, 0xa9])) }, cache: { get: () => undefined } });
      assert.equal(orbit.storage.getText("ok"), "\ufeffhé");
      assert.throws(() => orbit.storage.getText("bad"), (e) => e.code === "invalid-input" && e.message === "the object is not valid utf-8");
      assert.equal(orbit.cache.getText("absent"), null);
      assert.equal(orbit.cache.get("absent"), null);
    });

    test("storage.listAll follows cursors and stops on one that does not advance", () => {
      const pages = { "": ["a", "b"], b: ["c"] };
      const meta = (key) => ({ key, size: 3n, contentType: "t", modifiedMs: 1700000000000n });
      host({ storage: { list: (p, cursor) => ({ objects: (pages[cursor ?? ""] ?? []).map(meta), nextCursor: cursor === undefined ? "b" : cursor === "b" ? "b" : undefined }) } });
      const all = orbit.storage.listAll();
      assert.deepEqual(all.map((m) => m.key), ["a", "b", "c"]);
      assert.deepEqual(all[0], { key: "a", size: 3, contentType: "t", modifiedMs: 1700000000000 });
    });
  });

  describe("log", () => {
    test("every level, warning as warn, unknown levels refused", () => {
      host({});
      for (const level of orbit.log.LEVELS) orbit.log[level](`a ${level}`);
      orbit.log.warning("w");
      orbit.log.log("info", 42);
      assert.deepEqual(logs, [["trace", "a trace"], ["debug", "a debug"], ["info", "a info"], ["warn", "a warn"], ["error", "a error"], ["warn", "w"], ["info", "42"]]);
      assert.throws(() => orbit.log.log("loud", "x"), RangeError);
    });
  });

  describe("db", () => {
    test("parameters map to WIT values", () => {
      let params;
      host({ db: { execute: (sql, p) => ((params = p), 1n) } });
      assert.equal(
        orbit.db.execute("x", [null, undefined, true, false, 3, -0.5, 2 ** 60, 2n ** 62n, "s", new Uint8Array([1]), new Uint8Array([1, 2]).buffer, { tag: "real", val: 2 }, { tag: "integer", val: 5 }]),
        1,
      );
      assert.deepEqual(params, [
        { tag: "null" },
        { tag: "null" },
        { tag: "integer", val: 1n },
        { tag: "integer", val: 0n },
        { tag: "integer", val: 3n },
        { tag: "real", val: -0.5 },
        { tag: "real", val: 2 ** 60 },
        { tag: "integer", val: 2n ** 62n },
        { tag: "text", val: "s" },
        { tag: "blob", val: new Uint8Array([1]) },
        { tag: "blob", val: new Uint8Array([1, 2]) },
        { tag: "real", val: 2 },
        { tag: "integer", val: 5n },
      ]);
      assert.throws(() => orbit.db.execute("x", [{}]), TypeError);
      assert.throws(() => orbit.db.execute("x", "not an array"), TypeError);
      assert.throws(() => orbit.db.execute("x", [2n ** 63n]), (e) => e.code === "invalid-input");
    });

    test("query returns numbers, throws beyond 2^53; queryBig returns bigints; Rows and Row", () => {
      const wire = {
        columns: ["id", "Name", "blob", "r"],
        rows: [
          [{ tag: "integer", val: 1n }, { tag: "text", val: "a" }, { tag: "blob", val: new Uint8Array([1]) }, { tag: "real", val: 1.5 }],
          [{ tag: "integer", val: 2n }, { tag: "null" }, { tag: "blob", val: new Uint8Array(0) }, { tag: "real", val: 2 }],
        ],
      };
      host({ db: { query: () => wire } });
      const rows = orbit.db.query("SELECT");
      assert.equal(rows.length, 2);
      assert.deepEqual(rows.columns, ["id", "Name", "blob", "r"]);
      assert.deepEqual(rows.arrays()[0], [1, "a", new Uint8Array([1]), 1.5]);
      assert.equal(rows.scalar(), 1);
      const row = rows.row(0);
      assert.equal(row.get("name"), "a", "ASCII case-insensitive");
      assert.equal(row.get(0), 1);
      assert.equal(row.get("nope", "fallback"), "fallback");
      assert.throws(() => row.get("nope"), RangeError);
      assert.equal(rows.columnIndex("BLOB"), 2);
      assert.equal(rows.columnIndex("nope"), -1);
      assert.deepEqual([...rows].map((r) => r.toObject().id), [1, 2]);
      assert.deepEqual(JSON.parse(JSON.stringify(row)), [1, "a", { 0: 1 }, 1.5]);
      assert.equal(rows.at(-1).get("id"), 2);
      assert.throws(() => rows.row(2), RangeError);
      assert.deepEqual(rows.objects()[1], { id: 2, Name: null, blob: new Uint8Array(0), r: 2 });

      const big = orbit.db.queryBig("SELECT");
      assert.equal(big.scalar(), 1n);
      assert.equal(big.row(0).get("r"), 1.5);

      wire.rows[1][0] = { tag: "integer", val: -(2n ** 63n) };
      assert.throws(() => orbit.db.query("SELECT"), (e) => e instanceof RangeError && /row 1, column "id"/.test(e.message) && /db\.queryBig/.test(e.message));
      assert.equal(orbit.db.queryBig("SELECT").row(1).get("id"), -(2n ** 63n));
    });

    test("batch takes strings, [sql, params] pairs and { sql, params }", () => {
      let wire;
      host({ db: { batch: (statements) => ((wire = statements), new BigUint64Array([1n, 0n, 2n])) } });
      assert.deepEqual(orbit.db.batch(["A", ["B", [1]], { sql: "C" }]), [1, 0, 2]);
      assert.deepEqual(wire, [
        { sql: "A", params: [] },
        { sql: "B", params: [{ tag: "integer", val: 1n }] },
        { sql: "C", params: [] },
      ]);
      assert.throws(() => orbit.db.batch("A"), TypeError);
    });
  });

  describe("fetch", () => {
    test("request builds the WIT request: headers, a JSON body, timeout, secrets", () => {
      let req;
      host({ fetch: { fetch: (r) => ((req = r), { status: 201, headers: [{ name: "X-A", value: "1" }, { name: "x-a", value: "2" }], body: new TextEncoder().encode('{"ok":true}') }) } });
      const resp = orbit.fetch.post("https://h/p", undefined, { json: { a: "é" }, headers: { "x-b": "2" }, timeoutMs: 1500, secrets: ["T"] });
      assert.deepEqual(req, {
        method: "POST",
        url: "https://h/p",
        headers: [{ name: "x-b", value: "2" }, { name: "content-type", value: "application/json" }],
        body: new TextEncoder().encode('{"a":"é"}'),
        timeoutMs: 1500,
        secrets: ["T"],
      });
      assert.equal(resp.status, 201);
      assert.ok(resp.ok);
      assert.equal(resp.header("x-A"), "1");
      assert.deepEqual(resp.headerAll("X-a"), ["1", "2"]);
      assert.deepEqual(resp.json(), { ok: true });
      orbit.fetch.request("PUT", "https://h/", { headers: [["x", "1"], ["x", "2"]], body: "text" });
      assert.deepEqual(req.headers, [{ name: "x", value: "1" }, { name: "x", value: "2" }]);
      assert.deepEqual(req.body, new TextEncoder().encode("text"));
      assert.throws(() => orbit.fetch.post("https://h/", "x", { json: 1 }), TypeError);
      assert.throws(() => orbit.fetch.get("https://h/", { secrets: "T" }), TypeError);
      assert.throws(() => orbit.fetch.get("https://h/", { timeoutMs: 2 ** 32 }), (e) => e.code === "invalid-input");
    });

    test("a body that is not JSON or not UTF-8 gives invalid-input", () => {
      host({ fetch: { fetch: () => ({ status: 200, headers: [], body: new Uint8Array([0x7b]) }) } });
      assert.throws(() => orbit.fetch.get("https://h/").json(), (e) => e.code === "invalid-input" && e.message === "the response body is not JSON");
    });
  });

  describe("ai, jobs, tools", () => {
    test("ai.chat builds the request from a string or messages, and maps the response", () => {
      let req;
      host({ ai: { chat: (r) => ((req = r), { text: "hi", finishReason: "content-filter", usage: { inputTokens: 3, outputTokens: 1 } }), embed: () => [new Float32Array([0.5, 1])] } });
      const reply = orbit.ai.chat("p", "m", "hello", { maxTokens: 5, temperature: 0.5 });
      assert.deepEqual(req, { provider: "p", model: "m", messages: [{ role: "user", content: "hello" }], options: { maxTokens: 5, temperature: 0.5, json: false } });
      assert.deepEqual(reply, { text: "hi", finishReason: "content-filter", usage: { inputTokens: 3, outputTokens: 1 } });
      orbit.ai.chat("p", "m", [["system", "s"], { role: "assistant", content: "a" }], { json: true });
      assert.deepEqual(req.messages, [{ role: "system", content: "s" }, { role: "assistant", content: "a" }]);
      assert.deepEqual(req.options, { maxTokens: undefined, temperature: undefined, json: true });
      assert.throws(() => orbit.ai.chat("p", "m", [["robot", "x"]]), RangeError);
      assert.throws(() => orbit.ai.chat("p", "m", "x", { temperature: "hot" }), TypeError);
      assert.deepEqual(orbit.ai.embed("p", "m", ["a"]), [[0.5, 1]]);
      assert.throws(() => orbit.ai.embed("p", "m", "a"), TypeError);
    });

    test("jobs.status maps every state; jobs.wait polls until the job finishes", async () => {
      const states = [{ tag: "queued" }, { tag: "running", val: "r1" }, { tag: "succeeded", val: { runId: "r1", output: "done" } }];
      host({ jobs: { status: () => states.shift() } });
      assert.deepEqual(orbit.jobs.status("j"), { state: "queued", finished: false });
      assert.deepEqual(orbit.jobs.status("j"), { state: "running", finished: false, runId: "r1" });
      assert.deepEqual(orbit.jobs.status("j"), { state: "succeeded", finished: true, runId: "r1", output: "done" });
      host({ jobs: { status: () => ({ tag: "failed", val: { error: { code: "limit-exceeded", message: "limit exceeded" } } }) } });
      const failed = orbit.jobs.status("j");
      assert.equal(failed.runId, null);
      assert.ok(failed.error instanceof orbit.OrbitError && failed.error.code === "limit-exceeded");

      const sequence = [{ tag: "queued" }, { tag: "running", val: "r" }, { tag: "succeeded", val: { runId: "r", output: "out" } }];
      let polls = 0;
      host({ jobs: { status: () => (polls++, sequence.shift()) } });
      assert.equal(await orbit.jobs.wait("j", 1), "out");
      assert.equal(polls, 3);
      host({ jobs: { status: () => ({ tag: "failed", val: { runId: "r", error: { code: "invalid-input", message: "bad" } } }) } });
      await assert.rejects(orbit.jobs.wait("j", 1), (e) => e.code === "invalid-input" && e.message === "bad");
    });

    test("tools.call serializes the arguments and parses the content; bad arguments are invalid-input", () => {
      let args;
      host({
        tools: {
          call: (s, t, a) => ((args = a), { content: '[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]', isError: false }),
          list: () => [{ server: "s", name: "n", description: "", inputSchema: "not json" }],
        },
      });
      const r = orbit.tools.call("s", "t", { a: [1, "é"] });
      assert.equal(args, '{"a":[1,"é"]}');
      assert.equal(r.text(), "a\nb");
      assert.equal(r.isError, false);
      orbit.tools.call("s", "t");
      assert.equal(args, "{}");
      assert.throws(() => orbit.tools.call("s", "t", [1]), (e) => e.code === "invalid-input" && e.message === "tool arguments must be a JSON object");
      assert.throws(() => orbit.tools.call("s", "t", { n: 1n }), (e) => e.code === "invalid-input" && e.message.startsWith("tool arguments are not JSON: "));
      assert.deepEqual(orbit.tools.list(), [{ server: "s", name: "n", description: "", inputSchema: null }]);
      host({ tools: { call: () => ({ content: "not json", isError: true }) } });
      assert.throws(() => orbit.tools.callJson("s", "t", "{}"), (e) => e.code === "internal" && e.message === "the tool result is not JSON");
    });
  });

  describe("__orbitAgent", () => {
    test("needs a function", () => {
      assert.throws(() => orbit.__orbitAgent(undefined), (e) => e instanceof TypeError && e.message === "the agent module must export a function run(input: string): string");
      assert.throws(() => orbit.__orbitAgent("run"), TypeError);
    });

    test("returns the agent's string; an OrbitError becomes the plain WIT record", () => {
      host({});
      assert.equal(orbit.__orbitAgent((s) => s + "!")("hi"), "hi!");
      const run = orbit.__orbitAgent(() => {
        throw new orbit.OrbitError("invalid-input", "empty input");
      });
      assert.throws(() => run(""), (e) => !(e instanceof Error) && JSON.stringify(e) === '{"code":"invalid-input","message":"empty input"}');
      const raw = orbit.__orbitAgent(() => {
        throw { code: "not-found", message: "raw" };
      });
      assert.throws(() => raw(""), (e) => e.code === "not-found" && e.message === "raw");
      assert.deepEqual(logs, []);
    });

    test("any other exception is internal, with its stack logged without directories", () => {
      host({});
      function deeply() {
        return null.x;
      }
      const run = orbit.__orbitAgent(() => deeply());
      assert.throws(() => run(""), (e) => e.code === "internal" && e.message === "the agent raised TypeError");
      assert.equal(logs.length, 1);
      const [level, text] = logs[0];
      assert.equal(level, "error");
      assert.match(text, /^unhandled TypeError: /);
      // Node's stack format is not SpiderMonkey's: the e2e test checks the
      // frames; here the message is there and no frame of the wrapper.
      assert.ok(!text.includes("__orbitRun"), text);
    });

    test("running out of memory is thrown on as it is (the component traps: memory-limit)", () => {
      host({});
      const run = orbit.__orbitAgent(() => {
        throw "out of memory";
      });
      assert.throws(() => run(""), (e) => e === "out of memory");
      assert.deepEqual(logs, [["error", "out of memory"]]);
    });

    test("a result that is not a string is internal", () => {
      host({});
      assert.throws(() => orbit.__orbitAgent(() => 42)(""), (e) => e.code === "internal" && e.message === "the agent returned number, not string");
      assert.throws(() => orbit.__orbitAgent(() => null)(""), (e) => e.message === "the agent returned null, not string");
      assert.throws(() => orbit.__orbitAgent(() => undefined)(""), (e) => e.message === "the agent returned undefined, not string");
    });

    test("an async agent gives a promise that settles the same way", async () => {
      host({});
      assert.equal(await orbit.__orbitAgent(async (s) => s.toUpperCase())("a"), "A");
      await assert.rejects(orbit.__orbitAgent(async () => { throw new orbit.OrbitError("unavailable", "later"); })(""), (e) => e.code === "unavailable" && e.message === "later");
      await assert.rejects(orbit.__orbitAgent(async () => 1)(""), (e) => e.code === "internal" && e.message === "the agent returned number, not string");
      await assert.rejects(orbit.__orbitAgent(async () => { throw new RangeError("r"); })(""), (e) => e.message === "the agent raised RangeError");
      assert.match(logs[0][1], /^unhandled RangeError: r/);
    });
  });
});

// ---------------------------------------------------------------------------
// The examples' helpers.

/** unicode-segmentation's source in the Cargo registry, if there. */
function crateDir() {
  const registry = path.join(process.env.CARGO_HOME ?? path.join(homedir(), ".cargo"), "registry/src");
  if (!existsSync(registry)) return null;
  for (const index of readdirSync(registry)) {
    const dir = path.join(registry, index, "unicode-segmentation-1.13.3");
    if (existsSync(path.join(dir, "tests/testdata/mod.rs"))) return dir;
  }
  return null;
}

/** `[input, expected pieces]` pairs of Rust source text `("...", &["...", ...])`. */
function rustPairs(body) {
  const unescape = (s) => s.replace(/\\u\{([0-9a-f]+)\}/g, (_, h) => String.fromCodePoint(parseInt(h, 16))).replace(/\\(["\\'])/g, "$1");
  const cases = [];
  const re = /\(\s*"((?:[^"\\]|\\.)*)",\s*&\[((?:\s*"(?:[^"\\]|\\.)*",?)*)\s*\]\s*,?\s*\)/g;
  for (const m of body.matchAll(re)) {
    const pieces = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((p) => unescape(p[1]));
    cases.push([unescape(m[1]), pieces]);
  }
  return cases;
}

/**
 * The crate's word tests: TEST_WORD (Unicode's WordBreakTest.txt) and the
 * EXTRA_TESTS of its test_words.
 */
function crateWordTests(dir) {
  const data = readFileSync(path.join(dir, "tests/testdata/mod.rs"), "utf8");
  const start = data.indexOf("pub const TEST_WORD");
  const official = rustPairs(data.slice(data.indexOf("= &[", start) + 4, data.indexOf("\n    ];", start)));
  const test = readFileSync(path.join(dir, "tests/test.rs"), "utf8");
  const extraStart = test.indexOf("const EXTRA_TESTS", test.indexOf("fn test_words"));
  const extra = rustPairs(test.slice(test.indexOf("= &[", extraStart) + 4, test.indexOf("\n    ];", extraStart)));
  return { official, extra };
}

describe("wordfreq helpers", { skip }, () => {
  let uax29;
  let casing;
  let agent;
  before(async () => {
    host({ cache: {}, log: { log: () => {} } });
    uax29 = await load(path.join(SDK, "examples/wordfreq/uax29.ts"));
    casing = await load(path.join(SDK, "examples/wordfreq/casing.ts"));
    agent = await load(path.join(SDK, "examples/wordfreq/agent.ts"));
  });

  const crate = crateDir();
  test("split_word_bounds passes unicode-segmentation's word tests", { skip: crate ? false : "unicode-segmentation 1.13.3 is not in the Cargo registry" }, () => {
    const { official, extra } = crateWordTests(crate);
    assert.equal(official.length, 1944, "the crate's TEST_WORD cases");
    assert.equal(extra.length, 7, "the crate's EXTRA_TESTS");
    const cases = [...official, ...extra];
    let failed = 0;
    for (const [input, pieces] of cases) {
      const got = uax29.splitWordBounds(input);
      if (JSON.stringify(got) !== JSON.stringify(pieces)) {
        failed++;
        if (failed < 5) console.log("mismatch", JSON.stringify(input), got, pieces);
      }
      // The ASCII fast path gives the words the state machine gives.
      if (/^[\x00-\x7f]*$/.test(input)) {
        const slow = got.filter((p) => /[A-Za-z0-9]/.test(p));
        assert.deepEqual(uax29.asciiWords(input), slow, JSON.stringify(input));
      }
    }
    assert.equal(failed, 0, `${failed} of ${cases.length} cases differ`);
  });

  test("the ASCII fast path agrees with the state machine on punctuation between letters and digits", () => {
    const alphabet = ["a", "B", "1", "9", "_", ".", ",", ";", ":", "'", " ", "-", "\n", "\r"];
    for (let i = 0; i < 20000; i++) {
      let s = "";
      const n = 1 + Math.floor(Math.random() * 10);
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
      const slow = uax29.splitWordBounds(s).filter((p) => /[A-Za-z0-9]/.test(p));
      assert.deepEqual(uax29.asciiWords(s), slow, JSON.stringify(s));
    }
  });

  test("lowercasing writes the final sigma as Rust does", () => {
    assert.equal(casing.toLowercase("ΟΔΟΣ"), "οδος");
    assert.equal(casing.toLowercase("ΣΑΣ"), "σας");
    assert.equal(casing.toLowercase("Σ"), "σ");
    assert.equal(casing.toLowercase("ΑΣ'Β"), "ασ'β", "a case-ignorable then a cased letter after it");
    assert.equal(casing.toLowercase("ΑΣ'"), "ας'");
    assert.equal(casing.toLowercase("Ἀ\u0345Σ"), "ἀ\u0345ς", "a case-ignorable mark before it");
    assert.equal(casing.toLowercase("İ"), "i\u0307");
    assert.equal(casing.toLowercase("THE END"), "the end");
  });

  test("analyse and toJson give the Rust example's unit-test results", () => {
    // examples/wordfreq/src/lib.rs, tests counts_and_orders and json_field_order.
    const f = agent.analyse("The cat and the hat. THE END, cat's hat!");
    assert.equal(f.totalWords, 9n);
    assert.equal(f.distinctWords, 6n);
    assert.deepEqual(f.top.map(([w, c]) => [w, Number(c)]), [["the", 3], ["hat", 2], ["and", 1], ["cat", 1], ["cat's", 1], ["end", 1]]);
    assert.equal(agent.toJson(agent.analyse("b a b")), '{"total_words":3,"distinct_words":2,"top":[["b",2],["a",1]],"cached":false}');
  });

  test("ties sort by code point, and only the top 20 are kept", () => {
    const words = Array.from({ length: 30 }, (_, i) => `w${String(i).padStart(2, "0")}`);
    const f = agent.analyse(words.join(" ") + " w29");
    assert.equal(f.top.length, 20);
    assert.deepEqual(f.top.slice(0, 3).map(([w, c]) => [w, Number(c)]), [["w29", 2], ["w00", 1], ["w01", 1]]);
    // U+FF41 (fullwidth a) comes before U+10000 (Linear B) by code point,
    // after it by UTF-16 code unit.
    const g = agent.analyse("\u{10000} \uff41");
    assert.deepEqual(g.top.map(([w]) => w), ["\uff41", "\u{10000}"]);
  });

  test("cache entries are read as strictly as serde reads them", () => {
    const enc = (s) => new TextEncoder().encode(s);
    const good = '{"total_words":3,"distinct_words":2,"top":[["b",2],["a",1]],"cached":false}';
    assert.equal(agent.toJson(agent.parseCached(enc(good))), good);
    assert.ok(agent.parseCached(enc(' {"extra":[1,{"x":null}],"total_words":1,"distinct_words":1,"top":[],"cached":true} ')));
    assert.ok(agent.parseCached(enc('[1,1,[["a",1]],false]')), "a struct from a sequence");
    for (const bad of [
      '{"total_words":3,"total_words":3,"distinct_words":2,"top":[],"cached":false}',
      '{"total_words":3.0,"distinct_words":2,"top":[],"cached":false}',
      '{"total_words":-0,"distinct_words":2,"top":[],"cached":false}',
      '{"total_words":18446744073709551616,"distinct_words":2,"top":[],"cached":false}',
      '{"total_words":1,"distinct_words":2,"top":[["a",1,2]],"cached":false}',
      '{"total_words":1,"distinct_words":2,"top":[],"cached":0}',
      '{"total_words":1,"distinct_words":2,"top":[]}',
      '{"total_words":1,"distinct_words":2,"top":[],"cached":false} x',
      '{"total_words":1,"distinct_words":2,"top":[["\\ud800",1]],"cached":false}',
      "[1,1,[]]",
      "null",
    ]) {
      assert.equal(agent.parseCached(enc(bad)), null, bad);
    }
    assert.equal(agent.parseCached(new Uint8Array([0xff])), null);
    assert.equal(agent.toJson(agent.parseCached(enc('{"total_words":18446744073709551615,"distinct_words":0,"top":[["x",9007199254740993]],"cached":false}'))), '{"total_words":18446744073709551615,"distinct_words":0,"top":[["x",9007199254740993]],"cached":false}');
  });
});

describe("markdown helpers", { skip: skip || (existsSync(path.join(SDK, "examples/markdown/node_modules/markdown-it")) ? false : "npm ci in examples/markdown first") }, () => {
  let render;
  let agent;
  before(async () => {
    render = await load(path.join(SDK, "examples/markdown/render.ts"));
    agent = await load(path.join(SDK, "examples/markdown/agent.ts"));
  });

  test("the faster line scan gives markdown-it's own line marks", async () => {
    const StateBlock = (await import(path.join(SDK, "examples/markdown/node_modules/markdown-it/lib/rules_block/state_block.mjs"))).default;
    const MarkdownIt = (await import(path.join(SDK, "examples/markdown/node_modules/markdown-it/index.mjs"))).default;
    const md = new MarkdownIt();
    const alphabet = [" ", "\t", "\n", "a", "b", " ", "\n"];
    for (let i = 0; i < 20000; i++) {
      let s = "";
      const n = Math.floor(Math.random() * 12);
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
      const a = new StateBlock(s, md, {}, []);
      const b = new render.LineStateBlock(s, md, {}, []);
      for (const f of ["bMarks", "eMarks", "tShift", "sCount", "bsCount", "lineMax"]) assert.deepEqual(b[f], a[f], `${f} of ${JSON.stringify(s)}`);
    }
  });

  test("renders the Rust example's unit-test input with its extensions", () => {
    // examples/markdown/src/lib.rs, test renders_extensions.
    const html = render.render("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ text[^1]\n\n[^1]: note\n");
    assert.ok(html.includes("<table>"), html);
    assert.ok(html.includes("<del>gone</del>"), html);
    assert.ok(html.includes("footnote-definition"), html);
  });

  test("pulldown-cmark's escapes", () => {
    assert.equal(render.escapeHref("a b&c'é/?"), "a%20b&amp;c&#x27;%C3%A9/?");
    assert.equal(render.escapeHtml(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    assert.equal(render.escapeBody(`<"&>`), `&lt;"&amp;&gt;`);
    assert.equal(render.escapeBody("plain"), "plain");
  });

  test("the storage key is the first 16 hex digits of the SHA-256 of the input", async () => {
    // examples/markdown/src/lib.rs, test key_is_sha256_prefix.
    assert.equal(await agent.storageKey(""), "html/e3b0c44298fc1c14.html");
  });
});
