//! Replacing secret values in what flows back to the guest (and into error
//! detail) with [`REDACTED`].

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::error::FetchError;

/// What replaces a secret value in a response or an error detail.
pub const REDACTED: &str = "[REDACTED]";

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

/// Shortest base64 fragment matched on its own (see [`Scrubber::new`]);
/// shorter ones would redact unrelated text.
const MIN_FRAGMENT: usize = 8;

#[cfg(test)]
thread_local! {
    /// Makes [`Scrubber::new`] fail on this thread, as a matcher that cannot
    /// be built would.
    pub(crate) static FAIL_BUILD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Finds every known form of a set of secret values and replaces it.
///
/// Only whole-value forms are found: a fragment of a value (for example
/// the part of it in a ranged response) is not.
pub(crate) struct Scrubber {
    /// `None` only when there is nothing to find.
    ac: Option<AhoCorasick>,
    replacements: Vec<&'static [u8]>,
}

impl Scrubber {
    /// A scrubber that changes nothing.
    pub(crate) fn empty() -> Self {
        Self { ac: None, replacements: Vec::new() }
    }

    /// A scrubber for `values` (raw secret values) and `extra` (strings
    /// derived from them that are not encodings of the value alone, such as
    /// a rendered `Bearer <v>` header or a Basic credential).
    ///
    /// Each value is matched raw; base64-encoded with the standard and the
    /// URL-safe alphabet, padded and unpadded; as the part of its base64
    /// encoding that does not depend on its neighbours, at each of the three
    /// byte alignments (so it is found inside a longer encoded text);
    /// percent-encoded three common ways (every non-alphanumeric byte,
    /// RFC 3986 unreserved kept, `encodeURIComponent`) and
    /// form-urlencoded; and JSON-escaped. Matching ignores ASCII case, which
    /// covers `%2f` as well as `%2F`, and prefers the longest match.
    ///
    /// # Errors
    /// [`FetchError::Internal`] when the matcher cannot be built. The caller
    /// must then not send the request: it could not scrub the response.
    pub(crate) fn new<'a>(
        values: impl IntoIterator<Item = &'a str>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, FetchError> {
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        for v in values {
            if v.is_empty() {
                continue;
            }
            patterns.push(Zeroizing::new(v.to_owned()));
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                patterns.push(Zeroizing::new(engine.encode(v)));
            }
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
            for set in [NON_ALPHANUMERIC, UNRESERVED, URI_COMPONENT] {
                patterns.push(Zeroizing::new(utf8_percent_encode(v, set).to_string()));
            }
            patterns.push(Zeroizing::new(url::form_urlencoded::byte_serialize(v.as_bytes()).collect()));
            patterns.push(json_escape(v));
        }
        for e in extra {
            if !e.is_empty() {
                patterns.push(Zeroizing::new(e.to_owned()));
            }
        }
        patterns.retain(|p| !p.is_empty());
        patterns.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        patterns.dedup_by(|a, b| a.as_str() == b.as_str());
        if patterns.is_empty() {
            return Ok(Self::empty());
        }
        #[cfg(test)]
        if FAIL_BUILD.get() {
            return Err(FetchError::Internal("building the response scrubber: injected failure".to_owned()));
        }
        // The error names limits, never a pattern.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(patterns.iter().map(|p| p.as_bytes()))
            .map_err(|e| FetchError::Internal(format!("building the response scrubber: {e}")))?;
        let replacements = vec![REDACTED.as_bytes(); patterns.len()];
        Ok(Self { ac: Some(ac), replacements })
    }

    /// `bytes` with every match replaced by [`REDACTED`].
    pub(crate) fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.ac {
            Some(ac) => ac.replace_all_bytes(bytes, &self.replacements),
            None => bytes.to_vec(),
        }
    }

    /// `text` with every match replaced by [`REDACTED`].
    pub(crate) fn text(&self, text: &str) -> String {
        match &self.ac {
            Some(ac) => ac.replace_all(text, &vec![REDACTED; self.replacements.len()]),
            None => text.to_owned(),
        }
    }
}

/// `v` as it appears inside a JSON string (RFC 8259 §7), with `/` escaped
/// too, as some encoders do.
fn json_escape(v: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(v.len()));
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_raw_encoded_and_embedded_forms() {
        let secret = "s3cr3t/t0ken+value=";
        let s = Scrubber::new([secret], ["Bearer s3cr3t/t0ken+value="]).unwrap();
        let forms = [
            secret.to_owned(),
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string().to_lowercase(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            "s3cr3t\\/t0ken+value=".to_owned(),
            // Inside longer base64 text, at each alignment.
            STANDARD.encode(format!("x{secret}yy")),
            STANDARD.encode(format!("xx{secret}y")),
            STANDARD.encode(format!("{{\"auth\":\"{secret}\"}}")),
            STANDARD.encode(format!("user:{secret}")),
        ];
        for form in forms {
            let out = s.text(&format!("before {form} after"));
            assert!(out.contains(REDACTED), "{form} -> {out}");
            assert!(!out.contains(secret), "{form} -> {out}");
            assert!(!out.contains(&STANDARD_NO_PAD.encode(secret)[..12]), "{form} -> {out}");
        }
        assert_eq!(s.text("Authorization: Bearer s3cr3t/t0ken+value="), "Authorization: [REDACTED]");
        assert_eq!(s.bytes(b"nothing here"), b"nothing here");
        assert_eq!(Scrubber::empty().text("x"), "x");
    }

    #[test]
    fn a_matcher_that_cannot_be_built_is_an_error() {
        FAIL_BUILD.set(true);
        let r = Scrubber::new(["some-secret-value"], []);
        FAIL_BUILD.set(false);
        assert!(matches!(r, Err(FetchError::Internal(_))));
        // Nothing to find needs no matcher.
        FAIL_BUILD.set(true);
        let r = Scrubber::new([""], []);
        FAIL_BUILD.set(false);
        assert!(r.is_ok());
    }
}
