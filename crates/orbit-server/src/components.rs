//! Submitted components, kept per workspace and content-addressed by the
//! sha256 of their bytes, within a byte cap per workspace.
//!
//! Invariants:
//! - A workspace's components live in `<dir>/<workspace>/`, so a workspace
//!   runs only what it submitted itself, and its bytes are counted against
//!   its own cap only.
//! - A component's file modification time is its **last use**: set when it
//!   is submitted (again) and when a run or a job registration reads it.
//! - Cleanup deletes only components unused for a while: those unused for
//!   [`ComponentCaps::max_idle_ms`] at every submission to the workspace;
//!   and, when a submission would pass [`ComponentCaps::max_bytes_per_workspace`],
//!   the least recently used ones unused for [`ComponentCaps::min_keep_ms`]
//!   (a component just submitted for a run about to start is never taken).
//!   Runs read a component's bytes before they start, so deleting one never
//!   affects a run in flight; jobs keep their own copy of their component.
//! - Files are written to a temporary name and renamed into place, so a
//!   reader never sees a partial component.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use orbit::WorkspaceId;

/// How much a workspace may keep in submitted components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentCaps {
    /// The most bytes of components one workspace keeps (default 512 MiB:
    /// sixteen components at the engine's 32 MiB component cap).
    pub max_bytes_per_workspace: u64,
    /// A component unused for this long is deleted at the workspace's next
    /// submission, in ms (default 30 days).
    pub max_idle_ms: u64,
    /// A component used this recently is never deleted to make room, in ms
    /// (default 10 minutes): a submission over the cap is refused instead.
    pub min_keep_ms: u64,
}

impl Default for ComponentCaps {
    fn default() -> Self {
        Self { max_bytes_per_workspace: 512 << 20, max_idle_ms: 30 * 24 * 3_600_000, min_keep_ms: 10 * 60_000 }
    }
}

/// A directory of submitted components: `<dir>/<workspace>/<sha256>.wasm`,
/// so a component is sent once and then run by digest.
#[derive(Debug)]
pub struct ComponentStore {
    dir: PathBuf,
    caps: ComponentCaps,
    tmp_counter: AtomicU64,
    /// Held while a submission counts, cleans up and writes, so two
    /// submissions cannot both fit in the same free bytes.
    writing: Mutex<()>,
}

/// Errors of the [`ComponentStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentStoreError {
    /// The digest is not 64 lowercase hex digits (the sha256 of the bytes).
    #[error("a digest is the sha256 of the component: 64 lowercase hex digits")]
    BadDigest,
    /// No component with this digest was submitted to this workspace (or it
    /// was cleaned up after going unused).
    #[error("no component with this digest was submitted to this workspace (or it went unused and was removed)")]
    NotFound,
    /// Keeping the component would pass the workspace's byte cap, and every
    /// component it keeps was used within [`ComponentCaps::min_keep_ms`].
    #[error(
        "the workspace's components would take {needed} bytes, over its cap of {cap} bytes; the components it keeps \
         were all used in the last {keep_min} minutes"
    )]
    QuotaExceeded {
        /// Bytes kept plus the new component's, in bytes.
        needed: u64,
        /// [`ComponentCaps::max_bytes_per_workspace`].
        cap: u64,
        /// [`ComponentCaps::min_keep_ms`], in minutes.
        keep_min: u64,
    },
    /// Reading or writing the directory failed.
    #[error("component store {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One kept component, for cleanup.
struct Kept {
    path: PathBuf,
    bytes: u64,
    last_use: SystemTime,
}

