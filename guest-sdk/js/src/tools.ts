/**
 * MCP tools of the MCP servers installed in the run's workspace
 * (`orbit tools add`), called through the host (the WIT `tools`
 * interface):
 *
 * ```ts
 * import { tools, log } from "orbit";
 *
 * for (const t of tools.list()) log.info(`${t.server}/${t.name}: ${t.description}`);
 * const result = tools.call("everything", "get-sum", { a: 1, b: 2 });
 * if (!result.isError) log.info(result.text());
 * ```
 *
 * Errors throw {@link OrbitError}: `not-found` (no such enabled server or
 * tool), `permission-denied` (the workspace's policy), `invalid-input`
 * (arguments not a JSON object, or refused by the server), `too-large`
 * (arguments or result over the host's caps), `limit-exceeded` (calls per
 * run), `unavailable` (the server could not be reached, died, or did not
 * answer in time). An argument of the wrong type throws `TypeError`.
 *
 * @module
 */

import * as wit from "orbit:runtime/tools@0.1.0";
import { call as callHost, text } from "./_host.ts";
import { OrbitError } from "./errors.ts";

/** A tool a run may call. */
export interface ToolInfo {
  /** The server's name in the workspace. */
  readonly server: string;
  /** The tool's name on that server. */
  readonly name: string;
  /** What it does; empty when the server says nothing. */
  readonly description: string;
  /** The JSON Schema of its arguments, parsed (`null` if it is not JSON). */
  readonly inputSchema: unknown;
}

/** The result of a tool call. */
export class ToolResult {
  /**
   * The MCP content array, parsed: blocks such as
   * `{ type: "text", text: "..." }` or `{ type: "image", ... }`.
   */
  readonly content: unknown;
  /** The tool reported an error (MCP `isError`); `content` says what. */
  readonly isError: boolean;

  /** A result with `content` (parsed JSON) and `isError`. */
  constructor(content: unknown, isError: boolean) {
    this.content = content;
    this.isError = isError;
  }

  /** The text of the result's `text` blocks, joined by newlines (`""` without any). */
  text(): string {
    if (!Array.isArray(this.content)) return "";
    const parts: string[] = [];
    for (const block of this.content as unknown[]) {
      if (block !== null && typeof block === "object" && !Array.isArray(block)) {
        const b = block as { type?: unknown; text?: unknown };
        if (b.type === "text" && typeof b.text === "string") parts.push(b.text);
      }
    }
    return parts.join("\n");
  }
}

function parse(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/**
 * The tools of the workspace's enabled servers that its policy allows. A
 * server that cannot be reached contributes no tools.
 *
 * @throws {@link OrbitError} see the module documentation.
 */
export function list(): ToolInfo[] {
  return Array.from(callHost(() => wit.list()), (t) => ({
    server: t.server,
    name: t.name,
    description: t.description,
    inputSchema: parse(t.inputSchema),
  }));
}

/**
 * Call `tool` of `server` with `args`, a JSON-serializable object
 * (`{}` when left out).
 *
 * @throws {@link OrbitError} `invalid-input` when `args` is not an object
 *   (`"tool arguments must be a JSON object"`) or does not serialize to
 *   JSON (`"tool arguments are not JSON: ..."`); otherwise see the module
 *   documentation.
 */
export function call(server: string, tool: string, args: Readonly<Record<string, unknown>> | null = null): ToolResult {
  const value: unknown = args ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new OrbitError("invalid-input", "tool arguments must be a JSON object");
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new OrbitError("invalid-input", `tool arguments are not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (json === undefined || !json.startsWith("{")) {
    // An object with a toJSON() that returns something else.
    throw new OrbitError("invalid-input", "tool arguments must be a JSON object");
  }
  return callJson(server, tool, json);
}

/**
 * Call `tool` of `server` with `argumentsJson`, the JSON text of an object,
 * passed on as is (the host checks it).
 *
 * @throws {@link OrbitError} see the module documentation; `internal`
 *   (`"the tool result is not JSON"`) when the host's content is not JSON.
 */
export function callJson(server: string, tool: string, argumentsJson: string): ToolResult {
  const s = text("server", server);
  const t = text("tool", tool);
  const a = text("argumentsJson", argumentsJson);
  const r = callHost(() => wit.call(s, t, a));
  let content: unknown;
  try {
    content = JSON.parse(r.content);
  } catch {
    throw new OrbitError("internal", "the tool result is not JSON");
  }
  return new ToolResult(content, r.isError);
}
