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
    /// Bytes of artifacts the directory may hold.
    max_bytes: u64,
}

/// A temporary file older than this is a crashed writer's: removed.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

impl CompileCache {
    pub(crate) fn new(engine: &wasmtime::Engine, dir: Option<PathBuf>, max_bytes: u64) -> Result<Self, EngineError> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Cache { path: dir.clone(), source })?;
            make_private(dir);
        }
        Ok(Self { dir, compat: compatibility_key(engine), max_bytes })
    }

    /// Keeps the directory within `max_bytes`: removes the artifacts used
    /// least recently (a load from disk renews an artifact's time) until
    /// the rest fit, never `keep` (the one just written), and temporary
    /// files a crashed writer left. Artifacts of another engine
    /// configuration (another compatibility key) age out the same way,
    /// since another process may still use them.
    fn evict(&self, keep: &Path) {
        let Some(dir) = &self.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let now = std::time::SystemTime::now();
        let mut artifacts = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let (path, Ok(meta)) = (entry.path(), entry.metadata()) else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let used = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if name.ends_with(".cwasm") {
                total += meta.len();
                artifacts.push((used, meta.len(), path));
            } else if name.contains(".tmp.") && now.duration_since(used).is_ok_and(|age| age > STALE_TMP) {
                let _ = std::fs::remove_file(&path);
            }
        }
        artifacts.sort_by_key(|(used, _, _)| *used);
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    tracing::debug!(path = %path.display(), "evicted compiled artifact");
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "evicting compiled artifact"),
            }
        }
    }

    /// Marks `path` as just used, for [`CompileCache::evict`].
    fn touch(path: &Path) {
        if let Ok(file) = std::fs::File::options().write(true).open(path) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Whether artifacts in the cache directory may be trusted: loading one
    /// runs its machine code, so a directory (or file) that another user
    /// owns or may write could hand us anyone's code under any digest.
    fn trusted(&self, artifact: &Path) -> bool {
        let Some(dir) = &self.dir else { return false };
        let ok = private_to_us(dir) && private_to_us(artifact);
        if !ok {
            tracing::warn!(
                dir = %dir.display(),
                "compiled artifacts are not loaded from a directory (or file) another user owns or can write; \
                 compiling in memory instead (make it 0700 and owned by this user)"
            );
        }
        ok
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{digest}-{}.cwasm", self.compat)))
    }

    /// Whether a precompiled artifact for `digest` is already cached (and
    /// may be loaded).
    pub(crate) fn contains(&self, digest: &str) -> bool {
        self.artifact_path(digest).is_some_and(|p| p.is_file() && self.trusted(&p))
    }

    /// Loads the component for `wasm` (whose sha256 is `digest`) from the
    /// cache, compiling and caching it on a miss.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, wasm: &[u8], digest: &str) -> Result<Component, EngineError> {
        let Some(path) = self.artifact_path(digest) else {
            return compile(engine, wasm);
        };
        let dir_trusted = self.dir.as_deref().is_some_and(private_to_us);
        if !dir_trusted {
            // Neither read nor written: the result is used from memory only.
            let _ = self.trusted(&path);
            return compile(engine, wasm);
        }
        if path.is_file() && self.trusted(&path) {
            // SAFETY: the artifact was written by `store` below from
            // `Engine::precompile_component` of this same engine
            // configuration (the file name carries the compatibility hash),
            // into Orbit's data directory, which tenants cannot write.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => {
                    Self::touch(&path);
                    return Ok(component);
                }
                Err(err) => {
                    // A truncated or stale artifact: recompile over it.
                    tracing::warn!(path = %path.display(), error = %err, "discarding unusable compiled artifact");
                }
            }
        }
        let artifact = precompile(engine, wasm)?;
        self.store(&path, &artifact)?;
        self.evict(&path);
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
        let mut options = std::fs::File::options();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
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

pub(crate) fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Component, EngineError> {
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

/// Makes `dir` 0700 when this user owns it. A directory that others could
/// write may already hold planted artifacts, so tightening one also empties
/// it (it is only a cache). A directory another user owns is left alone and
/// refused by [`private_to_us`].
pub(crate) fn make_private(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let Ok(meta) = std::fs::metadata(dir) else { return };
        if Some(meta.uid()) != our_uid() || meta.mode() & 0o077 == 0 {
            return;
        }
        let was_writable = meta.mode() & 0o022 != 0;
        if std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).is_err() {
            return;
        }
        if was_writable {
            tracing::warn!(dir = %dir.display(), "compiled-artifact directory was writable by others: made private and emptied");
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// This process's user id (Linux: the owner of `/proc/self`).
#[cfg(unix)]
fn our_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Whether `path` is owned by this user and writable by no one else.
fn private_to_us(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(meta) = std::fs::metadata(path) else { return false };
        let owner_ok = our_uid().is_none_or(|uid| uid == meta.uid());
        owner_ok && meta.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

/// At most `max` compiles at once in one engine: a Cranelift compile of a
/// large component takes seconds of a core and hundreds of MB, and
/// wasmtime cannot interrupt one, so the cap is what bounds the memory and
/// CPU that compiles (including ones whose caller has stopped waiting) can
/// take. A blocking gate, because compiles run on blocking threads.
#[derive(Debug)]
pub(crate) struct CompileGate {
    max: usize,
    busy: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

/// One compile's place in the gate, given back on drop.
pub(crate) struct CompileSlot<'a>(&'a CompileGate);

impl CompileGate {
    /// A gate for `max` compiles at once (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Self { max: max.max(1), busy: std::sync::Mutex::new(0), freed: std::sync::Condvar::new() }
    }

    /// Waits for a place.
    pub(crate) fn enter(&self) -> CompileSlot<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *busy >= self.max {
            busy = self.freed.wait(busy).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *busy += 1;
        CompileSlot(self)
    }

    /// Compiles running now.
    pub(crate) fn busy(&self) -> usize {
        *self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for CompileSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *busy -= 1;
        self.0.freed.notify_one();
    }
}
