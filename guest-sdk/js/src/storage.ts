/**
 * Blob storage, private to the run's workspace (the WIT `storage`
 * interface).
 *
 * Keys are 1 to 512 bytes of UTF-8 made of `/`-separated segments. A key
 * may not be absolute, may not contain `.` or `..` segments, empty
 * segments, NUL, backslashes or control characters; such keys give
 * `invalid-input`:
 *
 * ```ts
 * import { storage, log } from "orbit";
 *
 * storage.putText("notes/latest.txt", input);
 * const body = storage.get("notes/latest.txt");          // Uint8Array
 * for (const meta of storage.listAll("notes/")) {
 *   log.info(`${meta.key}: ${meta.size} bytes`);
 * }
 * ```
 *
 * Every function throws {@link OrbitError} when the host refuses the call
 * (`not-found`, `invalid-input`, `too-large`, `limit-exceeded`,
 * `internal`), and `TypeError` for an argument of the wrong type.
 *
 * @module
 */

import * as wit from "orbit:runtime/storage@0.1.0";
import { type Bytes, bytes, call, decode, encode, optText, ownBytes, safeNumber, text, u32 } from "./_host.ts";
// For the TSDoc links.
import type { OrbitError } from "./errors.ts";

export type { Bytes };

/** The content type {@link put} stores by default. */
export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/** The content type {@link putText} stores by default. */
export const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";

/** Metadata of one stored object. */
export interface ObjectMeta {
  /** The object's key. */
  readonly key: string;
  /** Size of the object, in bytes. */
  readonly size: number;
  /** The content type given to {@link put}. */
  readonly contentType: string;
  /** Last write time, in milliseconds since the Unix epoch. */
  readonly modifiedMs: number;
}

/** One page of a listing. */
export interface ObjectPage {
  /** Objects in ascending key order. */
  readonly objects: ObjectMeta[];
  /** Pass this back as `cursor` for the next page; `null` when done. */
  readonly nextCursor: string | null;
}

function meta(m: wit.ObjectMeta): ObjectMeta {
  return {
    key: m.key,
    size: safeNumber(m.size, "the object's size"),
    contentType: m.contentType,
    modifiedMs: safeNumber(m.modifiedMs, "the object's modification time"),
  };
}

/**
 * Store `value` under `key` with `contentType`, replacing any previous
 * object.
 *
 * @param value the bytes: a `Uint8Array` (or an `ArrayBuffer`, another typed array, a `DataView`).
 * @param contentType stored with the object; `"application/octet-stream"` by default.
 * @throws {@link OrbitError} `invalid-input` for a bad key or content type;
 *   `too-large` over the host's object cap; `limit-exceeded` when the
 *   workspace's quota is full.
 * @throws TypeError `value` is not bytes (use {@link putText} for a string).
 */
export function put(key: string, value: Bytes, contentType: string = DEFAULT_CONTENT_TYPE): void {
  const k = text("key", key);
  const v = bytes("value", value, "use storage.putText() for a string");
  const ct = text("contentType", contentType);
  call(() => wit.put(k, v, ct));
}

/**
 * Store the text `value` as UTF-8 under `key`; see {@link put}.
 *
 * @param contentType `"text/plain; charset=utf-8"` by default.
 * @throws {@link OrbitError} as {@link put}.
 */
export function putText(key: string, value: string, contentType: string = TEXT_CONTENT_TYPE): void {
  put(key, encode(text("value", value)), contentType);
}

/**
 * The bytes of the object under `key`.
 *
 * @throws {@link OrbitError} `not-found` when absent; `invalid-input` for a bad key.
 */
export function get(key: string): Uint8Array {
  const k = text("key", key);
  return ownBytes(call(() => wit.get(k)));
}

/**
 * The object under `key` decoded as UTF-8 text.
 *
 * @throws {@link OrbitError} as {@link get}; `invalid-input` (`"the object
 *   is not valid utf-8"`) when it is not UTF-8.
 */
export function getText(key: string): string {
  return decode(get(key), "the object");
}

/**
 * The metadata of the object under `key`.
 *
 * @throws {@link OrbitError} `not-found` when absent; `invalid-input` for a bad key.
 */
export function head(key: string): ObjectMeta {
  const k = text("key", key);
  return meta(call(() => wit.head(k)));
}

/**
 * Delete the object under `key`; returns whether it existed.
 *
 * @throws {@link OrbitError} `invalid-input` for a bad key.
 */
function _delete(key: string): boolean {
  const k = text("key", key);
  return call(() => wit.delete(k));
}
export { _delete as delete };

/**
 * One page of the objects whose key starts with `prefix`, in ascending key
 * order, starting after `cursor` (the previous page's
 * {@link ObjectPage.nextCursor}), at most `limit` per page (the host may cap
 * it further).
 *
 * @param prefix `""` (every object) by default.
 * @param cursor `null` or `undefined` for the first page.
 * @param limit at most this many objects (a u32; 1000 by default).
 * @throws {@link OrbitError} `invalid-input` for a malformed cursor, an
 *   over-long prefix or a `limit` outside 0 to 2^32 - 1.
 */
export function list(prefix: string = "", cursor: string | null = null, limit: number = 1000): ObjectPage {
  const p = text("prefix", prefix);
  const c = optText("cursor", cursor);
  const n = u32("limit", limit);
  const page = call(() => wit.list(p, c, n));
  return { objects: Array.from(page.objects, meta), nextCursor: page.nextCursor ?? null };
}

/**
 * Every object whose key starts with `prefix`, following the cursors page
 * by page.
 *
 * @throws {@link OrbitError} as {@link list}.
 */
export function listAll(prefix: string = ""): ObjectMeta[] {
  const found: ObjectMeta[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page = list(prefix, cursor, 1000);
    found.push(...page.objects);
    // Stop on a cursor that does not advance, so that a misbehaving host
    // cannot make this loop forever.
    if (page.nextCursor === null || page.nextCursor === cursor) return found;
    cursor = page.nextCursor;
  }
}
