/**
 * Helpers shared by the SDK's modules: calling the host, checking
 * arguments, converting integers and bytes. Not part of the public API.
 *
 * The WIT interfaces themselves are imported by each module
 * (`orbit:runtime/<interface>@0.1.0`); componentize-js turns those imports
 * into the component's imports. A function imported that way returns the
 * `ok` value of a WIT `result` and throws on `err`, with the WIT `error`
 * record in the thrown value's `payload`; {@link call} turns that into an
 * {@link OrbitError}.
 *
 * @module
 */

import { OrbitError, normalizeCode } from "./errors.ts";

/** Bytes as the SDK accepts them: a `Uint8Array`, an `ArrayBuffer`, or any other typed array or `DataView` (its bytes). */
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView;

/** An integer parameter: a `number` that is an integer, or a `bigint`. */
export type Int = number | bigint;

/** A short name for the type of `value`, for error messages. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "Array";
  if (typeof value === "object" || typeof value === "function") {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor;
    const name = ctor && typeof ctor.name === "string" && ctor.name ? ctor.name : "";
    return name || typeof value;
  }
  return typeof value;
}

/**
 * The WIT `error` record carried by a value a WIT import threw (its own
 * `payload` property), or `undefined` when `e` carries none.
 */
export function witPayload(e: unknown): { code: unknown; message: unknown } | undefined {
  if (e === null || (typeof e !== "object" && typeof e !== "function")) return undefined;
  if (!Object.prototype.hasOwnProperty.call(e, "payload")) return undefined;
  const payload = (e as { payload: unknown }).payload;
  if (payload === null || typeof payload !== "object") return undefined;
  const p = payload as { code?: unknown; message?: unknown };
  return { code: p.code, message: p.message };
}

/**
 * An {@link OrbitError} for a WIT `error` record (`{ code, message }`); an
 * unknown code becomes `internal`.
 */
export function errorFromWit(value: { code: unknown; message: unknown }): OrbitError {
  const code = normalizeCode(value.code) ?? "internal";
  return new OrbitError(code, typeof value.message === "string" ? value.message : undefined);
}

/**
 * Run `f`, a call of a WIT import, and return its value; a WIT `err` is
 * thrown as {@link OrbitError} with the host's code and message. Anything
 * else `f` throws is thrown unchanged.
 */
export function call<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const payload = witPayload(e);
    if (payload !== undefined) throw errorFromWit(payload);
    throw e;
  }
}

/**
 * `value` if it is a string.
 *
 * @throws TypeError it is not.
 */