impl ComponentStore {
    /// Opens (creating if needed) the store at `dir` with the default caps.
    ///
    /// # Errors
    /// [`ComponentStoreError::Io`] when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ComponentStoreError> {
        Self::open_with(dir, ComponentCaps::default())
    }

    /// Opens (creating if needed) the store at `dir` with `caps`.
    ///
    /// # Errors
    /// [`ComponentStoreError::Io`] when the directory cannot be created.
    pub fn open_with(dir: impl Into<PathBuf>, caps: ComponentCaps) -> Result<Self, ComponentStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| ComponentStoreError::Io { path: dir.clone(), source })?;
        Ok(Self { dir, caps, tmp_counter: AtomicU64::new(0), writing: Mutex::new(()) })
    }

    /// The directory the components are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The caps in force.
    pub fn caps(&self) -> ComponentCaps {
        self.caps
    }

    /// Keeps `wasm` under `digest` (which must be its sha256, as returned by
    /// [`orbit::orbit_engine::digest`]) for workspace `ws`, first deleting
    /// its components unused for [`ComponentCaps::max_idle_ms`] and, when
    /// the cap requires it, the least recently used ones beyond
    /// [`ComponentCaps::min_keep_ms`]. When it is already kept, this only
    /// marks it used.
    ///
    /// # Errors
    /// [`ComponentStoreError::BadDigest`],
    /// [`ComponentStoreError::QuotaExceeded`] or [`ComponentStoreError::Io`].
    pub fn put(&self, ws: &WorkspaceId, digest: &str, wasm: &[u8]) -> Result<(), ComponentStoreError> {
        let path = self.path_of(ws, digest)?;
        let io = |source, path: &Path| ComponentStoreError::Io { path: path.to_owned(), source };
        let _writing = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if touch(&path).is_ok() {
            return Ok(());
        }
        let ws_dir = self.dir.join(ws.as_str());
        std::fs::create_dir_all(&ws_dir).map_err(|e| io(e, &ws_dir))?;
        self.make_room(&ws_dir, wasm.len() as u64)?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = ws_dir.join(format!(".{digest}.{}.{n}.tmp", std::process::id()));
        // Synced, renamed, and the rename synced: after a power loss the
        // component is whole or absent (and `get` checks it anyway).
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, wasm)?;
            f.sync_all()
        });
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e, &tmp)
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e, &path)
        })?;
        std::fs::File::open(&ws_dir).and_then(|d| d.sync_all()).map_err(|e| io(e, &ws_dir))
    }

    /// The bytes of workspace `ws`'s component with this digest, checked
    /// against it; marks it used. A kept file whose bytes no longer hash to
    /// its digest is removed and answered as [`ComponentStoreError::NotFound`].
    ///
    /// # Errors
    /// [`ComponentStoreError::BadDigest`], [`ComponentStoreError::NotFound`]
    /// or [`ComponentStoreError::Io`].
    pub fn get(&self, ws: &WorkspaceId, digest: &str) -> Result<Vec<u8>, ComponentStoreError> {
        let path = self.path_of(ws, digest)?;
        match std::fs::read(&path) {
            Ok(bytes) if orbit::orbit_engine::digest(&bytes) != digest => {
                // Damaged on disk (or by hand): never run other bytes than
                // the caller named. Removed, so the next upload replaces it.
                tracing::error!(path = %path.display(), "a kept component does not match its digest; removed");
                let _ = std::fs::remove_file(&path);
                Err(ComponentStoreError::NotFound)
            }
            Ok(bytes) => {
                // Best effort: a failed touch only makes it look older.
                let _ = touch(&path);
                Ok(bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ComponentStoreError::NotFound),
            Err(source) => Err(ComponentStoreError::Io { path, source }),
        }
    }

    /// Bytes workspace `ws` keeps in components.
    ///
    /// # Errors
    /// [`ComponentStoreError::Io`] when its directory cannot be read.
    pub fn bytes_kept(&self, ws: &WorkspaceId) -> Result<u64, ComponentStoreError> {
        Ok(kept(&self.dir.join(ws.as_str()))?.iter().map(|k| k.bytes).sum())
    }

    /// Deletes what has been idle too long, then the least recently used
    /// components beyond `min_keep_ms` until `incoming` more bytes fit.
    fn make_room(&self, ws_dir: &Path, incoming: u64) -> Result<(), ComponentStoreError> {
        let now = SystemTime::now();
        let idle_for = |k: &Kept| now.duration_since(k.last_use).unwrap_or(Duration::ZERO);
        let mut kept = kept(ws_dir)?;
        let max_idle = Duration::from_millis(self.caps.max_idle_ms);
        let (stale, mut live): (Vec<Kept>, Vec<Kept>) = kept.drain(..).partition(|k| idle_for(k) >= max_idle);
        for k in stale {
            remove(&k.path)?;
        }
        let mut total: u64 = live.iter().map(|k| k.bytes).sum();
        let needed = total.saturating_add(incoming);
        if needed <= self.caps.max_bytes_per_workspace {
            return Ok(());
        }
        live.sort_by_key(|k| k.last_use);
        let keep = Duration::from_millis(self.caps.min_keep_ms);
        let evictable: u64 = live.iter().filter(|k| idle_for(k) >= keep).map(|k| k.bytes).sum();
        if total - evictable + incoming > self.caps.max_bytes_per_workspace {
            // Refuse without deleting anything: the submission fails whole.
            return Err(ComponentStoreError::QuotaExceeded {
                needed,
                cap: self.caps.max_bytes_per_workspace,
                keep_min: self.caps.min_keep_ms / 60_000,
            });
        }
        for k in live.iter().filter(|k| idle_for(k) >= keep) {
            if total + incoming <= self.caps.max_bytes_per_workspace {
                break;
            }
            remove(&k.path)?;
            total -= k.bytes;
        }
        Ok(())
    }

    fn path_of(&self, ws: &WorkspaceId, digest: &str) -> Result<PathBuf, ComponentStoreError> {
        // Only hex reaches the file system: no separators, no `..`; a
        // workspace id is a slug (`[a-z0-9][a-z0-9_-]*`).
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ComponentStoreError::BadDigest);
        }
        Ok(self.dir.join(ws.as_str()).join(format!("{digest}.wasm")))
    }
}

