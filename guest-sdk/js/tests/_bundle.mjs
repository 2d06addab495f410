/**
 * Bundles TypeScript modules of the SDK (or of an example) into one ES
 * module Node can import, for the unit tests: Node 20 does not run
 * TypeScript. Uses the rolldown that jco brings (toolchain/node_modules).
 *
 * The `orbit:runtime/<interface>@0.1.0` imports become a fake host: each
 * imported function calls `globalThis.__orbitHost[<interface>][<function>]`,
 * which a test sets. A fake host function fails the way a real WIT import
 * does: it throws a value whose own `payload` is the WIT error record (see
 * {@link witError}).
 */

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SDK = path.dirname(HERE);
/**
 * The toolchain's `node_modules`: beside `ORBIT_JCO` (`…/node_modules/.bin/jco`)
 * when set, else the test dependencies' install (scripts/install-test-deps.sh),
 * else `toolchain/node_modules` (`npm ci` in `toolchain/`).
 */
function toolchainDir() {
  if (process.env.ORBIT_JCO) return path.resolve(path.dirname(process.env.ORBIT_JCO), "..");
  const testDeps = path.resolve(SDK, "../../target/test-deps/js-sdk/node_modules");
  if (existsSync(testDeps)) return testDeps;
  return path.join(SDK, "toolchain/node_modules");
}
const TOOLCHAIN = toolchainDir();

/** The functions of each interface of `orbit:runtime@0.1.0` (wit/*.wit). */
const INTERFACES = {
  types: [],
  log: ["log"],
  storage: ["put", "get", "head", "delete", "list"],
  cache: ["get", "set", "delete", "increment"],
  db: ["execute", "query", "batch"],
  fetch: ["fetch"],
  ai: ["chat", "embed"],
  jobs: ["invoke", "enqueue", "status"],
  tools: ["list", "call"],
};

function fakeModule(iface) {
  const lines = INTERFACES[iface].map((fn) => {
    const local = `_${fn}`;
    return `function ${local}(...args) {\n  const host = globalThis.__orbitHost?.[${JSON.stringify(iface)}]?.[${JSON.stringify(fn)}];\n  if (!host) throw new Error("the fake host has no ${iface}.${fn}");\n  return host(...args);\n}\nexport { ${local} as ${fn} };`;
  });
  return lines.join("\n") + "\n";
}

/** Whether the toolchain (jco, and so rolldown) is installed. */
export function haveToolchain() {
  return existsSync(path.join(TOOLCHAIN, "rolldown/package.json"));
}

/**
 * Bundle `entry` (a .ts or .js file) for Node; returns the imported module.
 * Each call bundles afresh: two calls give two copies of every module.
 */
export async function load(entry) {
  const { rolldown } = await import(pathToFileURL(path.join(TOOLCHAIN, "rolldown/dist/index.mjs")).href);
  const build = await rolldown({
    input: path.resolve(entry),
    platform: "neutral",
    resolve: { mainFields: ["module", "main"] },
    plugins: [
      {
        name: "orbit-fake-host",
        resolveId(id) {
          const m = /^orbit:runtime\/(\w+)@0\.1\.0$/.exec(id);
          return m && m[1] in INTERFACES ? `\0orbit-fake:${m[1]}` : null;
        },
        load(id) {
          return id.startsWith("\0orbit-fake:") ? fakeModule(id.slice("\0orbit-fake:".length)) : null;
        },
      },
    ],
    logLevel: "silent",
  });
  const dir = mkdtempSync(path.join(tmpdir(), "orbit-js-unit-"));
  const out = path.join(dir, "bundle.mjs");
  try {
    await build.write({ file: out, format: "esm" });
    return await import(pathToFileURL(out).href);
  } finally {
    await build.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A value thrown as a WIT import throws an `err`: the record in its own `payload`. */
export function witError(code, message) {
  const e = new Error(`${code}: ${message}`);
  Object.defineProperty(e, "payload", { value: { code, message }, enumerable: true });
  return e;
}
