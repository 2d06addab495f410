//! Relaying what an upstream MCP server sends about a call back to whoever
//! made it (the gateway's caller), over a connection that the workspace's
//! runs and gateway sessions share.
//!
//! Routing, per pooled connection:
//! - `notifications/progress` carries the progress token the MCP client put
//!   on the call (rmcp gives every request one), so it reaches exactly that
//!   call's relay.
//! - `notifications/message`, `sampling/createMessage` and
//!   `elicitation/create` carry nothing that names the call they belong to
//!   (MCP 2025-06-18 and 2025-11-25; the streamable HTTP stream they arrive
//!   on is not visible through one shared client). They are relayed only
//!   when exactly one call is in flight on the connection, counting calls
//!   from runs, which have no relay: with two in flight, a log line is
//!   dropped and a request is refused, so nothing one member's call
//!   triggers is ever shown to another member.
//! - `notifications/resources/updated` goes to the sessions that subscribed
//!   to that URI through the gateway (all of the same workspace).
//!
//! Everything relayed has had the connection's secret values scrubbed.

// Logging and sampling are deprecated by SEP-2577 for protocol 2026-07-28;
// the 2025 protocol versions that clients and servers speak today have them.
#![allow(deprecated)]

use std::sync::{Arc, Mutex, Weak};

use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData,
    LoggingMessageNotificationParam, ProgressToken, ResourceUpdatedNotificationParam,
};

/// The answer to a request relayed to the caller.
pub type Relayed<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, ErrorData>> + Send>>;

/// Where an upstream server's messages about one call (or one resource
/// subscription) go. The gateway implements it for a caller's MCP session.
///
/// `progress`, `log` and `resource_updated` are called from the upstream
/// connection's receive loop, in the order the server sent them: they must
/// not block (queue the message and return), or the whole connection
/// waits.
pub trait CallRelay: Send + Sync {
    /// `notifications/progress` about the call: progress so far, the total
    /// when known, and a message.
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>);
    /// A `notifications/message` (log line) the server sent during the call.
    fn log(&self, params: LoggingMessageNotificationParam);
    /// `notifications/resources/updated` for a URI the caller subscribed to.
    fn resource_updated(&self, params: ResourceUpdatedNotificationParam);
    /// A `sampling/createMessage` request the server made during the call.
    fn create_message(&self, params: CreateMessageRequestParams) -> Relayed<CreateMessageResult>;
    /// An `elicitation/create` request the server made during the call.
    fn elicit(&self, params: ElicitRequestParams) -> Relayed<ElicitResult>;
}

/// The calls in flight on one connection, and its gateway subscriptions.
#[derive(Default)]
pub(crate) struct InFlight {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    calls: Vec<Entry>,
    subscribers: Vec<(String, Weak<dyn CallRelay>)>,
    /// Progress whose token no call has yet: the connection's receive loop
    /// can get the server's first progress before the caller, back from
    /// sending its request, notes the token rmcp gave it. At most
    /// [`EARLY_PROGRESS`], the oldest dropped first (a late notification of
    /// a call that ended is never claimed).
    early: std::collections::VecDeque<Progress>,
}

/// How many unclaimed progress notifications a connection keeps.
const EARLY_PROGRESS: usize = 64;

/// One `notifications/progress`: its token, progress, total and message.
pub(crate) struct Progress {
    pub(crate) token: ProgressToken,
    pub(crate) progress: f64,
    pub(crate) total: Option<f64>,
    pub(crate) message: Option<String>,
}

struct Entry {
    id: u64,
    token: Option<ProgressToken>,
    relay: Option<Arc<dyn CallRelay>>,
}

