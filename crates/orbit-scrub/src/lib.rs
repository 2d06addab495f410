//! One secret scrubber for every path that can carry a secret value back:
//! `fetch` responses and errors, `ai` errors, `tools` results and tool
//! server error texts, span attributes and host errors.
//!
//! A secret reaches a guest only by being echoed: an upstream reflects the
//! `Authorization` header it received, a tool server prints its API key in
//! an error, a proxy base64-encodes a request into a debug page. A
//! [`Scrubber`] is built once per call (or per upstream connection) from the
//! values that call could have exposed, and replaces every known form of
//! each with [`REDACTED`].
//!
//! ```
//! use orbit_scrub::{Scrubber, REDACTED};
//!
//! let s = Scrubber::new(["sk-live-0123456789"], ["Bearer sk-live-0123456789"]).unwrap();
//! let echoed = "upstream said: bad key c2stbGl2ZS0wMTIzNDU2Nzg5 (sk-live-0123456789)";
//! assert_eq!(s.text(echoed), format!("upstream said: bad key {REDACTED} ({REDACTED})"));
//! ```

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

/// What replaces a secret value: `[REDACTED]` (10 bytes).
pub const REDACTED: &str = "[REDACTED]";

/// Shortest base64 fragment matched on its own (see [`Scrubber::new`]), in
/// base64 characters; shorter ones would redact unrelated text.
pub const MIN_FRAGMENT: usize = 8;

/// Characters `encodeURIComponent` leaves alone: RFC 3986 unreserved plus
/// `!*'()`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');
/// RFC 3986 unreserved characters kept, everything else encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Python's `urllib.parse.quote` default: unreserved and `/` kept.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a [`Scrubber`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrubError {
    /// The matcher over the secrets' forms could not be built (aho-corasick
    /// refused the pattern set, for example past its size limits). The text
    /// names the limit, never a pattern. A caller must then not make the
    /// call whose answer it could not scrub.
    #[error("building the secret scrubber: {0}")]
    Build(String),
}

/// Finds every known form of a set of secret values and replaces it with
/// [`REDACTED`].
///
/// Only whole-value forms are found: a fragment of a value (the part of it
/// in a ranged response, say) is not. Values are held only inside the
/// matcher; the pattern strings built from them are zeroized when
/// [`new`](Self::new) returns.
///
/// `Scrubber` is `Send + Sync` and cheap to share behind an `Arc`.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// `None` only when there is nothing to find.
    ac: Option<AhoCorasick>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the patterns: they are the secrets.
        f.debug_struct("Scrubber").field("patterns", &self.ac.as_ref().map_or(0, |ac| ac.patterns_len())).finish()
    }
}

impl Scrubber {
    /// A scrubber that changes nothing.
    pub fn empty() -> Self {
        Self { ac: None }
    }

    /// A scrubber for `values` (raw secret values) and `extra` (strings
    /// derived from them that are not encodings of a value alone, such as
    /// a rendered `Bearer <v>` header or a Basic credential). Empty strings
    /// are ignored.
    ///
    /// Each value is matched:
    /// - raw;
    /// - base64-encoded (RFC 4648 §4 standard and §5 URL-safe alphabets,
    ///   padded and unpadded);
    /// - as the part of its base64 encoding that does not depend on its
    ///   neighbours, at each of the three byte alignments, so it is found
    ///   inside a longer encoded text such as `Basic base64(user:value)` or
    ///   an encoded JSON body (only when that part is at least
    ///   [`MIN_FRAGMENT`] characters);
    /// - percent-encoded the common ways (every non-alphanumeric byte;
    ///   RFC 3986 unreserved kept; `encodeURIComponent`; Python's `quote`,
    ///   which keeps `/`), `application/x-www-form-urlencoded`, and Go's
    ///   `QueryEscape`;
    /// - JSON-escaped (RFC 8259 §7) as serde_json and JavaScript write it,
    ///   with `/` escaped too, with every non-ASCII character as `\uXXXX`
    ///   (Python), and with `<`, `>`, `&` as `\uXXXX` (Go).
    ///
    /// Not matched: base64 broken across lines (MIME, PEM), HTML entities,
    /// double percent-encoding, and a value made only of digits written as
    /// a JSON number.
    ///
    /// Matching ignores ASCII case, which covers `%2f` as well as `%2F`,
    /// and prefers the longest match.
    ///
    /// # Errors
    /// [`ScrubError::Build`] when the matcher cannot be built.
    pub fn new<'a>(
        values: impl IntoIterator<Item = &'a str>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ScrubError> {
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        for v in values {
            if !v.is_empty() {
                forms(v, &mut patterns);
            }
        }
        for e in extra {
            patterns.push(Zeroizing::new(e.to_owned()));
        }
        patterns.retain(|p| !p.is_empty());
        patterns.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        patterns.dedup_by(|a, b| a.as_str() == b.as_str());
        if patterns.is_empty() {
            return Ok(Self::empty());
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(patterns.iter().map(|p| p.as_bytes()))
            .map_err(|e| ScrubError::Build(e.to_string()))?;
        Ok(Self { ac: Some(ac) })
    }

