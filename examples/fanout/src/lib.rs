//! Example Orbit agent: word counts, fanned out over stored jobs.
//!
//! The same component is both halves of a map/reduce:
//!
//! - **Map.** Given `{"map": "<text>"}`, it counts the words of the text
//!   (split on anything that is not a letter or digit, lowercased) and
//!   returns `{"word": count, ...}`.
//! - **Reduce.** Given any other input (plain text, or
//!   `{"text": "...", "chunks": N, "job": "wordcount", "mode": "enqueue"}`),
//!   it splits the text into `N` chunks (default 4) on line boundaries,
//!   hands each chunk to the stored job `job` (default `wordcount`) with
//!   `jobs::enqueue` (background runs, waited for with `jobs::wait`) or
//!   `jobs::invoke` (`"mode": "invoke"`: child runs, one after another, on
//!   this run's budget), merges the counts and returns
//!   `{"chunks":N,"mode":"...","total_words":T,"distinct_words":D,"top":[["the",12],...]}`
//!   with the 10 most frequent words, by count descending then word.
//!
//! Register the component as the job first:
//!
//! ```sh
//! orbit jobs add wordcount target/guests/wasm32-wasip2/guest/fanout_guest.wasm --description "word counts of a chunk"
//! orbit run target/guests/wasm32-wasip2/guest/fanout_guest.wasm --input-file README.md
//! ```

use std::collections::HashMap;
use std::time::Duration;

use orbit_guest::{Error, jobs, log};
use serde::Deserialize;
use serde_json::json;

/// How many words the result lists.
const TOP: usize = 10;

#[derive(Deserialize)]
struct Plan {
    text: String,
    #[serde(default = "default_chunks")]
    chunks: usize,
    #[serde(default = "default_job")]
    job: String,
    #[serde(default = "default_mode")]
    mode: String,
}

fn default_chunks() -> usize {
    4
}
fn default_job() -> String {
    "wordcount".to_owned()
}
fn default_mode() -> String {
    "enqueue".to_owned()
}

fn run(input: String) -> Result<String, Error> {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(&input) {
        if let Some(text) = obj.get("map").and_then(|v| v.as_str()) {
            return Ok(serde_json::to_string(&count(text)).map_err(|e| Error::internal(e.to_string()))?);
        }
        let plan: Plan = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| Error::invalid_input(format!("bad plan: {e}")))?;
        return reduce(plan);
    }
    reduce(Plan { text: input, chunks: default_chunks(), job: default_job(), mode: default_mode() })
}

orbit_guest::export_agent!(run);

/// Word counts of `text`.
fn count(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// Splits `text` into at most `n` chunks of whole lines, of similar size.
fn split(text: &str, n: usize) -> Vec<&str> {
    let n = n.clamp(1, 64);
    let target = text.len().div_ceil(n).max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        // Extend to the end of the line, so no word is cut in two.
        end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        chunks.push(&text[start..end]);
        start = end;
    }
    chunks
}

fn reduce(plan: Plan) -> Result<String, Error> {
    let chunks = split(&plan.text, plan.chunks);
    let inputs: Vec<String> = chunks.iter().map(|c| json!({ "map": c }).to_string()).collect();
    let outputs: Vec<String> = match plan.mode.as_str() {
        "invoke" => inputs.iter().map(|i| jobs::invoke(&plan.job, i)).collect::<Result<_, _>>()?,
        "enqueue" => {
            let ids: Vec<jobs::JobId> = inputs.iter().map(|i| jobs::enqueue(&plan.job, i)).collect::<Result<_, _>>()?;
            log::info(&format!("enqueued {} chunks", ids.len()));
            ids.iter().map(|id| jobs::wait(id, Duration::from_millis(5))).collect::<Result<_, _>>()?
        }
        other => return Err(Error::invalid_input(format!("unknown mode {other:?}"))),
    };
    let mut total: HashMap<String, u64> = HashMap::new();
    for out in outputs {
        let part: HashMap<String, u64> =
            serde_json::from_str(&out).map_err(|e| Error::internal(format!("bad map output: {e}")))?;
        for (word, n) in part {
            *total.entry(word).or_insert(0) += n;
        }
    }
    let total_words: u64 = total.values().sum();
    let distinct_words = total.len();
    let mut top: Vec<(String, u64)> = total.into_iter().collect();
    top.sort_unstable_by(|(wa, ca), (wb, cb)| cb.cmp(ca).then_with(|| wa.cmp(wb)));
    top.truncate(TOP);
    Ok(json!({
        "chunks": chunks.len(),
        "mode": plan.mode,
        "total_words": total_words,
        "distinct_words": distinct_words,
        "top": top,
    })
    .to_string())
}
