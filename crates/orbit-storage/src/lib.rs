//! The `storage` orbit primitive (WIT `orbit:runtime/storage`): blobs
//! private to each workspace.
//!
//! Layout under the storage root:
//! - `index.redb`: per-workspace object metadata (ordered, for listing)
//!   and byte usage (for quotas);
//! - `ws/<workspace>/<sha256(key)>`: object bytes.
//!
//! Keys never become paths: file names are key digests, opened through a
//! cap-std [`Dir`] for the workspace, so no key can name a file outside its
//! workspace's directory. Keys are still validated ([`validate_key`]) so
//! that guests get a clear `invalid-input` for malformed keys.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use orbit_engine::bindings::orbit::runtime::storage;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, ErrorCode, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};
use orbit_workspace::WorkspaceId;
use orbit_workspace::permission::{Action, Target};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Maximum key length, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Maximum content-type length, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Content type recorded when a guest gives none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
/// Per workspace: (charged bytes, object count).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");
/// Bytes charged per object on top of its key and value: the index entry
/// and the file's own cost, so empty objects cannot fill a disk for free.
pub const OBJECT_OVERHEAD_BYTES: u64 = 512;

/// A workspace's storage usage, as counted against its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Charged bytes: each object's size plus its key length plus
    /// [`OBJECT_OVERHEAD_BYTES`].
    pub bytes: u64,
    /// Number of objects.
    pub objects: u64,
}

fn charge(key: &str, size: u64) -> u64 {
    size + key.len() as u64 + OBJECT_OVERHEAD_BYTES
}

/// An index entry: the object's metadata and the file holding its bytes.
#[derive(Serialize, Deserialize)]
struct StoredObject {
    #[serde(flatten)]
    meta: ObjectMeta,
    blob: String,
}

fn fresh_blob_name(key: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(nanos.to_le_bytes());
    h.update(seq.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    hex::encode(h.finalize())
}

fn remove_blob(dir: &Dir, name: &str) -> Result<(), StorageError> {
    match dir.remove_file(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Storage limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageLimits {
    /// Largest single object, in bytes. Default 16 MiB.
    pub max_object_bytes: u64,
    /// Total charged bytes per workspace (see [`Usage::bytes`]). Default 1 GiB.
    pub max_workspace_bytes: u64,
    /// Objects per workspace. Default 100,000.
    pub max_objects: u64,
    /// Most objects returned by one `list` call. Default 1,000.
    pub max_list: u32,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self { max_object_bytes: 16 << 20, max_workspace_bytes: 1 << 30, max_objects: 100_000, max_list: 1000 }
    }
}

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type given at `put`.
    pub content_type: String,
    /// Last write, in milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

/// Errors of [`BlobStore`]. Each maps to a guest [`ErrorCode`]; the text is
/// for operators only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key or cursor broke the key rules ([`validate_key`]).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The content type was too long or held non-printable characters.
    #[error("invalid content type")]
    InvalidContentType,
    /// No object has this key.
    #[error("no such object")]
    NotFound,
    /// The object is larger than `max_object_bytes`.
    #[error("object of {size} bytes exceeds the {limit}-byte object limit")]
    ObjectTooLarge {
        /// The object's size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// Storing the object would take the workspace over its byte or object
    /// quota.
    #[error("workspace quota exceeded (limit {limit} bytes)")]
    QuotaExceeded {
        /// The quota in bytes.
        limit: u64,
    },
    /// A filesystem operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The index database failed.
    #[error("index: {0}")]
    Index(String),
}

impl StorageError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidKey(_) | Self::InvalidContentType => ErrorCode::InvalidInput,
            Self::NotFound => ErrorCode::NotFound,
            Self::ObjectTooLarge { .. } => ErrorCode::TooLarge,
            Self::QuotaExceeded { .. } => ErrorCode::LimitExceeded,
            Self::Io(_) | Self::Index(_) => ErrorCode::Internal,
        }
    }
}

