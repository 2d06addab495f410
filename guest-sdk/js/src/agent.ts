/**
 * `__orbitAgent`: wraps the agent's `run` function as the component's
 * export.
 *
 * Orbit's build writes an entry module that imports the agent and exports
 * the wrapped function as the `run` of the WIT world `agent`:
 *
 * ```ts
 * import * as agent from "/abs/path/agent.ts";
 * import { __orbitAgent } from "orbit";
 * export const run = __orbitAgent((agent as { run?: unknown }).run);
 * ```
 *
 * Agents do not call it themselves: they export `function run(input:
 * string): string` (or `async function run(input: string):
 * Promise<string>`).
 *
 * @module
 */

import { OrbitError, isErrorCode, normalizeCode, type ErrorCode } from "./errors.ts";
import { typeName, witPayload } from "./_host.ts";
import * as wit from "orbit:runtime/log@0.1.0";

/** The shape of an agent: input text in, output text out (or a promise of it). */
export type RunFunction = (input: string) => string | Promise<string>;

/** The WIT `error` record the component's `run` returns as its `err`. */
export interface WitError {
  /** The WIT error code. */
  code: ErrorCode;
  /** The message the run fails with. */
  message: string;
}

/** The message of the error thrown when the agent module has no `run` function. */
export const NO_RUN_FUNCTION = "the agent module must export a function run(input: string): string";

/** The name of the wrapper {@link __orbitAgent} returns; stack frames below it are not the agent's. */
const WRAPPER = "__orbitRun";

/**
 * Stack frames of `e` (SpiderMonkey's `function@file:line:column` lines) as
 * `  at function (file:line:column)`, with file names only (no
 * directories), down to the agent's first frame (the SDK's wrapper and the
 * component's own frames left out). The bundler's renaming suffixes
 * (`run$1`) are dropped from function names; SpiderMonkey marks an
 * anonymous function inside `f` as `f/<` and a frame resumed by `await` as
 * `async*f`, shown as `async f`.
 */
function frames(stack: unknown): string[] {
  if (typeof stack !== "string") return [];
  const out: string[] = [];
  for (const line of stack.split("\n")) {
    if (!line.trim()) continue;
    const at = line.lastIndexOf("@");
    let fn = at >= 0 ? line.slice(0, at) : "";
    const resumed = fn.startsWith("async*");
    if (resumed) fn = fn.slice("async*".length);
    if (fn === WRAPPER || fn.startsWith(`${WRAPPER}/`)) break;
    fn = fn.replace(/\$\d+(?=\/|$)/g, "") || "<anonymous>";
    const location = at >= 0 ? line.slice(at + 1) : line;
    const file = location.slice(location.lastIndexOf("/") + 1);
    out.push(`  at ${resumed ? "async " : ""}${fn} (${file})`);
  }
  return out;
}

/**
 * Whether `e` is an `Error`, of this realm or another (componentize-js's
 * bindings run in a realm of their own, so that `instanceof Error` misses
 * the errors they throw).
 */
function isError(e: unknown): e is Error {
  return e instanceof Error || Object.prototype.toString.call(e) === "[object Error]";
}

/**
 * Log `e` at `error` level on the run's log: its type and message, then
 * its stack with file names only (no directories). Line numbers refer to
 * the bundled module (`entry.js`) the component runs.
 */
function logUnhandled(e: unknown): void {
  try {
    let head: string;
    let stack: string[] = [];
    if (isError(e)) {
      head = `unhandled ${typeName(e)}: ${e.message}`;
      stack = frames(e.stack);
    } else {
      let shown: string;
      try {
        shown = typeof e === "string" ? JSON.stringify(e) : String(e);
      } catch {
        shown = Object.prototype.toString.call(e);
      }
      head = `unhandled ${typeName(e)} thrown: ${shown}`;
    }
    const lines = stack.length ? [head, "Stack (most recent call first):", ...stack] : [head];
    wit.log("error", lines.join("\n"));
  } catch {
    // Logging is best effort: the run fails with `internal` regardless.
  }
}

