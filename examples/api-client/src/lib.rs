//! Example agent: calls a notes API with the workspace secret `NOTES_TOKEN`
//! (injected by the host as `Authorization: Bearer …`; this code never sees
//! it), summarises the notes, and stores the digest in `storage`.
//!
//! Input: the API's base URL, e.g. `http://127.0.0.1:8787`.
//! Output: one line per tag with its note count, then the newest note title.

use std::collections::BTreeMap;

use orbit_guest::fetch::Request;
use orbit_guest::{Error, Result, log, storage};
use serde_json::Value;

fn run(input: String) -> Result<String> {
    let base = input.trim().trim_end_matches('/');
    let resp = Request::get(format!("{base}/v1/notes"))
        .header("accept", "application/json")
        .secret("NOTES_TOKEN")
        .timeout(std::time::Duration::from_secs(5))
        .send()?;
    if !resp.is_success() {
        return Err(Error::unavailable(format!("notes API answered {}", resp.status)));
    }
    let notes: Value =
        serde_json::from_slice(&resp.body).map_err(|_| Error::invalid_input("notes API sent invalid JSON"))?;
    let notes = notes.as_array().ok_or_else(|| Error::invalid_input("expected a JSON array of notes"))?;
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for note in notes {
        for tag in note["tags"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            *tags.entry(tag.to_owned()).or_default() += 1;
        }
    }
    let newest = notes
        .iter()
        .max_by_key(|n| n["created"].as_str().unwrap_or_default().to_owned())
        .and_then(|n| n["title"].as_str())
        .unwrap_or("(none)");
    let mut digest = format!("{} notes\n", notes.len());
    for (tag, n) in &tags {
        digest.push_str(&format!("{tag}: {n}\n"));
    }
    digest.push_str(&format!("newest: {newest}\n"));
    storage::put("digests/notes.txt", digest.as_bytes(), "text/plain; charset=utf-8")?;
    log::info(&format!("summarised {} notes", notes.len()));
    Ok(digest)
}

orbit_guest::export_agent!(run);
