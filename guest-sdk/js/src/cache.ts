/**
 * Key-value cache with time-to-live, private to the run's workspace (the
 * WIT `cache` interface).
 *
 * Values are bytes; {@link getText} and {@link setText} handle UTF-8 text.
 * Counters are atomic:
 *
 * ```ts
 * import { cache } from "orbit";
 *
 * const n = cache.increment("calls");        // 1, 2, 3 ...
 * cache.setText("last", input, 60_000);      // kept for 60 s
 * const last = cache.getText("last");        // null when absent or expired
 * ```
 *
 * Every function throws {@link OrbitError} when the host refuses the call:
 * `invalid-input` for an empty, over-long or control-character key,
 * `too-large` for a value over the host's cap, `limit-exceeded` when the
 * workspace's cache is full, `internal` when the host fails; and
 * `TypeError` for an argument of the wrong type.
 *
 * @module
 */

import * as wit from "orbit:runtime/cache@0.1.0";
import {
  type Bytes,
  type Int,
  bytes,
  call,
  decode,
  encode,
  optU64,
  ownBytes,
  s64,
  safeNumber,
  text,
  withUnsignedI64Lowering,
} from "./_host.ts";
// For the TSDoc links.
import type { OrbitError } from "./errors.ts";

export type { Bytes, Int };

/**
 * The value stored under `key`; `null` when absent or expired.
 *
 * @throws {@link OrbitError} `invalid-input` for a bad key.
 */
export function get(key: string): Uint8Array | null {
  const k = text("key", key);
  const value = call(() => wit.get(k));
  return value === undefined ? null : ownBytes(value);
}

/**
 * The value under `key` decoded as UTF-8 text; `null` when absent or
 * expired.
 *
 * @throws {@link OrbitError} as {@link get}; `invalid-input` (`"the cached
 *   value is not valid utf-8"`) when the value is not UTF-8.
 */
export function getText(key: string): string | null {
  const value = get(key);
  return value === null ? null : decode(value, "the cached value");
}

/**
 * Store `value` under `key` for `ttlMs` milliseconds, or until it is
 * deleted when `ttlMs` is `null` or left out.
 *
 * @param value the bytes: a `Uint8Array` (or an `ArrayBuffer`, another typed array, a `DataView`).
 * @param ttlMs time to live in milliseconds: an integer from 0 to 2^64 - 1 (a `number` or a `bigint`).
 * @throws {@link OrbitError} `invalid-input` for a bad key or a `ttlMs` out of
 *   range; `too-large` for a value over the host's cap; `limit-exceeded`
 *   when the workspace's cache is full.
 * @throws TypeError `value` is not bytes (use {@link setText} for a string) or `ttlMs` is not an integer.
 */
export function set(key: string, value: Bytes, ttlMs?: Int | null): void {
  const k = text("key", key);
  const v = bytes("value", value, "use cache.setText() for a string");
  const ttl = optU64("ttlMs", ttlMs);
  call(() => wit.set(k, v, ttl));
}

/**
 * Store the text `value` as UTF-8 under `key`; see {@link set}.
 *
 * @throws {@link OrbitError} as {@link set}.
 */
export function setText(key: string, value: string, ttlMs?: Int | null): void {
  set(key, encode(text("value", value)), ttlMs);
}

/**
 * Delete the value under `key`; returns whether a live value existed.
 *
 * @throws {@link OrbitError} `invalid-input` for a bad key.
 */
function _delete(key: string): boolean {
  const k = text("key", key);
  return call(() => wit.delete(k));
}
export { _delete as delete };

/**
 * Atomically add `delta` to the signed 64-bit integer stored under `key`
 * (absent or expired counts as 0) and return the new value as a `bigint`.
 * An existing TTL is kept.
 *
 * @param delta an integer from -2^63 to 2^63 - 1 (a `number` or a `bigint`); 1 by default.
 * @throws {@link OrbitError} `invalid-input` when the stored value is not a
 *   decimal integer, or `delta` is out of range (`"delta is out of range
 *   (-9223372036854775808 to 9223372036854775807)"`); `limit-exceeded` when
 *   the sum overflows 64 bits.
 * @throws TypeError `delta` is not an integer.
 */
export function incrementBig(key: string, delta: Int = 1n): bigint {
  const k = text("key", key);
  const d = s64("delta", delta);
  // A negative delta needs the workaround of withUnsignedI64Lowering.
  const result = call(() =>
    d < 0n ? withUnsignedI64Lowering(wit.increment, () => wit.increment(k, d)) : wit.increment(k, d),
  );
  return BigInt.asIntN(64, result);
}

/**
 * Atomically add `delta` to the signed 64-bit integer stored under `key`
 * (absent or expired counts as 0) and return the new value. An existing TTL
 * is kept.
 *
 * The counter may hold any signed 64-bit value; when the new value is
 * beyond `Number.MAX_SAFE_INTEGER` (2^53 - 1) in size, this throws a
 * `RangeError` rather than return an inexact `number` (the increment has
 * happened): use {@link incrementBig} for counters that may get there.
 *
 * @param delta an integer from -2^63 to 2^63 - 1 (a `number` or a `bigint`); 1 by default.
 * @throws {@link OrbitError} as {@link incrementBig}.
 * @throws RangeError the new value is not a safe integer.
 * @throws TypeError `delta` is not an integer.
 */
export function increment(key: string, delta: Int = 1): number {
  return safeNumber(incrementBig(key, delta), "the counter's new value", "cache.incrementBig()");
}
