/**
 * Example Orbit agent: calls the MCP tools installed in its workspace (a
 * port of `examples/mcp-tools`).
 *
 * Expects two servers (see the Orbit README, "MCP tools"): `everything`
 * (`@modelcontextprotocol/server-everything`) and `time`
 * (`mcp-server-time`). It lists the tools it may call, echoes its input
 * through `everything/echo`, adds two numbers with `everything/get-sum`,
 * asks `time/get_current_time` for the time in UTC, and returns all of it
 * as one JSON object, written as the Rust example's serde_json writes it:
 * compact, object keys sorted (by code point), non-ASCII as is.
 *
 * @module
 */

import { log, OrbitError, tools } from "orbit";

/** `a` compared with `b` by code point, as Rust orders strings. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800..DFFF) move above E000..FFFF.
    x += x >= 0xd800 ? (x >= 0xe000 ? -0x800 : 0x2000) : 0;
    y += y >= 0xd800 ? (y >= 0xe000 ? -0x800 : 0x2000) : 0;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * `value` (parsed JSON) as serde_json writes a `Value` without the
 * `preserve_order` feature: compact, with every object's keys sorted.
 * (Numbers are written as JavaScript writes them; the tools called here
 * answer with none but the ones in their texts.)
 */
export function toSortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(toSortedJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort(compareCodePoints);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${toSortedJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Call the tools (echoing `input`, or a greeting when it is empty) and return what they said. */
export function run(input: string): string {
  const listed = tools.list();
  log.info(`${listed.length} tools available`);
  const names = listed.map((t) => `${t.server}/${t.name}`);

  const message = input ? input : "hello from orbit";
  const echo = tools.call("everything", "echo", { message });
  const sum = tools.call("everything", "get-sum", { a: 19, b: 23 });
  const time = tools.call("time", "get_current_time", { timezone: "UTC" });
  if (echo.isError || sum.isError || time.isError) {
    throw new OrbitError("internal", "a tool reported an error");
  }
  // mcp-server-time answers with JSON in a text block.
  let when: unknown;
  try {
    when = JSON.parse(time.text());
  } catch {
    when = time.text();
  }
  return toSortedJson({ tools: names, echo: echo.text(), sum: sum.text(), time: when });
}
