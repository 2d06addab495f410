//! The connection pool: one live MCP client connection per installed
//! server, shared by the workspace's runs.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use orbit_scrub::Scrubber;
use orbit_vault::{SecretResolver, SecretUse, SecretValue};
use orbit_workspace::WorkspaceId;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, JsonRpcMessage, ServerNotification};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess, Transport};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::ToolsError;
use crate::registry::{ServerEntry, ServerTransport, ToolInfo, ToolRegistry, ValueSource};
use crate::relay::InFlight;
use crate::{Caller, INHERITED_ENV, ToolsLimits};

/// The MCP client side of one connection: answers the server's
/// notifications. A `notifications/tools/list_changed` refreshes the
/// registry's copy of the server's tool list.
#[derive(Clone)]
pub(crate) struct Client {
    registry: Arc<ToolRegistry>,
    workspace: WorkspaceId,
    server: String,
    install_id: u64,
    /// The calls in flight and the subscriptions, to relay what the server
    /// sends about them ([`crate::relay`]).
    in_flight: Arc<InFlight>,
    /// Finds the secrets given to the server in what is relayed.
    scrubber: Arc<Scrubber>,
}

/// `value` with the secret values replaced, through its JSON form; `None`
/// when the scrubbed form no longer reads back as `T`, so that nothing
/// unscrubbed is relayed.
pub(crate) fn scrubbed<T: serde::Serialize + serde::de::DeserializeOwned>(value: T, scrubber: &Scrubber) -> Option<T> {
    match scrubber.typed(value) {
        Ok(v) => Some(v),
        Err(error) => {
            tracing::warn!(%error, "a server message could not be scrubbed; it is not relayed");
            None
        }
    }
}

/// The answer to a server's request whose parameters could not be
/// scrubbed.
fn not_scrubbed(what: &str) -> rmcp::ErrorData {
    rmcp::ErrorData::internal_error(format!("{what} could not be relayed"), None)
}

