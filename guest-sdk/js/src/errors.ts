/**
 * The error every Orbit primitive throws: {@link OrbitError}.
 *
 * @module
 */

/**
 * What went wrong: the WIT `error-code` names of `orbit:runtime/types`, in
 * kebab-case, as {@link OrbitError.code} holds them.
 *
 * - `"not-found"`: the named object, key or resource does not exist;
 * - `"invalid-input"`: an argument was malformed (a bad key, cursor, value);
 * - `"too-large"`: an argument or result was larger than the configured cap;
 * - `"limit-exceeded"`: a per-run or per-workspace budget or quota is spent;
 * - `"permission-denied"`: the run's workspace may not do this;
 * - `"unavailable"`: a backing service is unavailable or timed out; retrying
 *   may help;
 * - `"internal"`: the host failed; the run record holds the detail.
 */
export type ErrorCode =
  | "not-found"
  | "invalid-input"
  | "too-large"
  | "limit-exceeded"
  | "permission-denied"
  | "unavailable"
  | "internal";

/** Every error code, in WIT declaration order. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze([
  "not-found",
  "invalid-input",
  "too-large",
  "limit-exceeded",
  "permission-denied",
  "unavailable",
  "internal",
] as const);

/** The message an {@link OrbitError} gets when none is given. */
const DESCRIPTIONS: Readonly<Record<ErrorCode, string>> = {
  "not-found": "not found",
  "invalid-input": "invalid input",
  "too-large": "too large",
  "limit-exceeded": "limit exceeded",
  "permission-denied": "permission denied",
  unavailable: "unavailable",
  internal: "internal error",
};

/**
 * `code` as a known kebab-case code (`"NOT_FOUND"` and `"not_found"` are
 * accepted too), or `undefined`.
 */
export function normalizeCode(code: unknown): ErrorCode | undefined {
  if (typeof code !== "string") return undefined;
  const name = code.trim().toLowerCase().replace(/_/g, "-");
  return (ERROR_CODES as readonly string[]).includes(name) ? (name as ErrorCode) : undefined;
}

/** Whether `value` is one of the {@link ERROR_CODES}, exactly as written. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * Marks an {@link OrbitError}, whichever copy of this module created it (a
 * bundle may hold two copies of the SDK, for instance when a `tsconfig.json`
 * maps `orbit` to another path than the build does): `instanceof
 * OrbitError` and the component's `run` recognize it by this mark.
 */
const BRAND: unique symbol = Symbol.for("orbit:runtime@0.1.0/OrbitError") as never;

/**
 * The error of every Orbit primitive (the WIT `error` record).
 *
 * Every host call that fails throws it; an agent throws it too to make its
 * run fail with a given code and message:
 *
 * ```ts
 * throw new OrbitError("invalid-input", "empty input");
 * ```
 *
 * `String(error)` is `"<code>: <message>"`, e.g. `"not-found: not found"`.
 * The host's messages never carry host paths, OS errors, addresses or
 * secrets.
 */
export class OrbitError extends Error {
  /** What went wrong, as the WIT `error-code` name in kebab-case. */
  readonly code: ErrorCode;

  /**
   * An error with `code` (one of {@link ERROR_CODES}; `"NOT_FOUND"` and
   * `"not_found"` are accepted and normalized) and `message` (by default a
   * generic description of the code, such as `"not found"`).
   *
   * @throws RangeError `code` is not a WIT error code.
   */
  constructor(code: ErrorCode, message?: string) {
    const known = normalizeCode(code);
    if (known === undefined) {
      throw new RangeError(`unknown orbit error code ${JSON.stringify(code)}: expected one of ${ERROR_CODES.join(", ")}`);
    }
    super(message == null ? DESCRIPTIONS[known] : String(message));
    this.name = "OrbitError";
    this.code = known;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * `value instanceof OrbitError`: whether `value` is an `OrbitError` of any
   * copy of the SDK (and, for a subclass, an instance of that subclass).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (value === null || typeof value !== "object" || (value as { [BRAND]?: unknown })[BRAND] !== true) return false;
    return this === OrbitError || Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** `"<code>: <message>"`. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }

  /** The WIT `error` record: `{ code, message }` (also what `JSON.stringify` writes). */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }

  /** A `not-found` error. */
  static notFound(message?: string): OrbitError {
    return new OrbitError("not-found", message);
  }

  /** An `invalid-input` error. */
  static invalidInput(message?: string): OrbitError {
    return new OrbitError("invalid-input", message);
  }

  /** A `too-large` error. */
  static tooLarge(message?: string): OrbitError {
    return new OrbitError("too-large", message);
  }

  /** A `limit-exceeded` error. */
  static limitExceeded(message?: string): OrbitError {
    return new OrbitError("limit-exceeded", message);
  }

  /** A `permission-denied` error. */
  static permissionDenied(message?: string): OrbitError {
    return new OrbitError("permission-denied", message);
  }

  /** An `unavailable` error. */
  static unavailable(message?: string): OrbitError {
    return new OrbitError("unavailable", message);
  }

  /** An `internal` error. */
  static internal(message?: string): OrbitError {
    return new OrbitError("internal", message);
  }
}
