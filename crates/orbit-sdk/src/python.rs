//! Python agents, built with componentize-py.
//!
//! The build runs in a work directory holding `wit/`, the `orbit` package
//! and a shim module `orbit_app` (which imports the agent, whose
//! `@orbit.agent` registers its `run`, and exports the SDK's `WitWorld`):
//! `componentize-py -d wit -w agent componentize orbit_app -p . -p SRC_DIR`.
//!
//! The cache key covers every `.py` file in the agent's directory (an agent
//! may import its siblings).

use std::path::{Path, PathBuf};
use std::process::Command;

use include_dir::Dir;
use sha2::{Digest as _, Sha256};

use crate::{BuildError, Builder, Built, WIT, extract, hash_dir, hash_entry, io, process};

/// The componentize-py version Orbit builds Python agents with (from PyPI).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The `orbit` Python package (`guest-sdk/python/orbit`).
static PYTHON_SDK: Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../guest-sdk/python/orbit");

/// The module componentize-py builds.
const PYTHON_SHIM: &str = "import {module}  # noqa: F401  (registers the @orbit.agent function)\n\
                           from orbit._world import WitWorld  # noqa: F401\n";

fn no_toolchain() -> BuildError {
    BuildError::NoToolchain {
        language: "python",
        what: format!("componentize-py {COMPONENTIZE_PY_VERSION}"),
        how: "run `orbit sdk install python`, or set ORBIT_COMPONENTIZE_PY to a componentize-py executable".into(),
    }
}

impl Builder {
    /// The componentize-py executable to use: the one given to
    /// [`Builder::toolchain`], else `ORBIT_COMPONENTIZE_PY`, else the one
    /// [`Builder::install`] put under the SDK directory.
    ///
    /// # Errors
    /// [`BuildError::NoToolchain`] when neither exists.
    pub fn componentize_py(&self) -> Result<PathBuf, BuildError> {
        let from_env = std::env::var_os("ORBIT_COMPONENTIZE_PY").filter(|v| !v.is_empty());
        let candidate = match (&self.componentize_py, from_env) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => PathBuf::from(path),
            (None, None) => self.sdk_dir.join("python/bin/componentize-py"),
        };
        if candidate.is_file() { Ok(candidate) } else { Err(no_toolchain()) }
    }

    pub(crate) fn build_python(&self, source: &Path, on_build: impl FnOnce(&str)) -> Result<Built, BuildError> {
        let tool = self.componentize_py()?;
        let version = version_of(&tool)?;
        if version != COMPONENTIZE_PY_VERSION {
            return Err(BuildError::WrongVersion {
                tool: tool.display().to_string(),
                found: version,
                wanted: COMPONENTIZE_PY_VERSION,
                language: "python",
            });
        }
        let source = std::path::absolute(source).map_err(io(source))?;
        let module = source.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let valid = module.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && module.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && module != "orbit"
            && module != "orbit_app";
        if !valid {
            return Err(BuildError::BadModuleName(source));
        }
        let src_dir = source.parent().unwrap_or(Path::new("/")).to_owned();
        // Read the file itself first, so a missing file is reported as such.
        std::fs::metadata(&source).map_err(io(&source))?;
        let key = key(&version, &src_dir)?;
        if let Some(built) = self.cached(&key) {
            return Ok(built);
        }
        let work = self.work_dir()?;
        extract(&WIT, &work.path().join("wit"))?;
        extract(&PYTHON_SDK, &work.path().join("orbit"))?;
        let shim = work.path().join("orbit_app.py");
        std::fs::write(&shim, PYTHON_SHIM.replace("{module}", &module)).map_err(io(&shim))?;
        let out = work.path().join("app.wasm");
        on_build(&format!("building {} with componentize-py {version}", source.display()));
        let finished = process::run(
            Command::new(&tool)
                .current_dir(work.path())
                .args(["-d", "wit", "-w", "agent", "componentize", "orbit_app", "-p", "."])
                .arg("-p")
                .arg(&src_dir)
                .arg("-o")
                .arg(&out)
                // No `__pycache__` left in the user's source directory.
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            &tool,
        )?;
        if !finished.success || !out.is_file() {
            let output = build_message(&finished.output, work.path(), &src_dir);
            return Err(BuildError::Compile { file: source, output });
        }
        self.store(&out, &key)
    }

    pub(crate) fn install_python(&self) -> Result<PathBuf, BuildError> {
        let venv = self.sdk_dir.join("python");
        let tool = venv.join("bin/componentize-py");
        if tool.is_file() && version_of(&tool).is_ok_and(|v| v == COMPONENTIZE_PY_VERSION) {
            return Ok(tool);
        }
        let fail = |detail: String| BuildError::Install { language: "python", detail };
        let run = |cmd: &mut Command, program: &Path| -> Result<(), BuildError> {
            let finished = process::run(cmd, program).map_err(|e| fail(e.to_string()))?;
            if finished.success { Ok(()) } else { Err(fail(finished.output)) }
        };
        std::fs::create_dir_all(&self.sdk_dir).map_err(io(&self.sdk_dir))?;
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), Path::new("python3"))?;
        let python = venv.join("bin/python");
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
            &python,
        )?;
        Ok(tool)
    }
}

/// The version `tool --version` reports (its last word).
fn version_of(tool: &Path) -> Result<String, BuildError> {
    let out = Command::new(tool).arg("--version").output().map_err(io(tool))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().last().unwrap_or_default().to_owned())
}

/// The cache key of a Python build of the sources in `src_dir`.
fn key(version: &str, src_dir: &Path) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    hash.update(b"orbit-sdk python\0");
    hash_entry(&mut hash, b"componentize-py", version.as_bytes());
    hash_dir(&mut hash, &WIT);
    hash_dir(&mut hash, &PYTHON_SDK);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(src_dir)
        .map_err(io(src_dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "py") && p.is_file())
        .collect();
    sources.sort();
    for path in sources {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        hash_entry(&mut hash, path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default(), &bytes);
    }
    Ok(hex::encode(hash.finalize()))
}

/// componentize-py's failure as the agent's author needs it: the Python
/// traceback from the agent's own files, under their real paths
/// (componentize-py names its python-path entries `/0`, `/1`: here the
/// build directory and the agent's directory), without the wrapper
/// script's frames or the build directory.
fn build_message(raw: &str, work: &Path, src_dir: &Path) -> String {
    let text = match raw.find("AssertionError: ") {
        Some(at) => &raw[at + "AssertionError: ".len()..],
        None => raw,
    };
    let src = format!("{}/", src_dir.display());
    text.replace("\"/1/", &format!("\"{src}"))
        .replace("\"/0/", "\"")
        .replace(&format!("{}/", work.display()), "")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_is_there() {
        assert!(PYTHON_SDK.get_file("__init__.py").is_some());
        assert!(PYTHON_SDK.get_file("_world.py").is_some());
    }
}