impl From<StorageError> for HostError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => HostError::new(ErrorCode::NotFound),
            other => HostError::with_detail(other.code(), other.to_string()),
        }
    }
}

macro_rules! index_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self { StorageError::Index(e.to_string()) }
        }
    )*};
}
index_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    serde_json::Error
);

/// Creates the index's tables when missing. An index opened before has
/// them: no write, and no fsync.
fn create_tables(index: &Database) -> Result<(), StorageError> {
    let exist = index.begin_read().is_ok_and(|r| r.open_table(OBJECTS).is_ok() && r.open_table(USAGE).is_ok());
    if !exist {
        let tx = index.begin_write()?;
        tx.open_table(OBJECTS)?;
        tx.open_table(USAGE)?;
        tx.commit()?;
    }
    Ok(())
}

/// Checks a key against the storage key rules: 1 to [`MAX_KEY_BYTES`] bytes,
/// `/`-separated non-empty segments, no `.` or `..` segment, no NUL,
/// backslash or control characters.
///
/// # Errors
/// [`StorageError::InvalidKey`] naming the broken rule.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::InvalidKey("too long"));
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return Err(StorageError::InvalidKey("control character or backslash"));
    }
    for seg in key.split('/') {
        match seg {
            "" => return Err(StorageError::InvalidKey("empty segment or absolute key")),
            "." | ".." => return Err(StorageError::InvalidKey("dot segment")),
            _ => {}
        }
    }
    Ok(())
}

fn validate_content_type(ct: &str) -> Result<&str, StorageError> {
    if ct.is_empty() {
        return Ok(DEFAULT_CONTENT_TYPE);
    }
    if ct.len() > MAX_CONTENT_TYPE_BYTES || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(StorageError::InvalidContentType);
    }
    Ok(ct)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Blob storage for all workspaces, usable directly by a host as well as
/// through the [`Storage`] primitive.
pub struct BlobStore {
    root: Dir,
    /// Opened at the first use: a process that never touches storage
    /// never opens (nor syncs) the index.
    index: orbit_workspace::LazyDatabase<StorageError>,
    limits: StorageLimits,
}

