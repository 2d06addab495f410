//! The salted frame format shared by the run store's two logs: the
//! write-ahead log (`<store>.wal`, [`crate::wal`]) and the holding file
//! (`<store>.pending`, [`crate::spill`]).
//!
//! A file starts with a 16-byte random salt, new for each file (and for
//! each reset of the write-ahead log). Each record is one frame: payload
//! length (`u32`, little-endian), the first 8 bytes of
//! SHA-256(salt ++ payload), then the payload. The payload is the run id
//! (`u128` LE), the workspace (`u16` LE length, UTF-8), the status name
//! (`u8` length), then the encoded record.
//!
//! A frame cut short or failing its checksum can only be the torn tail of
//! an append that was never acknowledged; readers stop there and ignore the
//! rest. The salt is why a guest cannot forge a frame: records carry guest
//! bytes, and a torn append could expose stale blocks holding them where a
//! frame should start, but a guest never learns the salt. For the same
//! reason a log that is emptied gets a new salt: frames left from before
//! would no longer check.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

/// A record as the writer stores it: the key, the index entry and the
/// encoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: u128,
    pub(crate) workspace: String,
    pub(crate) status: &'static str,
    pub(crate) bytes: Vec<u8>,
}

/// Bytes before each frame's payload: length and checksum.
pub(crate) const HEADER: usize = 4 + 8;

/// Bytes of the salt at the start of a file.
pub(crate) const SALT: usize = 16;

/// A fresh random salt.
pub(crate) fn new_salt() -> std::io::Result<[u8; SALT]> {
    let mut salt = [0u8; SALT];
    getrandom::fill(&mut salt).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(salt)
}

/// The checksum of a frame's payload in a file salted with `salt`.
fn checksum(salt: &[u8; SALT], payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(payload);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&h.finalize()[..8]);
    sum
}

/// Appends `e` as one frame to `out`.
///
/// # Errors
/// `InvalidInput` when the workspace, status or payload is too long for
/// its length field.
pub(crate) fn frame(salt: &[u8; SALT], e: &Entry, out: &mut Vec<u8>) -> std::io::Result<()> {
    let too_long = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "record too large for a frame");
    let ws = e.workspace.as_bytes();
    let status = e.status.as_bytes();
    let len = 16 + 2 + ws.len() + 1 + status.len() + e.bytes.len();
    out.reserve(HEADER + len);
    out.extend_from_slice(&u32::try_from(len).map_err(|_| too_long())?.to_le_bytes());
    let sum_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let payload_at = out.len();
    out.extend_from_slice(&e.id.to_le_bytes());
    out.extend_from_slice(&u16::try_from(ws.len()).map_err(|_| too_long())?.to_le_bytes());
    out.extend_from_slice(ws);
    out.push(u8::try_from(status.len()).map_err(|_| too_long())?);
    out.extend_from_slice(status);
    out.extend_from_slice(&e.bytes);
    let sum = checksum(salt, &out[payload_at..]);
    out[sum_at..payload_at].copy_from_slice(&sum);
    Ok(())
}

/// The first frame of `bytes` and its length, or `None` when it is cut
/// short, fails its checksum or does not decode.
fn unframe(salt: &[u8; SALT], bytes: &[u8]) -> Option<(Entry, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = bytes.get(4..HEADER)?;
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    if checksum(salt, payload) != sum {
        return None;
    }
    let id = u128::from_le_bytes(payload.get(..16)?.try_into().ok()?);
    let ws_len = u16::from_le_bytes(payload.get(16..18)?.try_into().ok()?) as usize;
    let workspace = std::str::from_utf8(payload.get(18..18 + ws_len)?).ok()?.to_owned();
    let status_len = *payload.get(18 + ws_len)? as usize;
    let status_at = 19 + ws_len;
    let status: crate::types::RunStatus =
        std::str::from_utf8(payload.get(status_at..status_at + status_len)?).ok()?.parse().ok()?;
    let bytes = payload.get(status_at + status_len..)?.to_vec();
    Some((Entry { id, workspace, status: status.as_str(), bytes }, HEADER + len))
}

/// What a file of frames holds, as far as it is intact.
pub(crate) struct Parsed {
    /// The file's salt; `None` when the file is shorter than one.
    pub(crate) salt: Option<[u8; SALT]>,
    /// Every complete, intact record, oldest first.
    pub(crate) entries: Vec<Entry>,
    /// Bytes up to the end of the last intact frame (the salt included).
    pub(crate) intact: u64,
    /// Bytes after that: a torn tail, or garbage, that was ignored.
    pub(crate) ignored: u64,
}

/// Reads the frames of a whole file's `bytes`, stopping at the first one
/// that is cut short or fails its checksum.
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let Some((salt, mut rest)) = bytes.split_first_chunk::<SALT>() else {
        return Parsed { salt: None, entries: Vec::new(), intact: 0, ignored: bytes.len() as u64 };
    };
    let mut entries = Vec::new();
    while let Some((entry, used)) = unframe(salt, rest) {
        entries.push(entry);
        rest = &rest[used..];
    }
    let ignored = rest.len() as u64;
    Parsed { salt: Some(*salt), entries, intact: bytes.len() as u64 - ignored, ignored }
}

/// Syncs the directory holding `path`, so its creation or removal lasts.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u128) -> Entry {
        Entry { id, workspace: "acme".into(), status: "succeeded", bytes: format!("{{\"id\":{id}}}").into_bytes() }
    }

    #[test]
    fn frames_round_trip_and_a_foreign_salt_is_refused() {
        let salt = [3u8; SALT];
        let mut file = salt.to_vec();
        frame(&salt, &entry(1), &mut file).unwrap();
        frame(&salt, &entry(2), &mut file).unwrap();
        let parsed = parse(&file);
        assert_eq!(parsed.entries, vec![entry(1), entry(2)]);
        assert_eq!((parsed.intact, parsed.ignored), (file.len() as u64, 0));
        // A frame checksummed without the file's salt (as a guest would forge one).
        let whole = file.len();
        frame(&[0; SALT], &entry(3), &mut file).unwrap();
        let parsed = parse(&file);
        assert_eq!(parsed.entries, vec![entry(1), entry(2)]);
        assert_eq!(parsed.intact, whole as u64);
        assert_eq!(parse(&file[..7]).salt, None);
    }
}
