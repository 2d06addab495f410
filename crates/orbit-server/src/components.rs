//! Submitted components, content-addressed by the sha256 of their bytes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory of submitted components, one file per component named
/// `<sha256 hex>.wasm`, so a component is sent once and then run by digest.
///
/// Files are written to a temporary name and renamed into place, so a
/// reader never sees a partial component.
#[derive(Debug)]
pub struct ComponentStore {
    dir: PathBuf,
    tmp_counter: AtomicU64,
}

/// Errors of the [`ComponentStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentStoreError {
    /// The digest is not 64 lowercase hex digits (the sha256 of the bytes).
    #[error("a digest is the sha256 of the component: 64 lowercase hex digits")]
    BadDigest,
    /// No component with this digest was submitted.
    #[error("no component with this digest was submitted")]
    NotFound,
    /// Reading or writing the directory failed.
    #[error("component store {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ComponentStore {
    /// Opens (creating if needed) the store at `dir`.
    ///
    /// # Errors
    /// [`ComponentStoreError::Io`] when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ComponentStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| ComponentStoreError::Io { path: dir.clone(), source })?;
        Ok(Self { dir, tmp_counter: AtomicU64::new(0) })
    }

    /// The directory the components are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `wasm` under `digest` (which must be its sha256, as returned by
    /// [`orbit::orbit_engine::digest`]); a no-op when it is already
    /// kept.
    ///
    /// # Errors
    /// [`ComponentStoreError::BadDigest`] or [`ComponentStoreError::Io`].
    pub fn put(&self, digest: &str, wasm: &[u8]) -> Result<(), ComponentStoreError> {
        let path = self.path_of(digest)?;
        if path.exists() {
            return Ok(());
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{digest}.{}.{n}.tmp", std::process::id()));
        let io = |source, path: &Path| ComponentStoreError::Io { path: path.to_owned(), source };
        std::fs::write(&tmp, wasm).map_err(|e| io(e, &tmp))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e, &path)
        })
    }

    /// The bytes of the component with this digest.
    ///
    /// # Errors
    /// [`ComponentStoreError::BadDigest`], [`ComponentStoreError::NotFound`]
    /// or [`ComponentStoreError::Io`].
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, ComponentStoreError> {
        let path = self.path_of(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ComponentStoreError::NotFound),
            Err(source) => Err(ComponentStoreError::Io { path, source }),
        }
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf, ComponentStoreError> {
        // Only hex reaches the file system: no separators, no `..`.
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ComponentStoreError::BadDigest);
        }
        Ok(self.dir.join(format!("{digest}.wasm")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_digest_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path().join("components")).unwrap();
        let digest = "ab".repeat(32);
        store.put(&digest, b"\0asm-bytes").unwrap();
        store.put(&digest, b"\0asm-bytes").unwrap();
        assert_eq!(store.get(&digest).unwrap(), b"\0asm-bytes");
        assert!(matches!(store.get(&"cd".repeat(32)), Err(ComponentStoreError::NotFound)));
        for bad in ["../../etc/passwd", "AB".repeat(32).as_str(), "abc", &format!("{}/x", "a".repeat(62))] {
            assert!(matches!(store.get(bad), Err(ComponentStoreError::BadDigest)), "{bad}");
        }
        // Only the component itself is left in the directory.
        let names: Vec<_> = std::fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(format!("{digest}.wasm"))]);
    }
}
