//! The dashboard's two charts, drawn as SVG geometry on the server (no
//! script): a run's span waterfall and the audit page's tool-call latency
//! and error rate over time. The numbers here are positions in the SVG's
//! own user units; the templates draw them (and escape every label).

use std::collections::BTreeMap;

use crate::api::AuditEventView;
use crate::types::SpanInfo;

/// Width of the charts' plot area, in SVG user units.
pub(crate) const WIDTH: f64 = 800.0;

/// One bar of the waterfall.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// Left edge and width, in user units (width at least 1, so an
    /// instant call stays visible).
    pub x: f64,
    pub w: f64,
    /// Top edge.
    pub y: f64,
    pub primitive: String,
    pub operation: String,
    pub outcome: String,
    pub start_us: u64,
    pub duration_us: u64,
}

/// Height of one waterfall row, in user units.
pub(crate) const ROW: f64 = 18.0;

/// One bar per span, on the run's timeline (`run_us`, the run's duration;
/// spans past it stretch the axis).
pub(crate) fn waterfall(spans: &[SpanInfo], run_us: u64) -> (Vec<Bar>, f64) {
    let end =
        spans.iter().map(|s| s.start_offset_us.saturating_add(s.duration_us)).chain([run_us, 1]).max().unwrap_or(1)
            as f64;
    let bars: Vec<Bar> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| Bar {
            x: s.start_offset_us as f64 / end * WIDTH,
            w: (s.duration_us as f64 / end * WIDTH).max(1.0),
            y: i as f64 * ROW,
            primitive: s.primitive.clone(),
            operation: s.operation.clone(),
            outcome: s.outcome.clone(),
            start_us: s.start_offset_us,
            duration_us: s.duration_us,
        })
        .collect();
    let height = (bars.len() as f64 * ROW).max(ROW);
    (bars, height)
}

/// One tool's calls in one time bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    /// The bucket's start, ms since the Unix epoch.
    pub at_ms: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    /// Failed calls over all calls, 0 to 1.
    pub error_rate: f64,
    pub calls: usize,
}

/// One tool's series and totals.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// `server/tool`.
    pub tool: String,
    pub points: Vec<Point>,
    /// Over every call of the window.
    pub total: Point,
    /// The p95 polyline, in user units of a `WIDTH` × `HEIGHT` plot.
    pub p95_path: String,
    /// The p50 polyline.
    pub p50_path: String,
    /// The error-rate polyline (0 at the bottom, 100 % at the top).
    pub error_path: String,
    /// Each point's position, so a bucket alone still shows.
    pub dots: Vec<Dot>,
}

/// One bucket's marks: its x, and the y of its p95, p50 and error rate.
#[derive(Debug, Clone)]
pub(crate) struct Dot {
    pub x: f64,
    pub p95: f64,
    pub p50: f64,
    pub error: f64,
}

/// Height of a latency plot, in user units.
pub(crate) const HEIGHT: f64 = 200.0;

/// Buckets along the time axis.
const BUCKETS: u64 = 12;

/// The `q`-quantile (0 to 1) of sorted `v`, nearest rank.
fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn point(at_ms: u64, calls: &[(u64, bool)]) -> Point {
    let mut lat: Vec<u64> = calls.iter().map(|c| c.0).collect();
    lat.sort_unstable();
    let failed = calls.iter().filter(|c| !c.1).count();
    Point {
        at_ms,
        p50_us: quantile(&lat, 0.50),
        p95_us: quantile(&lat, 0.95),
        error_rate: if calls.is_empty() { 0.0 } else { failed as f64 / calls.len() as f64 },
        calls: calls.len(),
    }
}

