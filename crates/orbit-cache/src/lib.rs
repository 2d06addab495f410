//! The `cache` orbit primitive (WIT `orbit:runtime/cache`): key-value with
//! a time-to-live, private to each workspace, stored in redb.
//!
//! Entries are keyed by `(workspace, key)`, so one workspace can never read
//! or list another's. Expiry is checked on every read; an expired entry is
//! purged when it is read or when its workspace needs room.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use orbit_engine::bindings::orbit::runtime::cache;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, ErrorCode, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};
use orbit_workspace::WorkspaceId;
use orbit_workspace::permission::{Action, Target};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Entry value layout: 8 bytes little-endian expiry (ms since the Unix
/// epoch, 0 = never) followed by the value bytes.
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// Bytes held per workspace: keys, values and `ENTRY_OVERHEAD_BYTES` each.
const USAGE: TableDefinition<&str, u64> = TableDefinition::new("usage");

/// Cache limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheLimits {
    /// Longest key, in bytes. Default 1,024.
    pub max_key_bytes: usize,
    /// Largest value, in bytes. Default 1 MiB.
    pub max_value_bytes: usize,
    /// Total bytes per workspace: each entry costs its key, its value and
    /// [`ENTRY_OVERHEAD_BYTES`] (its expiry time). Default 64 MiB.
    pub max_workspace_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self { max_key_bytes: 1024, max_value_bytes: 1 << 20, max_workspace_bytes: 64 << 20 }
    }
}

/// Errors of [`KvCache`]. Each maps to a guest [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key was empty, too long or held control characters.
    #[error("invalid key")]
    InvalidKey,
    /// The value was larger than `max_value_bytes`.
    #[error("value of {size} bytes exceeds the {limit}-byte limit")]
    ValueTooLarge {
        /// The value's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The workspace's cache is full, even after purging expired entries.
    #[error("workspace cache quota of {limit} bytes exceeded")]
    QuotaExceeded {
        /// The quota in bytes.
        limit: u64,
    },
    /// `increment` found a value that is not a decimal signed 64-bit integer.
    #[error("value is not an integer")]
    NotAnInteger,
    /// `increment` would overflow a signed 64-bit integer.
    #[error("integer overflow")]
    Overflow,
    /// The database failed.
    #[error("cache database: {0}")]
    Database(String),
}

