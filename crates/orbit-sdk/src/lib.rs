//! Building Orbit guest components from source files, so that
//! `orbit run agent.py` and `orbit run agent.ts` work from any directory.
//!
//! - **Python** (`.py`) is built with
//!   [componentize-py](https://github.com/bytecodealliance/componentize-py)
//!   ([`COMPONENTIZE_PY_VERSION`]) with the `orbit` package of
//!   `guest-sdk/python`.
//! - **JavaScript and TypeScript** (`.js`, `.mjs`, `.ts`, `.mts`) are
//!   bundled and built with [jco](https://github.com/bytecodealliance/jco)
//!   ([`JCO_VERSION`], componentize-js [`COMPONENTIZE_JS_VERSION`]) with the
//!   `orbit` module of `guest-sdk/js`.
//!
//! Both build against the `agent` world of `wit/`. The WIT and both SDKs
//! are embedded in this crate, so a build needs nothing from the repository.
//!
//! **Cache.** A build is kept under `<cache dir>/<key>.wasm`, where the key
//! is the SHA-256 of the language, the toolchain's versions, the embedded
//! SDK and WIT, and the agent's sources (see each language's module). A
//! second run of the same sources does not build again.
//!
//! **Toolchains** are found through an environment variable naming the
//! executable (`ORBIT_COMPONENTIZE_PY`, `ORBIT_JCO`), else under the SDK
//! directory where [`Builder::install`] puts them. Without one, a build
//! fails with [`BuildError::NoToolchain`], saying how to install it.

use std::path::{Path, PathBuf};

use include_dir::Dir;
use sha2::{Digest as _, Sha256};

mod js;
mod process;
mod python;

pub use js::{COMPONENTIZE_JS_VERSION, JCO_VERSION};
pub use python::COMPONENTIZE_PY_VERSION;

/// The WIT the guest SDKs are built against (`wit/` of the repository).
static WIT: Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../wit");

/// A guest language Orbit builds from source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Language {
    /// Python (`.py`), through componentize-py.
    Python,
    /// JavaScript or TypeScript (`.js`, `.mjs`, `.ts`, `.mts`), through jco.
    JavaScript,
}

impl Language {
    /// The language of `path` by its extension; `None` for anything else
    /// (a `.wasm` component is run as it is).
    pub fn of(path: &Path) -> Option<Language> {
        match path.extension()?.to_str()? {
            "py" => Some(Language::Python),
            "js" | "mjs" | "ts" | "mts" => Some(Language::JavaScript),
            _ => None,
        }
    }

    /// The language `orbit sdk install NAME` names: `python` (or `py`),
    /// `js` (or `javascript`, `ts`, `typescript`).
    pub fn named(name: &str) -> Option<Language> {
        match name {
            "python" | "py" => Some(Language::Python),
            "js" | "javascript" | "ts" | "typescript" => Some(Language::JavaScript),
            _ => None,
        }
    }

    /// Its name, as in `orbit sdk install <name>`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }

    /// The toolchain and where it comes from, for progress messages:
    /// `componentize-py 0.25.1 from PyPI`.
    pub fn toolchain(self) -> String {
        match self {
            Language::Python => format!("componentize-py {COMPONENTIZE_PY_VERSION} from PyPI"),
            Language::JavaScript => {
                format!("jco {JCO_VERSION} and componentize-js {COMPONENTIZE_JS_VERSION} from npm")
            }
        }
    }
}

/// Why a build (or a toolchain install) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The file's extension is not a language Orbit builds.
    #[error("{0}: not a source file Orbit builds (.py, .js, .mjs, .ts or .mts)")]
    UnknownLanguage(PathBuf),
    /// The language's toolchain (or what it runs on, such as Node.js) is
    /// not installed.
    #[error("the {language} toolchain ({what}) is not installed: {how}")]
    NoToolchain {
        /// `python` or `js`.
        language: &'static str,
        /// What is missing, with its version.
        what: String,
        /// How to install it.
        how: String,
    },
    /// The toolchain found is not the version Orbit builds with.
    #[error("{tool} is version {found}; Orbit builds with {wanted}: run `orbit sdk install {language}`")]
    WrongVersion {
        /// The executable or package.
        tool: String,
        /// What it reported.
        found: String,
        /// The version Orbit pins.
        wanted: &'static str,
        /// `python` or `js`.
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
        /// `python` or `js`.
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

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
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
    /// Executables set with [`Builder::toolchain`], before the environment.
    componentize_py: Option<PathBuf>,
    jco: Option<PathBuf>,
}

