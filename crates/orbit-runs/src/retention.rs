//! Retention: runs are pruned by age and by count per workspace, so the
//! run store does not grow without bound.
//!
//! A run's age is read from its id (a UUID v7 carries its creation time in
//! ms), so pruning walks only the workspace index, never decodes a record,
//! and deletes in chunks of [`PRUNE_CHUNK`] runs per durable transaction,
//! so the writer is never held up for long. Freed pages are reused by later
//! records; [`RunStore::compact`] also gives them back to the file system.

use std::collections::BTreeMap;

use orbit_workspace::WorkspaceId;
use redb::{ReadableTable, ReadableTableMetadata};

use crate::store::{BY_WORKSPACE, RUNS};
use crate::{RunStore, RunStoreError};

/// The default age after which a run is pruned: 30 days, in ms.
pub const DEFAULT_MAX_AGE_MS: u64 = 30 * 24 * 3600 * 1000;
/// The default number of newest runs each workspace keeps: 100,000.
pub const DEFAULT_MAX_RUNS: u64 = 100_000;
/// Runs deleted per write transaction.
pub const PRUNE_CHUNK: usize = 10_000;

/// What one workspace keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Runs started longer ago than this, in ms, are pruned. `None`: any
    /// age is kept. Default [`DEFAULT_MAX_AGE_MS`] (30 days).
    pub max_age_ms: Option<u64>,
    /// Only the newest this many runs are kept. `None`: no count cap.
    /// Default [`DEFAULT_MAX_RUNS`] (100,000).
    pub max_runs: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_age_ms: Some(DEFAULT_MAX_AGE_MS), max_runs: Some(DEFAULT_MAX_RUNS) }
    }
}

impl Retention {
    /// Keeps runs younger than `max_age_ms` and at most the newest
    /// `max_runs` (`None`: no bound of that kind).
    pub fn new(max_age_ms: Option<u64>, max_runs: Option<u64>) -> Self {
        Self { max_age_ms, max_runs }
    }
}

/// The retention of every workspace: a default, and overrides by
/// workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// For workspaces without an override.
    pub default: Retention,
    /// Per-workspace overrides.
    pub workspaces: BTreeMap<WorkspaceId, Retention>,
}

impl RetentionPolicy {
    /// `default` for every workspace.
    pub fn new(default: Retention) -> Self {
        Self { default, workspaces: BTreeMap::new() }
    }

    /// `ws`'s retention.
    pub fn of(&self, ws: &str) -> Retention {
        self.workspaces.iter().find(|(k, _)| k.as_str() == ws).map_or(self.default, |(_, r)| *r)
    }
}

/// What [`RunStore::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Runs removed.
    pub removed: u64,
    /// Runs kept, in the workspaces looked at.
    pub kept: u64,
    /// Workspaces looked at.
    pub workspaces: u64,
}

/// The creation time, ms since the Unix epoch, in a UUID v7 id.
fn id_ms(id: u128) -> u64 {
    (id >> 80) as u64
}

impl RunStore {
    /// Removes the runs `policy` does not keep, as of `now_ms` (ms since
    /// the Unix epoch): in `only`, or in every workspace. Runs recorded
    /// while it works are never removed for their count, only ones older.
    ///
    /// # Errors
    /// [`RunStoreError::Storage`] when redb fails to read or commit (what
    /// was committed before stays removed), also in the checkpoint that
    /// first makes redb hold every acknowledged run;
    /// [`RunStoreError::LogNotEmptied`] when the write-ahead log could not
    /// be emptied first, or runs wait in the holding file (nothing more is
    /// removed).
    pub fn prune(
        &self,
        policy: &RetentionPolicy,
        only: Option<&WorkspaceId>,
        now_ms: u64,
    ) -> Result<PruneReport, RunStoreError> {
        // Runs waiting to be applied are not in redb's tables yet, which
        // are what this walks.
        self.checkpoint_blocking()?;
        let mut report = PruneReport::default();
        let workspaces = match only {
            Some(ws) => vec![ws.as_str().to_owned()],
            None => self.workspaces()?,
        };
        for ws in workspaces {
            report.workspaces += 1;
            let rule = policy.of(&ws);
            let cutoff = rule.max_age_ms.map(|age| now_ms.saturating_sub(age));
            loop {
                let (doomed, kept) = self.doomed(&ws, rule.max_runs, cutoff)?;
                if doomed.is_empty() {
                    report.kept += kept;
                    break;
                }
                report.removed += self.remove(&ws, doomed)?;
            }
        }
        if report.removed > 0 {
            tracing::info!(removed = report.removed, kept = report.kept, "pruned runs");
        }
        Ok(report)
    }

