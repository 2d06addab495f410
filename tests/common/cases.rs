//! The limit cases every compiler and instance allocator must end the same
//! way: one real guest per limit, with the limits that stop it.

use std::time::Duration;

use orbit::{Engine, Invocation, Limits, LoadedComponent, RunId, RunStatus};

/// How a case's run ended, as two engines must agree on it: status, error
/// code, output, exit code and fuel (0 where timing decides it).
pub type Ending = (RunStatus, Option<String>, String, Option<i32>, u64);

/// One limit case: a fixture, its input, its limits, and how it must end.
pub struct Case {
    pub guest: &'static str,
    pub input: String,
    pub limits: Limits,
    pub status: RunStatus,
}

pub fn cases() -> Vec<Case> {
    let case = |guest, input: &str, limits, status| Case { guest, input: input.to_owned(), limits, status };
    let mut fuel = Limits::default();
    fuel.fuel = 5_000_000;
    let mut deadline = Limits::default();
    deadline.timeout = Duration::from_millis(200);
    deadline.fuel = u64::MAX / 2;
    let mut host_deadline = Limits::default();
    host_deadline.timeout = Duration::from_millis(300);
    let mut memory = Limits::default();
    memory.memory_bytes = 32 << 20;
    let mut output = Limits::default();
    output.output_bytes = 64 << 10;
    let sleep = serde_json::json!([{"op": "sleep_ms", "ms": 30000}]).to_string();
    vec![
        case("echo", "same output", Limits::default(), RunStatus::Succeeded),
        case("spin", "", fuel, RunStatus::OutOfFuel),
        case("spin", "", deadline, RunStatus::DeadlineExceeded),
        case("ops", &sleep, host_deadline, RunStatus::DeadlineExceeded),
        case("membomb", "", memory, RunStatus::MemoryLimit),
        case("recursion", "", Limits::default(), RunStatus::StackOverflow),
        case("trap", "", Limits::default(), RunStatus::Trapped),
        case("bigoutput", &(1u32 << 20).to_string(), output.clone(), RunStatus::TooLarge),
        case("flood", "", output, RunStatus::TooLarge),
        case("exit-code", "3", Limits::default(), RunStatus::Exited),
    ]
}

/// Runs `spin` (a loop) with 30 s and fuel to spare, cancels it through
/// `engine` as soon as it is running, and returns how it ended.
pub async fn cancel_a_spinning_run(engine: &Engine, spin: &LoadedComponent) -> RunStatus {
    let id = RunId::new();
    let mut long = Limits::default();
    long.timeout = Duration::from_secs(30);
    long.fuel = u64::MAX / 2;
    let run = engine.invoke(spin, Invocation::new("").limits(long).run_id(id));
    let cancel = async {
        while !engine.cancel_run(id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (out, ()) = tokio::join!(run, cancel);
    out.unwrap().status()
}

/// A `wasi:cli` command component around one core module (WAT text)
/// exporting `run` as `(result i32)`: the module's 0 is the command's success.
pub fn command_wat(core_module: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
  (core module $m {core_module})
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#
    ))
    .unwrap()
}