impl From<CacheError> for HostError {
    fn from(e: CacheError) -> Self {
        let code = match &e {
            CacheError::InvalidKey | CacheError::NotAnInteger => ErrorCode::InvalidInput,
            CacheError::ValueTooLarge { .. } => ErrorCode::TooLarge,
            CacheError::QuotaExceeded { .. } | CacheError::Overflow => ErrorCode::LimitExceeded,
            CacheError::Database(_) => ErrorCode::Internal,
        };
        HostError::with_detail(code, e.to_string())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for CacheError {
            fn from(e: $t) -> Self { CacheError::Database(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn decode(raw: &[u8]) -> (u64, &[u8]) {
    let (exp, val) = raw.split_at(8.min(raw.len()));
    let mut b = [0u8; 8];
    b[..exp.len()].copy_from_slice(exp);
    (u64::from_le_bytes(b), val)
}

/// What each entry costs of the workspace quota beyond its key and value,
/// in bytes: the expiry time stored in front of the value.
pub const ENTRY_OVERHEAD_BYTES: u64 = 8;

fn encode(expires_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires_ms.to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// Creates the cache's tables when missing. A cache opened before has
/// them: no write, and no fsync.
fn create_tables(db: &Database) -> Result<(), CacheError> {
    let exist = db.begin_read().is_ok_and(|r| r.open_table(ENTRIES).is_ok() && r.open_table(USAGE).is_ok());
    if !exist {
        let tx = db.begin_write()?;
        tx.open_table(ENTRIES)?;
        tx.open_table(USAGE)?;
        tx.commit()?;
    }
    Ok(())
}

fn live(expires_ms: u64, now: u64) -> bool {
    expires_ms == 0 || expires_ms > now
}

/// A key-value cache with TTL for all workspaces, usable directly by a host
/// as well as through the [`Cache`] primitive.
pub struct KvCache {
    /// Opened at the first use: a process that never touches the cache
    /// never opens (nor syncs) its file.
    db: orbit_workspace::LazyDatabase<CacheError>,
    limits: CacheLimits,
    /// When each workspace was last purged for room: a full workspace is
    /// scanned at most once per [`PURGE_INTERVAL`], so its writes cannot
    /// keep the database's single writer busy.
    last_purge: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Shortest time between two purges of one workspace made to find room.
pub const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Most entries one purge examines.
pub const PURGE_SCAN_LIMIT: usize = 10_000;

type WriteTx = redb::WriteTransaction;

impl KvCache {
    /// The cache database at `path` (created if needed), opened at its
    /// first use.
    ///
    /// # Errors
    /// [`CacheError::Database`] when the parent directory cannot be
    /// created. A file that cannot be opened fails the first operation
    /// with [`CacheError::Database`] (and the next one tries again).
    pub fn open(path: &Path, limits: CacheLimits) -> Result<Self, CacheError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CacheError::Database(e.to_string()))?;
        }
        let db = orbit_workspace::LazyDatabase::new(path, create_tables);
        Ok(Self { db, limits, last_purge: Default::default() })
    }

    /// Opens the database now instead of at its first use (a long-lived
    /// process checks its files at startup).
    ///
    /// # Errors
    /// [`CacheError::Database`] when the file cannot be opened.
    pub fn open_now(&self) -> Result<(), CacheError> {
        self.db.get().map(|_| ())
    }

    fn check_key(&self, key: &str) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > self.limits.max_key_bytes || key.chars().any(char::is_control) {
            return Err(CacheError::InvalidKey);
        }
        Ok(())
    }

    fn write<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T, CacheError>) -> Result<T, CacheError> {
        let mut tx = self.db.get()?.begin_write()?;
        tx.set_durability(redb::Durability::Immediate).map_err(|e| CacheError::Database(e.to_string()))?;
        // Keys and values are guest-controlled: redb advises two-phase commit.
        tx.set_two_phase_commit(true);
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Reads the live value of `key` in `ws`; expired entries read as absent
    /// and are purged.
    ///
    /// # Errors
    /// `InvalidKey` or `Database`.
    pub fn get(&self, ws: &WorkspaceId, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.check_key(key)?;
        let now = now_ms();
        let expired = {
            let tx = self.db.get()?.begin_read()?;
            let t = tx.open_table(ENTRIES)?;
            match t.get((ws.as_str(), key))? {
                None => return Ok(None),
                Some(v) => {
                    let (exp, val) = decode(v.value());
                    if live(exp, now) {
                        return Ok(Some(val.to_vec()));
                    }
                    true
                }
            }
        };
        if expired {
            self.write(|tx| remove_expired(tx, ws, key, now_ms()))?;
        }
        Ok(None)
    }

    /// Stores `value` under `key` in `ws` for `ttl_ms` milliseconds (`None`
    /// keeps it until deleted).
    ///
    /// # Errors
    /// `InvalidKey`, `ValueTooLarge`, `QuotaExceeded` or `Database`.
    pub fn set(&self, ws: &WorkspaceId, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), CacheError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(CacheError::ValueTooLarge { size: value.len(), limit: self.limits.max_value_bytes });
        }
        let now = now_ms();
        let expires = ttl_ms.map_or(0, |t| now.saturating_add(t.max(1)));
        self.write(|tx| self.put_entry(tx, ws, key, &encode(expires, value), now))
    }

    fn put_entry(&self, tx: &WriteTx, ws: &WorkspaceId, key: &str, raw: &[u8], now: u64) -> Result<(), CacheError> {
        let entry_size = |raw_len: usize| (key.len() + raw_len) as u64;
        let old = {
            let t = tx.open_table(ENTRIES)?;
            t.get((ws.as_str(), key))?.map(|v| entry_size(v.value().len())).unwrap_or(0)
        };
        let mut used = usage(tx, ws)?.saturating_sub(old);
        let new = entry_size(raw.len());
        if used + new > self.limits.max_workspace_bytes && self.may_purge(ws) {
            purge_workspace(tx, ws, now)?;
            used = usage(tx, ws)?.saturating_sub(old);
        }
        if used + new > self.limits.max_workspace_bytes {
            return Err(CacheError::QuotaExceeded { limit: self.limits.max_workspace_bytes });
        }
        tx.open_table(ENTRIES)?.insert((ws.as_str(), key), raw)?;
        tx.open_table(USAGE)?.insert(ws.as_str(), used + new)?;
        Ok(())
    }

    fn may_purge(&self, ws: &WorkspaceId) -> bool {
        let mut last = self.last_purge.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match last.get(ws.as_str()) {
            Some(t) if now.duration_since(*t) < PURGE_INTERVAL => false,
            _ => {
                last.insert(ws.as_str().to_owned(), now);
                true
            }
        }
    }

    /// Deletes `key` in `ws`; returns whether a live value existed.
    ///
    /// # Errors
    /// `InvalidKey` or `Database`.
    pub fn delete(&self, ws: &WorkspaceId, key: &str) -> Result<bool, CacheError> {
        self.check_key(key)?;
        let now = now_ms();
        self.write(|tx| {
            let removed = tx.open_table(ENTRIES)?.remove((ws.as_str(), key))?.map(|v| {
                let raw = v.value();
                (live(decode(raw).0, now), (key.len() + raw.len()) as u64)
            });
            match removed {
                Some((was_live, size)) => {
                    let used = usage(tx, ws)?;
                    tx.open_table(USAGE)?.insert(ws.as_str(), used.saturating_sub(size))?;
                    Ok(was_live)
                }
                None => Ok(false),
            }
        })
    }

    /// Atomically adds `delta` to the integer under `key` in `ws` (absent or
    /// expired counts as 0) and returns the new value. An existing TTL is
    /// kept.
    ///
    /// # Errors
    /// `InvalidKey`, `NotAnInteger`, `Overflow`, `QuotaExceeded` or `Database`.
    pub fn increment(&self, ws: &WorkspaceId, key: &str, delta: i64) -> Result<i64, CacheError> {
        self.check_key(key)?;
        let now = now_ms();
        // One write transaction: redb serializes writers, so the
        // read-modify-write is atomic.
        self.write(|tx| {
            let current = {
                let t = tx.open_table(ENTRIES)?;
                t.get((ws.as_str(), key))?.map(|v| {
                    let (exp, val) = decode(v.value());
                    (exp, val.to_vec())
                })
            };
            let (expires, base) = match current {
                Some((exp, val)) if live(exp, now) => {
                    let text = std::str::from_utf8(&val).map_err(|_| CacheError::NotAnInteger)?;
                    (exp, text.trim().parse::<i64>().map_err(|_| CacheError::NotAnInteger)?)
                }
                _ => (0, 0),
            };
            let next = base.checked_add(delta).ok_or(CacheError::Overflow)?;
            self.put_entry(tx, ws, key, &encode(expires, next.to_string().as_bytes()), now)?;
            Ok(next)
        })
    }

    /// Removes every expired entry of `ws`; returns how many were removed.
    ///
    /// # Errors
    /// `Database`.
    pub fn purge_expired(&self, ws: &WorkspaceId) -> Result<usize, CacheError> {
        let now = now_ms();
        self.write(|tx| purge_workspace(tx, ws, now))
    }
}

fn usage(tx: &WriteTx, ws: &WorkspaceId) -> Result<u64, CacheError> {
    Ok(tx.open_table(USAGE)?.get(ws.as_str())?.map(|v| v.value()).unwrap_or(0))
}

fn remove_expired(tx: &WriteTx, ws: &WorkspaceId, key: &str, now: u64) -> Result<(), CacheError> {
    let mut t = tx.open_table(ENTRIES)?;
    let size = match t.get((ws.as_str(), key))? {
        Some(v) if !live(decode(v.value()).0, now) => (key.len() + v.value().len()) as u64,
        _ => return Ok(()),
    };
    t.remove((ws.as_str(), key))?;
    drop(t);
    let used = usage(tx, ws)?;
    tx.open_table(USAGE)?.insert(ws.as_str(), used.saturating_sub(size))?;
    Ok(())
}

fn purge_workspace(tx: &WriteTx, ws: &WorkspaceId, now: u64) -> Result<usize, CacheError> {
    let mut expired = Vec::new();
    {
        let t = tx.open_table(ENTRIES)?;
        for entry in t.range((ws.as_str(), "")..)?.take(PURGE_SCAN_LIMIT) {
            let (k, v) = entry?;
            let (kws, key) = k.value();
            if kws != ws.as_str() {
                break;
            }
            if !live(decode(v.value()).0, now) {
                expired.push(key.to_owned());
            }
        }
    }
    for key in &expired {
        remove_expired(tx, ws, key, now)?;
    }
    Ok(expired.len())
}

/// The `cache` primitive: links `orbit:runtime/cache` to a [`KvCache`].
#[derive(Clone)]
pub struct Cache {
    cache: Arc<KvCache>,
}

impl Cache {
    /// Opens the cache database at `path` with `limits`.
    ///
    /// # Errors
    /// As [`KvCache::open`].
    pub fn open(path: &Path, limits: CacheLimits) -> Result<Self, CacheError> {
        Ok(Self { cache: Arc::new(KvCache::open(path, limits)?) })
    }

