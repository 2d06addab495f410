//! The team store's audit log (`team.redb.audit-log` beside `team.redb`):
//! where an audit event appended on its own ([`AuditLog::append`]: a tool
//! call, a refusal) becomes durable with one append and one `fdatasync`,
//! instead of a redb commit (several scattered page writes and the same
//! `fdatasync`; about twice the time on the MCP gateway's path).
//!
//! Invariants:
//! - An event is acknowledged only after its frame is appended and the
//!   file synced, or, when the log cannot be written, after a durable redb
//!   commit of it ([`crate::RedbTeamStore`] falls back). Acknowledged means
//!   on disk either way.
//! - Every event in the file is also in [`AuditWal::events`], from the
//!   append (or the open that read it) until a checkpoint: a durable redb
//!   commit holding all of them, after which the file is emptied (a new
//!   salt, and zeros over the old frames). Queries read both, so an event
//!   is visible from its acknowledgement on.
//! - The file is written only by the process holding the team store's
//!   lock ([`crate::DatabaseLock`]), taken before the store or this log is
//!   opened; a process that opened the store read-only appends here too,
//!   without opening redb for writing.
//! - A crash between a checkpoint's commit and the file being emptied
//!   (or halfway through emptying it) leaves events in both places: the next checkpoint writes the same
//!   keys again, and queries show an id once.
//! - Frames are salted and checksummed ([`crate::frame`]), with a new salt
//!   at every reset, so a torn tail is dropped when the file is read, never
//!   read as an event, and the next append overwrites it. A frame that
//!   checks but does not decode was acknowledged (by a newer Orbit, say):
//!   the log then refuses to open rather than drop it.
//! - A reset writes the new salt and zeros over the old frames in one
//!   write, and keeps the file's length: appends then overwrite blocks the
//!   file already has, so their `fdatasync` has only data to flush, not a
//!   new size and new extents (about a third less time on ext4: 71 against
//!   106 µs for a 300-byte record on this project's machines). No event
//!   outlives its checkpoint in the file, so retention, which prunes
//!   redb, leaves no copy behind. The file stays as large as the most it
//!   held between two resets, about [`CHECKPOINT_EVENTS`] events; one
//!   grown past [`KEEP_BYTES`] (checkpoints failed for a while) is cut
//!   back to its salt instead, so reading it at every open stays cheap.
//! - It holds at most [`CHECKPOINT_EVENTS`] events while checkpoints
//!   succeed, so reading it back at every open stays cheap.
//! - After an append or a reset fails halfway, nothing is appended until
//!   a reset succeeds; events are committed to redb meanwhile.
//!
//! [`AuditLog::append`]: crate::AuditLog::append

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::audit::AuditEvent;
use crate::frame::{self, SALT};

/// Events the log holds before the append that reaches this many
/// checkpoints them into redb (one durable commit of them all).
pub(crate) const CHECKPOINT_EVENTS: usize = 256;

/// The largest file a reset keeps (zeroed) rather than cuts back, in
/// bytes: several times what [`CHECKPOINT_EVENTS`] events take.
pub(crate) const KEEP_BYTES: u64 = 1 << 20;

/// The audit log of one team store.
pub(crate) struct AuditWal {
    path: PathBuf,
    /// `None` until the first append of this process, unless the file
    /// existed at open.
    file: Option<File>,
    /// The salt of the file's frames; `None` while it has none yet.
    salt: Option<[u8; SALT]>,
    /// Bytes of intact frames, the salt included: where the next append goes.
    len: u64,
    /// Every event in the file, oldest first.
    events: Vec<AuditEvent>,
    /// An append could not be cut back, or a reset failed halfway.
    poisoned: bool,
    buf: Vec<u8>,
    /// Tests set this to make the next append fail as a full disk would,
    /// leaving a frame that could not be cut back (so the log is poisoned).
    #[cfg(test)]
    pub(crate) fail_next: bool,
}

impl AuditWal {
    /// The log beside the store file `store`: `<store>.audit-log`.
    pub(crate) fn beside(store: &Path) -> PathBuf {
        let mut name = store.as_os_str().to_owned();
        name.push(".audit-log");
        PathBuf::from(name)
    }

