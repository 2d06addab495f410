//! [`RedbTeamStore`]: the embedded default of [`TeamStore`] and [`AuditLog`],
//! one redb file (`team.redb`).
//!
//! Invariants:
//! - Every change commits with `Durability::Immediate` in one write
//!   transaction together with its audit event; a method returns only
//!   after that commit, so an acknowledged change survives a crash and a
//!   half-applied one cannot exist.
//! - Tokens are kept only as SHA-256 hashes; the hash index maps a hash to
//!   its `(workspace, id)`, and the stored hash is compared again in
//!   constant time.
//! - A workspace has at least one owner at every commit.
//! - Audit events are only ever inserted, and deleted only by retention.
//!   An event appended on its own ([`AuditLog::append`]) is made durable
//!   in the audit log beside the file ([`crate::audit_log`]) and reaches
//!   the `audit` table at a checkpoint; queries read both. An event of a
//!   change commits with the change.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditLog, AuditPage, AuditQuery, DEFAULT_AUDIT_RETENTION_MS, MAX_AUDIT_PAGE};
use crate::audit_log::{AuditWal, CHECKPOINT_EVENTS};
use crate::clock::{Clock, SystemClock};
use crate::permission::{Action, Target};
use crate::read_mostly::{DatabaseLock, Opened, ReadMostlyDatabase};
use crate::store::{
    AuthFailure, Authenticated, IssuedToken, MemberAdded, MemberRecord, MemberRemoved, Notification, OwnedItem,
    TeamError, TeamStore, TokenRecord, TokenRequest, WorkspaceRecord,
};
use crate::token::{TokenHash, TokenSecret};
use crate::{Principal, Role, Subject, TokenId, UserId, WorkspaceId};

const WORKSPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("workspaces");
const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("members");
const TOKENS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("tokens");
const TOKEN_HASHES: TableDefinition<&[u8], (&str, u128)> = TableDefinition::new("token_hashes");
const AUDIT: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("audit");
const NOTIFICATIONS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("notifications");

/// `last_used_ms` is written at most this often per token, so that
/// authenticating is a read, not a durable write, on the hot path.
const LAST_USED_GRANULARITY_MS: u64 = 60_000;
/// Longest token name, in bytes.
const MAX_TOKEN_NAME: usize = 200;
/// Longest display name, in bytes.
const MAX_DISPLAY_NAME: usize = 200;

#[derive(Serialize, Deserialize)]
struct StoredToken {
    record: TokenRecord,
    hash: TokenHash,
}

/// The team store and audit trail in one redb file.
///
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct RedbTeamStore {
    /// Read-only until the first write (see [`ReadMostlyDatabase`]): a
    /// process that only reads the team store syncs nothing.
    db: Arc<ReadMostlyDatabase>,
    /// Audit events appended on their own, durable, not yet in redb.
    log: Arc<parking_lot::Mutex<AuditWal>>,
    clock: Arc<dyn Clock>,
    retention_ms: u64,
}

impl std::fmt::Debug for RedbTeamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbTeamStore").field("retention_ms", &self.retention_ms).finish_non_exhaustive()
    }
}

