use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;

use super::*;

/// `secret` as serde_json writes it inside a string, without the quotes.
fn json_inner(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Every form a value may come back in, built with the encoders a server
/// would use rather than with the scrubber's own helpers.
fn echoed_forms(secret: &str) -> Vec<String> {
    const UNRESERVED: &percent_encoding::AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    const QUOTE: &percent_encoding::AsciiSet = &UNRESERVED.remove(b'/');
    vec![
        secret.to_owned(),
        secret.to_ascii_uppercase(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string().to_lowercase(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        // serde_json's escaping (no `\/`) and the escaped-slash variant.
        json_inner(secret),
        json_inner(secret).replace('/', "\\/"),
        // Python's quote (keeps `/`), Go's QueryEscape (space as `+`).
        utf8_percent_encode(secret, QUOTE).to_string(),
        utf8_percent_encode(secret, UNRESERVED).to_string().replace("%20", "+"),
        // Go's encoding/json escapes <, > and & too.
        json_inner(secret).replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026"),
        // Inside longer base64 text, at each alignment.
        STANDARD.encode(format!("x{secret}yy")),
        STANDARD.encode(format!("xx{secret}y")),
        URL_SAFE_NO_PAD.encode(format!("xxx{secret}")),
        STANDARD.encode(format!("{{\"auth\":\"{secret}\"}}")),
        // Header-rendered: a Basic credential and a bearer header.
        format!("Basic {}", STANDARD.encode(format!("user:{secret}"))),
        format!("Authorization: Bearer {secret}"),
    ]
}

#[test]
fn scrubs_raw_encoded_escaped_and_embedded_forms() {
    let secret = "s3cr3t/t0ken+value=\"q\" &<ä>";
    let s = Scrubber::new([secret], ["Bearer s3cr3t/t0ken+value=\"q\" &<ä>"]).unwrap();
    for form in echoed_forms(secret) {
        let out = s.text(&format!("before {form} after"));
        assert!(out.contains(REDACTED), "{form} -> {out}");
        assert!(out.starts_with("before ") && out.ends_with(" after"), "{form} -> {out}");
        assert!(!out.contains(&form), "{form} -> {out}");
        assert!(!out.contains("s3cr3t"), "{form} -> {out}");
        assert!(!out.contains(&STANDARD_NO_PAD.encode(secret)[..12]), "{form} -> {out}");
        assert_eq!(s.bytes(format!("before {form} after").as_bytes()), out.as_bytes());
    }
    // Python's json.dumps (ensure_ascii) writes the ä as \u00e4.
    let out = s.text(r#"{"k": "s3cr3t/t0ken+value=\"q\" &<\u00e4>"}"#);
    assert_eq!(out, r#"{"k": "[REDACTED]"}"#);
    // The longest match wins: the rendered header goes as one.
    assert_eq!(s.text("Authorization: Bearer s3cr3t/t0ken+value=\"q\" &<ä>"), "Authorization: [REDACTED]");
}

#[test]
fn text_without_a_secret_is_unchanged() {
    let s = Scrubber::new(["a-long-secret-value"], []).unwrap();
    for text in ["", "nothing here", "a-long-secret-valu", "ünïcödé a-long-secret", "[REDACTED]"] {
        assert_eq!(s.text(text), text);
        assert_eq!(s.bytes(text.as_bytes()), text.as_bytes());
        assert!(!s.finds(text.as_bytes()));
    }
    assert!(!s.is_empty());
}

#[test]
fn nothing_to_find_needs_no_matcher() {
    let s = Scrubber::new(["", ""], [""]).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.text("x"), "x");
    assert!(Scrubber::empty().is_empty());
    assert_eq!(Scrubber::default().bytes(b"y"), b"y");
}

#[test]
fn several_values_are_all_found() {
    let s = Scrubber::new(["first-secret-1", "second-secret-2"], []).unwrap();
    let out = s.text(&format!("{} and {}", STANDARD.encode("second-secret-2"), "first-secret-1"));
    assert_eq!(out, "[REDACTED] and [REDACTED]");
}

#[test]
fn json_strings_and_keys_are_scrubbed_in_place() {
    let s = Scrubber::new(["tok-abcdef123456"], []).unwrap();
    let mut v = serde_json::json!({
        "content": [{"type": "text", "text": "key tok-abcdef123456 rejected"}],
        "tok-abcdef123456": {"nested": ["x", STANDARD.encode("tok-abcdef123456")]},
        "n": 7, "ok": true, "none": null,
    });
    s.json(&mut v);
    let text = v.to_string();
    assert!(!text.contains("tok-abcdef"), "{text}");
    assert_eq!(v["content"][0]["text"], "key [REDACTED] rejected");
    assert_eq!(v["[REDACTED]"]["nested"][1], "[REDACTED]");
    assert_eq!(v["n"], 7);
    assert_eq!(v["ok"], true);
}

#[test]
fn typed_values_go_through_their_json_form() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Message {
        level: u8,
        data: String,
    }
    let s = Scrubber::new(["tok-abcdef123456"], []).unwrap();
    let m = s.typed(Message { level: 3, data: "using tok-abcdef123456".into() }).unwrap();
    assert_eq!(m, Message { level: 3, data: "using [REDACTED]".into() });
}

#[test]
fn debug_never_prints_a_pattern() {
    let s = Scrubber::new(["tok-abcdef123456"], []).unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("tok-"), "{shown}");
    assert!(!shown.contains(&STANDARD.encode("tok-abcdef123456")), "{shown}");
}

/// A secret as a vault would hold one: printable, no `[` (so the
/// replacement itself cannot rebuild it), long enough to be a credential.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=_.~:!$&*()@ \"\\\\-]{12,48}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever surrounds it, no echoed form of the value survives.
    #[test]
    fn no_form_survives_in_any_surroundings(
        secret in secret(),
        before in "[a-z ]{0,20}",
        after in "[a-z ]{0,20}",
    ) {
        let s = Scrubber::new([secret.as_str()], []).unwrap();
        for form in echoed_forms(&secret) {
            let out = s.text(&format!("{before}{form}{after}"));
            prop_assert!(out.contains(REDACTED), "{} -> {}", form, out);
            prop_assert!(!out.contains(&secret), "{} -> {}", form, out);
            prop_assert!(!out.contains(&form), "{} -> {}", form, out);
        }
    }

    /// Inside base64 of arbitrary bytes, the characters that encode the
    /// value alone (whatever its alignment) are gone.
    #[test]
    fn no_base64_core_survives_inside_encoded_bytes(
        secret in secret(),
        before in proptest::collection::vec(any::<u8>(), 0..16),
        after in proptest::collection::vec(any::<u8>(), 0..16),
        url_safe in any::<bool>(),
    ) {
        let s = Scrubber::new([secret.as_str()], []).unwrap();
        let mut buf = before.clone();
        buf.extend_from_slice(secret.as_bytes());
        buf.extend_from_slice(&after);
        let encoded = if url_safe { URL_SAFE.encode(&buf) } else { STANDARD.encode(&buf) };
        let start = (8 * before.len()).div_ceil(6);
        let end = 8 * (before.len() + secret.len()) / 6;
        let core = &encoded[start..end];
        let out = s.text(&encoded);
        prop_assert!(!out.contains(core), "{} -> {}", core, out);
    }

    /// Scrubbing never panics and is the identity on text without a match.
    #[test]
    fn arbitrary_text_is_safe(secret in secret(), text in any::<String>()) {
        let s = Scrubber::new([secret.as_str()], []).unwrap();
        let out = s.text(&text);
        if !s.finds(text.as_bytes()) {
            prop_assert_eq!(out, text);
        }
    }
}
