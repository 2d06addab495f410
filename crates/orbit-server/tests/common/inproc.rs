//! An `orbit serve` in the test's own process, over a real data directory
//! with two workspaces and real tokens, and an rmcp client for its gateway.

use std::num::NonZeroU32;

use orbit::orbit_workspace::{Role, TokenRequest};
use orbit::{Orbit, Principal, TeamStore, UserId, WorkspaceId};
use orbit_server::api::RateLimit;
use orbit_server::{HttpConfig, OrbitMcp};
use reqwest::StatusCode;
use serde_json::Value;

pub struct Team {
    pub _dir: tempfile::TempDir,
    pub orbit: Orbit,
    pub base: String,
    pub http: reqwest::Client,
    pub stop: tokio_util::sync::CancellationToken,
    /// Tokens of acme's members by role: read-only carol, member bob,
    /// admin dave, owner alice.
    pub tokens: Vec<(Role, String)>,
    /// bob's token in the second workspace, zeta.
    pub zeta_bob: String,
}

impl Drop for Team {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn ws(s: &str) -> WorkspaceId {
    WorkspaceId::new(s).unwrap()
}

pub fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

pub fn issue(orbit: &Orbit, slug: &str, who: &str) -> String {
    let req = TokenRequest { user: user(who), role: None, agent: None, name: None, expires_in_ms: None };
    let issued = orbit.team().issue_token(&Principal::local_operator(), &ws(slug), req).unwrap();
    issued.secret.expose().to_owned()
}

/// Two workspaces: acme (alice owner, dave admin, bob member, carol
/// read-only) and zeta (owner zed, bob member), served on a free port.
pub async fn team(rate: RateLimit) -> Team {
    team_with(rate, orbit::OrbitConfig::default()).await
}

pub async fn team_with(rate: RateLimit, config: orbit::OrbitConfig) -> Team {
    team_with_caps(rate, config, orbit_server::RunCaps::default()).await
}

pub async fn team_with_caps(rate: RateLimit, config: orbit::OrbitConfig, caps: orbit_server::RunCaps) -> Team {
    team_built(rate, config, caps, orbit_server::ComponentCaps::default()).await
}

pub async fn team_built(
    rate: RateLimit,
    config: orbit::OrbitConfig,
    caps: orbit_server::RunCaps,
    component_caps: orbit_server::ComponentCaps,
) -> Team {
    let dir = tempfile::tempdir().unwrap();
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let op = Principal::local_operator();
    let store = orbit.team();
    store.create_workspace(&op, &ws("acme"), &user("alice"), None).unwrap();
    for (who, role) in [("dave", Role::Admin), ("bob", Role::Member), ("carol", Role::ReadOnly)] {
        store.add_member(&op, &ws("acme"), &user(who), role, None).unwrap();
    }
    store.create_workspace(&op, &ws("zeta"), &user("zed"), None).unwrap();
    store.add_member(&op, &ws("zeta"), &user("bob"), Role::Member, None).unwrap();
    let tokens = [(Role::ReadOnly, "carol"), (Role::Member, "bob"), (Role::Admin, "dave"), (Role::Owner, "alice")]
        .into_iter()
        .map(|(r, who)| (r, issue(&orbit, "acme", who)))
        .collect();
    let zeta_bob = issue(&orbit, "zeta", "bob");
    let server = OrbitMcp::new_with(orbit.clone(), component_caps).unwrap().with_caps(caps);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = HttpConfig::default();
    config.rate_limit = rate;
    let stop = config.cancellation.clone();
    tokio::spawn(orbit_server::serve_http(server, listener, config));
    Team { _dir: dir, orbit, base, http: reqwest::Client::new(), stop, tokens, zeta_bob }
}

pub fn generous() -> RateLimit {
    RateLimit::new(NonZeroU32::new(10_000).unwrap(), NonZeroU32::new(10_000).unwrap())
}

impl Team {
    /// Stores test guest `guest` through `POST /components` with `token`;
    /// returns its digest.
    pub async fn upload(&self, token: &str, guest: &str) -> String {
        self.upload_to("acme", token, guest).await
    }

    /// As [`Team::upload`], to workspace `slug`.
    pub async fn upload_to(&self, slug: &str, token: &str, guest: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/workspaces/{slug}/components", self.base))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(orbit_test_guests::bytes(guest))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "uploading {guest}");
        resp.json::<Value>().await.unwrap()["digest"].as_str().unwrap().to_owned()
    }

    pub fn user_of(&self, role: Role) -> String {
        match role {
            Role::ReadOnly => "carol",
            Role::Member => "bob",
            Role::Admin => "dave",
            _ => "alice",
        }
        .to_owned()
    }

    pub fn token(&self, role: Role) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

pub type McpClient = rmcp::service::RunningService<rmcp::RoleClient, ()>;

pub async fn mcp_client(url: &str, token: &str) -> McpClient {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("initialize through the gateway")
}

pub async fn call_tool(client: &McpClient, name: &str, args: Value) -> rmcp::model::CallToolResult {
    let mut params = rmcp::model::CallToolRequestParams::new(name.to_owned());
    params.arguments = args.as_object().cloned();
    client.call_tool(params).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn text_of(r: &rmcp::model::CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("")
}

/// Installs server-everything over stdio (an operator action) as
/// `everything`, owned by bob.
pub fn install_everything(t: &Team) {
    let (command, args) = orbit_test_guests::mcp_servers::everything_stdio();
    let spec = orbit::orbit_tools::ServerSpec::new(orbit::orbit_tools::ServerTransport::Stdio { command, args });
    t.orbit.install_server(&Principal::local_operator(), &ws("acme"), "everything", spec, Some(user("bob"))).unwrap();
}
