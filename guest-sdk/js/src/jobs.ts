/**
 * Stored jobs: components registered by name in the run's workspace
 * (`orbit jobs add NAME component.wasm`), run as child runs (the WIT `jobs`
 * interface):
 *
 * ```ts
 * import { jobs } from "orbit";
 *
 * // At once, as a child run on this run's remaining fuel and time.
 * const summary = jobs.invoke("summarize", "some text");
 *
 * // In the background; the queue survives a restart of the host.
 * const id = jobs.enqueue("resize", "image-42");
 * const st = jobs.status(id);
 * if (st.state === "succeeded") log.info(st.output);
 * const output = await jobs.wait(id);   // in an async run: polls until it finishes
 * ```
 *
 * Errors throw {@link OrbitError}; an argument of the wrong type throws
 * `TypeError`.
 *
 * @module
 */

import * as wit from "orbit:runtime/jobs@0.1.0";
import { call, errorFromWit, text, typeName } from "./_host.ts";
import type { OrbitError } from "./errors.ts";

/** The id of a queued job: a UUID (version 7) in hyphenated form. */
export type JobId = string;

/** Waiting for a worker. */
export interface Queued {
  /** The case: `"queued"`. */
  readonly state: "queued";
  /** Not finished. */
  readonly finished: false;
}

/** Running now. */
export interface Running {
  /** The case: `"running"`. */
  readonly state: "running";
  /** Not finished. */
  readonly finished: false;
  /** The id of the current attempt's run. */
  readonly runId: string;
}

/** Finished successfully. */
export interface Succeeded {
  /** The case: `"succeeded"`. */
  readonly state: "succeeded";
  /** Finished. */
  readonly finished: true;
  /** The id of the run that produced the output (`orbit runs show`). */
  readonly runId: string;
  /** What the job's component returned. */
  readonly output: string;
}

/** Finished without success. */
export interface Failed {
  /** The case: `"failed"`. */
  readonly state: "failed";
  /** Finished. */
  readonly finished: true;
  /** The id of its last run; `null` when the job could not be started. */
  readonly runId: string | null;
  /**
   * Why: the job's own error, `limit-exceeded` when it ran out of fuel,
   * time or memory, `internal` when it trapped.
   */
  readonly error: OrbitError;
}

/**
 * Where a queued job is: tell the cases apart by `state` (`"queued"`,
 * `"running"`, `"succeeded"`, `"failed"`); `finished` is `true` for the
 * last two.
 */
export type JobStatus = Queued | Running | Succeeded | Failed;

/**
 * Run the job `name` now, as a child of this run, with `input`, and return
 * its output. The child gets at most this run's remaining fuel and time
 * (and never more than the job's own defaults); the fuel it uses is taken
 * from this run's.
 *
 * @throws {@link OrbitError} `not-found` for an unknown job;
 *   `limit-exceeded` past the nesting depth limit, with no fuel or time
 *   left, or when the child ran out of fuel, time or memory; `too-large` for
 *   an input over the cap or an output over the child's limit; the child's
 *   own error code when it returned one; `internal` when it trapped.
 */
export function invoke(name: string, input: string): string {
  const n = text("name", name);
  const i = text("input", input);
  return call(() => wit.invoke(n, i));
}

/**
 * Queue the job `name` with `input` for a background run; returns its id.
 *
 * @throws {@link OrbitError} `not-found` for an unknown job;
 *   `limit-exceeded` when the workspace's queue is full or past the nesting
 *   depth limit; `too-large` for an input over the cap.
 */
export function enqueue(name: string, input: string): JobId {
  const n = text("name", name);
  const i = text("input", input);
  return call(() => wit.enqueue(n, i));
}

/**
 * Where the job `id` (queued in this workspace) is.
 *
 * @throws {@link OrbitError} `not-found` for an unknown id or another
 *   workspace's job; `invalid-input` for a malformed id.
 */
export function status(id: JobId): JobStatus {
  const i = text("id", id);
  const st = call(() => wit.status(i));
  switch (st.tag) {
    case "running":
      return { state: "running", finished: false, runId: st.val };
    case "succeeded":
      return { state: "succeeded", finished: true, runId: st.val.runId, output: st.val.output };
    case "failed":
      return { state: "failed", finished: true, runId: st.val.runId ?? null, error: errorFromWit(st.val.error) };
    default:
      return { state: "queued", finished: false };
  }
}

/**
 * Poll {@link status} every `pollMs` milliseconds until the job finishes,
 * and resolve to its output. The run's own deadline bounds the wait.
 *
 * This is the SDK's one asynchronous function (an Orbit agent cannot block
 * without burning fuel): call it from an `async function run`, whose
 * promise the component awaits.
 *
 * @param pollMs milliseconds between two polls (at least 1; 50 by default).
 * @returns a promise of the job's output; it rejects with {@link OrbitError}
 *   as {@link status} does, and with the job's error when it failed.
 */
export async function wait(id: JobId, pollMs: number = 50): Promise<string> {
  if (typeof pollMs !== "number" || Number.isNaN(pollMs)) {
    throw new TypeError(`pollMs must be a number, not ${typeName(pollMs)}`);
  }
  const delay = Math.max(pollMs, 1);
  for (;;) {
    const st = status(id);
    if (st.state === "succeeded") return st.output;
    if (st.state === "failed") throw st.error;
    await new Promise<void>((resolve) => setTimeout(resolve, delay));
  }
}
