//! The secret scrubber over arbitrary secrets and texts.
//!
//! Property: after scrubbing, the text holds no occurrence of the secret in
//! any of the forms the scrubber promises (raw, base64 in both alphabets),
//! and scrubbing text that holds none changes nothing. Secrets that share
//! a character with the replacement `[REDACTED]`'s brackets, or are part of
//! it, are skipped: the replacement itself could then spell them.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use orbit_scrub::{REDACTED, Scrubber};

fuzz_target!(|input: (&str, &str, u8)| {
    let (secret, text, how) = input;
    if secret.is_empty()
        || secret.contains(['[', ']'])
        || REDACTED.to_ascii_lowercase().contains(&secret.to_ascii_lowercase())
    {
        return;
    }
    let Ok(s) = Scrubber::new([secret], []) else { return };
    // Put a form of the secret inside the text, at a place the input picks.
    let form = match how % 3 {
        0 => secret.to_owned(),
        1 => STANDARD.encode(secret),
        _ => URL_SAFE_NO_PAD.encode(secret),
    };
    let at = text.char_indices().map(|(i, _)| i).nth(usize::from(how / 3)).unwrap_or(text.len());
    let mixed = format!("{}{form}{}", &text[..at], &text[at..]);
    let out = s.text(&mixed);
    assert!(!out.contains(secret), "{secret:?} survives in {out:?}");
    // A short base64 form may be spelled by the replacement itself ("DA" is
    // in "REDACTED"); base64 has no brackets, so no other can cross it.
    if !REDACTED.to_ascii_lowercase().contains(&form.to_ascii_lowercase()) {
        assert!(!out.contains(&form), "{form:?} survives in {out:?}");
    }
    assert_eq!(s.bytes(mixed.as_bytes()), out.as_bytes());
    // Text without any form is left alone.
    if !s.finds(text.as_bytes()) {
        assert_eq!(s.text(text), text);
    }
});
