/**
 * JavaScript and TypeScript SDK for Orbit guests.
 *
 * Orbit runs WebAssembly components; this module wraps the
 * `orbit:runtime@0.1.0` WIT package (`wit/` at the root of the Orbit
 * repository) in a typed API, over the imports that componentize-js
 * binds when it builds the component:
 *
 * - {@link storage}: blob storage private to the run's workspace;
 * - {@link cache}: a key-value cache with time-to-live and counters;
 * - {@link log}: log lines kept on the run record;
 * - {@link db}: SQL tables (SQLite) private to the run's workspace;
 * - {@link fetch}: outbound HTTP through the host, with secrets injected by
 *   name (the guest never holds their values);
 * - {@link ai}: model calls through the workspace's providers;
 * - {@link jobs}: stored jobs, run as child runs or queued;
 * - {@link tools}: MCP tools of the workspace's MCP servers;
 * - {@link OrbitError}: the error every primitive throws, which an agent
 *   throws too to fail its run with a given code.
 *
 * An agent is a module that exports `run`:
 *
 * ```ts
 * import { cache, log, OrbitError } from "orbit";
 *
 * export function run(input: string): string {
 *   const n = cache.increment("calls", 1);
 *   log.info(`call ${n}`);
 *   if (!input) throw new OrbitError("invalid-input", "empty input");
 *   return input.toUpperCase();
 * }
 * ```
 *
 * `orbit run agent.ts --input hello` builds and runs it (see
 * `guest-sdk/js/README.md`).
 *
 * @module
 */

export * as ai from "./ai.ts";
export * as cache from "./cache.ts";
export * as db from "./db.ts";
export * as fetch from "./fetch.ts";
export * as jobs from "./jobs.ts";
export * as log from "./log.ts";
export * as storage from "./storage.ts";
export * as tools from "./tools.ts";
export { ERROR_CODES, OrbitError, type ErrorCode } from "./errors.ts";
export type { Bytes, Int } from "./_host.ts";
export { __orbitAgent, type RunFunction, type WitError } from "./agent.ts";

/** The SDK's version. */
export const VERSION = "0.1.0";
