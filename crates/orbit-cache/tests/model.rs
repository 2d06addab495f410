//! The cache against a model: random sequences of `set`, `get`, `delete`
//! and `increment` in two workspaces, on a real redb file reopened at
//! random, checked after every step against a `BTreeMap` that follows the
//! documented rules (key rules, value and workspace quotas, integer
//! counters with overflow refused, workspace isolation). Entries here
//! never expire; TTLs are covered by the crate's unit tests.

use std::collections::BTreeMap;

use orbit_cache::{CacheError, CacheLimits, ENTRY_OVERHEAD_BYTES, KvCache};
use orbit_workspace::WorkspaceId;
use proptest::prelude::*;

const WORKSPACES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Set { ws: usize, key: String, value: Vec<u8> },
    Get { ws: usize, key: String },
    Delete { ws: usize, key: String },
    Increment { ws: usize, key: String, delta: i64 },
    Reopen,
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[ab]{1,3}",
        1 => Just(String::new()),
        1 => Just("a\u{7}".to_owned()),
        1 => Just("k".repeat(65)),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Integers (with surrounding space), small and near the ends of i64.
        3 => prop_oneof![any::<i64>(), -3i64..3, Just(i64::MAX), Just(i64::MIN)]
            .prop_map(|n| format!(" {n}\n").into_bytes()),
        2 => proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let delta = prop_oneof![-5i64..5, any::<i64>(), Just(i64::MAX), Just(i64::MIN)];
    prop_oneof![
        4 => (0..2usize, key(), value()).prop_map(|(ws, key, value)| Op::Set { ws, key, value }),
        3 => (0..2usize, key()).prop_map(|(ws, key)| Op::Get { ws, key }),
        2 => (0..2usize, key()).prop_map(|(ws, key)| Op::Delete { ws, key }),
        3 => (0..2usize, key(), delta).prop_map(|(ws, key, delta)| Op::Increment { ws, key, delta }),
        1 => Just(Op::Reopen),
    ]
}

fn limits() -> CacheLimits {
    let mut l = CacheLimits::default();
    l.max_key_bytes = 64;
    l.max_value_bytes = 64;
    l.max_workspace_bytes = 300;
    l
}

/// The key rules as documented, written apart from the cache's check.
fn valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && !key.chars().any(char::is_control)
}

fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD_BYTES
}

/// Whether `m` with `key` set to `value` stays within the workspace quota.
fn fits(m: &BTreeMap<String, Vec<u8>>, key: &str, value: &[u8]) -> bool {
    let others: u64 = m.iter().filter(|(k, _)| k.as_str() != key).map(|(k, v)| cost(k, v)).sum();
    others + cost(key, value) <= limits().max_workspace_bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_cache_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let mut cache = KvCache::open(&path, limits()).unwrap();
        let mut model: [BTreeMap<String, Vec<u8>>; 2] = Default::default();
        for op in ops {
            match op {
                Op::Set { ws, key, value } => {
                    let r = cache.set(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key, &value, None);
                    if !valid(&key) {
                        prop_assert!(matches!(r, Err(CacheError::InvalidKey)), "{r:?}");
                    } else if value.len() > 64 {
                        prop_assert!(matches!(r, Err(CacheError::ValueTooLarge { .. })), "{r:?}");
                    } else if !fits(&model[ws], &key, &value) {
                        prop_assert!(matches!(r, Err(CacheError::QuotaExceeded { .. })), "{r:?}");
                    } else {
                        prop_assert!(r.is_ok(), "{r:?}");
                        model[ws].insert(key, value);
                    }
                }
                Op::Get { ws, key } => {
                    let r = cache.get(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key);
                    if valid(&key) {
                        prop_assert_eq!(r.unwrap(), model[ws].get(&key).cloned());
                    } else {
                        prop_assert!(matches!(r, Err(CacheError::InvalidKey)));
                    }
                }
                Op::Delete { ws, key } => {
                    let r = cache.delete(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key);
                    if valid(&key) {
                        prop_assert_eq!(r.unwrap(), model[ws].remove(&key).is_some());
                    } else {
                        prop_assert!(matches!(r, Err(CacheError::InvalidKey)));
                    }
                }
                Op::Increment { ws, key, delta } => {
                    let r = cache.increment(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), &key, delta);
                    let m = &mut model[ws];
                    if !valid(&key) {
                        prop_assert!(matches!(r, Err(CacheError::InvalidKey)), "{r:?}");
                        continue;
                    }
                    let base = match m.get(&key) {
                        None => Some(0),
                        Some(v) => std::str::from_utf8(v).ok().and_then(|t| t.trim().parse::<i64>().ok()),
                    };
                    match base.map(|b| b.checked_add(delta)) {
                        None => prop_assert!(matches!(r, Err(CacheError::NotAnInteger)), "{r:?}"),
                        Some(None) => prop_assert!(matches!(r, Err(CacheError::Overflow)), "{r:?}"),
                        Some(Some(next)) => {
                            let text = next.to_string().into_bytes();
                            if fits(m, &key, &text) {
                                prop_assert_eq!(r.unwrap(), next);
                                m.insert(key, text);
                            } else {
                                prop_assert!(matches!(r, Err(CacheError::QuotaExceeded { .. })), "{r:?}");
                            }
                        }
                    }
                }
                Op::Reopen => {
                    drop(cache);
                    cache = KvCache::open(&path, limits()).unwrap();
                }
            }
        }
        // Nothing the model does not hold is left behind.
        for (ws, m) in model.iter().enumerate() {
            for key in ["a", "b", "aa", "ab", "ba", "bb", "aaa", "bbb"] {
                let got = cache.get(&WorkspaceId::new(WORKSPACES[ws]).unwrap(), key).unwrap();
                prop_assert_eq!(got, m.get(key).cloned(), "{}", key);
            }
        }
    }
}