fn st(e: impl std::fmt::Display) -> TeamError {
    TeamError::Storage(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, TeamError> {
    serde_json::to_vec(v).map_err(st)
}

fn dec<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, TeamError> {
    serde_json::from_slice(b).map_err(st)
}

impl RedbTeamStore {
    /// Opens (creating if needed) the store at `path` with the system
    /// clock and the default audit retention (90 days), and prunes audit
    /// events past retention.
    ///
    /// # Errors
    /// [`TeamError::Storage`] when the file cannot be created or opened
    /// (for example when another process holds it).
    pub fn open(path: &Path) -> Result<Self, TeamError> {
        Self::open_with(path, Arc::new(SystemClock), DEFAULT_AUDIT_RETENTION_MS)
    }

    /// Opens the store with an explicit clock (tests inject a
    /// [`ManualClock`](crate::ManualClock)) and audit retention in ms.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: &Path, clock: Arc<dyn Clock>, retention_ms: u64) -> Result<Self, TeamError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(st)?;
        }
        // The lock first: what follows, read-only or not, is this handle's alone.
        let lock = DatabaseLock::take(path).map_err(st)?;
        let db = match ReadMostlyDatabase::open_read_only(path, lock).map_err(st)? {
            Opened::ReadOnly(db) if tables_exist(&*db.read().map_err(st)?) => db,
            opened => {
                // Missing, not closed cleanly, or not set up: open it
                // for writing (the read-only handle closed first).
                let lock = opened.into_lock();
                if !path.exists() {
                    create_atomically(path)?;
                }
                let db = Database::builder().create(path).map_err(st)?;
                create_tables(&db)?;
                ReadMostlyDatabase::from_writable(path, db, lock)
            }
        };
        // Under the same lock as the database: the log is this handle's alone.
        let log = AuditWal::open(path).map_err(st)?;
        let store = Self { db: Arc::new(db), log: Arc::new(parking_lot::Mutex::new(log)), clock, retention_ms };
        let now = store.clock.now_ms();
        store.prune(now.saturating_sub(retention_ms))?;
        Ok(store)
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn write(&self) -> Result<WriteTransaction, TeamError> {
        let mut txn = self.db.writable().map_err(st)?.begin_write().map_err(st)?;
        txn.set_durability(Durability::Immediate).map_err(st)?;
        Ok(txn)
    }

    /// Runs an administrative change `f` in one transaction with its audit
    /// event; on refusal writes a refusal event instead (when the
    /// workspace exists) and returns the error.
    fn admin<T>(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        action: &str,
        target: &str,
        f: impl FnOnce(&WriteTransaction, u64) -> Result<(T, Option<String>), TeamError>,
    ) -> Result<T, TeamError> {
        let now = self.now();
        let txn = self.write()?;
        match f(&txn, now) {
            Ok((value, detail)) => {
                put_audit(&txn, &AuditEvent::admin(ws.clone(), actor, now, action, target, detail, "ok"))?;
                txn.commit().map_err(st)?;
                Ok(value)
            }
            Err(err) => {
                txn.abort().map_err(st)?;
                if !matches!(err, TeamError::WorkspaceNotFound(_) | TeamError::Storage(_)) {
                    let txn = self.write()?;
                    put_audit(&txn, &AuditEvent::admin(ws.clone(), actor, now, action, target, None, err.code()))?;
                    txn.commit().map_err(st)?;
                }
                Err(err)
            }
        }
    }
}

fn create_atomically(path: &Path) -> Result<(), TeamError> {
    let tmp = path.with_extension(format!("creating-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    {
        let db = Database::builder().create(&tmp).map_err(st)?;
        create_tables(&db)?;
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(st)?;
    // A link never replaces an existing file: if another process created
    // the store meanwhile, keep its file.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(st)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(st(e)),
    }
}

/// Whether every table of the store exists in `txn`'s snapshot.
fn tables_exist(txn: &ReadTransaction) -> bool {
    txn.open_table(WORKSPACES).is_ok()
        && txn.open_table(MEMBERS).is_ok()
        && txn.open_table(TOKENS).is_ok()
        && txn.open_table(TOKEN_HASHES).is_ok()
        && txn.open_table(AUDIT).is_ok()
        && txn.open_table(NOTIFICATIONS).is_ok()
}

fn create_tables(db: &Database) -> Result<(), TeamError> {
    // A store opened before has them: no write, and no fsync, at each open.
    if db.begin_read().is_ok_and(|txn| tables_exist(&txn)) {
        return Ok(());
    }
    let mut txn = db.begin_write().map_err(st)?;
    txn.set_durability(Durability::Immediate).map_err(st)?;
    txn.open_table(WORKSPACES).map_err(st)?;
    txn.open_table(MEMBERS).map_err(st)?;
    txn.open_table(TOKENS).map_err(st)?;
    txn.open_table(TOKEN_HASHES).map_err(st)?;
    txn.open_table(AUDIT).map_err(st)?;
    txn.open_table(NOTIFICATIONS).map_err(st)?;
    txn.commit().map_err(st)
}

fn put_audit(txn: &WriteTransaction, ev: &AuditEvent) -> Result<(), TeamError> {
    let mut t = txn.open_table(AUDIT).map_err(st)?;
    t.insert((ev.workspace.as_str(), ev.id.as_u128()), enc(ev)?.as_slice()).map_err(st)?;
    Ok(())
}

/// The tables the read helpers use, opened on a read transaction (for
/// queries, concurrent with the writer) or on the write transaction of a
/// change (so it reads what it is about to change).
trait Reads {
    fn workspaces(&self) -> Result<impl ReadableTable<&'static str, &'static [u8]> + '_, TeamError>;
    fn members(&self) -> Result<impl ReadableTable<(&'static str, &'static str), &'static [u8]> + '_, TeamError>;
    fn tokens(&self) -> Result<impl ReadableTable<(&'static str, u128), &'static [u8]> + '_, TeamError>;
}

impl Reads for WriteTransaction {
    fn workspaces(&self) -> Result<impl ReadableTable<&'static str, &'static [u8]> + '_, TeamError> {
        self.open_table(WORKSPACES).map_err(st)
    }
    fn members(&self) -> Result<impl ReadableTable<(&'static str, &'static str), &'static [u8]> + '_, TeamError> {
        self.open_table(MEMBERS).map_err(st)
    }
    fn tokens(&self) -> Result<impl ReadableTable<(&'static str, u128), &'static [u8]> + '_, TeamError> {
        self.open_table(TOKENS).map_err(st)
    }
}

impl Reads for ReadTransaction {
    fn workspaces(&self) -> Result<impl ReadableTable<&'static str, &'static [u8]> + '_, TeamError> {
        self.open_table(WORKSPACES).map_err(st)
    }
    fn members(&self) -> Result<impl ReadableTable<(&'static str, &'static str), &'static [u8]> + '_, TeamError> {
        self.open_table(MEMBERS).map_err(st)
    }
    fn tokens(&self) -> Result<impl ReadableTable<(&'static str, u128), &'static [u8]> + '_, TeamError> {
        self.open_table(TOKENS).map_err(st)
    }
}

fn get_workspace(txn: &impl Reads, ws: &WorkspaceId) -> Result<WorkspaceRecord, TeamError> {
    let t = txn.workspaces()?;
    let v = t.get(ws.as_str()).map_err(st)?.ok_or_else(|| TeamError::WorkspaceNotFound(ws.clone()))?;
    dec(v.value())
}

fn members_in(txn: &impl Reads, ws: &WorkspaceId) -> Result<Vec<MemberRecord>, TeamError> {
    let t = txn.members()?;
    let mut out = Vec::new();
    for row in t.range((ws.as_str(), "")..).map_err(st)? {
        let (k, v) = row.map_err(st)?;
        if k.value().0 != ws.as_str() {
            break;
        }
        out.push(dec(v.value())?);
    }
    Ok(out)
}

fn get_member(txn: &impl Reads, ws: &WorkspaceId, user: &UserId) -> Result<MemberRecord, TeamError> {
    let t = txn.members()?;
    let v = t.get((ws.as_str(), user.as_str())).map_err(st)?.ok_or_else(|| TeamError::NotAMember(user.clone()))?;
    dec(v.value())
}

fn put_member(txn: &WriteTransaction, ws: &WorkspaceId, m: &MemberRecord) -> Result<(), TeamError> {
    let mut t = txn.open_table(MEMBERS).map_err(st)?;
    t.insert((ws.as_str(), m.user.as_str()), enc(m)?.as_slice()).map_err(st)?;
    Ok(())
}

fn tokens_in(txn: &impl Reads, ws: &WorkspaceId) -> Result<Vec<StoredToken>, TeamError> {
    let t = txn.tokens()?;
    let mut out = Vec::new();
    for row in t.range((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX)).map_err(st)? {
        let (_, v) = row.map_err(st)?;
        out.push(dec(v.value())?);
    }
    Ok(out)
}

fn put_token(txn: &WriteTransaction, t: &StoredToken) -> Result<(), TeamError> {
    let mut table = txn.open_table(TOKENS).map_err(st)?;
    table.insert((t.record.workspace.as_str(), t.record.id.0.as_u128()), enc(t)?.as_slice()).map_err(st)?;
    Ok(())
}

fn owners(members: &[MemberRecord]) -> usize {
    members.iter().filter(|m| m.role == Role::Owner).count()
}

fn check_text(what: &str, text: Option<&str>, max: usize) -> Result<(), TeamError> {
    match text {
        Some(t) if t.len() > max || t.chars().any(char::is_control) => {
            Err(TeamError::InvalidInput(format!("{what} must be at most {max} bytes with no control characters")))
        }
        _ => Ok(()),
    }
}

impl RedbTeamStore {
    /// Commits every event of the audit log, and `also` when given, to
    /// redb in one durable transaction, then empties the log. Returns
    /// whether the log was emptied: a failed reset is logged, the events
    /// are in redb, and the log takes no appends until a later reset
    /// succeeds (the next append that fails over to redb tries again).
    fn checkpoint(&self, log: &mut AuditWal, also: Option<&AuditEvent>) -> Result<bool, TeamError> {
        if !log.events().is_empty() || also.is_some() {
            let txn = self.write()?;
            for ev in log.events().iter().chain(also) {
                put_audit(&txn, ev)?;
            }
            txn.commit().map_err(st)?;
        }
        match log.reset() {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(error = %e, "emptying the team store's audit log failed; events go to redb until it succeeds");
                Ok(false)
            }
        }
    }
}