export function text(name: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string, not ${typeName(value)}`);
  return value;
}

/**
 * `value` if it is a string; `undefined` for `null` or `undefined` (a WIT
 * `option<string>`).
 *
 * @throws TypeError it is neither.
 */
export function optText(name: string, value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : text(name, value);
}

/**
 * `value` as a `Uint8Array` (the same memory for a `Uint8Array`, a view of
 * it for an `ArrayBuffer`, another typed array or a `DataView`).
 *
 * @param hint added to the message for a string, e.g. `"use storage.putText() for a string"`.
 * @throws TypeError `value` is not bytes.
 */
export function bytes(name: string, value: unknown, hint = ""): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const extra = hint && typeof value === "string" ? `; ${hint}` : "";
  throw new TypeError(`${name} must be a Uint8Array, not ${typeName(value)}${extra}`);
}

/**
 * `value`, a `Uint8Array` a WIT import returned, as a `Uint8Array` of the
 * agent's realm, over the same memory (no copy).
 *
 * componentize-js's bindings run in a realm of their own: the arrays,
 * typed arrays and objects they return belong to it, so that
 * `x instanceof Uint8Array` (or `Array`) would be false in the agent. The
 * SDK returns values of the agent's realm only (arrays through
 * `Array.from`, which builds one of this realm).
 */
export function ownBytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

const ENCODER = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading BOM is
// kept as U+FEFF, as Python's and Rust's UTF-8 decoders keep it.
const DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `s` encoded as UTF-8. */
export function encode(s: string): Uint8Array {
  return ENCODER.encode(s);
}

/**
 * `data` decoded as UTF-8.
 *
 * @param what names the data in the error message, e.g. `"the object"`.
 * @throws OrbitError `invalid-input` (`"<what> is not valid utf-8"`) when it is not UTF-8.
 */
export function decode(data: Uint8Array, what: string): string {
  try {
    return DECODER.decode(data);
  } catch {
    throw new OrbitError("invalid-input", `${what} is not valid utf-8`);
  }
}

/** 2^32 - 1. */
export const U32_MAX = 0xffff_ffff;
/** 2^64 - 1. */
export const U64_MAX = (1n << 64n) - 1n;
/** -2^63. */
export const S64_MIN = -(1n << 63n);
/** 2^63 - 1. */
export const S64_MAX = (1n << 63n) - 1n;

/**
 * `value` (a `number` that is an integer, or a `bigint`) as a `bigint`
 * within `[lo, hi]`.
 *
 * @throws TypeError `value` is not an integer (another type, a fraction, `NaN`, an infinity).
 * @throws OrbitError `invalid-input` (`"<name> is out of range (<lo> to <hi>)"`) when it is out of range.
 */
export function int(name: string, value: unknown, lo: bigint, hi: bigint): bigint {
  let big: bigint;
  if (typeof value === "bigint") {
    big = value;
  } else if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new TypeError(`${name} must be an integer, not ${value}`);
    big = BigInt(value);
  } else {
    throw new TypeError(`${name} must be an integer (number or bigint), not ${typeName(value)}`);
  }
  if (big < lo || big > hi) throw new OrbitError("invalid-input", `${name} is out of range (${lo} to ${hi})`);
  return big;
}

/** A WIT `u32` parameter, as a `number`; see {@link int}. */
export function u32(name: string, value: unknown): number {
  return Number(int(name, value, 0n, BigInt(U32_MAX)));
}

/** A WIT `u64` parameter, as a `bigint`; see {@link int}. */
export function u64(name: string, value: unknown): bigint {
  return int(name, value, 0n, U64_MAX);
}

/** A WIT `s64` parameter, as a `bigint`; see {@link int}. */
export function s64(name: string, value: unknown): bigint {
  return int(name, value, S64_MIN, S64_MAX);
}

/** A WIT `option<u32>` parameter: `undefined` for `null` or `undefined`; see {@link u32}. */
export function optU32(name: string, value: unknown): number | undefined {
  return value === null || value === undefined ? undefined : u32(name, value);
}

/** A WIT `option<u64>` parameter: `undefined` for `null` or `undefined`; see {@link u64}. */
export function optU64(name: string, value: unknown): bigint | undefined {
  return value === null || value === undefined ? undefined : u64(name, value);
}

/**
 * A WIT `u64` or `s64` result as a `number`, when it is a safe integer
 * (within ±(2^53 - 1), where every integer is exact).
 *
 * @param what names the value in the error message, e.g. `"the counter's new value"`.
 * @param instead what to call for the full range, e.g. `"cache.incrementBig()"`.
 * @throws RangeError the value is outside the safe integer range: a `number` would not hold it exactly.
 */
export function safeNumber(value: bigint | number, what: string, instead?: string): number {
  if (typeof value === "number") return value;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    const use = instead ? `; use ${instead}, which returns a bigint` : "";
    throw new RangeError(
      `${what} is ${value}, outside the safe integer range of a number (-(2^53 - 1) to 2^53 - 1), which cannot hold it exactly${use}`,
    );
  }
  return n;
}

/** The `BigInt` of the realm the componentize-js bindings run in; see {@link withUnsignedI64Lowering}. */
let bindingsBigInt: BigIntConstructor | null = null;

/**
 * Run `f`, a call of the WIT import `importFn` with a negative `s64`
 * argument passed as a core parameter (`cache.increment`'s `delta`).
 *
 * componentize-js 0.23 converts such an argument with its generated
 * `toInt64` (`BigInt.asIntN(64, x)`, a negative `bigint`), which its engine
 * then refuses, because it accepts only unsigned 64-bit patterns: the
 * component traps ("Internal bindgen error in coreabi_from_bigint64
 * validation"; bytecodealliance/ComponentizeJS#343, open). The generated
 * bindings run in a realm of their own; for the duration of the call, that
 * realm's `BigInt.asIntN(64, x)` gives the same 64 bits as an unsigned
 * `bigint` (`BigInt.asUintN(64, x)`), which the engine passes on as the
 * signed value the host receives. Every other width is untouched, and the
 * function is restored before this returns.
 *
 * @throws RangeError when the bindings' realm cannot be reached (a
 *   toolchain other than the pinned one), rather than trap.
 */
export function withUnsignedI64Lowering<T>(importFn: unknown, f: () => T): T {
  if (bindingsBigInt === null) {
    try {
      // The import is a function of the bindings' realm: its constructor is
      // that realm's Function.
      const realmFunction = (importFn as { constructor: FunctionConstructor }).constructor;
      const candidate = realmFunction("return BigInt")() as unknown;
      if (typeof candidate === "function" && typeof (candidate as BigIntConstructor).asIntN === "function") {
        bindingsBigInt = candidate as BigIntConstructor;
      }
    } catch {
      // Left null: reported below.
    }
    if (bindingsBigInt === null) {
      throw new RangeError(
        "a negative s64 argument cannot be passed to the host with this toolchain (bytecodealliance/ComponentizeJS#343)",
      );
    }
  }
  const realmBigInt = bindingsBigInt;
  const asIntN = realmBigInt.asIntN;
  const asUintN = realmBigInt.asUintN;
  realmBigInt.asIntN = (bits: number, value: bigint): bigint => (bits === 64 ? asUintN(64, value) : asIntN(bits, value));
  try {
    return f();
  } finally {
    realmBigInt.asIntN = asIntN;
  }
}
