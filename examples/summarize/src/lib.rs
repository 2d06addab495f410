//! Example Orbit agent: summarizes a long text through the `ai` primitive.
//!
//! Input: JSON `{"text": "...", "provider": "local", "model": "default",
//! "chunk_chars": 4000, "max_tokens": 256}` (all but `text` optional, with
//! those defaults), or plain text (summarized with the defaults).
//!
//! The text is cut into chunks of at most `chunk_chars` characters at
//! paragraph boundaries (a longer paragraph at word boundaries). Each chunk
//! is summarized on its own (map); when there is more than one, the partial
//! summaries are combined into one (reduce). Output: JSON
//! `{"summary", "chunks", "partial_summaries", "input_tokens", "output_tokens"}`.

use orbit_guest::ai::{self, ChatRequest};
use orbit_guest::{Error, Result, log};
use serde_json::{Value, json};

const MAP_PROMPT: &str = "Summarize the following part of a longer document in at most three sentences. \
Keep names, numbers and conclusions. Reply with the summary only.";
const REDUCE_PROMPT: &str = "These are summaries of consecutive parts of one document. \
Write one summary of the whole document in at most five sentences. Reply with the summary only.";

struct Job {
    provider: String,
    model: String,
    max_tokens: u32,
    input_tokens: u64,
    output_tokens: u64,
}

impl Job {
    fn ask(&mut self, system: &str, user: String) -> Result<String> {
        let reply = ai::chat(
            ChatRequest::new(&self.provider, &self.model).system(system).user(user).max_tokens(self.max_tokens),
        )?;
        self.input_tokens += u64::from(reply.usage.input_tokens);
        self.output_tokens += u64::from(reply.usage.output_tokens);
        Ok(reply.text.trim().to_owned())
    }
}

/// Splits `text` into chunks of at most `max` characters, at paragraph
/// boundaries where possible, else at whitespace, else anywhere.
fn chunks(text: &str, max: usize) -> Vec<String> {
    // Appends `piece` to the chunk being filled, first closing it if the
    // piece would not fit.
    let push_piece = |piece: &str, current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() && current.chars().count() + 2 + piece.chars().count() > max {
            out.push(std::mem::take(current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(piece);
    };
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if para.chars().count() <= max {
            push_piece(para, &mut current, &mut out);
            continue;
        }
        // A paragraph longer than a chunk: cut it at word boundaries.
        let mut piece = String::new();
        for word in para.split_whitespace() {
            if !piece.is_empty() && piece.chars().count() + 1 + word.chars().count() > max {
                push_piece(&std::mem::take(&mut piece), &mut current, &mut out);
            }
            if !piece.is_empty() {
                piece.push(' ');
            }
            // A single word longer than a chunk is cut anywhere.
            let mut w: Vec<char> = word.chars().collect();
            while w.len() > max {
                let head: String = w.drain(..max).collect();
                push_piece(&head, &mut current, &mut out);
            }
            piece.extend(w);
        }
        if !piece.is_empty() {
            push_piece(&piece, &mut current, &mut out);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn run(input: String) -> Result<String> {
    let spec: Value = serde_json::from_str(&input).unwrap_or_else(|_| json!({ "text": input }));
    let field = |k: &str, default: &str| spec.get(k).and_then(Value::as_str).unwrap_or(default).to_owned();
    let text = field("text", "");
    if text.trim().is_empty() {
        return Err(Error::invalid_input("nothing to summarize"));
    }
    let chunk_chars = spec.get("chunk_chars").and_then(Value::as_u64).unwrap_or(4000).max(100) as usize;
    let mut job = Job {
        provider: field("provider", "local"),
        model: field("model", "default"),
        max_tokens: spec.get("max_tokens").and_then(Value::as_u64).unwrap_or(256).clamp(1, 4096) as u32,
        input_tokens: 0,
        output_tokens: 0,
    };
    let parts = chunks(&text, chunk_chars);
    log::info(&format!("summarizing {} characters in {} chunks", text.chars().count(), parts.len()));
    let mut partial = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        partial.push(job.ask(MAP_PROMPT, part.clone())?);
        log::debug(&format!("chunk {} of {} summarized", i + 1, parts.len()));
    }
    let summary = if partial.len() == 1 {
        partial[0].clone()
    } else {
        let numbered: Vec<String> = partial.iter().enumerate().map(|(i, s)| format!("Part {}: {s}", i + 1)).collect();
        job.ask(REDUCE_PROMPT, numbered.join("\n\n"))?
    };
    Ok(json!({
        "summary": summary,
        "chunks": parts.len(),
        "partial_summaries": partial,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
    })
    .to_string())
}

orbit_guest::export_agent!(run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_size_and_keep_every_word() {
        let text = "one two three\n\nfour five six seven eight nine ten eleven twelve\n\nthirteen";
        let c = chunks(text, 20);
        assert!(c.iter().all(|c| c.chars().count() <= 20), "{c:?}");
        let words: Vec<&str> = c.iter().flat_map(|c| c.split_whitespace()).collect();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
        assert_eq!(chunks("short", 100), vec!["short"]);
        assert_eq!(chunks(&"x".repeat(250), 100).len(), 3);
    }
}
