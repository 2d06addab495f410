//! Counts for operators, in the Prometheus text format: runs by status and
//! their durations, tool calls by outcome and their latencies, runs in
//! flight. Labels hold only statuses and outcomes, never a workspace, a
//! member or a name, so the counts say nothing about any one workspace.

use std::sync::Arc;

use orbit_workspace::{AuditEvent, AuditKind, AuditLog, AuditPage, AuditQuery, TeamError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The process's counters (one per [`crate::Orbit`]).
pub struct Metrics {
    registry: Registry,
    runs: Family<StatusLabel, Counter>,
    run_seconds: Histogram,
    tool_calls: Family<OutcomeLabel, Counter>,
    tool_call_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("orbit");
        let runs = Family::<StatusLabel, Counter>::default();
        registry.register("runs", "Runs recorded, by status", runs.clone());
        // 100 µs to about 3.4 min.
        let run_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 12));
        registry.register("run_duration_seconds", "Run durations", run_seconds.clone());
        let tool_calls = Family::<OutcomeLabel, Counter>::default();
        registry.register("tool_calls", "MCP tool calls (from runs and gateways), by outcome", tool_calls.clone());
        let tool_call_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 12));
        registry.register("tool_call_duration_seconds", "MCP tool call latencies", tool_call_seconds.clone());
        Self { registry, runs, run_seconds, tool_calls, tool_call_seconds }
    }

    pub(crate) fn run_finished(&self, record: &orbit_runs::RunRecord) {
        self.runs.get_or_create(&StatusLabel { status: record.status.to_string() }).inc();
        self.run_seconds.observe(record.duration_us as f64 / 1e6);
    }

    fn tool_call(&self, outcome: &str, latency_us: u64) {
        self.tool_calls.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
        self.tool_call_seconds.observe(latency_us as f64 / 1e6);
    }

    /// The counters in the Prometheus text exposition format, with
    /// `orbit_runs_in_flight` set to `in_flight`.
    pub fn encode(&self, in_flight: usize) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            return String::new();
        }
        out.push_str("# HELP orbit_runs_in_flight Runs executing now.\n# TYPE orbit_runs_in_flight gauge\n");
        out.push_str(&format!("orbit_runs_in_flight {in_flight}\n"));
        out.push_str("# EOF\n");
        out
    }
}

/// The audit sink of the `tools` primitive, counting each tool call on its
/// way to the trail.
pub(crate) struct CountingAudit {
    pub(crate) inner: Arc<dyn AuditLog>,
    pub(crate) metrics: Arc<Metrics>,
}

impl AuditLog for CountingAudit {
    fn append(&self, event: AuditEvent) -> Result<(), TeamError> {
        if let AuditKind::ToolCall { outcome, latency_us, .. } = &event.kind {
            self.metrics.tool_call(outcome, *latency_us);
        }
        self.inner.append(event)
    }

    fn query(&self, query: &AuditQuery) -> Result<AuditPage, TeamError> {
        self.inner.query(query)
    }

    fn prune(&self, before_ms: u64) -> Result<u64, TeamError> {
        self.inner.prune(before_ms)
    }
}
