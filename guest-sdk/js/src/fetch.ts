/**
 * Outbound HTTP through the host (the WIT `fetch` interface).
 *
 * The host applies the workspace's egress policy (private and internal
 * addresses are refused), injects each named secret where the secret's
 * binding says, only when the request goes to a host, method and path the
 * secret is bound to, never follows redirects (a 3xx is returned as is),
 * and replaces any secret value in the response with `[REDACTED]`. The
 * guest never holds a secret's value:
 *
 * ```ts
 * import { fetch } from "orbit";
 *
 * const resp = fetch.get("https://api.example.com/v1/me", { secrets: ["API_TOKEN"] });
 * if (resp.ok) {
 *   const me = resp.json();
 * }
 * fetch.post("https://api.example.com/v1/notes", undefined, { json: { text: "hi" } });
 * ```
 *
 * The calls are synchronous (the host does the I/O). A response with any
 * status (404, 500 ...) is returned, not thrown. Errors throw
 * {@link OrbitError}: `invalid-input` for a malformed URL, method or header;
 * `permission-denied` for a host the egress policy refuses, or a secret
 * that does not exist or is not bound to this request (the two look the
 * same); `too-large` for a response over the host's caps; `unavailable`
 * when the server cannot be reached or times out; `limit-exceeded` past
 * the run's request quota. An argument of the wrong type throws
 * `TypeError`.
 *
 * The global `fetch` of JavaScript does not work in an Orbit agent (the
 * component has no `wasi:http`); use this module.
 *
 * @module
 */

import * as wit from "orbit:runtime/fetch@0.1.0";
import { type Bytes, type Int, bytes, call, decode, encode, optU32, ownBytes, text, typeName } from "./_host.ts";
import { OrbitError } from "./errors.ts";

export type { Bytes, Int };

/**
 * Request headers: an object (`{ "x-api-version": "2" }`), or `[name, value]`
 * pairs (names may repeat). Names are case-insensitive. `host`,
 * `content-length`, `transfer-encoding` and hop-by-hop headers may not be
 * set; CR, LF and other control characters are refused (`invalid-input`).
 */
export type HeadersInit = Readonly<Record<string, string>> | Iterable<readonly [string, string]>;

/** A request body: bytes, or text sent as UTF-8. */
export type Body = Bytes | string;

/** An outbound request (the WIT `request` record); send it with {@link fetch}. */
export interface Request {
  /** Method, such as `"GET"` or `"POST"`. */
  method: string;
  /** Absolute `http` or `https` URL. */
  url: string;
  /** Request headers; none by default. */
  headers?: HeadersInit;
  /** Request body: bytes, or text sent as UTF-8; empty by default. */
  body?: Body | null;
  /** Time allowed for the whole request, in milliseconds (a u32); capped by the host and by the run's deadline. */
  timeoutMs?: Int | null;
  /** Names of workspace secrets for the host to inject; none by default. */
  secrets?: readonly string[];
}

/** Options of {@link request}, {@link get} and {@link post}. */
export interface RequestOptions {
  /** Request headers. */
  headers?: HeadersInit;
  /** Request body: bytes, or text sent as UTF-8. */
  body?: Body | null;
  /**
   * A value sent as the JSON body (instead of `body`), with
   * `content-type: application/json` unless `headers` set one.
   */
  json?: unknown;
  /** Time allowed for the whole request, in milliseconds (a u32). */
  timeoutMs?: Int | null;
  /** Names of workspace secrets for the host to inject. */
  secrets?: readonly string[];
}

/** A response. Secret values in it have been replaced by `[REDACTED]`. */
export class Response {
  /** The HTTP status code. */
  readonly status: number;
  /** Headers as `[name, value]` pairs, in the order received. */
  readonly headers: [string, string][];
  /** The body, decompressed. */
  readonly body: Uint8Array;

  /** A response with `status`, `headers` and `body`. */
  constructor(status: number, headers: [string, string][], body: Uint8Array) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** Whether the status is 2xx. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The first header named `name` (case-insensitive), or `null`. */
  header(name: string): string | null {
    const wanted = name.toLowerCase();
    for (const [n, v] of this.headers) if (n.toLowerCase() === wanted) return v;
    return null;
  }

  /** Every value of the headers named `name` (case-insensitive), in order. */
  headerAll(name: string): string[] {
    const wanted = name.toLowerCase();
    return this.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
  }

