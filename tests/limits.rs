//! Every limit ends a real guest with its own typed status, on the API and
//! on the durable run record, and other runs are not disturbed.

mod common;

use std::time::Duration;

use common::{env, limits, with_timeout};
use orbit::RunStatus;

async fn assert_recorded(e: &common::Env, out: &orbit::Outcome, status: RunStatus) {
    assert_eq!(out.status(), status, "record: {:?}", out.record);
    let stored = e.orbit.runs().get(out.run_id()).unwrap().expect("run is recorded");
    assert_eq!(stored.status, status);
    let err = stored.error.expect("a failed run carries an error");
    assert_eq!(err.code, status.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_runs_out_of_fuel() {
    let e = env();
    let mut l = limits();
    l.fuel = 5_000_000;
    let out = e.run_in("spin", "default", "", l).await;
    assert_recorded(&e, &out, RunStatus::OutOfFuel).await;
    // All the fuel given was used, give or take the final instruction block.
    assert!(out.fuel_consumed() >= 4_900_000, "fuel consumed {}", out.fuel_consumed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let e = env();
    let mut l = with_timeout(200);
    l.fuel = u64::MAX / 2;
    let out = e.run_in("spin", "default", "", l).await;
    assert_recorded(&e, &out, RunStatus::DeadlineExceeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_in_a_host_call_hits_the_deadline() {
    let e = env();
    // The guest sleeps 30 s through WASI clocks; the run has 300 ms.
    let ops = serde_json::json!([{"op": "sleep_ms", "ms": 30000}]).to_string();
    let wasm = orbit_test_guests::bytes("ops");
    let inv = orbit::Invocation::new(ops).limits(with_timeout(300));
    let out = e.orbit.engine().invoke_wasm(&wasm, inv).await.unwrap();
    assert_recorded(&e, &out, RunStatus::DeadlineExceeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_limit() {
    let e = env();
    let mut l = limits();
    l.memory_bytes = 32 << 20;
    let out = e.run_in("membomb", "default", "", l).await;
    assert_recorded(&e, &out, RunStatus::MemoryLimit).await;
    // The per-run 32 MiB override (not the 64 MiB default) stopped it.
    let stderr: String = out.record.logs.iter().map(|l| l.message.as_str()).collect();
    let most = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("allocated ")?.strip_suffix(" MiB")?.parse::<u32>().ok())
        .max()
        .expect("progress lines on stderr");
    assert!((24..32).contains(&most), "allocated {most} MiB under a 32 MiB limit");
    // The record says how much linear memory the run held: what it got,
    // never more than the limit.
    let held = out.record.memory_bytes;
    assert!((u64::from(most) << 20) <= held && held <= 32 << 20, "memory_bytes {held} after {most} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_overflows_the_stack_without_aborting() {
    let e = env();
    let out = e.run("recursion", "").await;
    assert_recorded(&e, &out, RunStatus::StackOverflow).await;
    // The process is alive and the engine still runs guests.
    let ok = e.run("echo", "still here").await;
    assert_eq!(ok.output_text(), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enormous_agent_output_is_too_large() {
    let e = env();
    let mut l = limits();
    l.output_bytes = 64 << 10;
    let out = e.run_in("bigoutput", "default", &(1u32 << 20).to_string(), l.clone()).await;
    assert_recorded(&e, &out, RunStatus::TooLarge).await;
    assert!(out.output.is_empty());
    assert_eq!(out.record.output_bytes, 1 << 20, "the record keeps the size that was refused");
    // Under the cap the same guest succeeds with exactly the bytes asked for.
    let out = e.run_in("bigoutput", "default", "1000", l).await;
    assert_eq!(out.status(), RunStatus::Succeeded);
    assert_eq!(out.output, vec![b'x'; 1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_stdout_is_too_large() {
    let e = env();
    let mut l = limits();
    l.output_bytes = 256 << 10;
    let out = e.run_in("flood", "default", "", l).await;
    assert_recorded(&e, &out, RunStatus::TooLarge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_panic_is_a_trap_and_its_text_stays_with_operators() {
    let e = env();
    let out = e.run("trap", "").await;
    assert_recorded(&e, &out, RunStatus::Trapped).await;
    let err = out.record.error.as_ref().unwrap();
    // The caller-facing message is fixed; the panic text is not in it.
    assert_eq!(err.message, "the run trapped");
    assert!(!err.message.contains("/etc/secret-host-path"));
    // The guest's own stderr (its panic message) is kept for operators.
    let logs: String = out.record.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(logs.contains("/etc/secret-host-path"), "stderr captured: {logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_component_is_refused_before_compiling() {
    let e = env();
    let wasm = orbit_test_guests::bytes("echo");
    let mut l = limits();
    l.component_bytes = 1024;
    let err = e.orbit.engine().invoke_wasm(&wasm, orbit::Invocation::new("x").limits(l)).await.unwrap_err();
    assert!(matches!(err, orbit::EngineError::ComponentTooLarge { limit: 1024, .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_guest_does_not_disturb_other_runs() {
    let e = env();
    let mut spin = with_timeout(1500);
    spin.fuel = u64::MAX / 2;
    let runaway = async {
        let out = e.run_in("spin", "default", "", spin).await;
        (out, std::time::Instant::now())
    };
    let others = async {
        // Give the runaway a head start, then run ten ordinary guests.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut outs = Vec::new();
        for i in 0..10 {
            outs.push(e.run("echo", &format!("run {i}")).await);
        }
        (outs, std::time::Instant::now())
    };
    let ((runaway, runaway_done), (others, others_done)) = tokio::join!(runaway, others);
    assert_eq!(runaway.status(), RunStatus::DeadlineExceeded);
    // They ran alongside it rather than queueing behind it.
    assert!(others_done < runaway_done, "the ordinary runs finished while the runaway was still running");
    for (i, o) in others.iter().enumerate() {
        assert_eq!(o.status(), RunStatus::Succeeded);
        assert_eq!(o.output_text(), format!("run {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_clocks_and_random_but_no_env_files_or_sockets() {
    // A real listener on loopback: the guest must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let e = env();
    let out = e.run("probe", &port.to_string()).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let text = out.output_text();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {text}"))
            .to_owned()
    };
    assert_eq!(get("env_vars"), "0");
    assert_eq!(get("read_etc_passwd"), "false");
    assert_eq!(get("read_dir_root"), "false");
    assert_eq!(get("read_dir_dot"), "false");
    assert_eq!(get("write_file"), "false");
    assert_eq!(get("tcp_connect"), "false");
    assert_eq!(get("udp_bind"), "false");
    assert!(listener.accept().is_err(), "no connection reached the host listener");
    let host_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let guest_now: u64 = get("wall_clock_secs").parse().unwrap();
    assert!(host_now.abs_diff(guest_now) < 60, "guest sees the real wall clock");
    assert_eq!(get("monotonic_advances"), "true");
    assert_eq!(get("random_differs"), "true");
}
