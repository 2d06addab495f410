//! Building Orbit guest components from source files, so that
//! `orbit run agent.py` works from any directory.
//!
//! Python is built with [componentize-py](https://github.com/bytecodealliance/componentize-py)
//! ([`COMPONENTIZE_PY_VERSION`]) against the `agent` world of `wit/`, with
//! the `orbit` Python package of `guest-sdk/python`; both are embedded in
//! this crate, so the build needs nothing from the repository.
//!
//! **Cache.** A build is kept under `<cache dir>/<key>.wasm`, where the key
//! is the SHA-256 of the language, the toolchain's version, the embedded SDK
//! and WIT, and every `.py` file in the source file's directory (an agent
//! may import its siblings). A second run of the same sources does not
//! build again.
//!
//! **Toolchain.** `componentize-py` is taken from `ORBIT_COMPONENTIZE_PY`
//! (a path to the executable) when set, else from the virtualenv that
//! [`Builder::install`] makes under `<sdk dir>/python`. Without either, a
//! build fails with [`BuildError::NoToolchain`], saying how to install it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use include_dir::{Dir, include_dir};
use sha2::{Digest as _, Sha256};

/// The componentize-py version Orbit builds Python agents with (from PyPI).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The WIT the guest SDKs are built against (`wit/` of the repository).
static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../wit");

/// The `orbit` Python package (`guest-sdk/python/orbit`).
static PYTHON_SDK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../guest-sdk/python/orbit");

/// The module componentize-py builds: it imports the agent (whose
/// `@orbit.agent` registers its `run`) and exports the SDK's `WitWorld`.
const PYTHON_SHIM: &str = "import {module}  # noqa: F401  (registers the @orbit.agent function)\n\
                           from orbit._world import WitWorld  # noqa: F401\n";

/// A guest language Orbit builds from source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Language {
    /// Python (`.py`), through componentize-py.
    Python,
}

impl Language {
    /// The language of `path` by its extension; `None` for anything else
    /// (a `.wasm` component is run as it is).
    pub fn of(path: &Path) -> Option<Language> {
        match path.extension()?.to_str()? {
            "py" => Some(Language::Python),
            _ => None,
        }
    }

    /// Its name, as in `orbit sdk install <name>`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
        }
    }
}

/// Why a build (or a toolchain install) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The language's toolchain is not installed.
    #[error(
        "the {language} toolchain (componentize-py {COMPONENTIZE_PY_VERSION}) is not installed: run `orbit sdk install \
         {language}`, or set ORBIT_COMPONENTIZE_PY to a componentize-py executable"
    )]
    NoToolchain {
        /// `python`.
        language: &'static str,
    },
    /// The toolchain found is not the version Orbit builds with.
    #[error("{tool} is version {found}; Orbit builds with {wanted}: run `orbit sdk install {language}`")]
    WrongVersion {
        /// The executable.
        tool: String,
        /// What it reported.
        found: String,
        /// [`COMPONENTIZE_PY_VERSION`].
        wanted: &'static str,
        /// `python`.
        language: &'static str,
    },
    /// The source file's name is not a Python module name.
    #[error("{0}: a Python agent's file name must be a module name (letters, digits, _; not starting with a digit)")]
    BadModuleName(PathBuf),
    /// The source does not build: the toolchain's own message, with the
    /// file names and line numbers of the user's sources.
    #[error("{file} does not build:\n{output}")]
    Compile {
        /// The source file.
        file: PathBuf,
        /// The toolchain's output.
        output: String,
    },
    /// Installing the toolchain failed.
    #[error("installing the {language} toolchain failed: {detail}")]
    Install {
        /// `python`.
        language: &'static str,
        /// What failed, with the installer's output.
        detail: String,
    },
    /// Reading the sources or writing the build failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io { path: path.to_owned(), source }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component (`<cache dir>/<key>.wasm`).
    pub wasm: PathBuf,
    /// `true` when it came from the cache, without building.
    pub cached: bool,
}

/// Builds components from source files, with a cache.
#[derive(Debug, Clone)]
pub struct Builder {
    cache_dir: PathBuf,
    sdk_dir: PathBuf,
}

