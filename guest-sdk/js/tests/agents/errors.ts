/**
 * An agent that fails in every way an agent can (used by ../e2e.mjs): the
 * input names the case. Each checks what the component's `run` returns.
 */

import { type ErrorCode, jobs, OrbitError, storage } from "orbit";
import { helper } from "./helpers/crash.ts";

export function run(input: string): string | Promise<string> {
  switch (input) {
    case "crash":
      // A TypeError two frames deep, in a sibling module.
      return helper(null);
    case "not-string":
      return 42 as unknown as string;
    case "undefined":
      return undefined as unknown as string;
    case "host-error":
      return storage.getText("no/such/key");
    case "orbit-error":
      throw new OrbitError("permission-denied", "not for you");
    case "orbit-error-default":
      throw OrbitError.tooLarge();
    case "wit-error":
      // The raw WIT error record, as plain jco guests throw it.
      throw { code: "unavailable", message: "raw record" };
    case "bad-code":
      throw new OrbitError("bogus" as ErrorCode, "x");
    case "throw-string":
      throw "a string";
    case "range":
      return "x".repeat(-1);
    case "async-ok":
      return Promise.resolve("async output");
    case "async-orbit-error":
      return (async () => {
        await null;
        throw new OrbitError("not-found", "async miss");
      })();
    case "async-crash":
      return (async () => {
        await null;
        return helper(null);
      })();
    case "async-not-string":
      return Promise.resolve(7 as unknown as string);
    case "jobs-wait-unknown":
      // jobs.wait rejects with the status call's error.
      return jobs.wait("01a22e46-4b42-722e-8b3a-86653c9ca476", 1);
    case "out-of-memory": {
      // Run with a low --memory-mib: the engine throws "out of memory".
      const kept: Uint8Array[] = [];
      for (;;) kept.push(new Uint8Array(8 << 20));
    }
    case "timer":
      return new Promise((resolve) => setTimeout(() => resolve("after 20 ms"), 20));
    default:
      return "ok";
  }
}
