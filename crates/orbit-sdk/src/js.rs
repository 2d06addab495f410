//! JavaScript and TypeScript agents, bundled and built with jco.
//!
//! The build runs in a work directory holding `wit/`, the `orbit` module
//! (`guest-sdk/js`), an entry module and a bundle configuration:
//!
//! ```text
//! entry.ts            import * as agent from "/abs/path/agent.ts";
//!                     import { __orbitAgent } from "orbit";
//!                     export const run = __orbitAgent(agent.run);
//! bundle.config.mjs   resolves the bare specifier "orbit" to the embedded SDK
//! ```
//!
//! `jco componentize entry.ts -w wit -n agent -d http fetch-event
//! --bundle-config bundle.config.mjs -o app.wasm`: jco bundles the entry,
//! the agent and what it imports (its siblings, and packages from its own
//! `node_modules`) with rolldown into one module, and componentize-js
//! pre-initializes StarlingMonkey with it. `-d http fetch-event` keeps
//! `wasi:http` out of the component (Orbit's guests reach HTTP through the
//! `fetch` primitive). `--aot` is never used: it downloads weval from
//! outside the package registries.
//!
//! The cache key covers every JavaScript, TypeScript and JSON file under
//! the agent's directory (`node_modules` and hidden directories excepted:
//! the npm lockfiles stand for them), and jco's and componentize-js's
//! versions.

use std::path::{Path, PathBuf};
use std::process::Command;

use include_dir::Dir;
use sha2::{Digest as _, Sha256};

use crate::{BuildError, Builder, Built, WIT, extract, hash_dir, hash_entry, io, process};

/// The jco version Orbit builds JavaScript and TypeScript agents with.
pub const JCO_VERSION: &str = "1.35.0";

/// The componentize-js version jco builds with (pinned by an npm override
/// in `guest-sdk/js/toolchain/package.json`).
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// The oldest Node.js that runs the toolchain (rolldown's floor).
const NODE_MIN: (u32, u32) = (20, 19);

/// The SDK's sources (`guest-sdk/js/src`).
static JS_SDK: Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../guest-sdk/js/src");

/// The SDK's `package.json`.
const JS_SDK_PACKAGE: &str = include_str!("../../../guest-sdk/js/package.json");

/// The toolchain's pinned manifest and lockfile, for `npm ci`.
const TOOLCHAIN_PACKAGE: &str = include_str!("../../../guest-sdk/js/toolchain/package.json");
const TOOLCHAIN_LOCK: &str = include_str!("../../../guest-sdk/js/toolchain/package-lock.json");

/// Source files that may be part of a bundle.
const SOURCE_EXTENSIONS: &[&str] = &["js", "mjs", "cjs", "ts", "mts", "cts", "jsx", "tsx", "json"];

/// At most this many source files are hashed for the cache key; an agent
/// in a directory with more (a home directory, say) is built every time
/// rather than risk a stale build.
const MAX_KEYED_FILES: usize = 5_000;

fn no_toolchain(how: &str) -> BuildError {
    BuildError::NoToolchain {
        language: "js",
        what: format!("jco {JCO_VERSION} with componentize-js {COMPONENTIZE_JS_VERSION}, on Node.js 20.19 or later"),
        how: how.to_owned(),
    }
}