impl AuditLog for RedbTeamStore {
    fn append(&self, event: AuditEvent) -> Result<(), TeamError> {
        let mut log = self.log.lock();
        match log.append(&event) {
            Ok(()) => {
                if log.events().len() >= CHECKPOINT_EVENTS
                    && let Err(e) = self.checkpoint(&mut log, None)
                {
                    // The event is durable in the log; the next append tries again.
                    tracing::warn!(error = %e, "checkpointing the team store's audit log failed");
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "appending to the team store's audit log failed; committing the event to redb");
                if log.is_poisoned() {
                    // With what the log holds, so that a reset can bring it back.
                    return self.checkpoint(&mut log, Some(&event)).map(|_| ());
                }
                let txn = self.write()?;
                put_audit(&txn, &event)?;
                txn.commit().map_err(st)
            }
        }
    }

    fn query(&self, q: &AuditQuery) -> Result<AuditPage, TeamError> {
        let limit = q.limit.clamp(1, MAX_AUDIT_PAGE);
        let ws = q.workspace.as_str();
        let upper = q.before.map_or(u128::MAX, |c| c.as_u128().saturating_sub(1));
        let in_range = |ev: &AuditEvent| ev.workspace == q.workspace && ev.id.as_u128() <= upper && q.matches(ev);
        // The read transaction begins under the log's lock, so an event
        // checkpointed meanwhile is seen in one place or the other.
        let (txn, mut logged) = {
            let log = self.log.lock();
            let txn = self.db.read().map_err(st)?;
            let logged: Vec<AuditEvent> = log.events().iter().filter(|ev| in_range(ev)).cloned().collect();
            (txn, logged)
        };
        // Newest last, so that `pop` yields them newest first.
        logged.sort_by_key(|ev| ev.id);
        let t = txn.open_table(AUDIT).map_err(st)?;
        let mut rows = t.range((ws, 0u128)..=(ws, upper)).map_err(st)?.rev();
        let mut stored: Option<AuditEvent> = None;
        let mut events: Vec<AuditEvent> = Vec::new();
        let mut next_cursor = None;
        loop {
            if stored.is_none() {
                for row in rows.by_ref() {
                    let (_, v) = row.map_err(st)?;
                    let ev: AuditEvent = dec(v.value())?;
                    if q.matches(&ev) {
                        stored = Some(ev);
                        break;
                    }
                }
            }
            // The newer of the two heads; an id in both (a checkpoint cut
            // short by a crash) is taken once.
            let ev = match (stored.take(), logged.last()) {
                (None, None) => break,
                (Some(s), Some(l)) if l.id > s.id => {
                    stored = Some(s);
                    logged.pop()
                }
                (Some(s), Some(l)) => {
                    if l.id == s.id {
                        logged.pop();
                    }
                    Some(s)
                }
                (Some(s), None) => Some(s),
                (None, Some(_)) => logged.pop(),
            };
            let Some(ev) = ev else { break };
            if events.len() == limit {
                next_cursor = events.last().map(|e| e.id);
                break;
            }
            events.push(ev);
        }
        Ok(AuditPage { events, next_cursor })
    }

