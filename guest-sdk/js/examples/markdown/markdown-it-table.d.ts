/**
 * Declarations for the one markdown-it module the example imports that
 * @types/markdown-it does not declare: the GFM table block rule, which
 * `render.ts` wraps.
 */
declare module "markdown-it/lib/rules_block/table.mjs" {
  import type StateBlock from "markdown-it/lib/rules_block/state_block.mjs";
  /** markdown-it's GFM table rule: whether a table starts at `startLine` (and, unless `silent`, its tokens). */
  export default function table(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean;
}