    /// The underlying cache, for host-side access.
    pub fn kv(&self) -> &Arc<KvCache> {
        &self.cache
    }
}

struct RunCache {
    cache: Arc<KvCache>,
    workspace: WorkspaceId,
}

/// What `cache` host functions operate on during a call.
pub struct CacheView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunCache,
}

struct CacheData;
impl HasData for CacheData {
    type Data<'a> = CacheView<'a>;
}

impl Primitive for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        cache::add_to_linker::<RunState, CacheData>(linker, |s| {
            let (run, state) = s.parts::<RunCache>();
            CacheView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        // Nothing can read the state of an interface the component does not import.
        if !run.imports("orbit:runtime/cache") {
            return Ok(());
        }
        extensions.insert(RunCache { cache: self.cache.clone(), workspace: run.workspace().clone() });
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HostError::from),
        Err(e) => Err(HostError::with_detail(ErrorCode::Internal, format!("cache task failed: {e}"))),
    }
}

type HostResult<T> = orbit_engine::wasmtime::Result<Result<T, GuestError>>;

impl CacheView<'_> {
    /// The one permission check of `cache`: `set`, `delete` and
    /// `increment` write ([`Action::WriteData`]); `get` needs no permission
    /// beyond running.
    fn may_write(&self) -> Result<(), HostError> {
        self.run.permit(Action::WriteData, &Target::default())
    }
}