impl Client {
    /// Relays a server's notification about a call or a subscription:
    /// progress under the caller's token, log lines to the only call in
    /// flight, resource updates to their subscribers. Called by [`Watched`]
    /// as each message arrives, in the order the server sent them: rmcp
    /// hands notifications to the handler on tasks of their own, so a
    /// handler could see one after the response that follows it, and the
    /// caller would get it after its call's result, or not at all.
    fn relay_in_order(&self, notification: &ServerNotification) {
        match notification {
            ServerNotification::ProgressNotification(n) => {
                let params = &n.params;
                let message = params.message.clone().and_then(|m| scrubbed(m, &self.scrubber));
                self.in_flight.progress(crate::relay::Progress {
                    token: params.progress_token.clone(),
                    progress: params.progress,
                    total: params.total,
                    message,
                });
            }
            ServerNotification::LoggingMessageNotification(n) => {
                if let Some(relay) = self.in_flight.only()
                    && let Some(params) = scrubbed(n.params.clone(), &self.scrubber)
                {
                    relay.log(params);
                }
            }
            ServerNotification::ResourceUpdatedNotification(n) => {
                let subscribers = self.in_flight.subscribers(&n.params.uri);
                if !subscribers.is_empty()
                    && let Some(params) = scrubbed(n.params.clone(), &self.scrubber)
                {
                    for relay in subscribers {
                        relay.resource_updated(params.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The answer to a server's request that cannot be relayed: no gateway
/// caller, or more than one call in flight on the connection.
fn not_relayed(what: &str) -> rmcp::ErrorData {
    rmcp::ErrorData::new(
        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
        format!(
            "{what} is not available: Orbit relays it only to the gateway caller whose call is the only one in flight"
        ),
        None,
    )
}

// Logging and sampling are deprecated by SEP-2577 for protocol 2026-07-28;
// the 2025 protocol versions that servers speak today have them.
#[allow(deprecated)]
impl ClientHandler for Client {
    fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<rmcp::model::CreateMessageResult, rmcp::ErrorData>> + Send + '_ {
        let relay = self.in_flight.only();
        let params = scrubbed(params, &self.scrubber);
        async move {
            match (relay, params) {
                (Some(relay), Some(params)) => relay.create_message(params).await,
                (None, _) => Err(not_relayed("sampling")),
                (_, None) => Err(not_scrubbed("sampling")),
            }
        }
    }

    fn create_elicitation(
        &self,
        params: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<rmcp::model::ElicitResult, rmcp::ErrorData>> + Send + '_ {
        let relay = self.in_flight.only();
        let params = scrubbed(params, &self.scrubber);
        async move {
            match (relay, params) {
                (Some(relay), Some(params)) => relay.elicit(params).await,
                (None, _) => Err(not_relayed("elicitation")),
                (_, None) => Err(not_scrubbed("elicitation")),
            }
        }
    }

    fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) -> impl Future<Output = ()> + Send + '_ {
        let this = self.clone();
        // Not awaited here: the list request's answer arrives through the
        // same service loop that is delivering this notification.
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(30), context.peer.list_all_tools()).await {
                Ok(Ok(tools)) => {
                    // Descriptions reach gateway callers and agents.
                    let Some(tools) = scrubbed(tools, &this.scrubber) else { return };
                    let tools = tool_infos(&this.server, tools);
                    let (reg, ws, server, id) = (this.registry, this.workspace, this.server, this.install_id);
                    let stored = tokio::task::spawn_blocking(move || reg.set_tools(&ws, &server, id, tools)).await;
                    if let Ok(Err(e)) = stored {
                        tracing::warn!(error = %e, "storing a changed tool list");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "listing tools after list_changed"),
                Err(_) => tracing::warn!("listing tools after list_changed timed out"),
            }
        });
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        // Sampling and elicitation are declared so that servers ask; a
        // request Orbit cannot relay to a gateway caller is refused.
        let capabilities: ClientCapabilities =
            serde_json::from_value(serde_json::json!({"sampling": {}, "elicitation": {}})).unwrap_or_default();
        ClientConfig::new(capabilities, Implementation::new("orbit", env!("CARGO_PKG_VERSION")))
    }
}

pub(crate) fn tool_infos(server: &str, tools: Vec<rmcp::model::Tool>) -> Vec<ToolInfo> {
    tools
        .into_iter()
        .map(|t| ToolInfo {
            definition: serde_json::to_value(&t).ok(),
            server: server.to_owned(),
            name: t.name.into_owned(),
            description: t.description.map(|d| d.into_owned()).unwrap_or_default(),
            input_schema: serde_json::Value::Object((*t.input_schema).clone()),
            read_only_hint: t.annotations.as_ref().and_then(|a| a.read_only_hint),
        })
        .collect()
}

/// A transport that notes when the server's side ends (EOF on a stdio
/// server's stdout, a closed HTTP session): rmcp's own `is_closed` only
/// turns true once its service loop has finished its cleanup, seconds
/// later. It also relays the server's progress, log and resource-update
/// notifications as they arrive, in order, before any later response
/// reaches its caller.
struct Watched<T> {
    inner: T,
    ended: Arc<AtomicBool>,
    /// Relays notifications as they arrive ([`Client::relay_in_order`]).
    client: Client,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Watched<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let m = self.inner.receive().await;
        match &m {
            None => self.ended.store(true, Ordering::Release),
            Some(JsonRpcMessage::Notification(n)) => self.client.relay_in_order(&n.notification),
            Some(_) => {}
        }
        m
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.ended.store(true, Ordering::Release);
        self.inner.close().await
    }
}

/// A live connection.
pub(crate) struct Connection {
    pub(crate) service: RunningService<RoleClient, Client>,
    /// The calls in flight on it and its gateway subscriptions.
    pub(crate) in_flight: Arc<InFlight>,
    ended: Arc<AtomicBool>,
    /// Finds the secrets given to the server in its results and errors.
    pub(crate) scrubber: Arc<Scrubber>,
    last_used: Mutex<std::time::Instant>,
}

impl Connection {
    /// Whether the connection can no longer carry calls.
    pub(crate) fn is_closed(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.service.is_closed()
    }

