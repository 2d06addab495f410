//! Run records as stored (JSON): decoding arbitrary bytes never panics, and
//! a record that decodes encodes back to one that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orbit_runs::{RunId, RunRecord};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(rec) = serde_json::from_slice::<RunRecord>(bytes) {
        let again: RunRecord = serde_json::from_slice(&serde_json::to_vec(&rec).unwrap()).unwrap();
        assert_eq!(again, rec);
    }
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(id) = text.parse::<RunId>()
    {
        assert_eq!(id.to_string().parse::<RunId>().unwrap(), id);
    }
});