impl BlobStore {
    /// Opens (creating if needed) the store rooted at `root`; its index
    /// database (`index.redb`) is opened at the first use.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory cannot be created or opened.
    /// An index that cannot be opened fails the first operation with
    /// [`StorageError::Index`] (and the next one tries again).
    pub fn open(root: &Path, limits: StorageLimits) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join("ws"))?;
        let index = orbit_workspace::LazyDatabase::new(root.join("index.redb"), create_tables);
        let root = Dir::open_ambient_dir(root.join("ws"), ambient_authority())?;
        Ok(Self { root, index, limits })
    }

    /// Opens the index now instead of at its first use (a long-lived
    /// process checks its files at startup).
    ///
    /// # Errors
    /// [`StorageError::Index`] when the index cannot be opened.
    pub fn open_now(&self) -> Result<(), StorageError> {
        self.index.get().map(|_| ())
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StorageError> {
        let mut tx = self.index.get()?.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        // Keys are guest-controlled: redb advises two-phase commit then.
        tx.set_two_phase_commit(true);
        Ok(tx)
    }

    /// The limits in force.
    pub fn limits(&self) -> &StorageLimits {
        &self.limits
    }

    fn workspace_dir(&self, ws: &WorkspaceId) -> Result<Dir, StorageError> {
        // WorkspaceId admits only [a-z0-9_-], so this is one plain segment.
        self.root.create_dir_all(ws.as_str())?;
        Ok(self.root.open_dir(ws.as_str())?)
    }

    /// Stores `value` under `key` in `ws`, replacing any earlier object.
    ///
    /// # Errors
    /// `InvalidKey`, `InvalidContentType`, `ObjectTooLarge`,
    /// `QuotaExceeded`, or `Io`/`Index` on failure.
    pub fn put(&self, ws: &WorkspaceId, key: &str, value: &[u8], content_type: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let content_type = validate_content_type(content_type)?;
        let size = value.len() as u64;
        if size > self.limits.max_object_bytes {
            return Err(StorageError::ObjectTooLarge { size, limit: self.limits.max_object_bytes });
        }
        let dir = self.workspace_dir(ws)?;
        // A fresh file per write, synced before the index points at it: a
        // crash leaves either the old object or the new one, never a mix.
        // The directory is synced too: until its entry is on disk, a power
        // loss can drop the new file while the index names it.
        let blob = fresh_blob_name(key);
        let mut file = dir.create(&blob)?;
        std::io::Write::write_all(&mut file, value)?;
        file.sync_all()?;
        drop(file);
        // (The `Dir` handle is O_PATH, which cannot be synced; "." opened
        // read-only can.)
        dir.open(".")?.sync_all()?;
        let committed = (|| {
            let tx = self.begin_write()?;
            let old_blob = {
                let mut objects = tx.open_table(OBJECTS)?;
                let mut usage = tx.open_table(USAGE)?;
                let old = match objects.get((ws.as_str(), key))? {
                    Some(v) => Some(serde_json::from_slice::<StoredObject>(v.value())?),
                    None => None,
                };
                let (bytes, count) = usage.get(ws.as_str())?.map(|v| v.value()).unwrap_or((0, 0));
                let old_charge = old.as_ref().map_or(0, |o| charge(&o.meta.key, o.meta.size));
                let new_bytes = bytes.saturating_sub(old_charge) + charge(key, size);
                let new_count = if old.is_some() { count } else { count + 1 };
                if new_bytes > self.limits.max_workspace_bytes || new_count > self.limits.max_objects {
                    return Err(StorageError::QuotaExceeded { limit: self.limits.max_workspace_bytes });
                }
                let meta = ObjectMeta {
                    key: key.to_owned(),
                    size,
                    content_type: content_type.to_owned(),
                    modified_ms: now_ms(),
                };
                let entry = StoredObject { meta, blob: blob.clone() };
                objects.insert((ws.as_str(), key), serde_json::to_vec(&entry)?.as_slice())?;
                usage.insert(ws.as_str(), (new_bytes, new_count))?;
                old.map(|o| o.blob)
            };
            tx.commit()?;
            Ok(old_blob)
        })();
        match committed {
            Ok(old_blob) => {
                if let Some(old) = old_blob {
                    remove_blob(&dir, &old)?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = dir.remove_file(&blob);
                Err(e)
            }
        }
    }

    fn entry(&self, ws: &WorkspaceId, key: &str) -> Result<StoredObject, StorageError> {
        validate_key(key)?;
        let tx = self.index.get()?.begin_read()?;
        let objects = tx.open_table(OBJECTS)?;
        let v = objects.get((ws.as_str(), key))?.ok_or(StorageError::NotFound)?;
        Ok(serde_json::from_slice(v.value())?)
    }

    /// Reads the metadata of `key` in `ws`.
    ///
    /// # Errors
    /// `InvalidKey`, `NotFound`, or `Index`.
    pub fn head(&self, ws: &WorkspaceId, key: &str) -> Result<ObjectMeta, StorageError> {
        Ok(self.entry(ws, key)?.meta)
    }

    /// Reads the bytes of `key` in `ws`.
    ///
    /// # Errors
    /// `InvalidKey`, `NotFound`, or `Io`/`Index`.
    pub fn get(&self, ws: &WorkspaceId, key: &str) -> Result<Vec<u8>, StorageError> {
        let entry = self.entry(ws, key)?;
        Ok(self.workspace_dir(ws)?.read(&entry.blob)?)
    }

    /// Deletes `key` in `ws`; returns whether it existed.
    ///
    /// # Errors
    /// `InvalidKey`, or `Io`/`Index`.
    pub fn delete(&self, ws: &WorkspaceId, key: &str) -> Result<bool, StorageError> {
        validate_key(key)?;
        let tx = self.begin_write()?;
        let removed = {
            let mut objects = tx.open_table(OBJECTS)?;
            let mut usage = tx.open_table(USAGE)?;
            let removed = match objects.remove((ws.as_str(), key))? {
                Some(v) => Some(serde_json::from_slice::<StoredObject>(v.value())?),
                None => None,
            };
            if let Some(entry) = &removed {
                let (bytes, count) = usage.get(ws.as_str())?.map(|v| v.value()).unwrap_or((0, 0));
                let freed = charge(&entry.meta.key, entry.meta.size);
                usage.insert(ws.as_str(), (bytes.saturating_sub(freed), count.saturating_sub(1)))?;
            }
            removed
        };
        tx.commit()?;
        // The index no longer points at the file; removing it last means a
        // crash leaves at worst an unreferenced file, never a dangling entry.
        match removed {
            Some(entry) => {
                remove_blob(&self.workspace_dir(ws)?, &entry.blob)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Lists objects in `ws` whose key starts with `prefix`, in ascending
    /// key order, after `cursor`, at most `limit` (capped at `max_list`).
    /// Returns the page and the cursor for the next page, if any.
    ///
    /// # Errors
    /// `InvalidKey` for a malformed cursor, or `Index`.
    pub fn list(
        &self,
        ws: &WorkspaceId,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ObjectMeta>, Option<String>), StorageError> {
        if prefix.len() > MAX_KEY_BYTES {
            return Err(StorageError::InvalidKey("prefix too long"));
        }
        if let Some(c) = cursor {
            validate_key(c)?;
        }
        let limit = limit.min(self.limits.max_list).max(1) as usize;
        let tx = self.index.get()?.begin_read()?;
        let objects = tx.open_table(OBJECTS)?;
        let start = match cursor {
            Some(c) if c >= prefix => c,
            _ => prefix,
        };
        let mut out = Vec::new();
        let mut more = false;
        for entry in objects.range((ws.as_str(), start)..)? {
            let (k, v) = entry?;
            let (kws, key) = k.value();
            if kws != ws.as_str() || !key.starts_with(prefix) {
                break;
            }
            if cursor.is_some_and(|c| key <= c) {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(serde_json::from_slice::<ObjectMeta>(v.value())?);
        }
        let next = if more { out.last().map(|m| m.key.clone()) } else { None };
        Ok((out, next))
    }

    /// What `ws`'s objects count against its quota.
    ///
    /// # Errors
    /// `Index` when the index cannot be read.
    pub fn usage(&self, ws: &WorkspaceId) -> Result<Usage, StorageError> {
        let tx = self.index.get()?.begin_read()?;
        let usage = tx.open_table(USAGE)?;
        let (bytes, objects) = usage.get(ws.as_str())?.map(|v| v.value()).unwrap_or((0, 0));
        Ok(Usage { bytes, objects })
    }
}

/// The `storage` primitive: links `orbit:runtime/storage` to a [`BlobStore`].
#[derive(Clone)]
pub struct Storage {
    store: Arc<BlobStore>,
}

impl Storage {
    /// Opens the blob store at `root` with `limits`.
    ///
    /// # Errors
    /// As [`BlobStore::open`].
    pub fn open(root: &Path, limits: StorageLimits) -> Result<Self, StorageError> {
        Ok(Self { store: Arc::new(BlobStore::open(root, limits)?) })
    }

    /// The underlying blob store, for host-side access.
    pub fn blobs(&self) -> &Arc<BlobStore> {
        &self.store
    }
}

/// Per-run state: the blob store and the run's workspace.
struct RunStorage {
    store: Arc<BlobStore>,
    workspace: WorkspaceId,
}

/// What `storage` host functions operate on during a call.
pub struct StorageView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunStorage,
}

struct StorageData;
impl HasData for StorageData {
    type Data<'a> = StorageView<'a>;
}

impl Primitive for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        storage::add_to_linker::<RunState, StorageData>(linker, |s| {
            let (run, state) = s.parts::<RunStorage>();
            StorageView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        // Nothing can read the state of an interface the component does not import.
        if !run.imports("orbit:runtime/storage") {
            return Ok(());
        }
        extensions.insert(RunStorage { store: self.store.clone(), workspace: run.workspace().clone() });
        Ok(())
    }
}

/// Runs blocking store work off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HostError::from),
        Err(e) => Err(HostError::with_detail(ErrorCode::Internal, format!("storage task failed: {e}"))),
    }
}

fn to_wit(m: ObjectMeta) -> storage::ObjectMeta {
    storage::ObjectMeta { key: m.key, size: m.size, content_type: m.content_type, modified_ms: m.modified_ms }
}

impl StorageView<'_> {
    /// The one permission check of `storage`: `put` and `delete` write
    /// ([`Action::WriteData`]); reads need no permission beyond running.
    fn may_write(&self) -> Result<(), HostError> {
        self.run.permit(Action::WriteData, &Target::default())
    }
}

impl storage::Host for StorageView<'_> {
    async fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        content_type: String,
    ) -> orbit_engine::wasmtime::Result<Result<(), GuestError>> {
        let (store, ws) = (self.state.store.clone(), self.state.workspace.clone());
        let n = key.len() + value.len() + content_type.len();
        let permitted = self.may_write();
        let call = async move {
            permitted?;
            blocking(move || store.put(&ws, &key, &value, &content_type)).await
        };
        self.run.host_call("storage", "put", n, |_| 0, call).await
    }

    async fn get(&mut self, key: String) -> orbit_engine::wasmtime::Result<Result<Vec<u8>, GuestError>> {
        let (store, ws) = (self.state.store.clone(), self.state.workspace.clone());
        let n = key.len();
        let call = blocking(move || store.get(&ws, &key));
        self.run.host_call("storage", "get", n, |v: &Vec<u8>| v.len(), call).await
    }

    async fn head(&mut self, key: String) -> orbit_engine::wasmtime::Result<Result<storage::ObjectMeta, GuestError>> {
        let (store, ws) = (self.state.store.clone(), self.state.workspace.clone());
        let n = key.len();
        let call = async move { blocking(move || store.head(&ws, &key)).await.map(to_wit) };
        self.run
            .host_call("storage", "head", n, |m: &storage::ObjectMeta| m.key.len() + m.content_type.len() + 16, call)
            .await
    }

    async fn delete(&mut self, key: String) -> orbit_engine::wasmtime::Result<Result<bool, GuestError>> {
        let (store, ws) = (self.state.store.clone(), self.state.workspace.clone());
        let n = key.len();
        let permitted = self.may_write();
        let call = async move {
            permitted?;
            blocking(move || store.delete(&ws, &key)).await
        };
        self.run.host_call("storage", "delete", n, |_| 1, call).await
    }

    async fn list(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> orbit_engine::wasmtime::Result<Result<storage::ObjectPage, GuestError>> {
        let (store, ws) = (self.state.store.clone(), self.state.workspace.clone());
        let n = prefix.len() + cursor.as_ref().map_or(0, |c| c.len());
        let call = async move {
            let (objects, next_cursor) = blocking(move || store.list(&ws, &prefix, cursor.as_deref(), limit)).await?;
            Ok(storage::ObjectPage { objects: objects.into_iter().map(to_wit).collect(), next_cursor })
        };
        let size = |p: &storage::ObjectPage| p.objects.iter().map(|m| m.key.len() + m.content_type.len() + 16).sum();
        self.run.host_call("storage", "list", n, size, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(n: &str) -> WorkspaceId {
        WorkspaceId::new(n).unwrap()
    }

    #[test]
    fn key_rules() {
        for good in ["a", "a/b", "html/x.html", "a.b/c..d", "ünï/cødé"] {
            validate_key(good).unwrap();
        }
        for bad in ["", "/etc/passwd", "../escape", "a/../../b", "a/./b", ".", "a//b", "a/", "a\0b", "a\\b", "a\nb"] {
            assert!(matches!(validate_key(bad), Err(StorageError::InvalidKey(_))), "{bad:?}");
        }
        assert!(validate_key(&"k".repeat(512)).is_ok());
        assert!(validate_key(&"k".repeat(513)).is_err());
    }

    #[test]
    fn put_get_head_delete_and_quota() {
        let dir = tempfile::tempdir().unwrap();
        // a/1 (5 B) charges 5 + 3 + 512; a/2 (10 B) charges 10 + 3 + 512.
        let limits = StorageLimits { max_object_bytes: 10, max_workspace_bytes: 1045, max_objects: 10, max_list: 2 };
        let s = BlobStore::open(dir.path(), limits).unwrap();
        let w = ws("w");
        s.put(&w, "a/1", b"hello", "text/plain").unwrap();
        assert_eq!(s.get(&w, "a/1").unwrap(), b"hello");
        let m = s.head(&w, "a/1").unwrap();
        assert_eq!((m.size, m.content_type.as_str()), (5, "text/plain"));
        assert!(matches!(s.put(&w, "big", &[0; 11], ""), Err(StorageError::ObjectTooLarge { .. })));
        s.put(&w, "a/2", b"0123456789", "").unwrap();
        assert_eq!(s.usage(&w).unwrap(), Usage { bytes: 1045, objects: 2 });
        // Even an empty object is charged its overhead.
        assert!(matches!(s.put(&w, "a/3", b"", ""), Err(StorageError::QuotaExceeded { .. })));
        // Overwriting counts only the difference, and replaces the file.
        s.put(&w, "a/1", b"hi", "").unwrap();
        assert_eq!(s.usage(&w).unwrap(), Usage { bytes: 1042, objects: 2 });
        assert_eq!(s.get(&w, "a/1").unwrap(), b"hi");
        assert_eq!(s.head(&w, "a/1").unwrap().content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(blob_files(dir.path(), "w"), 2, "old file removed, refused puts left nothing");
        assert!(s.delete(&w, "a/1").unwrap());
        assert!(!s.delete(&w, "a/1").unwrap());
        assert!(matches!(s.get(&w, "a/1"), Err(StorageError::NotFound)));
        assert_eq!(s.usage(&w).unwrap(), Usage { bytes: 525, objects: 1 });
        assert_eq!(blob_files(dir.path(), "w"), 1);
    }

    fn blob_files(root: &std::path::Path, ws: &str) -> usize {
        std::fs::read_dir(root.join("ws").join(ws)).unwrap().count()
    }

    #[test]
    fn object_count_quota() {
        let dir = tempfile::tempdir().unwrap();
        let limits = StorageLimits { max_objects: 2, ..StorageLimits::default() };
        let s = BlobStore::open(dir.path(), limits).unwrap();
        let w = ws("w");
        s.put(&w, "1", b"", "").unwrap();
        s.put(&w, "2", b"", "").unwrap();
        assert!(matches!(s.put(&w, "3", b"", ""), Err(StorageError::QuotaExceeded { .. })));
        s.put(&w, "2", b"replacing is fine", "").unwrap();
        s.put(&ws("other"), "3", b"", "").unwrap();
    }

    #[test]
    fn list_is_ordered_paginated_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), StorageLimits::default()).unwrap();
        let (a, b) = (ws("a"), ws("b"));
        for k in ["p/3", "p/1", "q/1", "p/2", "p/10"] {
            s.put(&a, k, k.as_bytes(), "").unwrap();
        }
        s.put(&b, "p/0", b"other", "").unwrap();
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = s.list(&a, "p/", cursor.as_deref(), 2).unwrap();
            assert!(page.len() <= 2);
            keys.extend(page.into_iter().map(|m| m.key));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(keys, ["p/1", "p/10", "p/2", "p/3"]);
        let (page, _) = s.list(&b, "", None, 100).unwrap();
        assert_eq!(page.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), ["p/0"]);
        assert!(matches!(s.get(&b, "p/1"), Err(StorageError::NotFound)));
    }
}