impl Builder {
    /// The jco executable to use: the one given to [`Builder::toolchain`],
    /// else `ORBIT_JCO`, else the one [`Builder::install`] put under the SDK
    /// directory
    /// (`<sdk dir>/js/node_modules/.bin/jco`).
    ///
    /// # Errors
    /// [`BuildError::NoToolchain`] when neither exists.
    pub fn jco(&self) -> Result<PathBuf, BuildError> {
        let from_env = std::env::var_os("ORBIT_JCO").filter(|v| !v.is_empty());
        let candidate = match (&self.jco, from_env) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => PathBuf::from(path),
            (None, None) => self.sdk_dir.join("js/node_modules/.bin/jco"),
        };
        if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(no_toolchain("run `orbit sdk install js`, or set ORBIT_JCO to a jco executable"))
        }
    }

    pub(crate) fn build_js(&self, source: &Path, on_build: impl FnOnce(&str)) -> Result<Built, BuildError> {
        let jco = self.jco()?;
        check_versions(&jco)?;
        let source = std::path::absolute(source).map_err(io(source))?;
        // Read the file itself first, so a missing file is reported as such.
        std::fs::metadata(&source).map_err(io(&source))?;
        let src_dir = source.parent().unwrap_or(Path::new("/")).to_owned();
        let key = key(&source, &src_dir)?;
        if let Some(built) = key.as_deref().and_then(|k| self.cached(k)) {
            return Ok(built);
        }
        check_node()?;
        let work = self.work_dir()?;
        let work_path = work.path().to_owned();
        extract(&WIT, &work_path.join("wit"))?;
        extract(&JS_SDK, &work_path.join("orbit/src"))?;
        let package = work_path.join("orbit/package.json");
        std::fs::write(&package, JS_SDK_PACKAGE).map_err(io(&package))?;
        let entry = work_path.join("entry.ts");
        std::fs::write(&entry, entry_module(&source)).map_err(io(&entry))?;
        let config = work_path.join("bundle.config.mjs");
        std::fs::write(&config, bundle_config(&work_path.join("orbit/src/index.ts"))).map_err(io(&config))?;
        let out = work_path.join("app.wasm");
        on_build(&format!("building {} with jco {JCO_VERSION}", source.display()));
        let finished = process::run(
            Command::new(&jco)
                .current_dir(&work_path)
                .arg("componentize")
                .arg(&entry)
                .args(["-w", "wit", "-n", "agent", "-d", "http", "fetch-event", "--bundle-config"])
                .arg(&config)
                .arg("-o")
                .arg(&out)
                // Plain text: no colour codes in a message that may be
                // shown anywhere.
                .env("NO_COLOR", "1")
                .env("FORCE_COLOR", "0"),
            &jco,
        )?;
        if !finished.success || !out.is_file() {
            let output = build_message(&finished.output, &work_path);
            return Err(BuildError::Compile { file: source, output });
        }
        match key {
            Some(key) => self.store(&out, &key),
            None => {
                // Not cacheable: kept under a name of its own, replaced by
                // the next such build.
                let wasm = self.cache_dir.join("uncached-js.wasm");
                std::fs::copy(&out, &wasm).map_err(io(&wasm))?;
                Ok(Built { wasm, cached: false })
            }
        }
    }

    pub(crate) fn install_js(&self) -> Result<PathBuf, BuildError> {
        let dir = self.sdk_dir.join("js");
        let jco = dir.join("node_modules/.bin/jco");
        let installed = std::fs::read_to_string(dir.join("package-lock.json")).is_ok_and(|l| l == TOOLCHAIN_LOCK);
        if installed && jco.is_file() && check_versions(&jco).is_ok() {
            return Ok(jco);
        }
        let fail = |detail: String| BuildError::Install { language: "js", detail };
        check_node().map_err(|e| fail(e.to_string()))?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for (name, text) in [("package.json", TOOLCHAIN_PACKAGE), ("package-lock.json", TOOLCHAIN_LOCK)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        let npm = Path::new("npm");
        let finished = process::run(
            Command::new(npm).current_dir(&dir).args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]),
            npm,
        )
        .map_err(|e| fail(format!("npm could not be started ({e}): install Node.js 20.19 or later with npm")))?;
        if !finished.success {
            return Err(fail(finished.output));
        }
        check_versions(&jco)?;
        Ok(jco)
    }
}

/// Checks that `jco` belongs to an install of [`JCO_VERSION`] whose
/// componentize-js is [`COMPONENTIZE_JS_VERSION`], from their
/// `package.json` files (no Node.js start-up on a cached run).
fn check_versions(jco: &Path) -> Result<(), BuildError> {
    let real = std::fs::canonicalize(jco).map_err(io(jco))?;
    let package = real
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("package.json"))
        .find(|p| package_field(p, "name").as_deref() == Some("@bytecodealliance/jco"))
        .ok_or_else(|| no_toolchain("run `orbit sdk install js`, or set ORBIT_JCO to a jco executable"))?;
    let jco_dir = package.parent().unwrap_or(Path::new("/")).to_owned();
    let found = package_field(&package, "version").unwrap_or_default();
    wanted(&jco.display().to_string(), &found, JCO_VERSION)?;
    // npm installs componentize-js beside jco (or, on a conflict, inside it).
    let candidates = [
        jco_dir.join("node_modules/@bytecodealliance/componentize-js/package.json"),
        jco_dir.with_file_name("componentize-js").join("package.json"),
    ];
    let cjs = candidates.iter().find(|p| p.is_file()).ok_or_else(|| BuildError::WrongVersion {
        tool: "componentize-js".into(),
        found: "missing".into(),
        wanted: COMPONENTIZE_JS_VERSION,
        language: "js",
    })?;
    wanted("componentize-js", &package_field(cjs, "version").unwrap_or_default(), COMPONENTIZE_JS_VERSION)
}

fn wanted(tool: &str, found: &str, wanted: &'static str) -> Result<(), BuildError> {
    if found == wanted {
        return Ok(());
    }
    Err(BuildError::WrongVersion { tool: tool.to_owned(), found: found.to_owned(), wanted, language: "js" })
}

