/** An agent module without a `run` export: its build must fail with a clear message (../e2e.mjs). */

export function start(input: string): string {
  return input;
}