/// Tool-call latency and error rate per tool (`server/tool`) over the time
/// the tool-call events of `events` span, in [`BUCKETS`] buckets; and the
/// highest p95, which tops the latency axis.
pub(crate) fn latency(events: &[AuditEventView]) -> (Vec<Series>, u64) {
    let calls: Vec<(&AuditEventView, String)> = events
        .iter()
        .filter_map(|e| Some((e, format!("{}/{}", e.server.as_deref()?, e.tool.as_deref()?))))
        .filter(|(e, _)| e.latency_us.is_some())
        .collect();
    let (Some(first), Some(last)) =
        (calls.iter().map(|(e, _)| e.at_ms).min(), calls.iter().map(|(e, _)| e.at_ms).max())
    else {
        return (Vec::new(), 0);
    };
    let span = (last - first).max(1);
    let width_ms = span.div_ceil(BUCKETS).max(1);
    let mut per_tool: BTreeMap<String, BTreeMap<u64, Vec<(u64, bool)>>> = BTreeMap::new();
    for (e, tool) in &calls {
        let bucket = ((e.at_ms - first) / width_ms).min(BUCKETS - 1);
        let ok = e.outcome == "ok";
        per_tool.entry(tool.clone()).or_default().entry(bucket).or_default().push((e.latency_us.unwrap_or(0), ok));
    }
    let mut series: Vec<Series> = per_tool
        .into_iter()
        .map(|(tool, buckets)| {
            let all: Vec<(u64, bool)> = buckets.values().flatten().copied().collect();
            let points: Vec<Point> = buckets.iter().map(|(b, c)| point(first + b * width_ms, c)).collect();
            Series {
                tool,
                total: point(first, &all),
                points,
                p95_path: String::new(),
                p50_path: String::new(),
                error_path: String::new(),
                dots: Vec::new(),
            }
        })
        .collect();
    let top = series.iter().flat_map(|s| s.points.iter().map(|p| p.p95_us)).max().unwrap_or(0).max(1);
    let x = |at: u64| (at - first) as f64 / (BUCKETS * width_ms) as f64 * WIDTH + WIDTH / BUCKETS as f64 / 2.0;
    let y = |v: f64| HEIGHT - v * HEIGHT;
    for s in &mut series {
        let path = |f: &dyn Fn(&Point) -> f64| {
            s.points.iter().map(|p| format!("{:.1},{:.1}", x(p.at_ms), y(f(p)))).collect::<Vec<_>>().join(" ")
        };
        s.p95_path = path(&|p| p.p95_us as f64 / top as f64);
        s.p50_path = path(&|p| p.p50_us as f64 / top as f64);
        s.error_path = path(&|p| p.error_rate);
        s.dots = s
            .points
            .iter()
            .map(|p| Dot {
                x: x(p.at_ms),
                p95: y(p.p95_us as f64 / top as f64),
                p50: y(p.p50_us as f64 / top as f64),
                error: y(p.error_rate),
            })
            .collect();
    }
    (series, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, dur: u64) -> SpanInfo {
        SpanInfo {
            primitive: "storage".into(),
            operation: "get".into(),
            start_offset_us: start,
            duration_us: dur,
            outcome: "ok".into(),
            bytes_in: 0,
            bytes_out: 0,
            attrs: vec![],
        }
    }

    #[test]
    fn the_waterfall_has_one_bar_per_span_in_place() {
        let (bars, height) = waterfall(&[span(0, 500), span(500, 0), span(750, 250)], 1000);
        assert_eq!(bars.len(), 3);
        assert_eq!((bars[0].x, bars[0].w), (0.0, 400.0));
        assert_eq!(bars[1].w, 1.0, "an instant call stays visible");
        assert_eq!((bars[2].x, bars[2].y), (600.0, 2.0 * ROW));
        assert_eq!(height, 3.0 * ROW);
        // A span past the recorded duration stretches the axis.
        let (bars, _) = waterfall(&[span(0, 2000)], 1000);
        assert_eq!(bars[0].w, WIDTH);
    }

    fn call(at_ms: u64, tool: &str, latency_us: u64, outcome: &str) -> AuditEventView {
        serde_json::from_value(serde_json::json!({
            "id": "1", "at_ms": at_ms, "actor": "user:a", "type": "tool-call", "server": "s", "tool": tool,
            "latency_us": latency_us, "outcome": outcome,
            "user": null, "token_id": null, "agent": null, "secret": null, "origin": null, "action": null,
            "target": null, "detail": null, "run_id": null
        }))
        .unwrap()
    }

    #[test]
    fn latency_quantiles_and_error_rates_per_tool() {
        let mut events: Vec<AuditEventView> = (1..=100).map(|i| call(1000, "echo", i, "ok")).collect();
        events.push(call(13_000, "echo", 7, "error"));
        events.push(call(13_000, "add", 3, "ok"));
        let (series, top) = latency(&events);
        assert_eq!(series.iter().map(|s| s.tool.as_str()).collect::<Vec<_>>(), ["s/add", "s/echo"]);
        let echo = &series[1];
        assert_eq!(echo.points.len(), 2, "two buckets hold its calls");
        assert_eq!((echo.points[0].p50_us, echo.points[0].p95_us, echo.points[0].calls), (50, 95, 100));
        assert_eq!(echo.points[1].error_rate, 1.0);
        assert_eq!(echo.total.calls, 101);
        assert!((echo.total.error_rate - 1.0 / 101.0).abs() < 1e-9);
        assert_eq!(top, 95);
        assert_eq!(echo.p95_path.split(' ').count(), 2);
        assert_eq!(echo.dots.len(), 2);
        assert_eq!(echo.dots[1].error, 0.0, "100 % errors sits at the top");
        assert_eq!(series[0].dots[0].p95, HEIGHT - 3.0 / 95.0 * HEIGHT);
        assert!(latency(&[]).0.is_empty());
    }
}