/// A top-level string field of a `package.json`.
fn package_field(path: &Path, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

/// Checks that `node` runs and is recent enough for the toolchain.
fn check_node() -> Result<(), BuildError> {
    let how = "install Node.js 20.19 or later (https://nodejs.org), then run `orbit sdk install js`";
    let out = Command::new("node").arg("--version").output().map_err(|_| no_toolchain(how))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if out.status.success() && version >= NODE_MIN {
        Ok(())
    } else {
        Err(BuildError::WrongVersion {
            tool: "node".into(),
            found: text.trim().to_owned(),
            wanted: "20.19 or later",
            language: "js",
        })
    }
}

/// The entry module: the agent's `run`, wrapped by the SDK so that an
/// `OrbitError` becomes the WIT error and anything else `internal`.
fn entry_module(source: &Path) -> String {
    // A JSON string is a valid JavaScript string literal for any path.
    let path = serde_json::to_string(&source.to_string_lossy()).unwrap_or_default();
    format!(
        "import * as agent from {path};\nimport {{ __orbitAgent }} from \"orbit\";\n\
         export const run = __orbitAgent((agent as {{ run?: unknown }}).run);\n"
    )
}

/// The bundle configuration: `orbit` is the embedded SDK, wherever the
/// agent lives; the `orbit:runtime` interfaces are the component's imports
/// (left to componentize-js, not resolved as files).
fn bundle_config(index: &Path) -> String {
    let index = serde_json::to_string(&index.to_string_lossy()).unwrap_or_default();
    format!("export default {{ resolve: {{ alias: {{ orbit: {index} }} }}, external: [/^orbit:runtime\\//] }};\n")
}

/// The cache key of a build of `source`, or `None` when its directory holds
/// more than [`MAX_KEYED_FILES`] source files.
fn key(source: &Path, src_dir: &Path) -> Result<Option<String>, BuildError> {
    let mut hash = Sha256::new();
    hash.update(b"orbit-sdk js\0");
    hash_entry(&mut hash, b"jco", JCO_VERSION.as_bytes());
    hash_entry(&mut hash, b"componentize-js", COMPONENTIZE_JS_VERSION.as_bytes());
    hash_dir(&mut hash, &WIT);
    hash_dir(&mut hash, &JS_SDK);
    hash_entry(&mut hash, b"package.json", JS_SDK_PACKAGE.as_bytes());
    hash_entry(&mut hash, b"entry", source.as_os_str().as_encoded_bytes());
    let mut files = Vec::new();
    if !sources_under(src_dir, &mut files) {
        return Ok(None);
    }
    // npm's own record of what is installed stands for `node_modules`.
    for lock in ["node_modules/.package-lock.json", "package-lock.json"] {
        let path = src_dir.join(lock);
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let name = path.strip_prefix(src_dir).unwrap_or(&path);
        hash_entry(&mut hash, name.as_os_str().as_encoded_bytes(), &bytes);
    }
    Ok(Some(hex::encode(hash.finalize())))
}

/// Collects the source files under `dir` (not `node_modules`, not hidden
/// entries, no symlinked directories); `false` when there are more than
/// [`MAX_KEYED_FILES`].
fn sources_under(dir: &Path, out: &mut Vec<PathBuf>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return true };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            if !sources_under(&path, out) {
                return false;
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| SOURCE_EXTENSIONS.contains(&e)) {
            out.push(path);
            if out.len() > MAX_KEYED_FILES {
                return false;
            }
        }
    }
    true
}

/// jco's failure as the agent's author needs it: without the work
/// directory's paths and without jco's own stack frames.
fn build_message(raw: &str, work: &Path) -> String {
    let work = format!("{}/", work.display());
    raw.lines()
        .filter(|line| !line.trim_start().starts_with("at ") && !line.contains("node_modules/"))
        .map(|line| line.replace(&work, ""))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_and_toolchain_are_there() {
        assert!(JS_SDK.get_file("index.ts").is_some());
        assert!(TOOLCHAIN_PACKAGE.contains(JCO_VERSION) && TOOLCHAIN_PACKAGE.contains(COMPONENTIZE_JS_VERSION));
        assert!(TOOLCHAIN_LOCK.contains(&format!("\"version\": \"{JCO_VERSION}\"")));
    }

    #[test]
    fn the_entry_module_quotes_any_path() {
        let entry = entry_module(Path::new("/tmp/a \"b\"\\c/agent.ts"));
        assert!(entry.starts_with(r#"import * as agent from "/tmp/a \"b\"\\c/agent.ts";"#), "{entry}");
    }

    #[test]
    fn the_key_follows_the_sources_but_not_node_modules() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent.ts");
        std::fs::write(&agent, "export function run(i: string) { return i; }").unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("node_modules/x/index.js"), "1").unwrap();
        let first = key(&agent, dir.path()).unwrap().unwrap();
        std::fs::write(dir.path().join("node_modules/x/index.js"), "2").unwrap();
        assert_eq!(key(&agent, dir.path()).unwrap().unwrap(), first, "node_modules is not hashed");
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.ts"), "export const x = 1;").unwrap();
        let with_lib = key(&agent, dir.path()).unwrap().unwrap();
        assert_ne!(with_lib, first, "a sibling module is part of the key");
        std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        assert_ne!(key(&agent, dir.path()).unwrap().unwrap(), with_lib, "the lockfile is part of the key");
    }

    #[test]
    fn build_messages_lose_the_work_directory_and_jco_frames() {
        let work = Path::new("/data/builds/orbit-build-x1");
        let raw = "Error: [PARSE_ERROR] /src/agent.ts:3:9 Expected `;`\n    at bundle (file:///sdk/js/node_modules/jco/dist/bundle.js:10:3)\n/data/builds/orbit-build-x1/entry.ts";
        let msg = build_message(raw, work);
        assert_eq!(msg, "Error: [PARSE_ERROR] /src/agent.ts:3:9 Expected `;`\nentry.ts");
    }
}
