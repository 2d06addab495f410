//! The blob store against a model: random sequences of `put`, `delete`,
//! `get`, `list` (paged to the end) and reopening, on a real redb index and
//! real files, checked after every step against a `BTreeMap` that follows
//! the documented rules (key rules, per-object and per-workspace quotas,
//! charged bytes, key order, workspace isolation).

use std::collections::BTreeMap;

use orbit_storage::{BlobStore, OBJECT_OVERHEAD_BYTES, StorageError, StorageLimits};
use orbit_workspace::WorkspaceId;
use proptest::prelude::*;

const WORKSPACES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Put { ws: usize, key: String, len: usize },
    Delete { ws: usize, key: String },
    Get { ws: usize, key: String },
    List { ws: usize, prefix: String, page: u32 },
    Reopen,
}

/// Keys from a small alphabet, so the same keys come back and collide;
/// it holds `/` and `.` so dot segments, empty segments and absolute keys
/// appear, and a control character and a backslash.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(prop::sample::select(vec!['a', 'b', '/', '.']), 0..6)
            .prop_map(|c| c.into_iter().collect::<String>()),
        1 => Just("a\u{1}".to_owned()),
        1 => Just("a\\b".to_owned()),
        1 => Just("k".repeat(513)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..2usize, key(), 0..300usize).prop_map(|(ws, key, len)| Op::Put { ws, key, len }),
        2 => (0..2usize, key()).prop_map(|(ws, key)| Op::Delete { ws, key }),
        2 => (0..2usize, key()).prop_map(|(ws, key)| Op::Get { ws, key }),
        2 => (0..2usize, "[ab/]{0,2}", 1..4u32).prop_map(|(ws, prefix, page)| Op::List { ws, prefix, page }),
        1 => Just(Op::Reopen),
    ]
}

/// The key rules as the documentation states them, written apart from
/// the store's own check.
fn valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && !key.chars().any(|c| c.is_control() || c == '\\')
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn charge(key: &str, len: usize) -> u64 {
    len as u64 + key.len() as u64 + OBJECT_OVERHEAD_BYTES
}

fn limits() -> StorageLimits {
    let mut l = StorageLimits::default();
    l.max_object_bytes = 256;
    l.max_workspace_bytes = 4 * 1024;
    l.max_objects = 5;
    l.max_list = 2;
    l
}

/// Bytes that say which put wrote them.
fn value(step: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (step * 31 + i) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_store_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = BlobStore::open(dir.path(), limits()).unwrap();
        let mut model: [BTreeMap<String, Vec<u8>>; 2] = Default::default();
        let l = limits();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Put { ws, key, len } => {
                    let v = value(step, len);
                    let r = store.put(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key, &v, "");
                    let m = &mut model[ws];
                    if !valid(&key) {
                        prop_assert!(matches!(r, Err(StorageError::InvalidKey(_))), "{key:?}: {r:?}");
                        continue;
                    }
                    if len as u64 > l.max_object_bytes {
                        prop_assert!(matches!(r, Err(StorageError::ObjectTooLarge { .. })), "{r:?}");
                        continue;
                    }
                    let used: u64 = m.iter().map(|(k, v)| charge(k, v.len())).sum();
                    let old = m.get(&key).map_or(0, |v| charge(&key, v.len()));
                    let count = m.len() as u64 + u64::from(!m.contains_key(&key));
                    if used - old + charge(&key, len) > l.max_workspace_bytes || count > l.max_objects {
                        prop_assert!(matches!(r, Err(StorageError::QuotaExceeded { .. })), "{r:?}");
                    } else {
                        prop_assert!(r.is_ok(), "{key:?}: {r:?}");
                        m.insert(key, v);
                    }
                }
                Op::Delete { ws, key } => {
                    let r = store.delete(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key);
                    if valid(&key) {
                        prop_assert_eq!(r.unwrap(), model[ws].remove(&key).is_some());
                    } else {
                        prop_assert!(matches!(r, Err(StorageError::InvalidKey(_))));
                    }
                }
                Op::Get { ws, key } => {
                    let r = store.get(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key);
                    match (valid(&key), model[ws].get(&key)) {
                        (false, _) => prop_assert!(matches!(r, Err(StorageError::InvalidKey(_)))),
                        (true, Some(v)) => prop_assert_eq!(&r.unwrap(), v),
                        (true, None) => prop_assert!(matches!(r, Err(StorageError::NotFound)), "{r:?}"),
                    }
                }
                Op::List { ws, prefix, page } => {
                    let id = WorkspaceId::new(WORKSPACES[ws]).unwrap();
                    let mut seen = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let (objects, next) = store.list(&id, &prefix, cursor.as_deref(), page).unwrap();
                        prop_assert!(objects.len() <= page.min(l.max_list) as usize);
                        seen.extend(objects.into_iter().map(|o| (o.key, o.size)));
                        match next {
                            Some(n) => cursor = Some(n),
                            None => break,
                        }
                    }
                    let expected: Vec<(String, u64)> = model[ws]
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| (k.clone(), v.len() as u64))
                        .collect();
                    prop_assert_eq!(seen, expected);
                }
                Op::Reopen => {
                    drop(store);
                    store = BlobStore::open(dir.path(), limits()).unwrap();
                }
            }
            // The quota accounting agrees with the model after every step.
            for (ws, m) in model.iter().enumerate() {
                let usage = store.usage(&WorkspaceId::new(WORKSPACES[ws]).unwrap()).unwrap();
                prop_assert_eq!(usage.objects, m.len() as u64);
                prop_assert_eq!(usage.bytes, m.iter().map(|(k, v)| charge(k, v.len())).sum::<u64>());
            }
        }
    }
}
