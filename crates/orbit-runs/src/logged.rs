//! Records that are in the synced write-ahead log but not yet in redb.
//!
//! A record is acknowledged once its log append is synced; redb is updated
//! from it afterwards, by the writer thread, off the caller's path. Until
//! then it lives here, and reads ([`crate::RunStore::get`],
//! [`crate::RunStore::list`]) see both this map and redb.
//!
//! Invariants:
//! - An entry is added only after the append that holds it was synced, and
//!   before its caller is acknowledged, under the writer's lock (so a
//!   checkpoint, which holds that lock, sees every logged record here or in
//!   redb).
//! - An entry is removed only after a redb commit that holds it has
//!   returned. So a reader that misses it here, and then opens a redb read
//!   transaction, finds it there. The commit need not be durable: the log
//!   keeps the record until a checkpoint's durable commit.
//! - Applying is idempotent: a record redb already holds is skipped, so
//!   the writer thread and a checkpoint may both apply the same entry. A
//!   log read back at open may hold records redb has too (an import whose
//!   emptying of the log failed); they wait here as well, and reads list
//!   each once.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use crate::frame::Entry;

/// At most this many records wait here. While redb refuses them (a
/// failing disk), further batches are committed durably by redb itself,
/// or held, instead of growing this without bound.
pub(crate) const MAX_LOGGED: usize = 65_536;

/// At most this many bytes of encoded records wait here (a record may
/// carry up to 10,000 spans, so a count alone does not bound memory).
pub(crate) const MAX_LOGGED_BYTES: usize = 64 << 20;

/// The records of the synced log that redb does not have yet, by run id.
#[derive(Default)]
pub(crate) struct Logged {
    map: RwLock<BTreeMap<u128, Arc<Entry>>>,
    /// Bytes of the encoded records in `map`; changed under its write lock.
    bytes: std::sync::atomic::AtomicUsize,
}

impl Logged {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u128, Arc<Entry>>> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u128, Arc<Entry>>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the just-synced `entries`; returns whether the map was empty
    /// before (the writer thread then needs waking to apply them).
    pub(crate) fn insert(&self, entries: impl IntoIterator<Item = Entry>) -> bool {
        let mut map = self.write();
        let was_empty = map.is_empty();
        for e in entries {
            let size = e.bytes.len();
            if map.insert(e.id, Arc::new(e)).is_none() {
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
        was_empty
    }

    /// Whether a record with this id waits here.
    pub(crate) fn contains(&self, id: u128) -> bool {
        self.read().contains_key(&id)
    }

    /// The record with this id, if it waits here.
    pub(crate) fn get(&self, id: u128) -> Option<Arc<Entry>> {
        self.read().get(&id).cloned()
    }

    /// How many records wait here.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether [`MAX_LOGGED`] records or [`MAX_LOGGED_BYTES`] bytes wait.
    pub(crate) fn full(&self) -> bool {
        self.len() >= MAX_LOGGED || self.bytes.load(Ordering::Relaxed) >= MAX_LOGGED_BYTES
    }

    /// Whether none waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every waiting record, in id order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.read().values().cloned().collect()
    }

    /// The waiting records of `workspace` with ids below `before` (when
    /// set) and status `status` (when set), newest first.
    pub(crate) fn of_workspace(&self, workspace: &str, before: Option<u128>, status: Option<&str>) -> Vec<Arc<Entry>> {
        let map = self.read();
        let range = match before {
            Some(before) => map.range(..before),
            None => map.range(..),
        };
        range
            .rev()
            .map(|(_, e)| e)
            .filter(|e| e.workspace == workspace && status.is_none_or(|s| s == e.status))
            .cloned()
            .collect()
    }

    /// Drops `applied`, which a returned redb commit holds.
    pub(crate) fn remove(&self, applied: &[Arc<Entry>]) {
        let mut map = self.write();
        for e in applied {
            if let Some(gone) = map.remove(&e.id) {
                self.bytes.fetch_sub(gone.bytes.len(), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u128, ws: &str, status: &'static str) -> Entry {
        Entry { id, workspace: ws.into(), status, bytes: vec![id as u8] }
    }

    #[test]
    fn a_workspace_lists_newest_first_below_the_cursor_with_its_status() {
        let logged = Logged::default();
        assert!(logged.insert([entry(1, "a", "succeeded"), entry(2, "b", "succeeded")]));
        assert!(!logged.insert([entry(3, "a", "failed"), entry(4, "a", "succeeded")]));
        let ids = |v: Vec<Arc<Entry>>| v.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(logged.of_workspace("a", None, None)), vec![4, 3, 1]);
        assert_eq!(ids(logged.of_workspace("a", Some(4), None)), vec![3, 1]);
        assert_eq!(ids(logged.of_workspace("a", None, Some("succeeded"))), vec![4, 1]);
        assert_eq!(ids(logged.of_workspace("c", None, None)), Vec::<u128>::new());
        let applied = logged.snapshot();
        logged.remove(&applied[..2]);
        assert!(!logged.contains(1) && !logged.contains(2));
        assert_eq!(logged.get(3).map(|e| e.status), Some("failed"));
        assert_eq!(logged.len(), 2);
    }
}