/// Marks `path` used now.
fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options().write(true).open(path)?.set_modified(SystemTime::now())
}

fn remove(path: &Path) -> Result<(), ComponentStoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ComponentStoreError::Io { path: path.to_owned(), source }),
    }
}

/// The components kept in `ws_dir` (none when it does not exist yet).
fn kept(ws_dir: &Path) -> Result<Vec<Kept>, ComponentStoreError> {
    let io = |source, path: &Path| ComponentStoreError::Io { path: path.to_owned(), source };
    let entries = match std::fs::read_dir(ws_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e, ws_dir)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(e, ws_dir))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let meta = entry.metadata().map_err(|e| io(e, &path))?;
        out.push(Kept { bytes: meta.len(), last_use: meta.modified().map_err(|e| io(e, &path))?, path });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(s: &str) -> WorkspaceId {
        WorkspaceId::new(s).unwrap()
    }

    /// The sha256 of `bytes`, as the store keys them.
    fn d(bytes: &[u8]) -> String {
        orbit::orbit_engine::digest(bytes)
    }

    fn age(store: &ComponentStore, w: &WorkspaceId, digest: &str, ago_ms: u64) {
        let path = store.path_of(w, digest).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_millis(ago_ms)).unwrap();
    }

    #[test]
    fn put_get_and_digest_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path().join("components")).unwrap();
        let digest = d(b"\0asm-bytes");
        store.put(&ws("acme"), &digest, b"\0asm-bytes").unwrap();
        store.put(&ws("acme"), &digest, b"\0asm-bytes").unwrap();
        assert_eq!(store.get(&ws("acme"), &digest).unwrap(), b"\0asm-bytes");
        assert!(matches!(store.get(&ws("acme"), &"cd".repeat(32)), Err(ComponentStoreError::NotFound)));
        // Another workspace does not see it.
        assert!(matches!(store.get(&ws("zeta"), &digest), Err(ComponentStoreError::NotFound)));
        for bad in ["../../etc/passwd", "AB".repeat(32).as_str(), "abc", &format!("{}/x", "a".repeat(62))] {
            assert!(matches!(store.get(&ws("acme"), bad), Err(ComponentStoreError::BadDigest)), "{bad}");
        }
        // Only the component itself is left in the directory.
        let names: Vec<_> =
            std::fs::read_dir(store.dir().join("acme")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(format!("{digest}.wasm"))]);
        assert_eq!(store.bytes_kept(&ws("acme")).unwrap(), 10);
        assert_eq!(store.bytes_kept(&ws("zeta")).unwrap(), 0);
    }

    /// A kept component damaged on disk is never handed out as the digest
    /// it no longer matches: it is removed and reads as not found, and a
    /// new upload of the right bytes replaces it.
    #[test]
    fn a_damaged_component_is_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path().join("components")).unwrap();
        let acme = ws("acme");
        let digest = d(b"\0asm-good");
        store.put(&acme, &digest, b"\0asm-good").unwrap();
        std::fs::write(store.path_of(&acme, &digest).unwrap(), b"\0asm-evil").unwrap();
        assert!(matches!(store.get(&acme, &digest), Err(ComponentStoreError::NotFound)));
        assert!(!store.path_of(&acme, &digest).unwrap().exists(), "the damaged file is removed");
        store.put(&acme, &digest, b"\0asm-good").unwrap();
        assert_eq!(store.get(&acme, &digest).unwrap(), b"\0asm-good");
    }

    #[test]
    fn the_cap_evicts_least_recently_used_idle_components_and_refuses_when_all_are_recent() {
        let dir = tempfile::tempdir().unwrap();
        let caps = ComponentCaps { max_bytes_per_workspace: 300, max_idle_ms: 3_600_000, min_keep_ms: 60_000 };
        let store = ComponentStore::open_with(dir.path(), caps).unwrap();
        let (a, b, c, dd) = (d(&[1; 100]), d(&[2; 100]), d(&[3; 100]), d(&[4; 100]));
        let acme = ws("acme");
        store.put(&acme, &a, &[1; 100]).unwrap();
        store.put(&acme, &b, &[2; 100]).unwrap();
        store.put(&acme, &c, &[3; 100]).unwrap();
        // All three used within min_keep_ms: a fourth is refused, nothing lost.
        let err = store.put(&acme, &dd, &[4; 100]).unwrap_err();
        assert!(matches!(err, ComponentStoreError::QuotaExceeded { needed: 400, cap: 300, keep_min: 1 }), "{err}");
        for x in [&a, &b, &c] {
            assert!(store.get(&acme, x).is_ok());
        }
        // a used 5 min ago, b 10 min ago, c now: b (least recently used) goes.
        age(&store, &acme, &a, 300_000);
        age(&store, &acme, &b, 600_000);
        store.put(&acme, &dd, &[4; 100]).unwrap();
        assert!(matches!(store.get(&acme, &b), Err(ComponentStoreError::NotFound)));
        // get() marks use: a is now the most recent, so c goes next.
        age(&store, &acme, &c, 120_000);
        age(&store, &acme, &dd, 120_000);
        store.get(&acme, &a).unwrap();
        age(&store, &acme, &dd, 60_000);
        store.put(&acme, &b, &[2; 100]).unwrap();
        assert!(matches!(store.get(&acme, &c), Err(ComponentStoreError::NotFound)));
        assert!(store.get(&acme, &a).is_ok() && store.get(&acme, &dd).is_ok() && store.get(&acme, &b).is_ok());
        // Another workspace has its own cap.
        store.put(&ws("zeta"), &d(&[3; 300]), &[3; 300]).unwrap();
        assert_eq!(store.bytes_kept(&acme).unwrap(), 300);
    }

    #[test]
    fn components_idle_past_max_idle_are_deleted_at_the_next_submission() {
        let dir = tempfile::tempdir().unwrap();
        let caps = ComponentCaps { max_bytes_per_workspace: 1 << 20, max_idle_ms: 3_600_000, min_keep_ms: 60_000 };
        let store = ComponentStore::open_with(dir.path(), caps).unwrap();
        let acme = ws("acme");
        store.put(&acme, &d(b"old"), b"old").unwrap();
        store.put(&acme, &d(b"recent"), b"recent").unwrap();
        age(&store, &acme, &d(b"old"), 3_700_000);
        age(&store, &acme, &d(b"recent"), 3_500_000);
        store.put(&acme, &d(b"new"), b"new").unwrap();
        assert!(matches!(store.get(&acme, &d(b"old")), Err(ComponentStoreError::NotFound)));
        assert_eq!(store.get(&acme, &d(b"recent")).unwrap(), b"recent");
    }
}
