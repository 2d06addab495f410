//! Orbit's runs as OpenTelemetry traces, exported over OTLP/HTTP.
//!
//! One finished [`RunRecord`] becomes one trace: the run is the root span
//! (`orbit.run`), and every host call the guest made is a child span named
//! `<primitive>.<operation>` (for example `cache.increment`) placed on the
//! run's timeline. The attributes are the run record's facts — ids, status,
//! sizes in bytes, fuel units, who ran it — and never a payload: no input,
//! output, log line, error text chosen by a guest, or internal error detail
//! (which may hold host paths) leaves the process.
//!
//! Spans are queued and sent in batches by the OpenTelemetry SDK's batch
//! processor on its own thread, so a run never waits for the collector; when
//! the queue is full (a collector that is down), spans are dropped rather
//! than held without bound.
//!
//! Protocol: OTLP/HTTP with protobuf bodies, `POST <endpoint>/v1/traces`
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>). Attribute names
//! follow the OpenTelemetry naming rules
//! (<https://opentelemetry.io/docs/specs/semconv/general/naming/>) under the
//! `orbit.` namespace.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use orbit_runs::{RunRecord, RunStatus, Span};
use orbit_workspace::Subject;

/// How long one export request may take before it is abandoned, in ms.
pub const EXPORT_TIMEOUT_MS: u64 = 10_000;

/// How often queued spans are sent, in ms (the SDK's default is 5,000; runs
/// are short, so a trace reaches the collector sooner).
pub const EXPORT_INTERVAL_MS: u64 = 1_000;

/// The most spans queued for export; beyond it new spans are dropped (a run
/// is 1 + its recorded host calls).
pub const MAX_QUEUED_SPANS: usize = 65_536;

/// Why the exporter could not be set up or flushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// The endpoint is not an absolute `http://` or `https://` URL.
    #[error("invalid OTLP endpoint {0:?}: expected an http:// or https:// URL such as http://127.0.0.1:4318")]
    InvalidEndpoint(String),
    /// The OTLP exporter could not be built (its HTTP client failed to
    /// start).
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
    /// Flushing or shutting down did not finish (the collector did not
    /// answer within [`EXPORT_TIMEOUT_MS`]).
    #[error("OTLP export did not finish: {0}")]
    Flush(String),
}