    pub(crate) fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
    }
}

/// One installed server's place in the pool.
struct Slot {
    install_id: u64,
    permits: Arc<Semaphore>,
    conn: tokio::sync::Mutex<SlotState>,
    /// Crashes and failed starts since the last successful call.
    failures: AtomicU32,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    /// No new start before this instant (restart backoff).
    retry_at: Option<Instant>,
}

type SlotKey = (String, String);

/// The pool of connections of all workspaces.
pub(crate) struct Pool {
    registry: Arc<ToolRegistry>,
    resolver: Arc<dyn SecretResolver>,
    limits: ToolsLimits,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    reaper_started: std::sync::Once,
}

/// A connection with a concurrency permit held for one call.
pub(crate) struct Lease {
    pub(crate) conn: Arc<Connection>,
    slot: Arc<Slot>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(crate) fn new(registry: Arc<ToolRegistry>, resolver: Arc<dyn SecretResolver>, limits: ToolsLimits) -> Self {
        Self { registry, resolver, limits, slots: Mutex::new(HashMap::new()), reaper_started: std::sync::Once::new() }
    }

    pub(crate) fn limits(&self) -> &ToolsLimits {
        &self.limits
    }

    fn slot(self: &Arc<Self>, ws: &WorkspaceId, entry: &ServerEntry) -> Arc<Slot> {
        self.reaper_started.call_once(|| {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(reap(Arc::downgrade(self)));
            }
        });
        let key = (ws.as_str().to_owned(), entry.name.clone());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&key) {
            Some(s) if s.install_id == entry.install_id => s.clone(),
            _ => {
                // New, or reinstalled: the old slot's connection closes when
                // its last lease ends.
                let s = Arc::new(Slot {
                    install_id: entry.install_id,
                    permits: Arc::new(Semaphore::new(self.limits.max_concurrent_calls_per_server.max(1))),
                    conn: Default::default(),
                    failures: AtomicU32::new(0),
                });
                slots.insert(key, s.clone());
                s
            }
        }
    }

    /// Closes the connection to `server` of `ws`, if any (on disable or
    /// removal).
    pub(crate) fn forget(&self, ws: &WorkspaceId, server: &str) {
        let slot =
            self.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(&(ws.as_str().to_owned(), server.to_owned()));
        if let Some(slot) = slot
            && let Ok(mut st) = slot.conn.try_lock()
            && let Some(conn) = st.conn.take()
        {
            close(conn);
        }
    }

    /// A live connection to `entry`, started if needed, with one of its
    /// concurrency permits, all before `until`.
    /// A new connection's secrets are recorded as used by `caller` (see
    /// [`Pool::connect`]).
    pub(crate) async fn lease(
        self: &Arc<Self>,
        ws: &WorkspaceId,
        entry: &ServerEntry,
        until: Instant,
        caller: &Caller,
    ) -> Result<Lease, ToolsError> {
        let unavailable =
            |detail: &str| ToolsError::Unavailable { server: entry.name.clone(), detail: detail.to_owned() };
        let slot = self.slot(ws, entry);
        let permit = match tokio::time::timeout_at(until, slot.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(unavailable("no free call slot in time")),
        };
        let mut st = tokio::time::timeout_at(until, slot.conn.lock())
            .await
            .map_err(|_| unavailable("timed out waiting for the connection"))?;
        if let Some(conn) = &st.conn {
            if !conn.is_closed() {
                let conn = conn.clone();
                drop(st);
                return Ok(Lease { conn, slot, _permit: permit });
            }
            // The server exited or closed the connection since last use.
            st.conn = None;
            self.note_failure(&slot, &mut st);
        }
        if let Some(at) = st.retry_at
            && at > Instant::now()
        {
            if at > until {
                return Err(unavailable("restart backoff after repeated failures"));
            }
            tokio::time::sleep_until(at).await;
        }
        let connect_until = until.min(Instant::now() + self.limits.connect_timeout);
        match tokio::time::timeout_at(connect_until, self.connect(ws, entry, caller)).await {
            Ok(Ok(conn)) => {
                let conn = Arc::new(conn);
                st.conn = Some(conn.clone());
                st.retry_at = None;
                drop(st);
                Ok(Lease { conn, slot, _permit: permit })
            }
            Ok(Err(e)) => {
                self.note_failure(&slot, &mut st);
                Err(e)
            }
            Err(_) => {
                self.note_failure(&slot, &mut st);
                Err(unavailable("did not start and initialize in time"))
            }
        }
    }

    fn note_failure(&self, slot: &Slot, st: &mut SlotState) {
        let n = slot.failures.fetch_add(1, Ordering::Relaxed) + 1;
        // The first crash restarts at once; later ones back off exponentially.
        let delay = if n <= 1 {
            Duration::ZERO
        } else {
            let exp = self.limits.restart_backoff_initial.saturating_mul(1u32 << (n - 2).min(16));
            exp.min(self.limits.restart_backoff_max)
        };
        st.retry_at = Some(Instant::now() + delay);
    }

    /// Records the outcome of a call on `lease`: a success resets the
    /// failure count; a closed connection is dropped from the pool.
    pub(crate) async fn finish(&self, lease: &Lease, transport_closed: bool) {
        lease.conn.touch();
        if !transport_closed {
            lease.slot.failures.store(0, Ordering::Relaxed);
            return;
        }
        let mut st = lease.slot.conn.lock().await;
        if st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &lease.conn)) {
            st.conn = None;
            self.note_failure(&lease.slot, &mut st);
        }
    }

    /// Starts or connects to `entry`. Its secrets (environment of a stdio
    /// server, headers of an HTTP one) are recorded as used once, here,
    /// through [`SecretResolver::record_use`]: by `caller` (the principal
    /// and run whose call or listing opened the connection), with origin
    /// `stdio://SERVER` or the endpoint's `scheme://host:port`, before the
    /// server gets them. Later calls over the pooled connection, by any run
    /// of the workspace, place no secret and record none.
    async fn connect(&self, ws: &WorkspaceId, entry: &ServerEntry, caller: &Caller) -> Result<Connection, ToolsError> {
        let in_flight = Arc::new(InFlight::default());
        let unavailable = |detail: String| ToolsError::Unavailable { server: entry.name.clone(), detail };
        // Built before the server gets a secret: a server whose answers
        // could not be scrubbed is not started.
        let client = |secrets: &[SecretValue]| -> Result<Client, ToolsError> {
            let scrubber =
                Scrubber::new(secrets.iter().map(|s| s.expose()), []).map_err(|e| unavailable(e.to_string()))?;
            Ok(Client {
                registry: self.registry.clone(),
                workspace: ws.clone(),
                server: entry.name.clone(),
                install_id: entry.install_id,
                in_flight: in_flight.clone(),
                scrubber: Arc::new(scrubber),
            })
        };
        let mut secrets = Vec::new();
        let ended = Arc::new(AtomicBool::new(false));
        let service = match &entry.spec.transport {
            ServerTransport::Stdio { command, args } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear().kill_on_drop(true);
                for key in INHERITED_ENV {
                    if let Some(v) = std::env::var_os(key) {
                        cmd.env(key, v);
                    }
                }
                for (key, source) in &entry.spec.env {
                    // A local process the operator installed: no host to bind to.
                    let value = self.value(ws, source, None, &mut secrets).await?;
                    cmd.env(key, value);
                }
                let client = client(&secrets)?;
                self.record_uses(ws, entry, caller, format!("stdio://{}", entry.name)).await;
                let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
                // Its own process group, so that killing it also kills what
                // a launcher such as `npx` started.
                wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
                let (transport, _) = TokioChildProcess::builder(wrapped)
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| unavailable(format!("starting {command}: {e}")))?;
                let transport = Watched { inner: transport, ended: ended.clone(), client: client.clone() };
                let scrubber = client.scrubber.clone();
                client.serve(transport).await.map_err(|e| unavailable(scrubber.text(&format!("initialize: {e}"))))?
            }
            ServerTransport::Http { url } => {
                crate::install_crypto_provider();
                let mut headers = HashMap::new();
                let endpoint = url::Url::parse(url).map_err(|_| ToolsError::InvalidSpec(format!("url {url:?}")))?;
                for (name, source) in &entry.spec.headers {
                    let value = self.value(ws, source, Some(&endpoint), &mut secrets).await?;
                    let name = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| ToolsError::InvalidSpec(format!("header name {name:?}")))?;
                    let mut value = http::HeaderValue::from_str(&value)
                        .map_err(|_| ToolsError::InvalidSpec(format!("value of header {name}")))?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                let host = match endpoint.host() {
                    Some(url::Host::Domain(d)) => d.to_owned(),
                    Some(url::Host::Ipv4(a)) => a.to_string(),
                    Some(url::Host::Ipv6(a)) => a.to_string(),
                    None => String::new(),
                };
                let origin =
                    orbit_vault::origin_of(endpoint.scheme(), &host, endpoint.port_or_known_default().unwrap_or(0));
                let client = client(&secrets)?;
                self.record_uses(ws, entry, caller, origin).await;
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
                let http =
                    crate::http_client::upstream_client().map_err(|e| unavailable(format!("HTTP client: {e}")))?;
                let inner = StreamableHttpClientTransport::with_client(http, config);
                let transport = Watched { inner, ended: ended.clone(), client: client.clone() };
                let scrubber = client.scrubber.clone();
                client.serve(transport).await.map_err(|e| unavailable(scrubber.text(&format!("initialize: {e}"))))?
            }
        };
        let scrubber = service.service().scrubber.clone();
        // What a server says while starting may quote what it was given.
        let unavailable = |detail: String| unavailable(scrubber.text(&detail));
        // Refreshed on every connect, so a restarted server's tools are
        // current.
        let tools = service.list_all_tools().await.map_err(|e| unavailable(format!("tools/list: {e}")))?;
        // Descriptions reach gateway callers and agents.
        let tools = scrubber.typed(tools).map_err(|e| unavailable(format!("tools/list: {e}")))?;
        let (reg, ws2, name, id) = (self.registry.clone(), ws.clone(), entry.name.clone(), entry.install_id);
        let tools = tool_infos(&name, tools);
        crate::blocking(move || reg.set_tools(&ws2, &name, id, tools)).await?;
        drop(secrets);
        Ok(Connection { service, in_flight, ended, scrubber, last_used: Mutex::new(std::time::Instant::now()) })
    }

    /// Records each secret of `entry` (environment and headers) as used by
    /// `caller`, sent to `origin`, on the blocking pool, awaited. A failure
    /// is logged (workspace, server, secret name, error; never a value) and
    /// does not stop the connection.
    async fn record_uses(&self, ws: &WorkspaceId, entry: &ServerEntry, caller: &Caller, origin: String) {
        let names: Vec<String> = entry
            .spec
            .env
            .iter()
            .chain(entry.spec.headers.iter())
            .filter_map(|(_, v)| match v {
                ValueSource::Secret(name) => Some(name.clone()),
                ValueSource::Literal(_) => None,
            })
            .collect();
        if names.is_empty() {
            return;
        }
        let secret_use = SecretUse::now(origin, caller.principal.clone()).in_run(caller.run_id.clone());
        let (resolver, ws, server) = (self.resolver.clone(), ws.clone(), entry.name.clone());
        let recorded = tokio::task::spawn_blocking(move || {
            for name in names {
                if let Err(e) = resolver.record_use(&ws, &name, &secret_use) {
                    tracing::warn!(workspace = ws.as_str(), server = %server, secret = %name, error = %e, "recording a secret's use failed");
                }
            }
        })
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a tool server's secret uses: task failed");
        }
    }

    /// The value of `source`; a secret sent to an HTTP server (`endpoint`)
    /// must be bound to that endpoint in the vault, as for `fetch`.
    async fn value(
        &self,
        ws: &WorkspaceId,
        source: &ValueSource,
        endpoint: Option<&url::Url>,
        secrets: &mut Vec<SecretValue>,
    ) -> Result<String, ToolsError> {
        match source {
            ValueSource::Literal(v) => Ok(v.clone()),
            ValueSource::Secret(name) => {
                let (resolver, ws, n) = (self.resolver.clone(), ws.clone(), name.clone());
                let found = crate::blocking(move || {
                    resolver.resolve(&ws, &n).map_err(|e| ToolsError::Secret(format!("{n}: {e}")))
                })
                .await?;
                let (meta, value) = found.ok_or_else(|| ToolsError::Secret(name.clone()))?;
                if let Some(url) = endpoint {
                    let host = match url.host() {
                        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
                        Some(h) => h.to_string(),
                        None => String::new(),
                    };
                    let port = url.port_or_known_default().unwrap_or(0);
                    // MCP's streamable HTTP transport POSTs to the endpoint.
                    if !meta.hosts.iter().any(|b| b.matches(url.scheme(), &host, port, "POST", url.path())) {
                        return Err(ToolsError::Secret(format!(
                            "{name}: not bound to {}",
                            url.origin().ascii_serialization()
                        )));
                    }
                }
                let text = value.expose().to_owned();
                secrets.push(value);
                Ok(text)
            }
        }
    }

    /// Closes connections idle for longer than the idle timeout.
    fn reap_idle(&self) {
        let slots: Vec<Arc<Slot>> = self.slots.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for slot in slots {
            let Ok(mut st) = slot.conn.try_lock() else { continue };
            let idle = st.conn.as_ref().is_some_and(|c| {
                Arc::strong_count(c) == 1
                    && c.last_used.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= self.limits.idle_timeout
            });
            if idle && let Some(conn) = st.conn.take() {
                close(conn);
            }
        }
    }

    /// Whether a connection to `server` of `ws` is open (for tests and
    /// status).
    pub(crate) fn is_connected(&self, ws: &WorkspaceId, server: &str) -> bool {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ws.as_str().to_owned(), server.to_owned()))
            .cloned();
        slot.is_some_and(|s| {
            s.conn.try_lock().map(|st| st.conn.as_ref().is_some_and(|c| !c.is_closed())).unwrap_or(true)
        })
    }
}