impl Builder {
    /// A builder keeping builds in `cache_dir` and toolchains in `sdk_dir`
    /// (`orbit` uses `<data dir>/builds` and `<data dir>/sdk`).
    pub fn new(cache_dir: impl Into<PathBuf>, sdk_dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: cache_dir.into(), sdk_dir: sdk_dir.into(), componentize_py: None, jco: None }
    }

    /// Builds `language` with `executable` (componentize-py for Python, jco
    /// for JavaScript), ahead of the environment variable and the SDK
    /// directory; for programs that embed the builder and keep their own
    /// toolchains.
    #[must_use]
    pub fn toolchain(mut self, language: Language, executable: impl Into<PathBuf>) -> Self {
        match language {
            Language::Python => self.componentize_py = Some(executable.into()),
            Language::JavaScript => self.jco = Some(executable.into()),
        }
        self
    }

    /// The component built from `source` (built now, or from the cache).
    /// `on_build` is called just before a build starts (to show progress).
    ///
    /// # Errors
    /// [`BuildError::UnknownLanguage`], [`BuildError::NoToolchain`],
    /// [`BuildError::WrongVersion`], [`BuildError::BadModuleName`],
    /// [`BuildError::Compile`] or [`BuildError::Io`].
    pub fn build(&self, source: &Path, on_build: impl FnOnce(&str)) -> Result<Built, BuildError> {
        match Language::of(source) {
            Some(Language::Python) => self.build_python(source, on_build),
            Some(Language::JavaScript) => self.build_js(source, on_build),
            None => Err(BuildError::UnknownLanguage(source.to_owned())),
        }
    }

    /// Installs the toolchain of `language` under the SDK directory and
    /// returns the path of its executable; does nothing when the pinned
    /// version is there. Python: a virtualenv (`python3 -m venv`) with
    /// componentize-py [`COMPONENTIZE_PY_VERSION`] from PyPI. JavaScript:
    /// `npm ci` of a committed lockfile pinning jco [`JCO_VERSION`] and
    /// componentize-js [`COMPONENTIZE_JS_VERSION`] (Node.js 20.19 or later
    /// and npm must be installed).
    ///
    /// # Errors
    /// [`BuildError::Install`] when the installer fails, [`BuildError::Io`]
    /// when the SDK directory cannot be written.
    pub fn install(&self, language: Language) -> Result<PathBuf, BuildError> {
        match language {
            Language::Python => self.install_python(),
            Language::JavaScript => self.install_js(),
        }
    }

    /// Puts a finished build into the cache under `key`, atomically: a
    /// reader never sees half a component.
    fn store(&self, built: &Path, key: &str) -> Result<Built, BuildError> {
        let wasm = self.cache_dir.join(format!("{key}.wasm"));
        let tmp = self.cache_dir.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::copy(built, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &wasm).map_err(io(&wasm))?;
        Ok(Built { wasm, cached: false })
    }

    /// The cached build under `key`, if there is one.
    fn cached(&self, key: &str) -> Option<Built> {
        let wasm = self.cache_dir.join(format!("{key}.wasm"));
        wasm.is_file().then_some(Built { wasm, cached: true })
    }

    /// A fresh work directory for one build, inside the cache directory
    /// (removed when dropped).
    fn work_dir(&self) -> Result<tempfile::TempDir, BuildError> {
        std::fs::create_dir_all(&self.cache_dir).map_err(io(&self.cache_dir))?;
        tempfile::Builder::new().prefix("orbit-build-").tempdir_in(&self.cache_dir).map_err(io(&self.cache_dir))
    }
}

/// Writes the embedded `dir` out under `to`.
fn extract(dir: &Dir<'_>, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    dir.extract(to).map_err(io(to))
}

/// Adds one named byte string to a cache key (length-framed, so two
/// different sequences of entries never hash alike).
fn hash_entry(hash: &mut Sha256, name: &[u8], bytes: &[u8]) {
    hash.update(name);
    hash.update(b"\0");
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// Adds every file of an embedded directory to a cache key.
fn hash_dir(hash: &mut Sha256, dir: &Dir<'_>) {
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort_by_key(|f| f.path());
    // Byte-code caches a local build may have left are not part of the SDK.
    files.retain(|f| !f.path().components().any(|c| c.as_os_str() == "__pycache__"));
    for file in files {
        hash_entry(hash, file.path().as_os_str().as_encoded_bytes(), file.contents());
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
        for name in ["agent.ts", "agent.js", "agent.mjs", "agent.mts"] {
            assert_eq!(Language::of(Path::new(name)), Some(Language::JavaScript), "{name}");
        }
        assert_eq!(Language::of(Path::new("agent.wasm")), None);
        assert_eq!(Language::of(Path::new("agent.d")), None);
        assert_eq!(Language::of(Path::new("agent")), None);
    }

    #[test]
    fn languages_by_name() {
        assert_eq!(Language::named("py"), Some(Language::Python));
        assert_eq!(Language::named("typescript"), Some(Language::JavaScript));
        assert_eq!(Language::named("ruby"), None);
        for language in [Language::Python, Language::JavaScript] {
            assert_eq!(Language::named(language.name()), Some(language));
        }
    }

    #[test]
    fn an_unknown_extension_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let builder = Builder::new(dir.path().join("builds"), dir.path().join("sdk"));
        let err = builder.build(Path::new("agent.rb"), |_| {}).unwrap_err();
        assert!(matches!(err, BuildError::UnknownLanguage(_)), "{err}");
    }

    #[test]
    fn the_embedded_wit_is_there() {
        assert!(WIT.get_file("world.wit").is_some());
    }
}
