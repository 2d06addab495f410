//! What a secret is bound to and where it goes in a request. These types
//! are the contract between the vault (which stores them) and the `fetch`
//! primitive (which enforces them).

use serde::{Deserialize, Serialize};

/// One origin a secret may be sent to: scheme + host + port, optionally
/// narrowed to some methods and a path prefix.
///
/// Origins follow RFC 6454: `https://api.example.com` is scheme `https`,
/// host `api.example.com`, port 443. Hosts are compared case-insensitively
/// (stored lowercase); IP literals are stored in their canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBinding {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host name or canonical IP literal (IPv6 without brackets).
    pub host: String,
    /// Port; the scheme's default when the URL gave none.
    pub port: u16,
    /// Allowed methods, uppercase (e.g. `["GET", "POST"]`); empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed path prefix (e.g. `/v1/`); `None` means any path. Matched on
    /// the URL's path as sent, segment-aware: `/v1` admits `/v1` and `/v1/x`
    /// but not `/v10`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

/// Where the host puts a secret's value in a request. The guest cannot
/// choose or change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Placement {
    /// A header whose value is `template` with `{}` replaced by the secret,
    /// e.g. name `Authorization`, template `Bearer {}`.
    Header {
        /// Header name (RFC 9110 field name).
        name: String,
        /// Value template holding exactly one `{}`.
        template: String,
    },
    /// A query parameter `param=<secret>` appended to the URL (percent-encoded).
    Query {
        /// Parameter name.
        param: String,
    },
    /// HTTP Basic authentication (RFC 7617): `Authorization: Basic
    /// base64(username:secret)`.
    Basic {
        /// The user name sent with the secret as password.
        username: String,
    },
}

/// Everything about a secret except its value. Listing returns only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// The secret's name within its workspace: 1 to 128 bytes of
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// Origins the secret may be sent to; never empty.
    pub hosts: Vec<HostBinding>,
    /// Where the value goes in a request.
    pub placement: Placement,
    /// The member who owns it: only they may change its value or bindings
    /// (admins may delete it, or reassign it once orphaned). `None` for a
    /// secret stored before owners existed.
    #[serde(default)]
    pub owner: Option<orbit_workspace::UserId>,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When a run last used it, in milliseconds since the Unix epoch.
    pub last_used_at_ms: Option<u64>,
}

// ---------------------------------------------------------------------------
// Parsing, validation and matching. (Additions to the contract types above.)
// ---------------------------------------------------------------------------

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::VaultError;

/// Longest host name accepted, in bytes (RFC 1035).
const MAX_HOST_LEN: usize = 253;
/// Longest path prefix accepted, in bytes.
const MAX_PATH_PREFIX_LEN: usize = 1024;
/// Longest header name, query parameter name or basic-auth user name, in bytes.
const MAX_PLACEMENT_NAME_LEN: usize = 256;
/// Longest header template, in bytes.
const MAX_TEMPLATE_LEN: usize = 1024;

/// Headers a placement may not name and a guest may not set (lowercase):
/// they frame or route the message, and the host sets them itself
/// (RFC 9110 §7.2, §8.6, §7.6.1; RFC 9112 §6.1).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn host_err(input: &str, reason: &'static str) -> VaultError {
    VaultError::InvalidHost { input: input.to_owned(), reason }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Canonical form of a host as written in a URL: IPv6 literals lose their
