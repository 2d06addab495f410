//! A gateway caller's MCP session as the place an upstream server's
//! messages about the caller's call go ([`CallRelay`]): progress under the
//! caller's own progress token, log lines at or above the session's level,
//! resource updates it subscribed to, and sampling and elicitation requests,
//! which the caller's client answers.
//!
//! Notifications go out in order through one task per relay, and a call's
//! relay is drained before the call's result is sent, so none arrives after
//! the response that ends the caller's request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit::orbit_tools::{CallRelay, Relayed};
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorCode, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, ResourceUpdatedNotificationParam,
};
use rmcp::{ErrorData, Peer, RoleServer};
use tokio::sync::mpsc;

/// How long a finished call waits for its last notifications to go out.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

enum Outgoing {
    Progress(ProgressNotificationParam),
    Log(LoggingMessageNotificationParam),
    Updated(ResourceUpdatedNotificationParam),
}

/// One caller session's relay (for one call, or for the session's
/// resource subscriptions).
pub(crate) struct SessionRelay {
    peer: Peer<RoleServer>,
    progress_token: Option<ProgressToken>,
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
    sender: Mutex<Sender>,
    /// Where the sending task is spawned, once there is something to send.
    runtime: tokio::runtime::Handle,
}

/// The task that sends a relay's notifications in order. It is started
/// at the first notification: most calls send none, and a task started
/// and awaited for nothing costs two thread hand-offs on every call.
enum Sender {
    Idle,
    Running { tx: mpsc::UnboundedSender<Outgoing>, task: tokio::task::JoinHandle<()> },
    Drained,
}

impl SessionRelay {
    /// A relay to `peer`; progress is relayed under `progress_token` (the
    /// caller's own, from its request's `_meta`), logs by `log_level`.
    /// Call within a tokio runtime: its notifications are sent from a task
    /// spawned on it.
    pub(crate) fn new(
        peer: Peer<RoleServer>,
        progress_token: Option<ProgressToken>,
        log_level: Arc<Mutex<Option<LoggingLevel>>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peer,
            progress_token,
            log_level,
            sender: Mutex::new(Sender::Idle),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn send(&self, message: Outgoing) {
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*sender, Sender::Idle) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
            let out = self.peer.clone();
            let task = self.runtime.spawn(async move {
                while let Some(message) = rx.recv().await {
                    // A caller that went away is not an error of the call.
                    let _ = match message {
                        Outgoing::Progress(p) => out.notify_progress(p).await,
                        Outgoing::Log(p) => out.notify_logging_message(p).await,
                        Outgoing::Updated(p) => out.notify_resource_updated(p).await,
                    };
                }
            });
            *sender = Sender::Running { tx, task };
        }
        if let Sender::Running { tx, .. } = &*sender {
            let _ = tx.send(message);
        }
    }

    /// Stops relaying and waits (up to [`DRAIN_TIMEOUT`]) until what was
    /// relayed has gone out; later notifications are dropped.
    pub(crate) async fn drain(&self) {
        let sender = std::mem::replace(&mut *self.sender.lock().unwrap_or_else(|e| e.into_inner()), Sender::Drained);
        if let Sender::Running { tx, task } = sender {
            drop(tx);
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
    }

    fn client_can(&self, capability: fn(&rmcp::model::ClientCapabilities) -> bool) -> bool {
        self.peer.peer_info().is_some_and(|info| capability(&info.capabilities))
    }
}

/// The caller's client did not declare the capability the server asks for.
fn not_offered(what: &str) -> ErrorData {
    ErrorData::new(ErrorCode::METHOD_NOT_FOUND, format!("the client does not support {what}"), None)
}

/// The caller's answer as the upstream server gets it: its own MCP error,
/// or a generic one when the session failed (never a host detail).
fn answered<T>(result: Result<T, rmcp::ServiceError>) -> Result<T, ErrorData> {
    match result {
        Ok(r) => Ok(r),
        Err(rmcp::ServiceError::McpError(e)) => Err(e),
        Err(_) => Err(ErrorData::internal_error("the gateway's caller did not answer", None)),
    }
}

impl CallRelay for SessionRelay {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        if let Some(token) = &self.progress_token {
            let mut p = ProgressNotificationParam::new(token.clone(), progress);
            p.total = total;
            p.message = message;
            self.send(Outgoing::Progress(p));
        }
    }

    fn log(&self, params: LoggingMessageNotificationParam) {
        let wanted = *self.log_level.lock().unwrap_or_else(|e| e.into_inner());
        // Unset: as the upstream server chose (what a direct client gets).
        if wanted.is_none_or(|min| crate::level_rank(params.level) >= crate::level_rank(min)) {
            self.send(Outgoing::Log(params));
        }
    }

    fn resource_updated(&self, params: ResourceUpdatedNotificationParam) {
        self.send(Outgoing::Updated(params));
    }

    fn create_message(&self, params: CreateMessageRequestParams) -> Relayed<CreateMessageResult> {
        let peer = self.peer.clone();
        let able = self.client_can(|c| c.sampling.is_some());
        Box::pin(async move {
            if !able {
                return Err(not_offered("sampling"));
            }
            answered(peer.create_message(params).await)
        })
    }

    fn elicit(&self, params: ElicitRequestParams) -> Relayed<ElicitResult> {
        let peer = self.peer.clone();
        let able = self.client_can(|c| c.elicitation.is_some());
        Box::pin(async move {
            if !able {
                return Err(not_offered("elicitation"));
            }
            answered(peer.create_elicitation(params).await)
        })
    }
}
