/**
 * SQL tables (SQLite), private to the run's workspace (the WIT `db`
 * interface).
 *
 * Each call runs exactly one statement. Parameters (`?`, `?NNN`, `:name`,
 * `@name`, `$name`) are bound from `params` in order, never interpolated
 * into the SQL text:
 *
 * ```ts
 * import { db } from "orbit";
 *
 * db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)");
 * db.execute("INSERT INTO notes (body) VALUES (?)", ["hello"]);
 * const rows = db.query("SELECT id, body FROM notes WHERE id > ?", [0]);
 * for (const row of rows) {
 *   log.info(`${row.get("id")}: ${row.get("body")}`);
 * }
 * const total = db.query("SELECT count(*) FROM notes").scalar();
 * db.batch([                                  // one transaction, all or nothing
 *   ["UPDATE notes SET body = ? WHERE id = ?", ["hi", 1]],
 *   "DELETE FROM notes WHERE body IS NULL",
 * ]);
 * ```
 *
 * **Values.** A parameter is `null` or `undefined` (NULL), a `boolean`
 * (INTEGER 0 or 1), a `number` (INTEGER when it is a safe integer, else
 * REAL), a `bigint` (INTEGER, -2^63 to 2^63 - 1), a `string` (TEXT) or bytes
 * (BLOB: a `Uint8Array`, `ArrayBuffer`, typed array or `DataView`); or the
 * WIT variant itself, such as `{ tag: "real", val: 1 }` to bind an integral
 * number as REAL. {@link query} returns NULL as `null`, INTEGER and REAL
 * as `number` (an INTEGER beyond ±(2^53 - 1) throws a `RangeError`: use
 * {@link queryBig}, which returns every INTEGER as a `bigint`), TEXT as
 * `string` and BLOB as `Uint8Array`.
 *
 * **Errors** throw {@link OrbitError}: `invalid-input` for SQL errors (syntax,
 * unknown table, constraint violation, wrong parameter count) or a
 * statement given to the wrong function; `permission-denied` for `ATTACH`,
 * `load_extension`, temporary objects, views, triggers, indexes,
 * transaction statements (use {@link batch}) and pragmas outside a
 * read-only allow-list; `limit-exceeded` past the host's time cap or the
 * workspace's database size cap; `too-large` for a result over the host's
 * row or byte caps. A parameter of another type throws `TypeError`.
 *
 * @module
 */

import * as wit from "orbit:runtime/db@0.1.0";
import { type Bytes, bytes, call, ownBytes, s64, safeNumber, text, typeName } from "./_host.ts";
// For the TSDoc links.
import type { OrbitError } from "./errors.ts";

/**
 * A value {@link query} returns: `null` (NULL), `number` (INTEGER or REAL),
 * `string` (TEXT) or `Uint8Array` (BLOB).
 */
export type Value = null | number | string | Uint8Array;

/**
 * A value {@link queryBig} returns: `null` (NULL), `bigint` (INTEGER),
 * `number` (REAL), `string` (TEXT) or `Uint8Array` (BLOB).
 */
export type BigValue = null | bigint | number | string | Uint8Array;

/**
 * A SQLite value in the WIT shape (the `value` variant), to bind a value
 * with an explicit storage class: `{ tag: "real", val: 2 }` binds REAL 2.0.
 */
export type TaggedValue =
  | { tag: "null" }
  | { tag: "integer"; val: number | bigint }
  | { tag: "real"; val: number }
  | { tag: "text"; val: string }
  | { tag: "blob"; val: Bytes };

/** A parameter: see "Values" in the module documentation. */
export type Param = null | undefined | boolean | number | bigint | string | Bytes | TaggedValue;

const TAGS = new Set(["null", "integer", "real", "text", "blob"]);

function toWit(value: unknown): wit.Value {
  if (value === null || value === undefined) return { tag: "null" };
  switch (typeof value) {
    case "boolean":
      return { tag: "integer", val: value ? 1n : 0n };
    case "number":
      return Number.isSafeInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "real", val: value };
    case "bigint":
      return { tag: "integer", val: s64("an integer parameter", value) };
    case "string":
      return { tag: "text", val: value };
  }
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return { tag: "blob", val: bytes("a blob parameter", value) };
  if (typeof value === "object" && TAGS.has((value as { tag?: unknown }).tag as string)) {
    const v = value as { tag: string; val?: unknown };
    switch (v.tag) {
      case "null":
        return { tag: "null" };
      case "integer":
        return { tag: "integer", val: s64("an integer parameter", v.val) };
      case "real":
        if (typeof v.val !== "number") throw new TypeError(`a real parameter must be a number, not ${typeName(v.val)}`);
        return { tag: "real", val: v.val };
      case "text":
        return { tag: "text", val: text("a text parameter", v.val) };
      default:
        return { tag: "blob", val: bytes("a blob parameter", v.val) };
    }
  }
  throw new TypeError(
    `a SQL parameter must be null, a boolean, number, bigint, string or Uint8Array, not ${typeName(value)}`,
  );
}

