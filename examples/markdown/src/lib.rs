//! Example Orbit agent: renders Markdown to HTML.
//!
//! The input is a Markdown document. The agent renders it with
//! [pulldown-cmark](https://crates.io/crates/pulldown-cmark) (tables,
//! footnotes and strikethrough enabled), stores the HTML in the workspace's
//! storage under `html/<first 16 hex chars of sha256(input)>.html` with
//! content type `text/html; charset=utf-8`, logs the key at `info` level and
//! returns the HTML.

use orbit_guest::{Error, log, storage};
use pulldown_cmark::{Options, Parser, html};
use sha2::{Digest, Sha256};

/// Content type of the stored HTML.
const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Render `markdown` to HTML.
fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    let parser = Parser::new_ext(markdown, options);
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, parser);
    out
}

/// The storage key for the HTML rendered from `markdown`.
fn storage_key(markdown: &str) -> String {
    let digest = hex::encode(Sha256::digest(markdown.as_bytes()));
    format!("html/{}.html", &digest[..16])
}

fn run(input: String) -> Result<String, Error> {
    let html = render(&input);
    let key = storage_key(&input);
    storage::put(&key, html.as_bytes(), CONTENT_TYPE)?;
    log::info(&format!("stored rendered HTML at {key}"));
    Ok(html)
}

orbit_guest::export_agent!(run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_extensions() {
        let html = render("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ text[^1]\n\n[^1]: note\n");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<del>gone</del>"), "{html}");
        assert!(html.contains("footnote-definition"), "{html}");
    }

    #[test]
    fn key_is_sha256_prefix() {
        // sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
        assert_eq!(storage_key(""), "html/e3b0c44298fc1c14.html");
    }
}