/// Removes its call from the table when dropped (the call ended, or was
/// cancelled by dropping its future).
pub(crate) struct CallGuard {
    table: Arc<InFlight>,
    id: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.table.lock().calls.retain(|e| e.id != self.id);
    }
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call (with or without a relay), before it is sent.
    pub(crate) fn begin(self: &Arc<Self>, relay: Option<Arc<dyn CallRelay>>) -> CallGuard {
        let mut table = self.lock();
        table.next += 1;
        let id = table.next;
        table.calls.push(Entry { id, token: None, relay });
        CallGuard { table: self.clone(), id }
    }

    /// Notes the progress token the call was sent with, and relays the
    /// progress that arrived under it before, in order.
    pub(crate) fn set_token(&self, call: &CallGuard, token: ProgressToken) {
        let mut table = self.lock();
        let Some(entry) = table.calls.iter_mut().find(|e| e.id == call.id) else { return };
        entry.token = Some(token.clone());
        let relay = entry.relay.clone();
        let (claimed, rest): (Vec<_>, Vec<_>) = table.early.drain(..).partition(|p| p.token == token);
        table.early.extend(rest);
        // Under the lock: a later notification waits for these.
        if let Some(relay) = relay {
            for p in claimed {
                relay.progress(p.progress, p.total, p.message);
            }
        }
    }

    /// Relays `p` to the call whose progress token it names, or keeps it
    /// for [`set_token`](Self::set_token) when no call has that token yet.
    pub(crate) fn progress(&self, p: Progress) {
        let mut table = self.lock();
        match table.calls.iter().find(|e| e.token.as_ref() == Some(&p.token)) {
            Some(entry) => {
                if let Some(relay) = entry.relay.clone() {
                    drop(table);
                    relay.progress(p.progress, p.total, p.message);
                }
            }
            None => {
                if table.early.len() == EARLY_PROGRESS {
                    table.early.pop_front();
                }
                table.early.push_back(p);
            }
        }
    }

    /// The relay of the call whose progress token is `token`.
    #[cfg(test)]
    pub(crate) fn by_token(&self, token: &ProgressToken) -> Option<Arc<dyn CallRelay>> {
        let table = self.lock();
        table.calls.iter().find(|e| e.token.as_ref() == Some(token)).and_then(|e| e.relay.clone())
    }

    /// The relay of the only call in flight, if exactly one is and it has a
    /// relay.
    pub(crate) fn only(&self) -> Option<Arc<dyn CallRelay>> {
        let table = self.lock();
        match table.calls.as_slice() {
            [only] => only.relay.clone(),
            _ => None,
        }
    }

    /// Adds `relay` as a subscriber to `uri`.
    pub(crate) fn subscribe(&self, uri: &str, relay: &Arc<dyn CallRelay>) {
        let mut table = self.lock();
        table.subscribers.retain(|(_, w)| w.strong_count() > 0);
        table.subscribers.push((uri.to_owned(), Arc::downgrade(relay)));
    }

    /// Removes `relay`'s subscription to `uri`; returns whether anyone else
    /// still subscribes to it.
    pub(crate) fn unsubscribe(&self, uri: &str, relay: &Arc<dyn CallRelay>) -> bool {
        let mut table = self.lock();
        table
            .subscribers
            .retain(|(u, w)| w.strong_count() > 0 && !(u == uri && std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(relay))));
        table.subscribers.iter().any(|(u, _)| u == uri)
    }

    /// The live subscribers to `uri`.
    pub(crate) fn subscribers(&self, uri: &str) -> Vec<Arc<dyn CallRelay>> {
        let table = self.lock();
        table.subscribers.iter().filter(|(u, _)| u == uri).filter_map(|(_, w)| w.upgrade()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    /// Records what reaches it.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl CallRelay for Seen {
        fn progress(&self, progress: f64, _: Option<f64>, _: Option<String>) {
            self.0.lock().unwrap().push(format!("progress {progress}"));
        }
        fn log(&self, _: LoggingMessageNotificationParam) {}
        fn resource_updated(&self, p: ResourceUpdatedNotificationParam) {
            self.0.lock().unwrap().push(p.uri);
        }
        fn create_message(&self, _: CreateMessageRequestParams) -> Relayed<CreateMessageResult> {
            Box::pin(async { Err(ErrorData::internal_error("unused", None)) })
        }
        fn elicit(&self, _: ElicitRequestParams) -> Relayed<ElicitResult> {
            Box::pin(async { Err(ErrorData::internal_error("unused", None)) })
        }
    }

    fn token(n: i64) -> ProgressToken {
        ProgressToken(NumberOrString::Number(n))
    }

    #[test]
    fn what_names_no_call_goes_only_to_the_only_call_in_flight() {
        let table = Arc::new(InFlight::default());
        let (a, b): (Arc<dyn CallRelay>, Arc<dyn CallRelay>) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
        assert!(table.only().is_none(), "no call, no relay");
        let first = table.begin(Some(a.clone()));
        table.set_token(&first, token(1));
        assert!(table.only().is_some_and(|r| Arc::ptr_eq(&r, &a)));
        // A run's call (no relay) in flight too: nothing is relayed to a.
        let run = table.begin(None);
        assert!(table.only().is_none());
        drop(run);
        let second = table.begin(Some(b.clone()));
        table.set_token(&second, token(2));
        assert!(table.only().is_none(), "two gateway calls: ambiguous, relayed to neither");
        // Progress names its call by token.
        assert!(table.by_token(&token(1)).is_some_and(|r| Arc::ptr_eq(&r, &a)));
        assert!(table.by_token(&token(2)).is_some_and(|r| Arc::ptr_eq(&r, &b)));
        assert!(table.by_token(&token(3)).is_none());
        drop(first);
        assert!(table.by_token(&token(1)).is_none(), "a finished call gets nothing");
        assert!(table.only().is_some_and(|r| Arc::ptr_eq(&r, &b)));
    }

    /// Progress the server sent before the caller noted its call's token
    /// is relayed when it does, before what follows, in order.
    #[test]
    fn progress_before_the_token_is_noted_is_relayed_in_order() {
        let table = Arc::new(InFlight::default());
        let seen = Arc::new(Seen::default());
        let relay: Arc<dyn CallRelay> = seen.clone();
        let call = table.begin(Some(relay));
        let p = |n: f64, t: i64| Progress { token: token(t), progress: n, total: None, message: None };
        table.progress(p(1.0, 7));
        table.progress(p(99.0, 8)); // another call's, never claimed here
        table.progress(p(2.0, 7));
        assert!(seen.0.lock().unwrap().is_empty(), "no call has token 7 yet");
        table.set_token(&call, token(7));
        table.progress(p(3.0, 7));
        assert_eq!(*seen.0.lock().unwrap(), ["progress 1", "progress 2", "progress 3"]);
        // Bounded: old unclaimed progress is dropped.
        for n in 0..(EARLY_PROGRESS + 10) {
            table.progress(p(n as f64, 9));
        }
        assert_eq!(table.lock().early.len(), EARLY_PROGRESS);
    }

    #[test]
    fn subscriptions_last_until_unsubscribed_or_dropped() {
        let table = InFlight::default();
        let (a, b): (Arc<dyn CallRelay>, Arc<dyn CallRelay>) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
        table.subscribe("test://x", &a);
        table.subscribe("test://x", &b);
        assert_eq!(table.subscribers("test://x").len(), 2);
        assert!(table.subscribers("test://y").is_empty());
        assert!(table.unsubscribe("test://x", &a), "b still subscribes");
        drop(b);
        assert!(table.subscribers("test://x").is_empty(), "a dropped session holds no subscription");
    }
}
