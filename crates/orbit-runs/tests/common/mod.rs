//! Helpers shared by the integration tests.
#![allow(dead_code)]

use orbit_runs::{ComponentKind, LogLevel, LogLine, RunError, RunId, RunRecord, RunStatus, Span};
use orbit_workspace::{AgentName, Principal, Role, TokenId, UserId, WorkspaceId};

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n.rotate_left(17))
}

/// A workspace id from a literal.
pub fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).expect("valid workspace name")
}

/// A record whose every field is derived from `id`, `workspace` and `status`,
/// so a reader can rebuild exactly what was written. `payload` is the size, in
/// bytes, of the output copy; log lines and spans are included too.
pub fn record(id: RunId, workspace: &WorkspaceId, status: RunStatus, payload: usize) -> RunRecord {
    let n = id.as_u128();
    let lo = n as u64;
    let ok = status.is_success();
    // Guest-controlled-looking bytes: quotes, backslashes, control chars, unicode.
    let unit = "a\"b\\c\u{1}d\u{e9}\n";
    let output: String = unit.chars().cycle().take(payload).collect();
    RunRecord {
        id,
        workspace: workspace.clone(),
        component_digest: format!("{:064x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        kind: if lo.is_multiple_of(2) { ComponentKind::Agent } else { ComponentKind::Command },
        started_at_ms: id.0.get_timestamp().map(|t| t.to_unix().0 * 1000).unwrap_or(0) + lo % 1000,
        duration_us: lo % 1_000_000,
        status,
        exit_code: if status == RunStatus::Exited { Some((lo % 255) as i32 + 1) } else { None },
        error: (!ok).then(|| RunError {
            code: status.as_str().to_owned(),
            message: format!("run ended with {status}"),
            detail: lo.is_multiple_of(3).then(|| format!("internal detail {lo}")),
        }),
        fuel_consumed: lo.rotate_left(7),
        memory_bytes: lo.rotate_left(3),
        input_bytes: lo % 4096,
        output_bytes: payload as u64 + lo % 7,
        log_bytes: 64,
        output: (!lo.is_multiple_of(5)).then_some(output),
        output_truncated: lo.is_multiple_of(7),
        logs: vec![
            LogLine { offset_us: 1, level: LogLevel::Info, message: format!("start {id}") },
            LogLine { offset_us: 10, level: LogLevel::Stderr, message: "oops \u{0}\u{7f}".into() },
        ],
        logs_truncated: lo.is_multiple_of(11),
        spans: vec![Span {
            primitive: "blob".into(),
            operation: "get".into(),
            start_offset_us: 3,
            duration_us: 4,
            outcome: if ok { "ok".into() } else { "not-found".into() },
            bytes_in: 12,
            bytes_out: lo % 100_000,
            attrs: vec![("host".into(), "example.com".into())],
        }],
        spans_dropped: lo % 3,
        host_errors: if ok { Vec::new() } else { vec![format!("blob.get: detail {id}")] },
        // Every third record names a parent run, so the field round-trips.
        parent: lo.is_multiple_of(3).then(|| RunId::from_u128(n ^ 1)),
        // Runs acted for one of three members (the second through a token
        // of an agent), or for an embedding program, so the field round-trips.
        principal: Some(match lo % 4 {
            0 => Principal::embedded(),
            1 => Principal::user(UserId::new("ada").unwrap(), Role::Member),
            2 => Principal {
                token: Some(TokenId(uuid_from(n))),
                agent: Some(AgentName::new("bot").unwrap()),
                ..Principal::user(UserId::new("bob").unwrap(), Role::ReadOnly)
            },
            _ => Principal::user(UserId::new("cy").unwrap(), Role::Admin),
        }),
    }
}
