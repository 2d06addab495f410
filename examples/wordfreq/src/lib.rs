//! Example Orbit agent: word frequencies.
//!
//! The input is text. The agent splits it into words with
//! [unicode-segmentation](https://crates.io/crates/unicode-segmentation)
//! (`unicode_words`: Unicode word boundaries, punctuation dropped),
//! lowercases them and returns
//!
//! ```json
//! {"total_words":N,"distinct_words":M,"top":[["the",123],...],"cached":false}
//! ```
//!
//! where `top` holds the 20 most frequent words, by count descending then
//! word ascending. The result is cached under `wordfreq/<sha256 hex of the
//! input>` for one hour; a cache hit returns the cached result with
//! `"cached":true` and logs `cache hit`.

use orbit_guest::{Error, cache, log};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use unicode_segmentation::UnicodeSegmentation;

/// How many words the result lists.
const TOP: usize = 20;
/// How long a result stays cached.
const TTL: Duration = Duration::from_secs(60 * 60);

/// The agent's result; serialised with its fields in this order.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Frequencies {
    total_words: u64,
    distinct_words: u64,
    top: Vec<(String, u64)>,
    cached: bool,
}

/// Word counts of `text`.
fn analyse(text: &str) -> Frequencies {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut total_words: u64 = 0;
    for word in text.unicode_words() {
        total_words += 1;
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    let distinct_words = counts.len() as u64;
    let mut top: Vec<(String, u64)> = counts.into_iter().collect();
    top.sort_unstable_by(|(wa, ca), (wb, cb)| cb.cmp(ca).then_with(|| wa.cmp(wb)));
    top.truncate(TOP);
    Frequencies { total_words, distinct_words, top, cached: false }
}

fn to_json(result: &Frequencies) -> Result<String, Error> {
    serde_json::to_string(result).map_err(|_| Error::internal("cannot serialise the result"))
}

fn run(input: String) -> Result<String, Error> {
    let key = format!("wordfreq/{}", hex::encode(Sha256::digest(input.as_bytes())));

    if let Some(bytes) = cache::get(&key)? {
        // Only trust an entry in the shape this agent writes.
        match serde_json::from_slice::<Frequencies>(&bytes) {
            Ok(mut cached) => {
                log::info("cache hit");
                cached.cached = true;
                return to_json(&cached);
            }
            Err(_) => log::warn("ignoring a malformed cache entry"),
        }
    }

    let json = to_json(&analyse(&input))?;
    cache::set(&key, json.as_bytes(), Some(TTL))?;
    log::debug(&format!("cached result under {key}"));
    Ok(json)
}

orbit_guest::export_agent!(run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_orders() {
        let f = analyse("The cat and the hat. THE END, cat's hat!");
        assert_eq!(f.total_words, 9);
        assert_eq!(f.distinct_words, 6);
        let top: Vec<(&str, u64)> = f.top.iter().map(|(w, c)| (w.as_str(), *c)).collect();
        assert_eq!(top, [("the", 3), ("hat", 2), ("and", 1), ("cat", 1), ("cat's", 1), ("end", 1)]);
    }

    #[test]
    fn json_field_order() {
        let json = to_json(&analyse("b a b")).unwrap();
        assert_eq!(json, r#"{"total_words":3,"distinct_words":2,"top":[["b",2],["a",1]],"cached":false}"#);
    }
}
