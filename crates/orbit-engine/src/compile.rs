//! Compile once: precompiled artifacts cached on disk, keyed by the sha256
//! of the wasm and the engine's `precompile_compatibility_hash()`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::error::EngineError;

/// Hex sha256 of `bytes`: the digest that names a component everywhere.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Feeds `std::hash::Hash` output into sha256, giving a stable hex key for
/// `Engine::precompile_compatibility_hash()`.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // unused: the full digest is read with `finalize`
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub(crate) fn compatibility_key(engine: &wasmtime::Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..16])
}

/// The on-disk cache of precompiled components.
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    compat: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &wasmtime::Engine, dir: Option<PathBuf>) -> Result<Self, EngineError> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Cache { path: dir.clone(), source })?;
        }
        Ok(Self { dir, compat: compatibility_key(engine) })
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{digest}-{}.cwasm", self.compat)))
    }

    /// Whether a precompiled artifact for `digest` is already cached.
    pub(crate) fn contains(&self, digest: &str) -> bool {
        self.artifact_path(digest).is_some_and(|p| p.is_file())
    }

    /// Loads the component for `wasm` (whose sha256 is `digest`) from the
    /// cache, compiling and caching it on a miss.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, wasm: &[u8], digest: &str) -> Result<Component, EngineError> {
        let Some(path) = self.artifact_path(digest) else {
            return compile(engine, wasm);
        };
        if path.is_file() {
            // SAFETY: the artifact was written by `store` below from
            // `Engine::precompile_component` of this same engine
            // configuration (the file name carries the compatibility hash),
            // into Orbit's data directory, which tenants cannot write.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => return Ok(component),
                Err(err) => {
                    // A truncated or stale artifact: recompile over it.
                    tracing::warn!(path = %path.display(), error = %err, "discarding unusable compiled artifact");
                }
            }
        }
        let artifact = precompile(engine, wasm)?;
        self.store(&path, &artifact)?;
        #[allow(unsafe_code)]
        // SAFETY: `artifact` was just produced by `precompile_component` on
        // this engine.
        let component = unsafe { Component::deserialize_file(engine, &path) }
            .map_err(|e| EngineError::Config(format!("loading freshly compiled artifact: {e}")))?;
        Ok(component)
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> Result<(), EngineError> {
        use std::io::Write;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // A temp name unique per process and per call, written, synced and
        // renamed into place: a reader never maps a partial artifact, even
        // when two threads compile the same component at once.
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
        let io = |source| EngineError::Cache { path: tmp.clone(), source };
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(artifact).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|source| EngineError::Cache { path: path.to_owned(), source })
    }
}

fn precompile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Vec<u8>, EngineError> {
    check_is_component(wasm)?;
    engine.precompile_component(wasm).map_err(|e| EngineError::NotAComponent(format!("{e:#}")))
}

fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Component, EngineError> {
    check_is_component(wasm)?;
    Component::new(engine, wasm).map_err(|e| EngineError::NotAComponent(format!("{e:#}")))
}

/// Refuses non-wasm files and core modules with a clear message before
/// handing bytes to the compiler.
fn check_is_component(wasm: &[u8]) -> Result<(), EngineError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(EngineError::NotAComponent("the file does not start with the wasm magic bytes".into()));
    }
    // Bytes 4..8: version and layer. Core modules are layer 0, version 1.
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(EngineError::NotAComponent(
            "this is a core wasm module; build for wasm32-wasip2 or run `wasm-tools component new`".into(),
        ));
    }
    Ok(())
}