/// Exports finished runs as traces to one OTLP/HTTP collector.
///
/// Cheap to share behind an `Arc`; [`export`](Self::export) only queues.
/// Call [`shutdown`](Self::shutdown) before the process exits so the last
/// batch is sent (dropping the last handle also flushes, without reporting
/// errors).
#[derive(Debug)]
pub struct RunTraces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl RunTraces {
    /// An exporter sending to the OTLP/HTTP collector at `endpoint`.
    ///
    /// `endpoint` is the collector's base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:4318`): `/v1/traces`
    /// is appended unless the URL already ends with it. The traces carry
    /// the resource attribute `service.name = "orbit"`.
    ///
    /// # Errors
    /// [`OtelError::InvalidEndpoint`] for anything but an `http(s)://` URL
    /// with a host; [`OtelError::Exporter`] when the HTTP client cannot be
    /// built.
    pub fn otlp_http(endpoint: &str) -> Result<Self, OtelError> {
        let url = traces_url(endpoint)?;
        // reqwest 0.13 is built without a default TLS crypto provider in
        // this workspace (as for the tools primitive's MCP client): use
        // ring's, unless the process has chosen one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(Duration::from_millis(EXPORT_TIMEOUT_MS))
            .build()
            .map_err(|e| OtelError::Exporter(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(EXPORT_INTERVAL_MS))
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(Resource::builder_empty().with_service_name("orbit").build())
            .build();
        let tracer = provider.tracer("orbit");
        Ok(Self { provider, tracer })
    }

    /// Queues `record` as one trace: the root span `orbit.run` from the
    /// run's start for its duration, and one child span per recorded host
    /// call at its offset. Never blocks on the network.
    pub fn export(&self, record: &RunRecord) {
        let start = UNIX_EPOCH + Duration::from_millis(record.started_at_ms);
        let mut root = self
            .tracer
            .span_builder("orbit.run")
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(run_attributes(record))
            .start(&self.tracer);
        if record.status != RunStatus::Succeeded {
            // The code only: a failed run's message is text the guest chose.
            let code = record.error.as_ref().map_or_else(|| record.status.to_string(), |e| e.code.clone());
            root.set_status(Status::error(code));
        }
        let cx = Context::new().with_span(root);
        for span in &record.spans {
            let at = start + Duration::from_micros(span.start_offset_us);
            let mut child = self
                .tracer
                .span_builder(format!("{}.{}", span.primitive, span.operation))
                .with_kind(SpanKind::Client)
                .with_start_time(at)
                .with_attributes(call_attributes(span))
                .start_with_context(&self.tracer, &cx);
            if span.outcome != "ok" {
                child.set_status(Status::error(span.outcome.clone()));
            }
            child.end_with_timestamp(at + Duration::from_micros(span.duration_us));
        }
        cx.span().end_with_timestamp(start + Duration::from_micros(record.duration_us));
    }

    /// Sends what is queued now and waits for it (at most
    /// [`EXPORT_TIMEOUT_MS`]).
    ///
    /// # Errors
    /// [`OtelError::Flush`] when the collector did not accept the batch.
    pub fn flush(&self) -> Result<(), OtelError> {
        self.provider.force_flush().map_err(|e| OtelError::Flush(e.to_string()))
    }

    /// Sends what is queued and stops the export thread; later
    /// [`export`](Self::export) calls are dropped.
    ///
    /// # Errors
    /// [`OtelError::Flush`] when the last batch could not be sent.
    pub fn shutdown(&self) -> Result<(), OtelError> {
        self.provider.shutdown().map_err(|e| OtelError::Flush(e.to_string()))
    }
}

/// `endpoint` as the full `…/v1/traces` URL.
fn traces_url(endpoint: &str) -> Result<String, OtelError> {
    let invalid = || OtelError::InvalidEndpoint(endpoint.to_owned());
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://")).ok_or_else(invalid)?;
    if rest.is_empty() || rest.starts_with('/') || endpoint.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The run record's facts, without its payloads (output, logs, error
/// message and detail, host errors).
fn run_attributes(record: &RunRecord) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("orbit.run.id", record.id.to_string()),
        KeyValue::new("orbit.workspace", record.workspace.to_string()),
        KeyValue::new("orbit.component.digest", record.component_digest.clone()),
        KeyValue::new("orbit.component.kind", record.kind.to_string()),
        KeyValue::new("orbit.run.status", record.status.to_string()),
        KeyValue::new("orbit.run.duration_us", count(record.duration_us)),
        KeyValue::new("orbit.run.fuel_consumed", count(record.fuel_consumed)),
        KeyValue::new("orbit.run.memory_bytes", count(record.memory_bytes)),
        KeyValue::new("orbit.run.input_bytes", count(record.input_bytes)),
        KeyValue::new("orbit.run.output_bytes", count(record.output_bytes)),
        KeyValue::new("orbit.run.log_bytes", count(record.log_bytes)),
        KeyValue::new("orbit.run.log_lines", count(record.logs.len() as u64)),
        KeyValue::new("orbit.run.host_calls", count(record.spans.len() as u64 + record.spans_dropped)),
        KeyValue::new("orbit.run.spans_dropped", count(record.spans_dropped)),
    ];
    if let Some(code) = record.exit_code {
        attrs.push(KeyValue::new("orbit.run.exit_code", i64::from(code)));
    }
    if let Some(error) = &record.error {
        attrs.push(KeyValue::new("orbit.run.error.code", error.code.clone()));
    }
    if let Some(parent) = &record.parent {
        attrs.push(KeyValue::new("orbit.run.parent", parent.to_string()));
    }
    if let Some(p) = &record.principal {
        let subject = match &p.subject {
            Subject::User { user } => user.to_string(),
            Subject::Local { os_user } => format!("local:{os_user}"),
            _ => "embedded".to_owned(),
        };
        attrs.push(KeyValue::new("orbit.principal.subject", subject));
        attrs.push(KeyValue::new("orbit.principal.role", p.role.to_string()));
        if let Some(agent) = &p.agent {
            attrs.push(KeyValue::new("orbit.principal.agent", agent.to_string()));
        }
        if let Some(token) = &p.token {
            // The token's id, never its value (which is not on the record).
            attrs.push(KeyValue::new("orbit.principal.token_id", token.to_string()));
        }
    }
    attrs
}

/// One host call's facts; `span.attrs` are payload-free by the run store's
/// contract (method, host, status, secret names).
fn call_attributes(span: &Span) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("orbit.primitive", span.primitive.clone()),
        KeyValue::new("orbit.operation", span.operation.clone()),
        KeyValue::new("orbit.outcome", span.outcome.clone()),
        KeyValue::new("orbit.bytes_in", count(span.bytes_in)),
        KeyValue::new("orbit.bytes_out", count(span.bytes_out)),
    ];
    for (key, value) in &span.attrs {
        attrs.push(KeyValue::new(format!("orbit.{}.{key}", span.primitive), value.clone()));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(traces_url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://127.0.0.1:4318/").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("https://otel.example/v1/traces").unwrap(), "https://otel.example/v1/traces");
        for bad in ["", "127.0.0.1:4318", "ftp://x", "http://", "http:///x", "http://a b"] {
            assert!(matches!(traces_url(bad), Err(OtelError::InvalidEndpoint(_))), "{bad}");
        }
    }
}
