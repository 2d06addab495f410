import { cache, log, OrbitError } from "orbit";

export function run(input: string): string {
  const n = cache.increment("calls", 1);
  log.info(`call ${n}`);
  if (!input) throw new OrbitError("invalid-input", "empty input");
  return input.toUpperCase();
}