/// Shuts a connection down in the background: the MCP stdio shutdown (close
/// stdin, wait, then signal) for a child process, or closing the session.
fn close(conn: Arc<Connection>) {
    if let Ok(conn) = Arc::try_unwrap(conn)
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        rt.spawn(async move {
            let _ = conn.service.cancel().await;
        });
    }
    // Otherwise dropping it cancels the service; the child is killed on drop.
}

async fn reap(pool: Weak<Pool>) {
    loop {
        let period = match pool.upgrade() {
            Some(p) => (p.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)),
            None => return,
        };
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.reap_idle(),
            None => return,
        }
    }
}

/// Sends `notifications/cancelled` for a request dropped before its answer.
struct CancelOnDrop {
    peer: rmcp::Peer<RoleClient>,
    id: Option<rmcp::model::RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            let param = rmcp::model::CancelledNotificationParam::new(Some(id), Some("cancelled by the caller".into()));
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { peer.notify_cancelled(param).await });
            }
        }
    }
}

/// `tools/call` over `conn`, noting the progress token the client gave the
/// request in `in_flight` (so the server's progress reaches the call's
/// relay); cancelled upstream when dropped before the answer.
pub(crate) async fn call_tool(
    conn: &Connection,
    params: rmcp::model::CallToolRequestParams,
    in_flight: &crate::relay::CallGuard,
) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params));
    let peer = conn.service.peer();
    let handle = peer.send_request_with_option(request, rmcp::service::PeerRequestOptions::no_options()).await?;
    conn.in_flight.set_token(in_flight, handle.progress_token.clone());
    let mut cancel = CancelOnDrop { peer: peer.clone(), id: Some(handle.id.clone()) };
    let answer = handle.await_response().await;
    cancel.id = None;
    match answer? {
        rmcp::model::ServerResult::CallToolResult(result) => Ok(result),
        _ => Err(rmcp::ServiceError::UnexpectedResponse),
    }
}