/// brackets and are compressed, IPv4 literals are dotted-quad, names are
/// lowercase. Refuses anything ambiguous (numeric spellings such as
/// `2130706433` or `0x7f.1`, percent-encoding, non-ASCII, zone ids).
fn canonical_host(host: &str, input: &str) -> Result<String, VaultError> {
    if host.is_empty() {
        return Err(host_err(input, "empty host"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| host_err(input, "unterminated IPv6 literal"))?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| host_err(input, "invalid IPv6 literal"))?;
        return Ok(ip.to_string());
    }
    if host.contains(':') {
        // A bare IPv6 literal (as stored, without brackets).
        let ip: Ipv6Addr = host.parse().map_err(|_| host_err(input, "invalid host"))?;
        return Ok(ip.to_string());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    if !host.is_ascii() {
        return Err(host_err(input, "non-ASCII host; use its punycode (xn--) form"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(host_err(input, "host name longer than 253 bytes"));
    }
    let lower = host.to_ascii_lowercase();
    for label in lower.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(host_err(input, "host name has an empty or over-long label"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(host_err(input, "host name may hold only letters, digits, '-', '_' and '.'"));
        }
    }
    // WHATWG URL parsing treats a host whose last label is numeric as an
    // IPv4 address in some spelling (`2130706433`, `0x7f.1`, `127.1`).
    // Such spellings are refused rather than guessed at.
    let last = lower.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err(host_err(input, "numeric host that is not a dotted-quad IPv4 address"));
    }
    Ok(lower)
}

/// Whether `path` contains something a server might resolve differently
/// from a plain prefix comparison: dot segments (also percent-encoded),
/// encoded slashes, backslashes, path parameters (`;`, also as `%3B`:
/// Tomcat, Jetty and Spring treat `/v1/..;/admin` as `/v1/../admin`), or a
/// percent-encoded percent (`%25`: a server that decodes twice turns
/// `%252e%252e` into `..`).
fn path_is_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains(['\\', ';']) || ["%2f", "%5c", "%3b", "%25"].iter().any(|e| lower.contains(e)) {
        return true;
    }
    lower.split('/').any(|seg| {
        let decoded = seg.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

fn validate_path_prefix(prefix: &str, input: &str) -> Result<(), VaultError> {
    if !prefix.starts_with('/') {
        return Err(host_err(input, "path prefix must start with '/'"));
    }
    if prefix.len() > MAX_PATH_PREFIX_LEN {
        return Err(host_err(input, "path prefix longer than 1024 bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) || prefix.contains(['?', '#']) {
        return Err(host_err(input, "path prefix may hold only visible ASCII, without '?' or '#'"));
    }
    if path_is_ambiguous(prefix) {
        return Err(host_err(input, "path prefix holds dot segments, ';', encoded slashes, '%25' or backslashes"));
    }
    Ok(())
}

impl HostBinding {
    /// Parses an origin such as `https://api.example.com`,
    /// `http://127.0.0.1:8080` or `https://[::1]:8443/v1` into a binding
    /// with any method.
    ///
    /// The scheme must be `http` or `https` (any case); the port defaults
    /// to 80 or 443; the host is lowercased and IP literals are made
    /// canonical. A path other than `/` becomes the binding's
    /// `path_prefix`. User info, query and fragment are refused, as are
    /// numeric host spellings other than dotted-quad IPv4 (`2130706433`,
    /// `0x7f.1`) and non-ASCII hosts.
    ///
    /// # Errors
    /// [`VaultError::InvalidHost`] describing what was wrong.
    pub fn parse(url_like: &str) -> Result<HostBinding, VaultError> {
        let input = url_like.trim();
        let (scheme, rest) = input.split_once("://").ok_or_else(|| host_err(input, "expected scheme://host"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default = default_port(&scheme).ok_or_else(|| host_err(input, "scheme must be http or https"))?;
        if rest.contains(['?', '#']) {
            return Err(host_err(input, "a binding takes no query or fragment"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(host_err(input, "whitespace or control character in URL"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(host_err(input, "a binding takes no user info"));
        }
        let (host, port) = if authority.starts_with('[') {
            let end = authority.find(']').ok_or_else(|| host_err(input, "unterminated IPv6 literal"))?;
            let after = &authority[end + 1..];
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| host_err(input, "junk after IPv6 literal"))?),
            };
            (&authority[..=end], port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => default,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(host_err(input, "port must be a decimal number"));
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(host_err(input, "port must be 1 to 65535")),
                    Ok(n) => n,
                }
            }
        };
        let host = canonical_host(host, input)?;
        let path_prefix = match path {
            "" | "/" => None,
            p => {
                validate_path_prefix(p, input)?;
                Some(p.to_owned())
            }
        };
        Ok(HostBinding { scheme, host, port, methods: Vec::new(), path_prefix })
    }

    /// Narrows the binding to `methods` (uppercased; e.g. `["GET"]`).
    /// Validation happens in [`HostBinding::validate`].
    #[must_use]
    pub fn with_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = methods.into_iter().map(|m| m.as_ref().to_ascii_uppercase()).collect();
        self
    }

    /// Narrows the binding to paths under `prefix` (segment-aware).
    /// Validation happens in [`HostBinding::validate`].
    #[must_use]
    pub fn with_path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Checks that the binding is in canonical form: scheme `http`/`https`,
    /// a canonical lowercase host or IP literal, a non-zero port, methods
    /// that are uppercase RFC 9110 tokens, and a path prefix that starts
    /// with `/` and holds no query, fragment, dot segment, `;` (or `%3B`),
    /// encoded slash, encoded percent (`%25`) or backslash.
    ///
    /// # Errors
    /// [`VaultError::InvalidHost`] describing what was wrong.
    pub fn validate(&self) -> Result<(), VaultError> {
        let input = format!("{}://{}:{}", self.scheme, self.host, self.port);
        if default_port(&self.scheme).is_none() {
            return Err(host_err(&input, "scheme must be lowercase http or https"));
        }
        if self.port == 0 {
            return Err(host_err(&input, "port must be 1 to 65535"));
        }
        if self.host.starts_with('[') || canonical_host(&self.host, &input)? != self.host {
            return Err(host_err(&input, "host is not in canonical form (lowercase; IPv6 without brackets)"));
        }
        for m in &self.methods {
            if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
                return Err(host_err(&input, "methods must be uppercase HTTP method names"));
            }
        }
        if let Some(p) = &self.path_prefix {
            validate_path_prefix(p, &input)?;
        }
        Ok(())
    }

    /// Whether a request to `scheme://host:port` with `method` and `path`
    /// (the URL's path as sent, without query) is allowed by this binding.
    ///
    /// - `scheme` is compared case-insensitively; `port` exactly (callers
    ///   pass the effective port, i.e. the default one when the URL gave
    ///   none).
    /// - `host` is compared case-insensitively; IP literals (IPv6 with or
    ///   without brackets) are compared in canonical form.
    /// - `method` must be one of `methods` exactly (HTTP methods are
    ///   case-sensitive), unless `methods` is empty.
    /// - With a `path_prefix`, `path` must equal the prefix or continue it
    ///   at a segment boundary (`/v1` admits `/v1` and `/v1/x`, not `/v10`;
    ///   a prefix ending in `/` admits anything under it). An empty path
    ///   counts as `/`. Paths that a server might resolve to somewhere
    ///   else never match a prefixed binding: dot segments (also
    ///   percent-encoded), `;` or `%3B` (path parameters: Tomcat, Jetty and
    ///   Spring read `/v1/..;/admin` as `/v1/../admin`), `%25` (a server
    ///   decoding twice reads `%252e%252e` as `..`), encoded slashes
    ///   (`%2F`, `%5C`) and backslashes.
    pub fn matches(&self, scheme: &str, host: &str, port: u16, method: &str, path: &str) -> bool {
        if !scheme.eq_ignore_ascii_case(&self.scheme) || port != self.port {
            return false;
        }
        let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let host_ok = match unbracketed.parse::<IpAddr>() {
            Ok(ip) => self.host.parse::<IpAddr>().is_ok_and(|mine| mine == ip),
            Err(_) => unbracketed.eq_ignore_ascii_case(&self.host),
        };
        if !host_ok {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == method) {
            return false;
        }
        match &self.path_prefix {
            None => true,
            Some(prefix) => {
                let path = if path.is_empty() { "/" } else { path };
                if path_is_ambiguous(path) {
                    return false;
                }
                match path.strip_prefix(prefix.as_str()) {
                    None => false,
                    Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
                }
            }
        }
    }
}

impl Placement {
    /// Checks the placement: a header name must be an RFC 9110 token and
    /// not a framing or routing header (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection`, ...), and its template must hold
    /// exactly one `{}` and only visible ASCII, space or tab; a query
    /// parameter name must be 1 or more unreserved URL characters
    /// (`[A-Za-z0-9._~-]`); a basic-auth user name must hold no `:` and no
    /// control characters. Names are at most 256 bytes, templates 1024.
    ///
    /// # Errors
    /// [`VaultError::InvalidPlacement`] describing what was wrong.
    pub fn validate(&self) -> Result<(), VaultError> {
        match self {
            Placement::Header { name, template } => {
                if !is_token(name) || name.len() > MAX_PLACEMENT_NAME_LEN {
                    return Err(VaultError::InvalidPlacement("header name must be an RFC 9110 token"));
                }
                if FORBIDDEN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                    return Err(VaultError::InvalidPlacement("a secret cannot be placed in a framing header"));
                }
                if template.len() > MAX_TEMPLATE_LEN {
                    return Err(VaultError::InvalidPlacement("header template longer than 1024 bytes"));
                }
                if !template.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t') {
                    return Err(VaultError::InvalidPlacement("header template may hold only visible ASCII"));
                }
                if template.matches("{}").count() != 1 {
                    return Err(VaultError::InvalidPlacement("header template must hold exactly one `{}`"));
                }
                Ok(())
            }
            Placement::Query { param } => {
                let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
                if param.is_empty() || param.len() > MAX_PLACEMENT_NAME_LEN || !param.bytes().all(ok) {
                    return Err(VaultError::InvalidPlacement("query parameter must be 1+ of [A-Za-z0-9._~-]"));
                }
                Ok(())
            }
            Placement::Basic { username } => {
                if username.len() > MAX_PLACEMENT_NAME_LEN
                    || username.contains(':')
                    || username.chars().any(char::is_control)
                {
                    return Err(VaultError::InvalidPlacement("basic-auth user name may not hold ':' or controls"));
                }
                Ok(())
            }
        }
    }

    /// Checks that `value` can be put where this placement says: at least
    /// [`Vault::MIN_VALUE_LEN`](crate::Vault::MIN_VALUE_LEN) (8) bytes; for
    /// a header, only visible ASCII, space and tab (no CR/LF injection);
    /// for a query parameter or basic auth, no control characters.
    ///
    /// The minimum length exists because the fetch primitive scrubs secret
    /// values out of responses: a short value could be guessed through a
    /// bound host that echoes input, by watching what gets `[REDACTED]`,
    /// and tiny patterns would make scrubbing inflate response bodies.
    ///
    /// # Errors
    /// [`VaultError::InvalidValue`] (the value is never included).
    pub fn check_value(&self, value: &str) -> Result<(), VaultError> {
        if value.is_empty() {
            return Err(VaultError::InvalidValue("empty"));
        }
        if value.len() < crate::Vault::MIN_VALUE_LEN {
            return Err(VaultError::InvalidValue("shorter than 8 bytes"));
        }
        match self {
            Placement::Header { .. } => {
                if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t') {
                    return Err(VaultError::InvalidValue("a header value may hold only visible ASCII"));
                }
            }
            Placement::Query { .. } | Placement::Basic { .. } => {
                if value.chars().any(char::is_control) {
                    return Err(VaultError::InvalidValue("control character"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(s: &str) -> HostBinding {
        HostBinding::parse(s).unwrap()
    }

    #[test]
    fn parse_default_ports_and_case() {
        let b = hb("https://API.Example.com");
        assert_eq!((b.scheme.as_str(), b.host.as_str(), b.port), ("https", "api.example.com", 443));
        assert!(b.methods.is_empty());
        assert_eq!(b.path_prefix, None);
        let b = hb("HTTP://api.example.com/");
        assert_eq!((b.scheme.as_str(), b.port, b.path_prefix.clone()), ("http", 80, None));
        let b = hb("http://127.0.0.1:8080");
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 8080));
        let b = hb("https://[0:0:0:0:0:0:0:1]:8443/v1");
        assert_eq!((b.host.as_str(), b.port, b.path_prefix.as_deref()), ("::1", 8443, Some("/v1")));
        b.validate().unwrap();
        hb("https://api.example.com").validate().unwrap();
    }

    #[test]
    fn parse_refuses_bad_input() {
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://",
            "https://user:pw@api.example.com",
            "https://api.example.com?x=1",
            "https://api.example.com/#f",
            "https://api.example.com:0",
            "https://api.example.com:65536",
            "https://api.example.com:",
            "https://api.example.com:+80",
            "http://2130706433",
            "http://0x7f.1",
            "http://127.1",
            "https://api..example.com",
            "https://ex ample.com",
            "https://exämple.com",
            "https://[::1",
            "https://[fe80::1%25eth0]",
            "https://a%2eb.com",
            "https://api.example.com/v1/../admin",
            "https://api.example.com/v1/%2E%2E/admin",
            "https://api.example.com/v1%2fx",
        ] {
            assert!(HostBinding::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn validate_refuses_non_canonical() {
        let mut b = hb("https://api.example.com");
        b.host = "API.example.com".into();
        assert!(b.validate().is_err());
        let mut b = hb("https://[::1]");
        b.host = "[::1]".into();
        assert!(b.validate().is_err());
        let b = hb("https://api.example.com").with_methods(["get"]);
        assert_eq!(b.methods, vec!["GET".to_owned()]);
        b.validate().unwrap();
        let mut b = hb("https://api.example.com");
        b.methods = vec!["get".into()];
        assert!(b.validate().is_err());
        assert!(hb("https://api.example.com").with_path_prefix("v1").validate().is_err());
        let mut b = hb("https://api.example.com");
        b.scheme = "HTTPS".into();
        assert!(b.validate().is_err());
    }

    #[test]
    fn matches_scheme_host_port() {
        let b = hb("https://api.example.com");
        assert!(b.matches("https", "api.example.com", 443, "GET", "/"));
        assert!(b.matches("HTTPS", "API.EXAMPLE.COM", 443, "POST", "/anything"));
        assert!(!b.matches("http", "api.example.com", 443, "GET", "/"), "scheme mismatch");
        assert!(!b.matches("http", "api.example.com", 80, "GET", "/"), "scheme mismatch");
        assert!(!b.matches("https", "api.example.com", 8443, "GET", "/"), "port mismatch");
        assert!(!b.matches("https", "evil.example.com", 443, "GET", "/"));
        assert!(!b.matches("https", "api.example.com.evil.com", 443, "GET", "/"));
        let v6 = hb("http://[::1]:8080");
        assert!(v6.matches("http", "[::1]", 8080, "GET", "/"));
        assert!(v6.matches("http", "0:0::1", 8080, "GET", "/"));
        assert!(!v6.matches("http", "127.0.0.1", 8080, "GET", "/"));
    }

    #[test]
    fn matches_methods() {
        let b = hb("https://api.example.com").with_methods(["GET", "post"]);
        assert!(b.matches("https", "api.example.com", 443, "GET", "/"));
        assert!(b.matches("https", "api.example.com", 443, "POST", "/"));
        assert!(!b.matches("https", "api.example.com", 443, "DELETE", "/"));
        assert!(!b.matches("https", "api.example.com", 443, "get", "/"), "methods are case-sensitive");
    }

    #[test]
    fn matches_path_prefix_segment_aware() {
        let b = hb("https://api.example.com/v1");
        assert!(b.matches("https", "api.example.com", 443, "GET", "/v1"));
        assert!(b.matches("https", "api.example.com", 443, "GET", "/v1/"));
        assert!(b.matches("https", "api.example.com", 443, "GET", "/v1/x"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v10"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", ""));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v1/../admin"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v1/%2e%2E/admin"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v1/..%2Fadmin"));
        assert!(!b.matches("https", "api.example.com", 443, "GET", "/v1\\..\\admin"));
        let slash = hb("https://api.example.com/v1/");
        assert!(slash.matches("https", "api.example.com", 443, "GET", "/v1/x"));
        assert!(!slash.matches("https", "api.example.com", 443, "GET", "/v1"));
        let root = hb("https://api.example.com");
        assert!(root.matches("https", "api.example.com", 443, "GET", ""));
    }

    /// `..;` (Tomcat/Jetty/Spring path parameters) and double-encoded dot
    /// segments, which the url crate leaves untouched.
    #[test]
    fn matches_refuses_path_parameters_and_double_encoding() {
        for prefix in ["https://api.example.com/v1", "https://api.example.com/v1/"] {
            let b = hb(prefix);
            for path in [
                "/v1/..;/admin",
                "/v1/%2e%2e;/admin",
                "/v1/%2E%2E;/admin",
                "/v1/%2e%2e%3b/admin",
                "/v1/%2e%2e%3B/admin",
                "/v1/..%3b/admin",
                "/v1/%252e%252e/admin",
                "/v1/%252E%252E/admin",
                "/v1/..%252fadmin",
                "/v1/x;jsessionid=1",
                "/v1;/x",
                "/v1/%25",
            ] {
                assert!(!b.matches("https", "api.example.com", 443, "GET", path), "{prefix} admitted {path}");
            }
            assert!(b.matches("https", "api.example.com", 443, "GET", "/v1/x%20y"));
        }
        // Without a prefix any path is allowed (the origin is the boundary).
        assert!(hb("https://api.example.com").matches("https", "api.example.com", 443, "GET", "/v1/..;/admin"));
        // A prefix holding them is refused outright.
        for bad in ["https://api.example.com/v1;x", "https://api.example.com/v1%3B", "https://api.example.com/a%25"] {
            assert!(HostBinding::parse(bad).is_err(), "{bad}");
            assert!(hb("https://api.example.com").with_path_prefix(&bad[23..]).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn placement_validation() {
        let h = |n: &str, t: &str| Placement::Header { name: n.into(), template: t.into() };
        h("Authorization", "Bearer {}").validate().unwrap();
        h("X-Api-Key", "{}").validate().unwrap();
        assert!(h("Authorization", "Bearer").validate().is_err());
        assert!(h("Authorization", "{} {}").validate().is_err());
        assert!(h("Author ization", "{}").validate().is_err());
        assert!(h("", "{}").validate().is_err());
        assert!(h("Host", "{}").validate().is_err());
        assert!(h("content-length", "{}").validate().is_err());
        assert!(h("X-A", "a\r\nX-B: {}").validate().is_err());
        Placement::Query { param: "api_key".into() }.validate().unwrap();
        assert!(Placement::Query { param: "".into() }.validate().is_err());
        assert!(Placement::Query { param: "a&b".into() }.validate().is_err());
        Placement::Basic { username: "api".into() }.validate().unwrap();
        Placement::Basic { username: "".into() }.validate().unwrap();
        assert!(Placement::Basic { username: "a:b".into() }.validate().is_err());

        assert!(h("X", "{}").check_value("tok\r\nX-Evil: 1").is_err());
        assert!(h("X", "{}").check_value("").is_err());
        h("X", "{}").check_value("tok-1234").unwrap();
        assert!(Placement::Query { param: "k".into() }.check_value("a\0bcdefgh").is_err());
    }

    #[test]
    fn check_value_refuses_values_shorter_than_8_bytes() {
        let placements = [
            Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() },
            Placement::Query { param: "key".into() },
            Placement::Basic { username: "api".into() },
        ];
        for p in &placements {
            for short in ["a", "ab", "1234567", "tok-123"] {
                assert!(matches!(p.check_value(short), Err(VaultError::InvalidValue(_))), "{p:?} {short:?}");
            }
            p.check_value("12345678").unwrap();
            // Bytes, not characters: 4 two-byte characters are 8 bytes.
            if !matches!(p, Placement::Header { .. }) {
                p.check_value("éééé").unwrap();
                assert!(p.check_value("ééé").is_err());
            }
        }
    }
}
