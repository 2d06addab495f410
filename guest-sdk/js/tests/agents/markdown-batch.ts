/**
 * Renders many Markdown documents in one run, with the markdown example's
 * renderer (used by ../e2e.mjs to compare it with the Rust example on
 * pulldown-cmark's own test documents). Input: a JSON array of strings;
 * output: a JSON array of their HTML.
 */

import { render } from "../../examples/markdown/render.ts";

export function run(input: string): string {
  const docs = JSON.parse(input) as string[];
  return JSON.stringify(docs.map((doc) => render(doc)));
}
