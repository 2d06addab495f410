//! The primitive linked into a real Orbit engine and called by a guest
//! component: the guest path returns the same scrubbed response, the same
//! refusals, and records spans with names only.

mod common;

use common::*;
use orbit_engine::Invocation;
use orbit_engine::orbit_runs::RunStatus;
use orbit_fetch::FetchConfig;

/// A hand-written agent component importing `orbit:runtime/fetch`. Its
/// input is `<secret-name>|<url>` (an empty name: no secret); it sends a
/// `GET` and returns the response body as its output, or the fetch error as
/// its own error.
const GUEST: &str = r#"
(component
  (type $types_t (instance
    (type $code (enum "not-found" "invalid-input" "too-large" "limit-exceeded" "permission-denied" "unavailable" "internal"))
    (export "error-code" (type $code_e (eq $code)))
    (type $err (record (field "code" $code_e) (field "message" string)))
    (export "error" (type (eq $err)))))
  (import "orbit:runtime/types@0.1.0" (instance $types (type $types_t)))
  (alias export $types "error" (type $error))

  (type $fetch_t (instance
    (alias outer 1 $error (type $outer_error))
    (export "error" (type $error_e (eq $outer_error)))
    (type $header (record (field "name" string) (field "value" string)))
    (export "header" (type $header_e (eq $header)))
    (type $request (record
      (field "method" string)
      (field "url" string)
      (field "headers" (list $header_e))
      (field "body" (list u8))
      (field "timeout-ms" (option u32))
      (field "secrets" (list string))))
    (export "request" (type $request_e (eq $request)))
    (type $response (record (field "status" u16) (field "headers" (list $header_e)) (field "body" (list u8))))
    (export "response" (type $response_e (eq $response)))
    (export "fetch" (func (param "req" $request_e) (result (result $response_e (error $error_e)))))))
  (import "orbit:runtime/fetch@0.1.0" (instance $fetch (type $fetch_t)))
  (alias export $fetch "fetch" (func $fetch_fn))

  (core module $Mem
    (memory (export "memory") 2)
    (global $heap (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
          (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (block $ok
        (loop $grow
          (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
          (if (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)) (then unreachable))
          (br $grow)))
      (local.get $p)))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))
  (core func $fetch_lowered (canon lower (func $fetch_fn) (memory $memory) (realloc $realloc)))

  (core module $Main
    (import "env" "memory" (memory 1))
    (import "env" "fetch" (func $fetch
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (data (i32.const 0) "GET")
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      (local $i i32)
      (block $done
        (loop $scan
          (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
          (br_if $done (i32.eq (i32.load8_u (i32.add (local.get $ptr) (local.get $i))) (i32.const 124)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $scan)))
      ;; secrets: one string (the name before `|`) at 32, or none.
      (i32.store (i32.const 32) (local.get $ptr))
      (i32.store (i32.const 36) (local.get $i))
      (call $fetch
        (i32.const 0) (i32.const 3)
        (i32.add (local.get $ptr) (i32.add (local.get $i) (i32.const 1)))
        (i32.sub (local.get $len) (i32.add (local.get $i) (i32.const 1)))
        (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0)
        (i32.const 32) (i32.ne (local.get $i) (i32.const 0))
        (i32.const 256))
      (if (i32.eqz (i32.load8_u (i32.const 256)))
        (then
          (i32.store8 (i32.const 512) (i32.const 0))
          (i32.store (i32.const 516) (i32.load (i32.const 272)))
          (i32.store (i32.const 520) (i32.load (i32.const 276))))
        (else
          (i32.store8 (i32.const 512) (i32.const 1))
          (i32.store8 (i32.const 516) (i32.load8_u (i32.const 260)))
          (i32.store (i32.const 520) (i32.load (i32.const 264)))
          (i32.store (i32.const 524) (i32.load (i32.const 268)))))
      (i32.const 512)))
  (core instance $main (instantiate $Main
    (with "env" (instance (export "memory" (memory $memory)) (export "fetch" (func $fetch_lowered))))))
  (alias core export $main "run" (core func $run_core))
  (func $run (param "input" string) (result (result string (error $error)))
    (canon lift (core func $run_core) (memory $memory) (realloc $realloc)))
  (export "run" (func $run)))
"#;

const SECRET: &str = "guest-never-sees-this-0123456789";

#[tokio::test]
async fn guest_fetch_injects_scrubs_and_records_names_only() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", server.port())]);
    let env = engine(fetch(config(), &v));
    let wasm = wat::parse_str(GUEST).unwrap();

    let out = env
        .engine
        .invoke_wasm(&wasm, Invocation::new(format!("api|{}", server.url("/hello"))).workspace(w.clone()))
        .await
        .unwrap();
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let text = out.output_text();
    assert!(text.contains("authorization: Bearer [REDACTED]") || text.contains("authorization: [REDACTED]"), "{text}");
    assert!(!text.contains(SECRET));
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));

    let span = out.record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
    assert_eq!((span.operation.as_str(), span.outcome.as_str()), ("fetch", "ok"));
    let attr = |k: &str| span.attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(attr("method").as_deref(), Some("GET"));
    assert_eq!(attr("host").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr("status").as_deref(), Some("200"));
    assert_eq!(attr("secrets").as_deref(), Some("api"));
    assert!(span.bytes_out > 0);
    let record = serde_json::to_string(&out.record).unwrap();
    assert!(!record.contains(SECRET));

    // Not bound here, and unknown: the same error, recorded by name.
    let other = serve(echo()).await;
    for name in ["api", "missing"] {
        let inv = Invocation::new(format!("{name}|{}", other.url("/"))).workspace(w.clone());
        let out = env.engine.invoke_wasm(&wasm, inv).await.unwrap();
        let err = out.record.error.clone().unwrap();
        assert_eq!((err.code.as_str(), err.message.as_str()), ("permission-denied", "permission denied"));
        let span = out.record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
        assert_eq!(span.outcome, "permission-denied");
        assert!(span.attrs.contains(&("secret_denied".to_owned(), name.to_owned())), "{:?}", span.attrs);
        assert!(!serde_json::to_string(&out.record).unwrap().contains(SECRET));
    }
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn guest_fetch_counts_requests_per_run() {
    let server = serve(echo()).await;
    let v = vault();
    let env = engine(fetch(FetchConfig { max_requests_per_run: 0, ..config() }, &v));
    let wasm = wat::parse_str(GUEST).unwrap();
    let out = env.engine.invoke_wasm(&wasm, Invocation::new(format!("|{}", server.url("/")))).await.unwrap();
    assert_eq!(out.record.error.unwrap().code, "limit-exceeded");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn guest_fetch_of_a_denied_address() {
    let v = vault();
    let env = engine(fetch(FetchConfig { allow_ips: vec![], ..config() }, &v));
    let wasm = wat::parse_str(GUEST).unwrap();
    let out = env.engine.invoke_wasm(&wasm, Invocation::new("|http://169.254.169.254/latest/")).await.unwrap();
    let err = out.record.error.clone().unwrap();
    assert_eq!(err.code, "permission-denied");
    assert!(out.record.host_errors.iter().any(|d| d.starts_with("fetch.fetch: ") && d.contains("169.254.169.254")));
    let span = out.record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
    assert!(span.attrs.contains(&("host".to_owned(), "169.254.169.254".to_owned())));
}
