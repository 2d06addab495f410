/**
 * Log lines kept on the run record (the WIT `log` interface).
 *
 * Lines beyond the run's log-size limit are dropped and the record notes
 * the truncation. Logging never fails at run time:
 *
 * ```ts
 * import { log } from "orbit";
 *
 * log.info(`stored ${n} bytes`);
 * log.log("warn", "retrying");
 * ```
 *
 * `console.log` writes nowhere you can read; use this module.
 *
 * @module
 */

import * as wit from "orbit:runtime/log@0.1.0";

/** Severity of a log line (the WIT `level` enum). */
export type Level = "trace" | "debug" | "info" | "warn" | "error";

/** Every level, from the least to the most severe. */
export const LEVELS: readonly Level[] = Object.freeze(["trace", "debug", "info", "warn", "error"] as const);

const WIT_LEVELS: Readonly<Record<string, Level>> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
};

/**
 * Append `message` to the run's log at `level` (`"trace"`, `"debug"`,
 * `"info"`, `"warn"` or `"error"`; `"warning"` is taken for `"warn"`). A
 * `message` that is not a string is logged as `String(message)`.
 *
 * @throws RangeError `level` is not one of these.
 */
function log(level: Level, message: string): void {
  const wire = typeof level === "string" && Object.prototype.hasOwnProperty.call(WIT_LEVELS, level) ? WIT_LEVELS[level] : undefined;
  if (wire === undefined) {
    throw new RangeError(`unknown log level ${JSON.stringify(String(level))}: expected one of ${LEVELS.join(", ")}`);
  }
  wit.log(wire, typeof message === "string" ? message : String(message));
}
export { log };

/** Append a `trace` line. */
export function trace(message: string): void {
  log("trace", message);
}

/** Append a `debug` line. */
export function debug(message: string): void {
  log("debug", message);
}

/** Append an `info` line. */
export function info(message: string): void {
  log("info", message);
}

/** Append a `warn` line. */
export function warn(message: string): void {
  log("warn", message);
}

/** Append a `warn` line (an alias of {@link warn}). */
export function warning(message: string): void {
  log("warn", message);
}

/** Append an `error` line. */
export function error(message: string): void {
  log("error", message);
}