    fn prune(&self, before_ms: u64) -> Result<u64, TeamError> {
        {
            // Expired events still in the log reach redb first, to be pruned
            // there; while the log cannot be emptied, nothing is removed (a
            // removed event would come back from it).
            let mut log = self.log.lock();
            if log.events().iter().any(|ev| ev.at_ms < before_ms) && !self.checkpoint(&mut log, None)? {
                return Ok(0);
            }
        }
        // This runs at every open: look before taking a write transaction,
        // which would open the file for writing.
        let expired = |v: &[u8]| serde_json::from_slice::<AuditEvent>(v).is_ok_and(|e| e.at_ms < before_ms);
        {
            let txn = self.db.read().map_err(st)?;
            let t = txn.open_table(AUDIT).map_err(st)?;
            let mut any = false;
            for row in t.iter().map_err(st)? {
                if expired(row.map_err(st)?.1.value()) {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(0);
            }
        }
        let txn = self.write()?;
        let mut removed = 0;
        {
            let mut t = txn.open_table(AUDIT).map_err(st)?;
            // By the event's own time (`at_ms`), which every event carries.
            removed += t.extract_if(|_, v| expired(v)).map_err(st)?.count() as u64;
        }
        if removed == 0 {
            // Nothing changed: aborting costs no fsync (this runs at every open).
            txn.abort().map_err(st)?;
            return Ok(0);
        }
        txn.commit().map_err(st)?;
        Ok(removed)
    }
}

impl TeamStore for RedbTeamStore {
    fn create_workspace(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        owner: &UserId,
        name: Option<&str>,
    ) -> Result<WorkspaceRecord, TeamError> {
        check_text("a workspace name", name, MAX_DISPLAY_NAME)?;
        let now = self.now();
        let txn = self.write()?;
        let rec = WorkspaceRecord {
            id: ws.clone(),
            name: name.map(str::to_owned),
            created_at_ms: now,
            created_by: actor.label(),
        };
        {
            let mut t = txn.open_table(WORKSPACES).map_err(st)?;
            if t.get(ws.as_str()).map_err(st)?.is_some() {
                return Err(TeamError::WorkspaceExists(ws.clone()));
            }
            t.insert(ws.as_str(), enc(&rec)?.as_slice()).map_err(st)?;
        }
        let member = MemberRecord {
            user: owner.clone(),
            display_name: None,
            role: Role::Owner,
            added_at_ms: now,
            added_by: actor.label(),
        };
        put_member(&txn, ws, &member)?;
        put_audit(
            &txn,
            &AuditEvent::admin(
                ws.clone(),
                actor,
                now,
                "workspace.create",
                ws.as_str(),
                Some(format!("owner={owner}")),
                "ok",
            ),
        )?;
        txn.commit().map_err(st)?;
        Ok(rec)
    }

    fn workspace(&self, ws: &WorkspaceId) -> Result<Option<WorkspaceRecord>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        let t = txn.open_table(WORKSPACES).map_err(st)?;
        t.get(ws.as_str()).map_err(st)?.map(|v| dec(v.value())).transpose()
    }

