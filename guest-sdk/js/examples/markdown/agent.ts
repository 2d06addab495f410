/**
 * Example Orbit agent: renders Markdown to HTML (a port of
 * `examples/markdown`).
 *
 * The input is a Markdown document. The agent renders it as pulldown-cmark
 * does with tables, footnotes and strikethrough enabled (`render.ts`),
 * stores the HTML in the workspace's storage under
 * `html/<first 16 hex chars of sha256(input)>.html` with content type
 * `text/html; charset=utf-8`, logs the key at `info` level and returns the
 * HTML.
 *
 * Its dependencies (markdown-it, markdown-it-footnote) are pinned by
 * `package.json` and `package-lock.json` next to this file: run `npm ci`
 * here once; the build bundles them into the component.
 *
 * `run` is `async` because it hashes with `crypto.subtle.digest`, which
 * returns a promise; the component awaits it.
 *
 * @module
 */

import { log, storage } from "orbit";
import { render } from "./render.ts";

/** Content type of the stored HTML. */
const CONTENT_TYPE = "text/html; charset=utf-8";

/** The storage key for the HTML rendered from `markdown`. */
export async function storageKey(markdown: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(markdown));
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  return `html/${hex.slice(0, 16)}.html`;
}

// Hash once while the component is built: the engine initializes its
// digests then, and the snapshot keeps them ready for every run.
void storageKey("");

/** Render `input`, store the HTML, log its key and return it. */
export async function run(input: string): Promise<string> {
  const html = render(input);
  const key = await storageKey(input);
  storage.put(key, new TextEncoder().encode(html), CONTENT_TYPE);
  log.info(`stored rendered HTML at ${key}`);
  return html;
}
