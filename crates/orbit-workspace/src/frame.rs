//! Salted, checksummed frames: the on-disk format of Orbit's append-only
//! logs (the run store's write-ahead log and holding file, and the team
//! store's audit log), each of which puts its own payload in them.
//!
//! A file starts with a 16-byte random salt ([`SALT`]), new for each file
//! and for each time a log is emptied. Each record is one frame: payload
//! length (`u32`, little-endian), the first 8 bytes of
//! SHA-256(salt ++ payload), then the payload ([`HEADER`] bytes before it).
//!
//! A frame cut short or failing its checksum can only be the torn tail of
//! an append that was never acknowledged: [`parse`] stops there, and the
//! rest is ignored. The salt is why nobody who writes into a payload (a
//! guest, through a record or an event) can forge a frame: a torn append
//! could expose stale blocks holding such bytes where a frame should
//! start, but they never learn the salt. For the same reason an emptied
//! log gets a new salt: frames left from before would no longer check.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes before each frame's payload: length (4) and checksum (8).
pub const HEADER: usize = 4 + 8;

/// Bytes of the salt at the start of a file.
pub const SALT: usize = 16;

/// A fresh random salt.
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_salt() -> std::io::Result<[u8; SALT]> {
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

/// Appends one frame to `out`, its payload being what `payload` writes
/// after the header.
///
/// # Errors
/// `InvalidInput` when the payload is longer than `u32::MAX` bytes; `out`
/// is then as it was.
pub fn push(salt: &[u8; SALT], out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    payload(out);
    let Ok(len) = u32::try_from(out.len() - start - HEADER) else {
        out.truncate(start);
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "record too large for a frame"));
    };
    let sum = checksum(salt, &out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&sum);
    Ok(())
}

/// What a file of frames holds, as far as it is intact.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The file's salt; `None` when the file is shorter than one.
    pub salt: Option<[u8; SALT]>,
    /// Each intact frame's payload, oldest first, with the file offset
    /// just past its frame.
    pub frames: Vec<(&'a [u8], u64)>,
    /// Bytes up to the end of the last intact frame (the salt included).
    pub intact: u64,
    /// Bytes after that: a torn tail, or garbage, that was ignored.
    pub ignored: u64,
}

impl Parsed<'_> {
    /// Keeps the first `n` frames only, as when the frame after them does
    /// not decode; the rest counts as ignored.
    pub fn keep(&mut self, n: usize) {
        if n < self.frames.len() {
            let end = if n == 0 { SALT as u64 } else { self.frames[n - 1].1 };
            self.ignored += self.intact - end;
            self.intact = end;
            self.frames.truncate(n);
        }
    }
}

/// Reads the frames of a whole file's `bytes`, stopping at the first one
/// that is cut short or fails its checksum.
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let Some((salt, mut rest)) = bytes.split_first_chunk::<SALT>() else {
        return Parsed { salt: None, frames: Vec::new(), intact: 0, ignored: bytes.len() as u64 };
    };
    let mut frames = Vec::new();
    let mut at = SALT as u64;
    while let Some((payload, used)) = unframe(salt, rest) {
        at += used as u64;
        frames.push((payload, at));
        rest = &rest[used..];
    }
    let ignored = rest.len() as u64;
    Parsed { salt: Some(*salt), frames, intact: bytes.len() as u64 - ignored, ignored }
}

/// The first frame's payload of `bytes` and the frame's length, or `None`
/// when it is cut short or fails its checksum.
fn unframe<'a>(salt: &[u8; SALT], bytes: &'a [u8]) -> Option<(&'a [u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = bytes.get(4..HEADER)?;
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    (checksum(salt, payload) == sum).then_some((payload, HEADER + len))
}

/// The first read of [`read_intact`], in bytes: a log kept between
/// short-lived processes (the run store's, up to 64 KiB) fits in it.
const FIRST_READ: u64 = 64 << 10;

/// The start of `file`, as far as its frames are intact, and at most the
/// frame after them: read in chunks that double, stopping once a whole
/// frame fails its checksum or the file ends, so a log that keeps its
/// length after a reset (stale frames after the intact ones) is not read
/// whole. Parse the result with [`parse`]; it finds the same intact frames
/// as in the whole file.
///
/// # Errors
/// When the file cannot be read.
pub fn read_intact(file: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata()?.len();
    let mut bytes = Vec::new();
    let mut want = FIRST_READ.min(size);
    loop {
        let have = bytes.len();
        if want as usize > have {
            bytes.resize(want as usize, 0);
            file.read_exact_at(&mut bytes[have..], have as u64)?;
        }
        // Where the frame after the intact ones would end: past what was
        // read means it may go on in the file.
        let intact = parse(&bytes).intact as usize;
        let end = if bytes.len() < SALT {
            SALT as u64
        } else {
            match bytes.get(intact..intact + 4) {
                None => (intact + HEADER) as u64,
                Some(len) => {
                    (intact + HEADER) as u64 + u64::from(u32::from_le_bytes(len.try_into().unwrap_or_default()))
                }
            }
        };
        if end <= bytes.len() as u64 || end > size {
            return Ok(bytes);
        }
        want = end.max(2 * bytes.len() as u64).min(size);
    }
}

/// Syncs the directory holding `path`, so its creation or removal lasts.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_foreign_salt_or_a_torn_tail_is_refused() {
        let salt = [3u8; SALT];
        let mut file = salt.to_vec();
        push(&salt, &mut file, |o| o.extend_from_slice(b"one")).unwrap();
        push(&salt, &mut file, |o| o.extend_from_slice(b"two")).unwrap();
        let whole = file.len();
        let parsed = parse(&file);
        let payloads: Vec<&[u8]> = parsed.frames.iter().map(|f| f.0).collect();
        assert_eq!(payloads, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!((parsed.intact, parsed.ignored), (whole as u64, 0));
        assert_eq!(parsed.frames[0].1, (SALT + HEADER + 3) as u64);
        // A frame checksummed without the file's salt (as a forger would).
        push(&[0; SALT], &mut file, |o| o.extend_from_slice(b"forged")).unwrap();
        let parsed = parse(&file);
        assert_eq!(parsed.frames.len(), 2);
        assert_eq!(parsed.intact, whole as u64);
        // Every cut of the last frame leaves the first one alone.
        for cut in SALT + HEADER + 3..whole {
            let parsed = parse(&file[..cut]);
            assert_eq!(parsed.frames.len(), 1, "cut at {cut}");
            assert_eq!(parsed.intact + parsed.ignored, cut as u64);
        }
        assert_eq!(parse(&file[..7]).salt, None);
        let mut parsed = parse(&file);
        parsed.keep(1);
        assert_eq!((parsed.frames.len(), parsed.intact), (1, (SALT + HEADER + 3) as u64));
        assert_eq!(parsed.intact + parsed.ignored, file.len() as u64);
    }
}
