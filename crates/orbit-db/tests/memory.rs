//! A statement built to blow up (a sort of millions of rows from a
//! recursive CTE) stops at SQLite's heap cap with `limit-exceeded`, fast,
//! instead of spilling to temporary files until its time cap. Its own test
//! binary: SQLite's heap limit is process-wide.

use std::time::Duration;

use orbit_db::{DbError, DbLimits, SqlStore};
use orbit_engine::ErrorCode;
use orbit_workspace::WorkspaceId;

#[test]
fn a_statement_that_blows_up_stops_at_the_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = DbLimits::default();
    (limits.max_memory_bytes, limits.max_call_time) = (64 << 20, Duration::from_secs(60));
    let store = SqlStore::open(&dir.path().join("db"), limits).unwrap();
    let ws = WorkspaceId::new("w").unwrap();
    // About 10 million distinct values of 200 bytes each: a 2 GB temporary
    // b-tree.
    let bomb = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) \
                SELECT count(*) FROM (SELECT DISTINCT randomblob(200) FROM c)";
    let err = store.query(&ws, bomb, &[], None).unwrap_err();
    assert!(matches!(err, DbError::MemoryLimit { limit_bytes } if limit_bytes == 64 << 20), "{err:?}");
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    // Stopped by memory, well before the 60 s time cap.
    assert!(!matches!(err, DbError::Interrupted { .. }));
    // The connection is usable afterwards, and ordinary queries work.
    let rows = store.query(&ws, "SELECT 1 + 1", &[], None).unwrap();
    assert_eq!(rows.rows.len(), 1);
}
