//! Operator configuration of the fetch primitive.

use std::collections::HashMap;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Which hosts a workspace's guests may reach at all. Address checks
/// ([`denied_reason`](crate::denied_reason)) apply in addition, whatever
/// this says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPolicy {
    /// `None` (the default): any host with a public address. Otherwise only
    /// hosts matching one of these patterns: an exact host name or IP
    /// literal (`api.example.com`, `127.0.0.1`, `::1` without brackets), or
    /// `*.example.com` for any subdomain of `example.com` (not `example.com`
    /// itself). Matching ignores ASCII case and a trailing dot. An empty
    /// list denies every host.
    #[serde(default)]
    pub allow_hosts: Option<Vec<String>>,
}

impl EgressPolicy {
    /// Whether `host` (a host name as `url` normalizes it, lowercase, or an
    /// IP literal without brackets) may be reached under this policy.
    pub fn allows(&self, host: &str) -> bool {
        let Some(patterns) = &self.allow_hosts else { return true };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        patterns.iter().any(|p| {
            let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
            let p = p.trim_start_matches('[').trim_end_matches(']');
            match p.strip_prefix("*.") {
                Some(suffix) => {
                    !suffix.is_empty()
                        && host.len() > suffix.len() + 1
                        && host.ends_with(suffix)
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                }
                None => host == p,
            }
        })
    }
}

/// Configuration of the [`Fetch`](crate::Fetch) primitive. Every field has
/// a documented default; with serde, missing fields take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// The egress policy of every workspace without an entry in
    /// `workspaces`. Default: any public host.
    pub egress: EgressPolicy,
    /// Per-workspace egress policies, keyed by workspace id; each replaces
    /// `egress` for its workspace. Default: none.
    pub workspaces: HashMap<String, EgressPolicy>,
    /// Addresses the operator allows although the default address policy
    /// refuses them (for example `127.0.0.1/32` for a local test server).
    /// Default: none.
    pub allow_ips: Vec<IpNet>,
    /// Largest request body, in bytes. Default 1 MiB.
    pub max_request_body_bytes: usize,
    /// Largest response body after decompression, in bytes; the compressed
    /// body is capped at the same size. Default 4 MiB.
    pub max_response_body_bytes: usize,
    /// Most response header fields (counting each repeated field). Default
    /// 100; the HTTP/1 parser refuses more than 100 in any case.
    pub max_response_headers: usize,
    /// Largest single header (name plus value), in bytes, for request and
    /// response headers. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Most guest request headers. Default 100.
    pub max_request_headers: usize,
    /// Longest request URL, in bytes. Default 8 KiB.
    pub max_url_bytes: usize,
    /// Most `fetch` calls per run, counting refused ones. Default 100. A
    /// run and the child runs it starts spend one budget of requests
    /// ([`REQUEST_BUDGET`](crate::REQUEST_BUDGET)).
    pub max_requests_per_run: u32,
    /// Most requests in flight at once through this primitive, across all
    /// runs and [`Fetch::send`](crate::Fetch::send) calls. A request past
    /// it waits for a free slot, within its own total timeout and the run's
    /// deadline (a wait that runs out gives a timeout). A slot is held from
    /// the secret lookup to the end of the response. Default 64; 0 is taken
    /// as 1.
    pub max_concurrent_requests: usize,
    /// Most requests one run may have in flight at once, `fetch` and
    /// `wasi:http` together. A request past it waits as for
    /// `max_concurrent_requests`; for `wasi:http`, the slot is taken before
    /// the request body is read, so this also bounds the request bodies a
    /// run has buffered. Default 4; 0 is taken as 1.
    pub max_concurrent_requests_per_run: usize,
    /// Most secrets one request may name. Default 8.
    pub max_secrets_per_request: usize,
    /// Time to resolve a name and to establish a TCP connection, each.
    /// Default 5 s. In serde: `connect_timeout_ms`.
    #[serde(rename = "connect_timeout_ms", with = "duration_ms")]
    pub connect_timeout: Duration,
    /// Time from sending the request to the response head. Default 10 s.
    /// In serde: `first_byte_timeout_ms`.
    #[serde(rename = "first_byte_timeout_ms", with = "duration_ms")]
    pub first_byte_timeout: Duration,
    /// Time for the whole request, from the call to the last body byte.
    /// The guest's `timeout-ms` can only shorten it, and the run's deadline
    /// bounds it too. Default 30 s. In serde: `total_timeout_ms`.
    #[serde(rename = "total_timeout_ms", with = "duration_ms")]
    pub total_timeout: Duration,
    /// Also link `wasi:http/outgoing-handler` and `wasi:http/types` (0.2),
    /// so guests using standard HTTP clients can make requests, through the
    /// same policy. Default `true`.
    pub wasi_http: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            egress: EgressPolicy::default(),
            workspaces: HashMap::new(),
            allow_ips: Vec::new(),
            max_request_body_bytes: 1 << 20,
            max_response_body_bytes: 4 << 20,
            max_response_headers: 100,
            max_header_bytes: 8 << 10,
            max_request_headers: 100,
            max_url_bytes: 8 << 10,
            max_requests_per_run: 100,
            max_concurrent_requests: 64,
            max_concurrent_requests_per_run: 4,
            max_secrets_per_request: 8,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            wasi_http: true,
        }
    }
}

impl FetchConfig {
    /// The egress policy in force for workspace `ws`.
    pub fn egress_for(&self, ws: &str) -> &EgressPolicy {
        self.workspaces.get(ws).unwrap_or(&self.egress)
    }
}

/// A semaphore size from a configured concurrency cap: at least 1, at most
/// what tokio supports.
pub(crate) fn permits(cap: usize) -> usize {
    cap.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p =
            EgressPolicy { allow_hosts: Some(vec!["api.example.com".into(), "*.Example.org".into(), "::1".into()]) };
        assert!(p.allows("api.example.com"));
        assert!(p.allows("API.example.com."));
        assert!(!p.allows("x.api.example.com"));
        assert!(!p.allows("example.com"));
        assert!(p.allows("a.example.org"));
        assert!(p.allows("a.b.example.org"));
        assert!(!p.allows("example.org"));
        assert!(!p.allows("badexample.org"));
        assert!(p.allows("::1"));
        assert!(EgressPolicy::default().allows("anything"));
        assert!(!EgressPolicy { allow_hosts: Some(vec![]) }.allows("a"));
    }

    #[test]
    fn serde_defaults_and_names() {
        let c: FetchConfig = serde_json::from_str(
            r#"{"allow_ips":["127.0.0.1/32"],"connect_timeout_ms":250,"workspaces":{"w":{"allow_hosts":["a.b"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.total_timeout, Duration::from_secs(30));
        assert_eq!(c.max_response_body_bytes, 4 << 20);
        assert_eq!((c.max_concurrent_requests, c.max_concurrent_requests_per_run), (64, 4));
        assert!(c.egress_for("w").allows("a.b"));
        assert!(!c.egress_for("w").allows("c.d"));
        assert!(c.egress_for("other").allows("c.d"));
        let back: FetchConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