impl Builder {
    /// A builder keeping builds in `cache_dir` and toolchains in `sdk_dir`
    /// (`orbit` uses `<data dir>/builds` and `<data dir>/sdk`).
    pub fn new(cache_dir: impl Into<PathBuf>, sdk_dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: cache_dir.into(), sdk_dir: sdk_dir.into() }
    }

    /// The componentize-py executable to use: `ORBIT_COMPONENTIZE_PY`, else
    /// the one [`Builder::install`] put under the SDK directory.
    ///
    /// # Errors
    /// [`BuildError::NoToolchain`] when neither exists.
    pub fn componentize_py(&self) -> Result<PathBuf, BuildError> {
        let candidate = match std::env::var_os("ORBIT_COMPONENTIZE_PY").filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => self.sdk_dir.join("python/bin/componentize-py"),
        };
        if candidate.is_file() { Ok(candidate) } else { Err(BuildError::NoToolchain { language: "python" }) }
    }

    /// The version `tool --version` reports (its last word).
    fn version_of(tool: &Path) -> Result<String, BuildError> {
        let out = Command::new(tool).arg("--version").output().map_err(io(tool))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.split_whitespace().last().unwrap_or_default().to_owned())
    }

    /// The component built from `source` (built now, or from the cache).
    /// `on_build` is called just before a build starts (to show progress).
    ///
    /// # Errors
    /// [`BuildError::NoToolchain`], [`BuildError::WrongVersion`],
    /// [`BuildError::BadModuleName`], [`BuildError::Compile`] or
    /// [`BuildError::Io`].
    pub fn build(&self, source: &Path, on_build: impl FnOnce(&str)) -> Result<Built, BuildError> {
        let language = Language::of(source).ok_or_else(|| BuildError::BadModuleName(source.to_owned()))?;
        match language {
            Language::Python => self.build_python(source, on_build),
        }
    }

    fn build_python(&self, source: &Path, on_build: impl FnOnce(&str)) -> Result<Built, BuildError> {
        let tool = self.componentize_py()?;
        let version = Self::version_of(&tool)?;
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
        let key = self.key_python(&version, &src_dir)?;
        let wasm = self.cache_dir.join(format!("{key}.wasm"));
        if wasm.is_file() {
            return Ok(Built { wasm, cached: true });
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(io(&self.cache_dir))?;
        let work =
            tempfile::Builder::new().prefix("orbit-build-").tempdir_in(&self.cache_dir).map_err(io(&self.cache_dir))?;
        for (dir, name) in [(&WIT, "wit"), (&PYTHON_SDK, "orbit")] {
            let to = work.path().join(name);
            std::fs::create_dir_all(&to).map_err(io(&to))?;
            dir.extract(&to).map_err(io(&to))?;
        }
        let shim = work.path().join("orbit_app.py");
        std::fs::write(&shim, PYTHON_SHIM.replace("{module}", &module)).map_err(io(&shim))?;
        let out = work.path().join("app.wasm");
        on_build(&format!("building {} with componentize-py {version}", source.display()));
        let mut child = Command::new(&tool)
            .current_dir(work.path())
            .args(["-d", "wit", "-w", "agent", "componentize", "orbit_app", "-p", "."])
            .arg("-p")
            .arg(&src_dir)
            .arg("-o")
            .arg(&out)
            // componentize-py is a Rust program: no Rust backtrace of its own
            // in a message meant for the agent's author.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            // No `__pycache__` left in the user's source directory.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(&tool))?;
        let mut stderr = String::new();
        let reader = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        let mut stdout = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(r) = reader {
            stderr = r.join().unwrap_or_default();
        }
        let status = child.wait().map_err(io(&tool))?;
        if !status.success() || !out.is_file() {
            let output = python_build_message(&format!("{stdout}{stderr}"), work.path(), &src_dir);
            return Err(BuildError::Compile { file: source, output });
        }
        // Into place atomically: a reader never sees half a component.
        let tmp = self.cache_dir.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::copy(&out, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &wasm).map_err(io(&wasm))?;
        Ok(Built { wasm, cached: false })
    }

    /// The cache key of a Python build of the sources in `src_dir`.
    fn key_python(&self, version: &str, src_dir: &Path) -> Result<String, BuildError> {
        let mut hash = Sha256::new();
        hash.update(b"orbit-sdk python\0");
        hash.update(version.as_bytes());
        hash.update(b"\0");
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
            hash.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            hash.update(b"\0");
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
        Ok(hex::encode(hash.finalize()))
    }

    /// Installs the toolchain of `language` under the SDK directory: a
    /// Python virtualenv (`python3 -m venv`) with componentize-py
    /// [`COMPONENTIZE_PY_VERSION`] from PyPI. Does nothing when it is there.
    ///
    /// # Errors
    /// [`BuildError::Install`] when `python3` or `pip` fails.
    pub fn install(&self, language: Language) -> Result<PathBuf, BuildError> {
        let Language::Python = language;
        let venv = self.sdk_dir.join("python");
        let tool = venv.join("bin/componentize-py");
        if tool.is_file() && Self::version_of(&tool).is_ok_and(|v| v == COMPONENTIZE_PY_VERSION) {
            return Ok(tool);
        }
        let fail = |detail: String| BuildError::Install { language: "python", detail };
        let run = |cmd: &mut Command| -> Result<(), BuildError> {
            let out = cmd.stdin(Stdio::null()).output().map_err(|e| fail(format!("{cmd:?}: {e}")))?;
            if out.status.success() {
                return Ok(());
            }
            Err(fail(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
        };
        std::fs::create_dir_all(&self.sdk_dir).map_err(io(&self.sdk_dir))?;
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")))?;
        Ok(tool)
    }
}

/// componentize-py's failure as the agent's author needs it: the Python
/// traceback from the agent's own files, under their real paths
/// (componentize-py names its python-path entries `/0`, `/1`: here the
/// build directory and the agent's directory), without the wrapper
/// script's frames or the build directory.
fn python_build_message(raw: &str, work: &Path, src_dir: &Path) -> String {
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

fn hash_dir(hash: &mut Sha256, dir: &Dir<'_>) {
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort_by_key(|f| f.path());
    // Byte-code caches a local build may have left are not part of the SDK.
    files.retain(|f| !f.path().components().any(|c| c.as_os_str() == "__pycache__"));
    for file in files {
        hash.update(file.path().as_os_str().as_encoded_bytes());
        hash.update(b"\0");
        hash.update((file.contents().len() as u64).to_le_bytes());
        hash.update(file.contents());
    }
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for file in dir.files() {
        out.push(file);
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension() {
        assert_eq!(Language::of(Path::new("a/agent.py")), Some(Language::Python));
        assert_eq!(Language::of(Path::new("agent.wasm")), None);
        assert_eq!(Language::of(Path::new("agent")), None);
    }

    #[test]
    fn the_embedded_sdk_and_wit_are_there() {
        assert!(WIT.get_file("world.wit").is_some());
        assert!(PYTHON_SDK.get_file("__init__.py").is_some());
        assert!(PYTHON_SDK.get_file("_world.py").is_some());
    }
}
