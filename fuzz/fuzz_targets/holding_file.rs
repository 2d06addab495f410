//! The run store's holding file (`<store>.pending`) and its write-ahead log
//! (`<store>.wal`, the same frame format) as a crash or a full disk can
//! leave them: intact frames, then a tail cut at any byte or with any byte
//! changed, or bytes that are no such file at all. Opening the store never
//! fails and never panics because of it; every intact frame before the
//! damage is imported and found.
//!
//! The frames are built here from the documented format (a 16-byte salt,
//! then per record: payload length `u32` LE, the first 8 bytes of
//! SHA-256(salt ++ payload), the payload), so the target checks the store's
//! reader against that description.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use orbit_runs::{ComponentKind, RunId, RunRecord, RunStatus, RunStore};
use orbit_workspace::WorkspaceId;
use sha2::{Digest, Sha256};

#[derive(Debug, Arbitrary)]
struct Input {
    salt: [u8; 16],
    /// The records' ids (distinct ones are kept).
    ids: Vec<u64>,
    /// Where the file is cut (modulo its length), if at all.
    cut: Option<u32>,
    /// A byte to change (offset modulo the length, and the XOR mask).
    flip: Option<(u32, u8)>,
    /// Raw bytes instead of a built file.
    raw: Option<Vec<u8>>,
    /// Write the bytes as the write-ahead log instead of the holding file.
    wal: bool,
}

fn record(id: RunId) -> RunRecord {
    RunRecord {
        id,
        workspace: WorkspaceId::new("acme").unwrap(),
        component_digest: "d".repeat(64),
        kind: ComponentKind::Agent,
        started_at_ms: 1,
        duration_us: 2,
        status: RunStatus::Succeeded,
        exit_code: None,
        error: None,
        fuel_consumed: 3,
        memory_bytes: 4,
        input_bytes: 5,
        output_bytes: 6,
        log_bytes: 0,
        output: None,
        output_truncated: false,
        logs: Vec::new(),
        logs_truncated: false,
        spans: Vec::new(),
        spans_dropped: 0,
        host_errors: Vec::new(),
        parent: None,
        principal: None,
    }
}

fn frame(salt: &[u8; 16], id: u128, json: &[u8], out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    payload.extend_from_slice(&id.to_le_bytes());
    payload.extend_from_slice(&4u16.to_le_bytes());
    payload.extend_from_slice(b"acme");
    payload.push(b"succeeded".len() as u8);
    payload.extend_from_slice(b"succeeded");
    payload.extend_from_slice(json);
    let mut h = Sha256::new();
    h.update(salt);
    h.update(&payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize()[..8]);
    out.extend_from_slice(&payload);
}

fuzz_target!(|input: Input| {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("runs.redb");
    let mut ids: Vec<u128> = Vec::new();
    for id in input.ids.iter().take(8) {
        // A v7-shaped id from the input, so ids are valid RunIds.
        let id = (u128::from(*id) << 64) | 0x7000_8000_0000_0000u128;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let (bytes, ends) = match &input.raw {
        Some(raw) => (raw.clone(), Vec::new()),
        None => {
            let mut out = input.salt.to_vec();
            let mut ends = Vec::new();
            for id in &ids {
                let json = serde_json::to_vec(&record(RunId::from_u128(*id))).unwrap();
                frame(&input.salt, *id, &json, &mut out);
                ends.push((*id, out.len()));
            }
            (out, ends)
        }
    };
    let mut bytes = bytes;
    // Frames wholly before the first damaged byte survive.
    let mut intact = bytes.len();
    if let Some(cut) = input.cut
        && !bytes.is_empty()
    {
        let at = cut as usize % bytes.len();
        bytes.truncate(at);
        intact = intact.min(at);
    }
    if let Some((at, mask)) = input.flip
        && !bytes.is_empty()
        && mask != 0
    {
        let at = at as usize % bytes.len();
        bytes[at] ^= mask;
        intact = intact.min(at);
    }
    let file = if input.wal { "runs.redb.wal" } else { "runs.redb.pending" };
    std::fs::write(dir.path().join(file), &bytes).unwrap();

    let store = RunStore::open(&store_path).expect("a damaged holding file or log never stops the store from opening");
    for (id, end) in ends {
        let found = store.get(RunId::from_u128(id)).expect("reading a run");
        // A changed length field can only make a frame unreadable; a frame
        // that ends before the damage must be there.
        if end <= intact && intact >= 16 {
            let rec = found.expect("an intact frame before the damage is imported");
            assert_eq!(rec, record(RunId::from_u128(id)));
        }
    }
});
