//! The example guests do real work on real input, through the engine.

mod common;

use common::env;
use orbit::{ComponentKind, RunStatus};

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_renders_html_and_stores_it() {
    let e = env();
    let md = std::fs::read_to_string(repo("examples/markdown/sample.md")).unwrap();
    let out = e.run("markdown", &md).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert_eq!(out.record.kind, ComponentKind::Agent);
    let html = out.output_text();
    assert!(html.contains("<h1>"), "{html}");
    assert!(html.contains("<table>"), "tables are rendered");
    assert!(html.contains("<code"), "code is rendered");
    assert!(!html.contains("\n# "), "no raw Markdown heading left");
    // The HTML is in storage, under the key the guest logged.
    let blobs = e.orbit.blobs();
    let (objects, _) = blobs.list(&common::ws("default"), "html/", None, 10).unwrap();
    assert_eq!(objects.len(), 1);
    assert!(objects[0].content_type.starts_with("text/html"));
    let stored = blobs.get(&common::ws("default"), &objects[0].key).unwrap();
    assert_eq!(stored, out.output);
    assert!(out.record.logs.iter().any(|l| l.message.contains(&objects[0].key)));
    assert!(out.record.spans.iter().any(|s| s.primitive == "storage" && s.operation == "put" && s.outcome == "ok"));
}

fn word_count(text: &str, word: &str) -> u64 {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| *w == word).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordfreq_counts_a_real_text_and_caches_the_result() {
    let e = env();
    let data = repo("examples/wordfreq/data/GPL-3.txt");
    let text = std::fs::read_to_string(&data).unwrap();
    let first = e.run("wordfreq", &text).await;
    assert_eq!(first.status(), RunStatus::Succeeded, "{:?}", first.record);
    let v: serde_json::Value = serde_json::from_slice(&first.output).unwrap();
    assert_eq!(v["cached"], false);
    assert!(v["total_words"].as_u64().unwrap() > 1000);
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 20);
    // The top word's count matches an independent count on the host.
    let (word, count) = (top[0][0].as_str().unwrap(), top[0][1].as_u64().unwrap());
    assert_eq!(count, word_count(&text, word), "count of {word:?}");
    // Sorted by count, descending.
    assert!(top.windows(2).all(|w| w[0][1].as_u64() >= w[1][1].as_u64()));

    let second = e.run("wordfreq", &text).await;
    let v2: serde_json::Value = serde_json::from_slice(&second.output).unwrap();
    assert_eq!(v2["cached"], true);
    assert_eq!(v2["top"], v["top"]);
    assert!(second.record.spans.iter().any(|s| s.primitive == "cache" && s.operation == "get"));
    assert!(second.fuel_consumed() < first.fuel_consumed(), "a cache hit skips the counting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_wasi_command_reads_stdin_and_reports() {
    use sha2::Digest;
    let e = env();
    let input = "one two three\nfour five\n";
    let out = e.run("hello-cli", input).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert_eq!(out.record.kind, ComponentKind::Command);
    assert_eq!(out.record.exit_code, Some(0));
    let text = out.output_text();
    let sha = hex::encode(sha2::Sha256::digest(input.as_bytes()));
    assert!(text.contains(&sha), "{text}");
    assert!(text.contains('5'), "five words: {text}");
    // Empty stdin: the command's own non-zero exit becomes the status.
    let out = e.run("hello-cli", "").await;
    assert_eq!(out.status(), RunStatus::Exited);
    assert_eq!(out.record.exit_code, Some(3));
    assert!(out.record.logs.iter().any(|l| l.level == orbit::orbit_runs::LogLevel::Stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_become_the_status() {
    let e = env();
    let out = e.run("exit-code", "7").await;
    assert_eq!(out.status(), RunStatus::Exited);
    assert_eq!(out.record.exit_code, Some(7));
    assert_eq!(out.output_text().trim(), "exiting with 7");
    let out = e.run("exit-code", "0").await;
    assert_eq!(out.status(), RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_can_import_orbit_primitives() {
    let e = env();
    let out = e.run("cli-primitives", "from/cli").await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert!(out.output_text().contains("from-cli"));
    let stored = e.orbit.blobs().get(&common::ws("default"), "from/cli").unwrap();
    assert_eq!(stored, b"from-cli");
    assert_eq!(e.orbit.cache().get(&common::ws("default"), "cli-counter").unwrap().as_deref(), Some(&b"1"[..]));
}