    /// Whether [`prune`](Self::prune) with `policy` as of `now_ms` may
    /// remove anything, for a caller that prunes at every open: a cheap,
    /// conservative look that writes nothing (no checkpoint, so a store
    /// opened read-only stays so). `false` means a prune would remove
    /// nothing; `true` that it may (it then says what it did).
    ///
    /// It looks at the oldest run of each workspace (one index seek each),
    /// at the runs waiting in the log, and at the store's total count
    /// against the smallest count cap of `policy`.
    ///
    /// # Errors
    /// [`RunStoreError::Storage`] when redb cannot be read.
    pub fn prune_due(&self, policy: &RetentionPolicy, now_ms: u64) -> Result<bool, RunStoreError> {
        let too_old =
            |ws: &str, id: u128| policy.of(ws).max_age_ms.is_some_and(|age| id_ms(id) < now_ms.saturating_sub(age));
        let waiting = self.logged().snapshot();
        if waiting.iter().any(|e| too_old(&e.workspace, e.id)) {
            return Ok(true);
        }
        let stored = {
            let txn = self.db().read()?;
            txn.open_table(RUNS).map_err(redb::Error::from)?.len().map_err(redb::Error::from)?
        };
        let smallest_cap = std::iter::once(policy.default.max_runs)
            .chain(policy.workspaces.values().map(|r| r.max_runs))
            .flatten()
            .min();
        if smallest_cap.is_some_and(|cap| stored.saturating_add(waiting.len() as u64) > cap) {
            return Ok(true);
        }
        Ok(self.oldest_of_each_workspace()?.iter().any(|(ws, id)| too_old(ws, *id)))
    }

    /// Every workspace with a run, by name: one index seek per workspace.
    fn workspaces(&self) -> Result<Vec<String>, RunStoreError> {
        Ok(self.oldest_of_each_workspace()?.into_iter().map(|(ws, _)| ws).collect())
    }

    /// Every workspace with a run in redb, by name, with the id of its
    /// oldest run there: one index seek per workspace.
    fn oldest_of_each_workspace(&self) -> Result<Vec<(String, u128)>, RunStoreError> {
        let txn = self.db().read()?;
        let index = txn.open_table(BY_WORKSPACE).map_err(redb::Error::from)?;
        let mut out: Vec<(String, u128)> = Vec::new();
        loop {
            let next = match out.last() {
                // The smallest key past every key of the last workspace.
                Some((last, _)) => {
                    index.range((format!("{last}\0").as_str(), 0u128)..).map_err(redb::Error::from)?.next()
                }
                None => index.iter().map_err(redb::Error::from)?.next(),
            };
            let Some(entry) = next else { break };
            let (key, _) = entry.map_err(redb::Error::from)?;
            let (ws, id) = key.value();
            out.push((ws.to_owned(), id));
        }
        Ok(out)
    }

    /// Up to [`PRUNE_CHUNK`] ids of `ws` to remove (oldest first), and how
    /// many it keeps when there are none.
    fn doomed(&self, ws: &str, max_runs: Option<u64>, cutoff: Option<u64>) -> Result<(Vec<u128>, u64), RunStoreError> {
        let txn = self.db().read()?;
        let index = txn.open_table(BY_WORKSPACE).map_err(redb::Error::from)?;
        let mut doomed = Vec::new();
        let mut kept = 0u64;
        // Newest first: the first `max_runs` younger than the cutoff stay.
        for entry in index.range((ws, 0u128)..=(ws, u128::MAX)).map_err(redb::Error::from)?.rev() {
            let (key, _) = entry.map_err(redb::Error::from)?;
            let id = key.value().1;
            let too_old = cutoff.is_some_and(|c| id_ms(id) < c);
            let too_many = max_runs.is_some_and(|m| kept >= m);
            if too_old || too_many {
                doomed.push(id);
                if doomed.len() == PRUNE_CHUNK {
                    break;
                }
            } else {
                kept += 1;
            }
        }
        Ok((doomed, kept))
    }
}