    /// Opens the log beside `store`, reading the events it holds. A torn
    /// tail is left for the next append to overwrite; a missing file is
    /// created at the first append.
    ///
    /// # Errors
    /// When the file exists but cannot be read, or holds an intact frame
    /// that is not an audit event this version can read (`InvalidData`).
    pub(crate) fn open(store: &Path) -> std::io::Result<Self> {
        let path = Self::beside(store);
        let mut wal = Self {
            path,
            file: None,
            salt: None,
            len: 0,
            events: Vec::new(),
            poisoned: false,
            buf: Vec::new(),
            #[cfg(test)]
            fail_next: false,
        };
        let file = match OpenOptions::new().read(true).write(true).open(&wal.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(wal),
            Err(e) => return Err(e),
        };
        // A file that kept its length holds stale frames after the intact
        // ones; they are not read.
        let bytes = frame::read_intact(&file)?;
        let parsed = frame::parse(&bytes);
        let events = parsed
            .frames
            .iter()
            .map(|(payload, _)| serde_json::from_slice::<AuditEvent>(payload))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds an audit event this version cannot read ({e}); move it aside to open the store",
                        wal.path.display()
                    ),
                )
            })?;
        // What follows the intact frames (frames from before the last reset,
        // or a torn append) is overwritten by the next append, not cut off.
        wal.salt = parsed.salt;
        wal.len = parsed.intact;
        wal.events = events;
        wal.file = Some(file);
        Ok(wal)
    }

    /// The events the log holds, oldest first.
    pub(crate) fn events(&self) -> &[AuditEvent] {
        &self.events
    }

    /// Whether appends wait for a successful [`reset`](Self::reset).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Appends `event` and syncs the file; the event is then in
    /// [`events`](Self::events).
    ///
    /// # Errors
    /// When the log is poisoned, or the file cannot be created, written or
    /// synced; the event is then not in the log (the caller commits it
    /// elsewhere). A failed append that cannot be cut back poisons the log.
    pub(crate) fn append(&mut self, event: &AuditEvent) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other("the audit log is waiting for a reset"));
        }
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next) {
            self.poisoned = true;
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        if self.salt.is_none() {
            self.start()?;
        }
        let (Some(file), Some(salt)) = (&self.file, &self.salt) else {
            return Err(std::io::Error::other("the audit log has no file"));
        };
        self.buf.clear();
        let json = serde_json::to_vec(event)?;
        frame::push(salt, &mut self.buf, |out| out.extend_from_slice(&json))?;
        let written = file.write_all_at(&self.buf, self.len).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Cut back to the last intact frame. (A later append would
            // overwrite the torn one anyway; a log that cannot even be cut
            // is not trusted with more appends until a reset.)
            if file.set_len(self.len).and_then(|()| file.sync_data()).is_err() {
                self.poisoned = true;
            }
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.events.push(event.clone());
        Ok(())
    }

    /// Empties the log under a new salt, once a durable redb commit holds
    /// every event in it.
    ///
    /// # Errors
    /// When the file cannot be written or synced; the log is then poisoned
    /// until a reset succeeds, and its events stay listed (they are in
    /// redb, and queries show an id once).
    pub(crate) fn reset(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.events.clear();
            return Ok(());
        }
        match self.start() {
            Ok(()) => {
                self.events.clear();
                self.poisoned = false;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Writes a new salt at the start of the file (creating it durably if
    /// needed) and zeros over the rest, in one write; the file keeps its
    /// length, so appends overwrite blocks it already has. A file grown
    /// past [`KEEP_BYTES`] is cut back to the salt instead. Frames after a
    /// new salt would not check anyway, so a crash halfway loses nothing
    /// that was not committed.
    fn start(&mut self) -> std::io::Result<()> {
        let salt = frame::new_salt()?;
        let file = match self.file.take() {
            Some(f) => f,
            None => {
                let mut options = OpenOptions::new();
                options.read(true).write(true).create(true).truncate(false);
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options.open(&self.path)?
            }
        };
        if self.salt.is_none() {
            // The file's name must last as long as what it will hold; a file
            // left without a salt may not have had its directory synced.
            if let Err(e) = frame::sync_dir(&self.path) {
                self.file = Some(file);
                return Err(e);
            }
        }
        let written = file
            .metadata()
            .and_then(|m| {
                let keep = m.len() <= KEEP_BYTES;
                let mut head = vec![0u8; if keep { m.len().max(SALT as u64) as usize } else { SALT }];
                head[..SALT].copy_from_slice(&salt);
                file.write_all_at(&head, 0)?;
                if !keep {
                    file.set_len(SALT as u64)?;
                }
                Ok(())
            })
            .and_then(|()| file.sync_data());
        self.file = Some(file);
        written?;
        self.salt = Some(salt);
        self.len = SALT as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Principal, WorkspaceId};

    fn event(n: u64) -> AuditEvent {
        let ws = WorkspaceId::new("acme").unwrap();
        AuditEvent::admin(ws, &Principal::local_operator(), 1_000 + n, "test.event", format!("target-{n}"), None, "ok")
    }

    /// An event whose frame is shorter than [`event`]'s.
    fn short_event(n: u64) -> AuditEvent {
        AuditEvent::admin(
            WorkspaceId::new("a").unwrap(),
            &Principal::local_operator(),
            n,
            "t",
            String::new(),
            None,
            "ok",
        )
    }

    #[test]
    fn events_survive_reopening_and_a_torn_tail_at_every_offset_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("team.redb");
        let mut wal = AuditWal::open(&store).unwrap();
        assert!(!AuditWal::beside(&store).exists(), "nothing is created before the first append");
        let (a, b) = (event(1), event(2));
        wal.append(&a).unwrap();
        let before_b = std::fs::metadata(AuditWal::beside(&store)).unwrap().len();
        wal.append(&b).unwrap();
        drop(wal);
        let whole = std::fs::read(AuditWal::beside(&store)).unwrap();
        let ids = |w: &AuditWal| w.events().iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&AuditWal::open(&store).unwrap()), vec![a.id, b.id]);
        for cut in before_b as usize..whole.len() {
            std::fs::write(AuditWal::beside(&store), &whole[..cut]).unwrap();
            let mut wal = AuditWal::open(&store).unwrap();
            assert_eq!(ids(&wal), vec![a.id], "cut at {cut}");
            // An append after a torn tail overwrites it and is read back
            // after the first event; being shorter than the torn frame, it
            // leaves that frame's last bytes (same salt) behind it.
            let c = short_event(3);
            wal.append(&c).unwrap();
            drop(wal);
            assert_eq!(ids(&AuditWal::open(&store).unwrap()), vec![a.id, c.id], "cut at {cut}");
        }
    }

    #[test]
    fn an_intact_frame_that_does_not_decode_refuses_the_open_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("team.redb");
        let mut wal = AuditWal::open(&store).unwrap();
        wal.append(&event(1)).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(AuditWal::beside(&store)).unwrap();
        let salt: [u8; SALT] = bytes[..SALT].try_into().unwrap();
        frame::push(&salt, &mut bytes, |o| o.extend_from_slice(br#"{"kind":"from-a-newer-orbit"}"#)).unwrap();
        std::fs::write(AuditWal::beside(&store), &bytes).unwrap();
        let refused = AuditWal::open(&store).err().unwrap();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(AuditWal::beside(&store)).unwrap(), bytes, "nothing cut off");
    }

    #[test]
    fn a_reset_empties_the_log_under_a_new_salt() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("team.redb");
        let mut wal = AuditWal::open(&store).unwrap();
        wal.append(&event(1)).unwrap();
        let old = std::fs::read(AuditWal::beside(&store)).unwrap();
        wal.reset().unwrap();
        assert!(wal.events().is_empty());
        let new = std::fs::read(AuditWal::beside(&store)).unwrap();
        assert_ne!(new[..SALT], old[..SALT], "a new salt");
        assert_eq!(new.len(), old.len(), "the file keeps its length");
        assert!(new[SALT..].iter().all(|&b| b == 0), "and nothing of its old frames");
        assert!(AuditWal::open(&store).unwrap().events().is_empty());
        // An append overwrites them in place; a reopen reads it alone.
        let short = short_event(7);
        wal.append(&short).unwrap();
        let after = std::fs::read(AuditWal::beside(&store)).unwrap();
        assert_eq!(after.len(), old.len(), "written over the old frame, not after it");
        assert_eq!(AuditWal::open(&store).unwrap().events().iter().map(|e| e.id).collect::<Vec<_>>(), vec![short.id]);
    }

    #[test]
    fn a_reset_cuts_back_a_file_grown_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("team.redb");
        let mut wal = AuditWal::open(&store).unwrap();
        wal.append(&event(1)).unwrap();
        // As if checkpoints had failed for a long while.
        let path = AuditWal::beside(&store);
        OpenOptions::new().write(true).open(&path).unwrap().set_len(KEEP_BYTES + 1).unwrap();
        wal.reset().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SALT as u64);
        wal.append(&event(2)).unwrap();
        assert_eq!(AuditWal::open(&store).unwrap().events().len(), 1);
    }
}