function toParams(values: readonly Param[] | undefined): wit.Value[] {
  if (values === undefined || values === null) return [];
  if (!Array.isArray(values)) throw new TypeError(`params must be an array of values, not ${typeName(values)}`);
  return values.map(toWit);
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function columnIndex(columns: readonly string[], name: string): number {
  const exact = columns.indexOf(name);
  if (exact >= 0) return exact;
  const wanted = asciiLower(name);
  return columns.findIndex((c) => asciiLower(c) === wanted);
}

/**
 * One row of {@link Rows}: its values, by position or by column name
 * (ASCII case-insensitive, as in SQL; an exact match first).
 *
 * @typeParam V {@link Value} from {@link query}, {@link BigValue} from {@link queryBig}.
 */
export class Row<V = Value> implements Iterable<V> {
  /** Column names, in result order (shared with the other rows). */
  readonly columns: readonly string[];
  /** The values, one per column. */
  readonly values: readonly V[];

  /** A row of `values` for `columns`. */
  constructor(columns: readonly string[], values: readonly V[]) {
    this.columns = columns;
    this.values = values;
  }

  /** The number of values. */
  get length(): number {
    return this.values.length;
  }

  /**
   * The value at position `key`, or of the column named `key`.
   *
   * @throws RangeError there is no such position or column (unless `fallback` is given).
   */
  get(key: number | string): V;
  /** The value at position `key`, or of the column named `key`; `fallback` when there is none. */
  get<D>(key: number | string, fallback: D): V | D;
  get<D>(key: number | string, ...fallback: [D] | []): V | D {
    const i = typeof key === "number" ? key : columnIndex(this.columns, String(key));
    if (Number.isInteger(i) && i >= 0 && i < this.values.length) return this.values[i] as V;
    if (fallback.length > 0) return fallback[0] as D;
    throw new RangeError(typeof key === "number" ? `no value at position ${key}` : `no column named ${JSON.stringify(key)}`);
  }

  /** Whether the row has a column named `name`. */
  has(name: string): boolean {
    return columnIndex(this.columns, name) >= 0;
  }

  /** The column names. */
  keys(): string[] {
    return [...this.columns];
  }

  /** The row as `{ column: value }` (a later duplicate column name wins). */
  toObject(): Record<string, V> {
    const obj: Record<string, V> = {};
    this.columns.forEach((c, i) => {
      obj[c] = this.values[i] as V;
    });
    return obj;
  }

  /** The values, as a new array. */
  toArray(): V[] {
    return [...this.values];
  }

  /** The values (what `JSON.stringify` writes). */
  toJSON(): V[] {
    return this.toArray();
  }

  /** Iterates the values. */
  [Symbol.iterator](): Iterator<V> {
    return this.values[Symbol.iterator]();
  }
}

/**
 * The result of a query (the WIT `rows` record). Iterate it for
 * {@link Row} objects; `rows.length` is the row count.
 *
 * @typeParam V {@link Value} from {@link query}, {@link BigValue} from {@link queryBig}.
 */
export class Rows<V = Value> implements Iterable<Row<V>> {
  /** Column names, in result order. */
  readonly columns: string[];
  /** The values, one array per row, one value per column. */
  readonly rows: V[][];

  /** Rows of `values` for `columns`. */
  constructor(columns: string[], rows: V[][]) {
    this.columns = columns;
    this.rows = rows;
  }

  /** The number of rows. */
  get length(): number {
    return this.rows.length;
  }

  /** The row at `index` (negative counts from the end), or `undefined`. */
  at(index: number): Row<V> | undefined {
    const values = this.rows.at(index);
    return values === undefined ? undefined : new Row(this.columns, values);
  }

  /**
   * The row at `index`.
   *
   * @throws RangeError there is no such row.
   */
  row(index: number): Row<V> {
    const row = this.at(index);
    if (row === undefined || index < 0) throw new RangeError(`no row ${index} (${this.rows.length} rows)`);
    return row;
  }

  /** The position of the column `name` (exact, else ASCII case-insensitive), or -1. */
  columnIndex(name: string): number {
    return columnIndex(this.columns, name);
  }

  /** The first column of the first row (`null` without rows): handy for `SELECT count(*)`. */
  scalar(): V | null {
    const first = this.rows[0];
    return first === undefined || first.length === 0 ? null : (first[0] as V);
  }

  /** Every row as `{ column: value }`. */
  objects(): Record<string, V>[] {
    return this.rows.map((values) => new Row(this.columns, values).toObject());
  }

  /** Every row as an array of values (new arrays). */
  arrays(): V[][] {
    return this.rows.map((values) => [...values]);
  }

  /** Iterates the rows. */
  *[Symbol.iterator](): Iterator<Row<V>> {
    for (const values of this.rows) yield new Row(this.columns, values);
  }
}

/** One statement of a {@link batch}, with its parameters. */
export interface Statement {
  /** One SQL statement. */
  sql: string;
  /** Its parameters, bound in order; none by default. */
  params?: Param[];
}

/** A {@link Statement}, a SQL string without parameters, or `[sql, params]`. */
export type StatementLike = Statement | string | readonly [string, Param[]];

/**
 * Run one statement that returns no rows (`CREATE`, `INSERT`, `UPDATE`,
 * `DELETE` ...) and return the number of rows it changed.
 *
 * @throws {@link OrbitError} see the module documentation; `invalid-input`
 *   too for a statement that returns rows (including `... RETURNING`,
 *   refused before it runs: use {@link query}).
 */
export function execute(sql: string, params: Param[] = []): number {
  const s = text("sql", sql);
  const p = toParams(params);
  return safeNumber(call(() => wit.execute(s, p)), "the number of rows changed");
}

function run(sql: string, values: Param[] | undefined): wit.Rows {
  const s = text("sql", sql);
  const p = toParams(values);
  return call(() => wit.query(s, p));
}

function bigValue(v: wit.Value): BigValue {
  if (v.tag === "null") return null;
  return v.tag === "blob" ? ownBytes(v.val) : v.val;
}

/**
 * Run one statement that returns rows (`SELECT`, `... RETURNING`, a
 * read-only pragma such as `table_info`) and return them; INTEGER values
 * are `number`s.
 *
 * @throws {@link OrbitError} see the module documentation.
 * @throws RangeError an INTEGER value is beyond ±(2^53 - 1), which a
 *   `number` cannot hold exactly: use {@link queryBig}.
 */
export function query(sql: string, params: Param[] = []): Rows<Value> {
  const r = run(sql, params);
  const columns = Array.from(r.columns);
  const rows = Array.from(r.rows, (row, i) =>
    Array.from(row, (v, j): Value => {
      if (v.tag === "null") return null;
      if (v.tag === "integer") {
        return safeNumber(v.val, `row ${i}, column ${JSON.stringify(columns[j] ?? j)}`, "db.queryBig()");
      }
      return v.tag === "blob" ? ownBytes(v.val) : v.val;
    }),
  );
  return new Rows<Value>(columns, rows);
}

/**
 * {@link query}, with every INTEGER value a `bigint` (and REAL a `number`),
 * for integers of the full 64-bit range.
 *
 * @throws {@link OrbitError} see the module documentation.
 */
export function queryBig(sql: string, params: Param[] = []): Rows<BigValue> {
  const r = run(sql, params);
  return new Rows<BigValue>(Array.from(r.columns), Array.from(r.rows, (row) => Array.from(row, bigValue)));
}

/**
 * Run `statements` in one transaction, all or nothing: on the first error
 * every change of the batch is rolled back and that error thrown. Returns
 * the number of rows each statement changed. Statements may not return
 * rows.
 *
 * @param statements each a {@link Statement}, a SQL string, or `[sql, params]`.
 * @throws {@link OrbitError} as {@link execute}; `too-large` for more
 *   statements than the host allows in one batch.
 */
export function batch(statements: readonly StatementLike[]): number[] {
  if (!Array.isArray(statements)) {
    throw new TypeError(`batch takes an array of statements, not ${typeName(statements)}`);
  }
  const wire: wit.Statement[] = statements.map((st: unknown) => {
    if (typeof st === "string") return { sql: st, params: [] };
    if (Array.isArray(st)) return { sql: text("sql", st[0]), params: toParams(st[1] as Param[] | undefined) };
    if (st !== null && typeof st === "object") {
      const s = st as Statement;
      return { sql: text("sql", s.sql), params: toParams(s.params) };
    }
    throw new TypeError(`a statement is a string, [sql, params] or { sql, params }, not ${typeName(st)}`);
  });
  const changed = call(() => wit.batch(wire));
  return Array.from(changed, (n) => safeNumber(n, "the number of rows changed"));
}