    /// Whether this scrubber finds nothing (it was built from no value).
    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// `bytes` with every match replaced by [`REDACTED`].
    pub fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.ac {
            Some(ac) => {
                let mut out = Vec::with_capacity(bytes.len());
                ac.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
                    dst.extend_from_slice(REDACTED.as_bytes());
                    true
                });
                out
            }
            None => bytes.to_vec(),
        }
    }

    /// `text` with every match replaced by [`REDACTED`].
    pub fn text(&self, text: &str) -> String {
        match &self.ac {
            Some(ac) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                out
            }
            None => text.to_owned(),
        }
    }

    /// Whether `text` holds any form of a value (cheaper than comparing
    /// [`text`](Self::text) with its input).
    pub fn finds(&self, text: &[u8]) -> bool {
        self.ac.as_ref().is_some_and(|ac| ac.is_match(text))
    }

    /// Scrubs every string in `value`, object keys included, in place.
    ///
    /// Numbers and booleans are left alone: a secret that is only digits
    /// still appears as a string wherever a JSON encoder was handed text.
    pub fn json(&self, value: &mut serde_json::Value) {
        if self.ac.is_none() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if self.finds(s.as_bytes()) {
                    *s = self.text(s);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            serde_json::Value::Object(o) => {
                if o.keys().any(|k| self.finds(k.as_bytes())) {
                    let entries = std::mem::take(o);
                    for (k, v) in entries {
                        o.insert(self.text(&k), v);
                    }
                }
                o.values_mut().for_each(|x| self.json(x));
            }
            _ => {}
        }
    }

    /// `value` with its strings scrubbed, through its JSON form (for the
    /// typed messages of a protocol such as MCP).
    ///
    /// A value whose JSON form cannot be read back as `T` after scrubbing
    /// (a scrubbed string that had to match a pattern, say) is not returned
    /// unscrubbed: the error is returned instead.
    ///
    /// # Errors
    /// The [`serde_json::Error`] of writing `value` as JSON or of reading
    /// the scrubbed form back.
    pub fn typed<T: serde::Serialize + serde::de::DeserializeOwned>(&self, value: T) -> Result<T, serde_json::Error> {
        if self.ac.is_none() {
            return Ok(value);
        }
        let mut json = serde_json::to_value(&value)?;
        self.json(&mut json);
        serde_json::from_value(json)
    }
}

/// Pushes every form of `v` that [`Scrubber::new`] matches.
fn forms(v: &str, patterns: &mut Vec<Zeroizing<String>>) {
    patterns.push(Zeroizing::new(v.to_owned()));
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        patterns.push(Zeroizing::new(engine.encode(v)));
    }
    // The characters of base64(prefix ++ v ++ suffix) that depend only on v:
    // with k bytes before it, v starts at bit 8k, so the first character
    // wholly inside v is ceil(8k / 6) and the last whole one ends at
    // floor(8(k + len) / 6).
    for k in 0..3usize {
        let mut buf = Zeroizing::new(vec![0u8; k]);
        buf.extend_from_slice(v.as_bytes());
        let start = (8 * k).div_ceil(6);
        let end = 8 * buf.len() / 6;
        if end >= start + MIN_FRAGMENT {
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                let enc = Zeroizing::new(engine.encode(&*buf));
                patterns.push(Zeroizing::new(enc[start..end].to_owned()));
            }
        }
    }
    for set in [NON_ALPHANUMERIC, UNRESERVED, URI_COMPONENT, PATH] {
        patterns.push(Zeroizing::new(utf8_percent_encode(v, set).to_string()));
    }
    patterns.push(Zeroizing::new(form_urlencoded::byte_serialize(v.as_bytes()).collect()));
    // Go's url.QueryEscape: unreserved kept, space as `+`.
    patterns.push(Zeroizing::new(utf8_percent_encode(v, UNRESERVED).to_string().replace("%20", "+")));
    for style in [
        JsonStyle::default(),
        JsonStyle { slash: true, ..JsonStyle::default() },
        JsonStyle { ascii: true, ..JsonStyle::default() },
        JsonStyle { html: true, ..JsonStyle::default() },
    ] {
        patterns.push(json_escape(v, style));
    }
}

/// How an encoder escapes a JSON string beyond what RFC 8259 requires.
#[derive(Clone, Copy, Default)]
struct JsonStyle {
    /// `/` as `\/` (PHP, some Java encoders).
    slash: bool,
    /// Every non-ASCII character as `\uXXXX` (Python's `ensure_ascii`).
    ascii: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX` (Go's `encoding/json`).
    html: bool,
}

/// `v` as it appears inside a JSON string (RFC 8259 §7) written in
/// `style`; control characters use the short escapes where JSON has them.
fn json_escape(v: &str, style: JsonStyle) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(v.len()));
    let unit = |out: &mut String, u: u16| out.push_str(&format!("\\u{u:04x}"));
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style.slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => unit(&mut out, c as u16),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if style.html => unit(&mut out, c as u16),
            c if style.ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    unit(&mut out, *u);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