impl cache::Host for CacheView<'_> {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        let (c, ws) = (self.state.cache.clone(), self.state.workspace.clone());
        let n = key.len();
        let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        self.run.host_call("cache", "get", n, size, blocking(move || c.get(&ws, &key))).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> HostResult<()> {
        let (c, ws) = (self.state.cache.clone(), self.state.workspace.clone());
        let n = key.len() + value.len();
        let permitted = self.may_write();
        let call = async move {
            permitted?;
            blocking(move || c.set(&ws, &key, &value, ttl_ms)).await
        };
        self.run.host_call("cache", "set", n, |_| 0, call).await
    }

    async fn delete(&mut self, key: String) -> HostResult<bool> {
        let (c, ws) = (self.state.cache.clone(), self.state.workspace.clone());
        let n = key.len();
        let permitted = self.may_write();
        let call = async move {
            permitted?;
            blocking(move || c.delete(&ws, &key)).await
        };
        self.run.host_call("cache", "delete", n, |_| 1, call).await
    }

    async fn increment(&mut self, key: String, delta: i64) -> HostResult<i64> {
        let (c, ws) = (self.state.cache.clone(), self.state.workspace.clone());
        let n = key.len() + 8;
        let permitted = self.may_write();
        let call = async move {
            permitted?;
            blocking(move || c.increment(&ws, &key, delta)).await
        };
        self.run.host_call("cache", "increment", n, |_| 8, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(limits: CacheLimits) -> (tempfile::TempDir, KvCache) {
        let dir = tempfile::tempdir().unwrap();
        let c = KvCache::open(&dir.path().join("cache.redb"), limits).unwrap();
        (dir, c)
    }

    #[test]
    fn ttl_is_honoured_and_expired_entries_purged() {
        let (_d, c) = open(CacheLimits::default());
        let w = WorkspaceId::new("w").unwrap();
        let set_at = std::time::Instant::now();
        c.set(&w, "short", b"v", Some(500)).unwrap();
        let read = c.get(&w, "short").unwrap();
        // Only a read that surely happened before expiry must see the value
        // (a loaded machine can take longer than the TTL to get here).
        if set_at.elapsed() < std::time::Duration::from_millis(400) {
            assert_eq!(read.as_deref(), Some(&b"v"[..]));
        }
        c.set(&w, "forever", b"v", None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert_eq!(c.get(&w, "short").unwrap(), None);
        assert_eq!(c.get(&w, "forever").unwrap().as_deref(), Some(&b"v"[..]));
        // The read purged the entry, so its bytes no longer count.
        let tx = c.db.get().unwrap().begin_read().unwrap();
        assert!(tx.open_table(ENTRIES).unwrap().get(("w", "short")).unwrap().is_none());
    }

    #[test]
    fn increment_is_atomic_across_threads_and_checks_values() {
        let (_d, c) = open(CacheLimits::default());
        let c = Arc::new(c);
        let w = WorkspaceId::new("w").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, w) = (c.clone(), w.clone());
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        c.increment(&w, "n", 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.increment(&w, "n", 0).unwrap(), 200);
        c.set(&w, "text", b"abc", None).unwrap();
        assert!(matches!(c.increment(&w, "text", 1), Err(CacheError::NotAnInteger)));
        c.set(&w, "max", i64::MAX.to_string().as_bytes(), None).unwrap();
        assert!(matches!(c.increment(&w, "max", 1), Err(CacheError::Overflow)));
    }

    #[test]
    fn size_limits_and_quota() {
        let (_d, c) = open(CacheLimits { max_key_bytes: 8, max_value_bytes: 16, max_workspace_bytes: 64 });
        let w = WorkspaceId::new("w").unwrap();
        assert!(matches!(c.set(&w, "toolongkey", b"", None), Err(CacheError::InvalidKey)));
        assert!(matches!(c.set(&w, "k", &[0; 17], None), Err(CacheError::ValueTooLarge { .. })));
        // Each entry: 2-byte key + 8-byte header + 16-byte value = 26 bytes.
        c.set(&w, "k1", &[0; 16], None).unwrap();
        c.set(&w, "k2", &[0; 16], None).unwrap();
        assert!(matches!(c.set(&w, "k3", &[0; 16], None), Err(CacheError::QuotaExceeded { .. })));
        // Another workspace has its own quota.
        c.set(&WorkspaceId::new("v").unwrap(), "k3", &[0; 16], None).unwrap();
        assert!(c.delete(&w, "k1").unwrap());
        c.set(&w, "k3", &[0; 16], None).unwrap();
    }

    #[test]
    fn expired_entries_make_room_in_a_full_workspace() {
        let (_d, c) = open(CacheLimits { max_key_bytes: 8, max_value_bytes: 16, max_workspace_bytes: 64 });
        let w = WorkspaceId::new("w").unwrap();
        c.set(&w, "k1", &[0; 16], Some(20)).unwrap();
        c.set(&w, "k2", &[0; 16], None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Full, but k1 has expired: the purge reclaims its bytes.
        c.set(&w, "k3", &[0; 16], None).unwrap();
        assert_eq!(c.get(&w, "k1").unwrap(), None);
        assert!(c.get(&w, "k3").unwrap().is_some());
    }
}