  /**
   * The body as UTF-8 text.
   *
   * @throws {@link OrbitError} `invalid-input` (`"the response body is not valid utf-8"`) when it is not UTF-8.
   */
  text(): string {
    return decode(this.body, "the response body");
  }

  /**
   * The body parsed as JSON.
   *
   * @throws {@link OrbitError} `invalid-input` (`"the response body is not JSON"`) when it is not JSON (or not UTF-8).
   */
  json(): unknown {
    const body = this.text();
    try {
      return JSON.parse(body);
    } catch {
      throw new OrbitError("invalid-input", "the response body is not JSON");
    }
  }
}

function headerPairs(headers: HeadersInit | undefined | null): wit.Header[] {
  if (headers === undefined || headers === null) return [];
  if (typeof headers !== "object") throw new TypeError(`headers must be an object or [name, value] pairs, not ${typeName(headers)}`);
  const items: Iterable<unknown> =
    Symbol.iterator in headers ? (headers as Iterable<unknown>) : Object.entries(headers as Record<string, unknown>);
  const pairs: wit.Header[] = [];
  for (const item of items) {
    if (!Array.isArray(item) || item.length !== 2) {
      throw new TypeError(`a header is a [name, value] pair, not ${typeName(item)}`);
    }
    pairs.push({ name: text("a header name", item[0]), value: text("a header value", item[1]) });
  }
  return pairs;
}

function body(value: Body | null | undefined): Uint8Array {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value === "string") return encode(value);
  return bytes("body", value);
}

function secretNames(secrets: readonly string[] | undefined): string[] {
  if (secrets === undefined || secrets === null) return [];
  if (typeof secrets === "string" || !Array.isArray(secrets)) {
    throw new TypeError(`secrets must be an array of names, not ${typeName(secrets)}`);
  }
  return secrets.map((s) => text("a secret name", s));
}

/**
 * Send `req` and wait for the whole response.
 *
 * @throws {@link OrbitError} see the module documentation.
 * @throws TypeError a field of `req` has the wrong type.
 */
export function fetch(req: Request): Response {
  if (req === null || typeof req !== "object") throw new TypeError(`fetch takes a request object, not ${typeName(req)}`);
  const wire: wit.Request = {
    method: text("method", req.method),
    url: text("url", req.url),
    headers: headerPairs(req.headers),
    body: body(req.body),
    timeoutMs: optU32("timeoutMs", req.timeoutMs),
    secrets: secretNames(req.secrets),
  };
  const resp = call(() => wit.fetch(wire));
  return new Response(
    resp.status,
    Array.from(resp.headers, (h): [string, string] => [h.name, h.value]),
    ownBytes(resp.body),
  );
}

/**
 * Send a `method` request to `url` and wait for the whole response.
 *
 * @param options headers, a body (or `json`), a timeout in milliseconds and secrets to inject.
 * @throws {@link OrbitError} see the module documentation.
 * @throws TypeError both `body` and `json` are given, or an option has the
 *   wrong type (or `json` cannot be serialized: a `bigint`, a cycle).
 */
export function request(method: string, url: string, options: RequestOptions = {}): Response {
  const headers = headerPairs(options.headers);
  let data: Uint8Array;
  if (options.json !== undefined) {
    if (options.body !== undefined && options.body !== null) throw new TypeError("give body or json, not both");
    const serialized = JSON.stringify(options.json);
    if (serialized === undefined) throw new TypeError(`json must be a JSON value, not ${typeName(options.json)}`);
    data = encode(serialized);
    if (!headers.some((h) => h.name.toLowerCase() === "content-type")) {
      headers.push({ name: "content-type", value: "application/json" });
    }
  } else {
    data = body(options.body);
  }
  return fetch({
    method,
    url,
    headers: headers.map((h): [string, string] => [h.name, h.value]),
    body: data,
    timeoutMs: options.timeoutMs,
    secrets: options.secrets,
  });
}

/**
 * Send a `GET` request; see {@link request}.
 *
 * @throws {@link OrbitError} see the module documentation.
 */
export function get(url: string, options: Omit<RequestOptions, "body" | "json"> = {}): Response {
  return request("GET", url, { headers: options.headers, timeoutMs: options.timeoutMs, secrets: options.secrets });
}

/**
 * Send a `POST` request with `body` (or `options.json`); see {@link request}.
 *
 * @throws {@link OrbitError} see the module documentation.
 */
export function post(url: string, body?: Body | null, options: Omit<RequestOptions, "body"> = {}): Response {
  return request("POST", url, { ...options, body });
}