    fn workspaces(&self) -> Result<Vec<WorkspaceRecord>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        let t = txn.open_table(WORKSPACES).map_err(st)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(st)? {
            out.push(dec(row.map_err(st)?.1.value())?);
        }
        Ok(out)
    }

    fn workspaces_of(&self, user: &UserId) -> Result<Vec<(WorkspaceRecord, Role)>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        let ws_t = txn.open_table(WORKSPACES).map_err(st)?;
        let m_t = txn.open_table(MEMBERS).map_err(st)?;
        let mut out = Vec::new();
        for row in ws_t.iter().map_err(st)? {
            let rec: WorkspaceRecord = dec(row.map_err(st)?.1.value())?;
            if let Some(m) = m_t.get((rec.id.as_str(), user.as_str())).map_err(st)? {
                let m: MemberRecord = dec(m.value())?;
                out.push((rec, m.role));
            }
        }
        Ok(out)
    }

    fn delete_workspace(&self, actor: &Principal, ws: &WorkspaceId) -> Result<(), TeamError> {
        self.admin(actor, ws, "workspace.delete", ws.as_str(), |txn, _| {
            get_workspace(txn, ws)?;
            actor.check(Action::DeleteWorkspace, &Target::default())?;
            let tokens = tokens_in(txn, ws)?;
            let members = members_in(txn, ws)?;
            {
                let mut h = txn.open_table(TOKEN_HASHES).map_err(st)?;
                let mut t = txn.open_table(TOKENS).map_err(st)?;
                for tok in &tokens {
                    h.remove(tok.hash.0.as_slice()).map_err(st)?;
                    t.remove((ws.as_str(), tok.record.id.0.as_u128())).map_err(st)?;
                }
                let mut m = txn.open_table(MEMBERS).map_err(st)?;
                for mem in &members {
                    m.remove((ws.as_str(), mem.user.as_str())).map_err(st)?;
                }
                let mut n = txn.open_table(NOTIFICATIONS).map_err(st)?;
                n.retain_in((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX), |_, _| false).map_err(st)?;
                txn.open_table(WORKSPACES).map_err(st)?.remove(ws.as_str()).map_err(st)?;
            }
            Ok(((), Some(format!("{} members, {} tokens removed", members.len(), tokens.len()))))
        })
    }

    fn members(&self, ws: &WorkspaceId) -> Result<Vec<MemberRecord>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        get_workspace(&*txn, ws)?;
        members_in(&*txn, ws)
    }

    fn member(&self, ws: &WorkspaceId, user: &UserId) -> Result<Option<MemberRecord>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        if txn.open_table(WORKSPACES).map_err(st)?.get(ws.as_str()).map_err(st)?.is_none() {
            return Err(TeamError::WorkspaceNotFound(ws.clone()));
        }
        let t = txn.open_table(MEMBERS).map_err(st)?;
        t.get((ws.as_str(), user.as_str())).map_err(st)?.map(|v| dec(v.value())).transpose()
    }

    fn add_member(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
        display_name: Option<&str>,
    ) -> Result<MemberAdded, TeamError> {
        check_text("a display name", display_name, MAX_DISPLAY_NAME)?;
        self.admin(actor, ws, "member.add", user.as_str(), |txn, now| {
            get_workspace(txn, ws)?;
            actor.check(Action::ManageMembers, &Target { owner: Some(user), ..Target::default() }.giving(role))?;
            let members = members_in(txn, ws)?;
            if members.iter().any(|m| &m.user == user) {
                return Err(TeamError::AlreadyMember(user.clone()));
            }
            let member = MemberRecord {
                user: user.clone(),
                display_name: display_name.map(str::to_owned),
                role,
                added_at_ms: now,
                added_by: actor.label(),
            };
            put_member(txn, ws, &member)?;
            let became_team = members.len() == 1;
            let detail =
                format!("role={role}{}", if became_team { "; the workspace is now a team workspace" } else { "" });
            Ok((MemberAdded { member, became_team }, Some(detail)))
        })
    }

    fn set_role(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
    ) -> Result<MemberRecord, TeamError> {
        self.admin(actor, ws, "member.role", user.as_str(), |txn, _| {
            get_workspace(txn, ws)?;
            let mut member = get_member(txn, ws, user)?;
            let target = Target::member(user, member.role).giving(role);
            actor.check(Action::ManageMembers, &target)?;
            if role == Role::Owner || member.role == Role::Owner {
                actor.check(Action::TransferOwnership, &target)?;
            }
            if member.role == Role::Owner && role != Role::Owner && owners(&members_in(txn, ws)?) == 1 {
                return Err(TeamError::LastOwner);
            }
            let from = member.role;
            member.role = role;
            put_member(txn, ws, &member)?;
            Ok((member, Some(format!("{from} -> {role}"))))
        })
    }

    fn remove_member(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        orphaned: Vec<OwnedItem>,
    ) -> Result<MemberRemoved, TeamError> {
        self.admin(actor, ws, "member.remove", user.as_str(), |txn, now| {
            get_workspace(txn, ws)?;
            let member = get_member(txn, ws, user)?;
            if actor.user_id() == Some(user) {
                actor.check(Action::LeaveWorkspace, &Target::member(user, member.role))?;
            } else {
                actor.check(Action::ManageMembers, &Target::member(user, member.role))?;
            }
            if member.role == Role::Owner && owners(&members_in(txn, ws)?) == 1 {
                return Err(TeamError::LastOwner);
            }
            txn.open_table(MEMBERS).map_err(st)?.remove((ws.as_str(), user.as_str())).map_err(st)?;
            let mut revoked = Vec::new();
            for mut tok in tokens_in(txn, ws)? {
                if &tok.record.user == user && tok.record.revoked_at_ms.is_none() {
                    tok.record.revoked_at_ms = Some(now);
                    put_token(txn, &tok)?;
                    put_audit(
                        txn,
                        &AuditEvent::admin(ws.clone(), actor, now, "token.revoke", tok.record.id.to_string(), Some(format!("member {user} removed")), "ok"),
                    )?;
                    revoked.push(tok.record.id);
                }
            }
            for item in &orphaned {
                let detail = (!item.hosts.is_empty()).then(|| format!("owner {user} removed; hosts: {}", item.hosts.join(", ")));
                let action = format!("{}.orphaned", serde_json::to_value(item.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
                put_audit(txn, &AuditEvent::admin(ws.clone(), actor, now, &action, item.name.clone(), detail, "ok"))?;
            }
            let note = Notification {
                id: uuid::Uuid::now_v7(),
                at_ms: now,
                kind: "member-removed".to_owned(),
                message: if orphaned.is_empty() {
                    format!("{user} was removed by {actor}; {} tokens revoked; nothing orphaned", revoked.len())
                } else {
                    format!(
                        "{user} was removed by {actor}; {} tokens revoked; {} items they added are orphaned and keep working until reassigned",
                        revoked.len(),
                        orphaned.len()
                    )
                },
                items: orphaned.clone(),
            };
            txn.open_table(NOTIFICATIONS).map_err(st)?.insert((ws.as_str(), note.id.as_u128()), enc(&note)?.as_slice()).map_err(st)?;
            let detail = format!("{} tokens revoked, {} items orphaned", revoked.len(), orphaned.len());
            Ok((MemberRemoved { member, revoked_tokens: revoked, orphaned }, Some(detail)))
        })
    }

    fn issue_token(&self, actor: &Principal, ws: &WorkspaceId, req: TokenRequest) -> Result<IssuedToken, TeamError> {
        check_text("a token name", req.name.as_deref(), MAX_TOKEN_NAME)?;
        let id = TokenId::new();
        self.admin(actor, ws, "token.issue", &id.to_string(), |txn, now| {
            get_workspace(txn, ws)?;
            let member = get_member(txn, ws, &req.user)?;
            let role = req.role.unwrap_or(member.role);
            actor.check(Action::IssueToken, &Target::member(&req.user, member.role).giving(role))?;
            if role > member.role {
                return Err(TeamError::RoleAboveMember { requested: role, member: member.role });
            }
            let expires_at_ms = match req.expires_in_ms {
                None => None,
                Some(ms) => Some(
                    now.checked_add(ms)
                        .filter(|t| *t < 253_402_300_800_000)
                        .ok_or_else(|| TeamError::InvalidInput("expiry is past the year 9999".into()))?,
                ),
            };
            let secret = TokenSecret::generate().map_err(st)?;
            let record = TokenRecord {
                id,
                name: req.name.clone(),
                workspace: ws.clone(),
                user: req.user.clone(),
                agent: req.agent.clone(),
                role,
                created_by: actor.label(),
                created_at_ms: now,
                expires_at_ms,
                last_used_ms: None,
                revoked_at_ms: None,
            };
            let stored = StoredToken { record: record.clone(), hash: secret.hash() };
            put_token(txn, &stored)?;
            txn.open_table(TOKEN_HASHES)
                .map_err(st)?
                .insert(stored.hash.0.as_slice(), (ws.as_str(), id.0.as_u128()))
                .map_err(st)?;
            let mut detail = format!("user={} role={role}", req.user);
            if let Some(a) = &req.agent {
                detail.push_str(&format!(" agent={a}"));
            }
            if let Some(e) = expires_at_ms {
                detail.push_str(&format!(" expires_at_ms={e}"));
            }
            Ok((IssuedToken { record, secret }, Some(detail)))
        })
    }

    fn tokens(&self, actor: &Principal, ws: &WorkspaceId) -> Result<Vec<TokenRecord>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        get_workspace(&*txn, ws)?;
        let mut out: Vec<TokenRecord> = tokens_in(&*txn, ws)?
            .into_iter()
            .map(|t| t.record)
            .filter(|r| actor.check(Action::ListTokens, &Target::owned_by(&r.user)).is_ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    fn revoke_token(&self, actor: &Principal, ws: &WorkspaceId, id: TokenId) -> Result<TokenRecord, TeamError> {
        self.admin(actor, ws, "token.revoke", &id.to_string(), |txn, now| {
            get_workspace(txn, ws)?;
            let mut tok: StoredToken = {
                let t = txn.open_table(TOKENS).map_err(st)?;
                let v = t.get((ws.as_str(), id.0.as_u128())).map_err(st)?.ok_or(TeamError::TokenNotFound(id))?;
                dec(v.value())?
            };
            let holder_role = get_member(txn, ws, &tok.record.user).map(|m| m.role).unwrap_or(tok.record.role);
            actor.check(Action::RevokeToken, &Target::member(&tok.record.user, holder_role))?;
            if tok.record.revoked_at_ms.is_none() {
                tok.record.revoked_at_ms = Some(now);
                put_token(txn, &tok)?;
            }
            Ok((tok.record, Some("revoked".to_owned())))
        })
    }

    fn authenticate(&self, token: &str) -> Result<Authenticated, TeamError> {
        let fail = |f| Err(TeamError::Unauthenticated(f));
        if token.trim().is_empty() {
            return fail(AuthFailure::Missing);
        }
        let Ok(secret) = TokenSecret::parse(token) else {
            return fail(AuthFailure::Malformed);
        };
        let hash = secret.hash();
        let now = self.now();
        let (stored, member) = {
            let txn = self.db.read().map_err(st)?;
            let h = txn.open_table(TOKEN_HASHES).map_err(st)?;
            let Some(loc) = h.get(hash.0.as_slice()).map_err(st)? else {
                return fail(AuthFailure::Unknown);
            };
            let (ws, id) = loc.value();
            let t = txn.open_table(TOKENS).map_err(st)?;
            let Some(v) = t.get((ws, id)).map_err(st)? else {
                return fail(AuthFailure::Unknown);
            };
            let stored: StoredToken = dec(v.value())?;
            if !stored.hash.ct_eq(&hash) {
                return fail(AuthFailure::Unknown);
            }
            let m = txn.open_table(MEMBERS).map_err(st)?;
            let member: Option<MemberRecord> =
                m.get((ws, stored.record.user.as_str())).map_err(st)?.map(|v| dec(v.value())).transpose()?;
            (stored, member)
        };
        if stored.record.revoked_at_ms.is_some() {
            return fail(AuthFailure::Revoked);
        }
        if stored.record.expires_at_ms.is_some_and(|e| now >= e) {
            return fail(AuthFailure::Expired);
        }
        let Some(member) = member else {
            return fail(AuthFailure::Unknown);
        };
        let record = if stored.record.last_used_ms.is_none_or(|t| now.saturating_sub(t) >= LAST_USED_GRANULARITY_MS) {
            self.touch(&stored, now)?
        } else {
            stored.record
        };
        let principal = Principal {
            subject: Subject::User { user: record.user.clone() },
            token: Some(record.id),
            agent: record.agent.clone(),
            role: record.role.min(member.role),
        };
        Ok(Authenticated { workspace: record.workspace.clone(), principal, token: record })
    }

    fn token_active(&self, ws: &WorkspaceId, id: TokenId) -> Result<bool, TeamError> {
        let now = self.now();
        let txn = self.db.read().map_err(st)?;
        let t = txn.open_table(TOKENS).map_err(st)?;
        let Some(v) = t.get((ws.as_str(), id.0.as_u128())).map_err(st)? else {
            return Ok(false);
        };
        let stored: StoredToken = dec(v.value())?;
        if stored.record.revoked_at_ms.is_some() || stored.record.expires_at_ms.is_some_and(|e| now >= e) {
            return Ok(false);
        }
        let m = txn.open_table(MEMBERS).map_err(st)?;
        Ok(m.get((ws.as_str(), stored.record.user.as_str())).map_err(st)?.is_some())
    }

    fn notifications(&self, actor: &Principal, ws: &WorkspaceId) -> Result<Vec<Notification>, TeamError> {
        let txn = self.db.read().map_err(st)?;
        get_workspace(&*txn, ws)?;
        actor.check(Action::ViewAudit, &Target::default())?;
        let t = txn.open_table(NOTIFICATIONS).map_err(st)?;
        let mut out = Vec::new();
        for row in t.range((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX)).map_err(st)?.rev() {
            out.push(dec(row.map_err(st)?.1.value())?);
        }
        Ok(out)
    }

    fn record_admin(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        action: &str,
        target: &str,
        detail: Option<String>,
        outcome: &str,
    ) -> Result<(), TeamError> {
        self.append(AuditEvent::admin(ws.clone(), actor, self.now(), action, target, detail, outcome))
    }
}

impl RedbTeamStore {
    /// Records a use of the token (re-reading it, so a concurrent
    /// revocation is never overwritten).
    fn touch(&self, stored: &StoredToken, now: u64) -> Result<TokenRecord, TeamError> {
        let txn = self.write()?;
        let key = (stored.record.workspace.as_str(), stored.record.id.0.as_u128());
        let mut current: StoredToken = {
            let t = txn.open_table(TOKENS).map_err(st)?;
            let Some(v) = t.get(key).map_err(st)? else {
                return Err(TeamError::Unauthenticated(AuthFailure::Unknown));
            };
            dec(v.value())?
        };
        if current.record.revoked_at_ms.is_some() {
            txn.abort().map_err(st)?;
            return Err(TeamError::Unauthenticated(AuthFailure::Revoked));
        }
        current.record.last_used_ms = Some(now);
        put_token(&txn, &current)?;
        txn.commit().map_err(st)?;
        Ok(current.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn store(dir: &Path, clock: ManualClock) -> RedbTeamStore {
        RedbTeamStore::open_with(&dir.join("team.redb"), Arc::new(clock), DEFAULT_AUDIT_RETENTION_MS).unwrap()
    }

    fn issue(s: &RedbTeamStore, ws: &WorkspaceId, user: &str, expires_in_ms: Option<u64>) -> TokenId {
        let req = TokenRequest { user: UserId::new(user).unwrap(), role: None, agent: None, name: None, expires_in_ms };
        s.issue_token(&Principal::local_operator(), ws, req).unwrap().record.id
    }

    /// Every event of `ws` the store lists, newest first, paged `per` at a time.
    fn all_events(s: &RedbTeamStore, ws: &WorkspaceId, per: usize) -> Vec<AuditEvent> {
        let mut q = AuditQuery::new(ws.clone());
        q.limit = per;
        let mut out = Vec::new();
        loop {
            let page = s.query(&q).unwrap();
            assert!(page.events.len() <= per);
            out.extend(page.events);
            match page.next_cursor {
                Some(c) => q.before = Some(c),
                None => return out,
            }
        }
    }

    fn tool_event(ws: &WorkspaceId, at_ms: u64, n: usize) -> AuditEvent {
        AuditEvent::admin(ws.clone(), &Principal::local_operator(), at_ms, "tool.call", format!("call-{n}"), None, "ok")
    }

    #[test]
    fn appended_events_are_listed_with_committed_ones_across_reopens_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let op = Principal::local_operator();
        let (ws, other) = (WorkspaceId::new("acme").unwrap(), WorkspaceId::new("other").unwrap());
        let wal = AuditWal::beside(&dir.path().join("team.redb"));
        let mut expected = Vec::new();
        {
            let s = store(dir.path(), clock.clone());
            // Committed with their changes: one event each, in redb.
            s.create_workspace(&op, &ws, &UserId::new("ada").unwrap(), None).unwrap();
            s.create_workspace(&op, &other, &UserId::new("ada").unwrap(), None).unwrap();
            for n in 0..5 {
                clock.advance(1);
                let ev = tool_event(&ws, clock.now_ms(), n);
                s.append(ev.clone()).unwrap();
                expected.push(ev.id);
                s.append(tool_event(&other, clock.now_ms(), n)).unwrap();
                s.add_member(&op, &ws, &UserId::new(format!("user{n}")).unwrap(), Role::Member, None).unwrap();
            }
            assert_eq!(s.log.lock().events().len(), 10, "appended events wait in the log");
            let listed: Vec<_> = all_events(&s, &ws, 3).iter().map(|e| e.id).collect();
            assert_eq!(listed.len(), 11, "1 workspace creation, 5 tool calls, 5 member additions");
            assert!(listed.windows(2).all(|w| w[0] > w[1]), "newest first, each once");
            assert!(expected.iter().all(|id| listed.contains(id)));
            assert!(all_events(&s, &other, 2).iter().all(|e| e.workspace == other));
        }
        // Reopened (as after a crash: nothing is checkpointed at close).
        let s = store(dir.path(), clock.clone());
        let before: Vec<_> = all_events(&s, &ws, 4).iter().map(|e| e.id).collect();
        assert_eq!(before.len(), 11);
        let refused = AuditEvent::admin(ws.clone(), &op, clock.now_ms(), "tool.call", "refused", None, "denied");
        s.append(refused.clone()).unwrap();
        let mut q = AuditQuery::new(ws.clone());
        q.outcome = Some("denied".into());
        let denied: Vec<_> = s.query(&q).unwrap().events.iter().map(|e| e.id).collect();
        assert_eq!(denied, vec![refused.id], "filters apply to logged events too");
        q.outcome = Some("ok".into());
        q.since_ms = Some(clock.now_ms() - 2);
        let recent = s.query(&q).unwrap().events;
        assert!(!recent.is_empty() && recent.iter().all(|e| e.at_ms >= clock.now_ms() - 2 && e.outcome() == "ok"));
        assert!(recent.len() < 11, "{} of 11 since the filter's time", recent.len());
        // Enough appends to checkpoint: the log is emptied into redb.
        let have = s.log.lock().events().len();
        assert_eq!(have, 11, "read back from the log, and the refusal");
        for n in have..CHECKPOINT_EVENTS {
            s.append(tool_event(&other, clock.now_ms(), n)).unwrap();
        }
        assert!(s.log.lock().events().is_empty());
        assert!(AuditWal::open(&dir.path().join("team.redb")).unwrap().events().is_empty(), "log emptied");
        assert!(std::fs::metadata(&wal).unwrap().len() > crate::frame::SALT as u64, "and kept its blocks");
        assert_eq!(all_events(&s, &ws, 4).iter().map(|e| e.id).skip(1).collect::<Vec<_>>(), before);
        assert_eq!(all_events(&s, &other, 500).len(), 1 + 5 + CHECKPOINT_EVENTS - 11);
    }

    #[test]
    fn a_checkpoint_cut_short_by_a_crash_lists_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let ws = WorkspaceId::new("acme").unwrap();
        let wal = AuditWal::beside(&dir.path().join("team.redb"));
        let logged = {
            let s = store(dir.path(), clock.clone());
            s.create_workspace(&Principal::local_operator(), &ws, &UserId::new("ada").unwrap(), None).unwrap();
            for n in 0..3 {
                s.append(tool_event(&ws, clock.now_ms() + n as u64, n)).unwrap();
            }
            let logged = std::fs::read(&wal).unwrap();
            let mut log = s.log.lock();
            s.checkpoint(&mut log, None).unwrap();
            logged
        };
        // The commit happened; the log was not emptied.
        std::fs::write(&wal, logged).unwrap();
        let s = store(dir.path(), clock.clone());
        assert_eq!(s.log.lock().events().len(), 3, "the old log is read back");
        let ids: Vec<_> = all_events(&s, &ws, 2).iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 4, "each event once: {ids:?}");
        assert!(ids.windows(2).all(|w| w[0] > w[1]));
        let mut log = s.log.lock();
        s.checkpoint(&mut log, None).unwrap();
        drop(log);
        assert_eq!(all_events(&s, &ws, 2).len(), 4, "the same keys written again");
    }

    #[test]
    fn a_failed_append_commits_to_redb_and_brings_the_log_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let ws = WorkspaceId::new("acme").unwrap();
        let s = store(dir.path(), clock.clone());
        s.create_workspace(&Principal::local_operator(), &ws, &UserId::new("ada").unwrap(), None).unwrap();
        let logged = tool_event(&ws, clock.now_ms(), 0);
        s.append(logged.clone()).unwrap();
        s.log.lock().fail_next = true;
        let failed_over = tool_event(&ws, clock.now_ms(), 1);
        s.append(failed_over.clone()).unwrap();
        // The poisoned log's events and the new one went to redb together,
        // and the log was emptied and takes appends again.
        assert!(!s.log.lock().is_poisoned());
        assert!(s.log.lock().events().is_empty());
        let after = tool_event(&ws, clock.now_ms(), 2);
        s.append(after.clone()).unwrap();
        assert_eq!(s.log.lock().events().len(), 1);
        drop(s);
        let s = store(dir.path(), clock.clone());
        let ids: Vec<_> = all_events(&s, &ws, 10).iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 4, "the creation and three calls, each once");
        for ev in [&logged, &failed_over, &after] {
            assert!(ids.contains(&ev.id));
        }
    }

    #[test]
    fn retention_prunes_events_still_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let ws = WorkspaceId::new("acme").unwrap();
        let s = store(dir.path(), clock.clone());
        s.create_workspace(&Principal::local_operator(), &ws, &UserId::new("ada").unwrap(), None).unwrap();
        s.append(tool_event(&ws, 1_000_001, 0)).unwrap();
        s.append(tool_event(&ws, 3_000_000, 1)).unwrap();
        assert_eq!(s.prune(2_000_000).unwrap(), 2, "the creation and the first call");
        let left = all_events(&s, &ws, 10);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].at_ms, 3_000_000);
    }

    #[test]
    fn token_active_is_false_once_revoked_expired_or_its_member_removed() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let s = store(dir.path(), clock.clone());
        let op = Principal::local_operator();
        let (ws, other) = (WorkspaceId::new("acme").unwrap(), WorkspaceId::new("other").unwrap());
        s.create_workspace(&op, &ws, &UserId::new("ada").unwrap(), None).unwrap();
        s.create_workspace(&op, &other, &UserId::new("ada").unwrap(), None).unwrap();
        for user in ["bob", "eve"] {
            s.add_member(&op, &ws, &UserId::new(user).unwrap(), Role::Member, None).unwrap();
        }
        let (kept, revoked, expiring, removed) = (
            issue(&s, &ws, "ada", None),
            issue(&s, &ws, "ada", None),
            issue(&s, &ws, "bob", Some(60_000)),
            issue(&s, &ws, "eve", None),
        );
        for id in [kept, revoked, expiring, removed] {
            assert!(s.token_active(&ws, id).unwrap(), "{id} is active when issued");
        }

        s.revoke_token(&op, &ws, revoked).unwrap();
        assert!(!s.token_active(&ws, revoked).unwrap(), "revoked");

        clock.advance(59_999);
        assert!(s.token_active(&ws, expiring).unwrap(), "not yet expired");
        clock.advance(1);
        assert!(!s.token_active(&ws, expiring).unwrap(), "expired");

        s.remove_member(&op, &ws, &UserId::new("eve").unwrap(), Vec::new()).unwrap();
        assert!(!s.token_active(&ws, removed).unwrap(), "its member was removed");

        assert!(s.token_active(&ws, kept).unwrap(), "the others keep working");
        assert!(!s.token_active(&other, kept).unwrap(), "a token acts only in its own workspace");
        assert!(!s.token_active(&ws, TokenId::new()).unwrap(), "an unknown token");
        assert!(!s.token_active(&WorkspaceId::new("nowhere").unwrap(), kept).unwrap(), "an unknown workspace");
    }
}