/**
 * What the component's `run` throws for `e`, thrown by the agent: the WIT
 * error record.
 *
 * - an {@link OrbitError}: its code and message;
 * - a WIT error (a value with a valid `code` and a string `message`, or an
 *   error of a raw `orbit:runtime` import carrying one in `payload`): as it
 *   is;
 * - anything else: `internal` with the message `the agent raised <Type>`
 *   (no message, no stack, no path), after logging it with its stack at
 *   `error` level.
 */
export function witErrorFor(e: unknown): WitError {
  if (e instanceof OrbitError) {
    // Possibly another copy's OrbitError: its fields are checked.
    const code = normalizeCode(e.code) ?? "internal";
    return { code, message: typeof e.message === "string" ? e.message : String(e.message) };
  }
  const payload = witPayload(e);
  if (payload !== undefined) {
    if (isErrorCode(payload.code) && typeof payload.message === "string") {
      return { code: payload.code, message: payload.message };
    }
    return { code: "internal", message: "the agent raised an unexpected result error" };
  }
  if (e !== null && typeof e === "object" && !isError(e)) {
    const w = e as { code?: unknown; message?: unknown };
    if (isErrorCode(w.code) && typeof w.message === "string") return { code: w.code, message: w.message };
  }
  logUnhandled(e);
  return { code: "internal", message: `the agent raised ${typeName(e)}` };
}

/**
 * Whether `e` is SpiderMonkey's out-of-memory report: the string
 * `"out of memory"`, thrown when an allocation fails (at the run's memory
 * limit, the host refused to grow the memory).
 */
function isOutOfMemory(e: unknown): boolean {
  return e === "out of memory";
}

/**
 * What the component's `run` throws for `e`: the WIT error record, or, for
 * an out-of-memory error, `e` itself, which the component's export cannot
 * return as a WIT error: the component traps, and the run ends as
 * `memory-limit` (as a Rust guest's failed allocation ends it), not as an
 * error the agent chose.
 */
function thrownFor(e: unknown): unknown {
  if (!isOutOfMemory(e)) return witErrorFor(e);
  try {
    wit.log("error", "out of memory");
  } catch {
    // Best effort: there may be no memory left for the line.
  }
  return e;
}

function checkOutput(output: unknown): string {
  if (typeof output !== "string") {
    const error: WitError = { code: "internal", message: `the agent returned ${typeName(output)}, not string` };
    throw error;
  }
  return output;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * The component's `run` export for the agent function `fn`.
 *
 * The returned function calls `fn(input)` and returns its string. When `fn`
 * throws an {@link OrbitError}, it throws the plain WIT error record
 * `{ code, message }` (the run fails with that code and message); any other
 * exception makes the run fail with `internal` and the message `the agent
 * raised <Type>` (its stack goes to the run's log at `error` level),
 * except running out of memory, which traps (the run ends as
 * `memory-limit`); a result that is not a string fails it with `internal`,
 * `the agent returned <type>, not string`. When `fn` returns a promise (an
 * `async` agent), it returns a promise that settles the same way, which
 * the component awaits.
 *
 * @param fn the agent module's `run` export.
 * @throws TypeError at module initialization (so at build time) when `fn`
 *   is not a function: `"the agent module must export a function run(input:
 *   string): string"`.
 */
export function __orbitAgent(fn: unknown): (input: string) => string | Promise<string> {
  if (typeof fn !== "function") throw new TypeError(NO_RUN_FUNCTION);
  const agent = fn as (input: string) => unknown;
  const wrapper = {
    [WRAPPER](input: string): string | Promise<string> {
      let output: unknown;
      try {
        output = agent(input);
      } catch (e) {
        throw thrownFor(e);
      }
      if (isThenable(output)) {
        // An async agent: the component's export awaits the promise.
        return Promise.resolve(output).then(checkOutput, (e: unknown) => {
          throw thrownFor(e);
        });
      }
      return checkOutput(output);
    },
  };
  return wrapper[WRAPPER];
}
