//! The records of the run store's two logs: the write-ahead log
//! (`<store>.wal`, [`crate::wal`]) and the holding file (`<store>.pending`,
//! [`crate::spill`]), in the salted frames of [`orbit_workspace::frame`].
//!
//! A frame's payload is the run id (`u128` LE), the workspace (`u16` LE
//! length, UTF-8), the status name (`u8` length), then the encoded record.
//!
//! A frame cut short or failing its checksum can only be the torn tail of
//! an append that was never acknowledged; readers stop there and ignore the
//! rest. The salt is why a guest cannot forge a frame: records carry guest
//! bytes, and a torn append could expose stale blocks holding them where a
//! frame should start, but a guest never learns the salt. For the same
//! reason a log that is emptied gets a new salt: frames left from before
//! would no longer check.

use orbit_workspace::frame as raw;
pub(crate) use orbit_workspace::frame::{HEADER, SALT, new_salt, read_intact, sync_dir};

/// A record as the writer stores it: the key, the index entry and the
/// encoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: u128,
    pub(crate) workspace: String,
    pub(crate) status: &'static str,
    pub(crate) bytes: Vec<u8>,
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
    let ws_len = u16::try_from(ws.len()).map_err(|_| too_long())?;
    let status_len = u8::try_from(status.len()).map_err(|_| too_long())?;
    out.reserve(HEADER + 16 + 2 + ws.len() + 1 + status.len() + e.bytes.len());
    raw::push(salt, out, |out| {
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&ws_len.to_le_bytes());
        out.extend_from_slice(ws);
        out.push(status_len);
        out.extend_from_slice(status);
        out.extend_from_slice(&e.bytes);
    })
}

/// The entry a frame's payload holds, or `None` when it does not decode.
fn decode(payload: &[u8]) -> Option<Entry> {
    let id = u128::from_le_bytes(payload.get(..16)?.try_into().ok()?);
    let ws_len = u16::from_le_bytes(payload.get(16..18)?.try_into().ok()?) as usize;
    let workspace = std::str::from_utf8(payload.get(18..18 + ws_len)?).ok()?.to_owned();
    let status_len = *payload.get(18 + ws_len)? as usize;
    let status_at = 19 + ws_len;
    let status: crate::types::RunStatus =
        std::str::from_utf8(payload.get(status_at..status_at + status_len)?).ok()?.parse().ok()?;
    let bytes = payload.get(status_at + status_len..)?.to_vec();
    Some(Entry { id, workspace, status: status.as_str(), bytes })
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
/// that is cut short, fails its checksum or does not decode.
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = raw::parse(bytes);
    let entries: Vec<Entry> = parsed.frames.iter().map_while(|(payload, _)| decode(payload)).collect();
    parsed.keep(entries.len());
    Parsed { salt: parsed.salt, entries, intact: parsed.intact, ignored: parsed.ignored }
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
