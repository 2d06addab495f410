//! Requests other than tool calls that the MCP gateway forwards to one
//! upstream server: prompts, resources, resource templates, subscriptions
//! and completions, over the same pooled connection as tool calls.
//!
//! Each is checked like a call of a read-only tool (prompts and resources
//! are read; [`Action::CallTool`] on a read-only target), so every role
//! that may call a read-only tool may use them, and a workspace policy that
//! denies the whole server (`deny SERVER`) hides them too. Answers have the
//! connection's secret values scrubbed and are capped at
//! [`ToolsLimits::max_result_bytes`](crate::ToolsLimits::max_result_bytes).

#![allow(deprecated)] // resources/subscribe is legacy-only in protocol 2026-07-28; 2025 servers use it.

use std::sync::Arc;

use orbit_workspace::permission::Target;
use orbit_workspace::{Action, Principal, WorkspaceId};
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResult, Prompt, ReadResourceRequestParams,
    ReadResourceResult, Resource, ResourceTemplate, SubscribeRequestParams, UnsubscribeRequestParams,
};
use tokio::time::Instant;

use crate::pool::Connection;
use crate::relay::CallRelay;
use crate::{Caller, Tools, ToolsError, blocking, service_error};

/// A request forwarded to one upstream server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UpstreamRequest {
    /// `prompts/list`, every page.
    ListPrompts,
    /// `prompts/get`.
    GetPrompt(GetPromptRequestParams),
    /// `resources/list`, every page.
    ListResources,
    /// `resources/templates/list`, every page.
    ListResourceTemplates,
    /// `resources/read`.
    ReadResource(ReadResourceRequestParams),
    /// `completion/complete`.
    Complete(CompleteRequestParams),
}

/// The upstream server's answer to an [`UpstreamRequest`]; a list is empty
/// when the server does not offer that capability.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum UpstreamAnswer {
    /// For [`UpstreamRequest::ListPrompts`].
    Prompts(Vec<Prompt>),
    /// For [`UpstreamRequest::GetPrompt`].
    Prompt(GetPromptResult),
    /// For [`UpstreamRequest::ListResources`].
    Resources(Vec<Resource>),
    /// For [`UpstreamRequest::ListResourceTemplates`].
    ResourceTemplates(Vec<ResourceTemplate>),
    /// For [`UpstreamRequest::ReadResource`].
    Resource(ReadResourceResult),
    /// For [`UpstreamRequest::Complete`].
    Completion(CompleteResult),
}

impl Tools {
    /// Forwards `request` to `server` of `ws` for `principal`, finishing
    /// before `until`.
    ///
    /// # Errors
    /// [`ToolsError::NoSuchServer`] (not installed or disabled),
    /// [`ToolsError::Denied`] (the policy denies the server),
    /// [`ToolsError::NotPermitted`] (the role may not read),
    /// [`ToolsError::Unavailable`], [`ToolsError::Refused`] (a JSON-RPC
    /// error from the server, or a get/read of a capability it does not
    /// offer), [`ToolsError::ResultTooLarge`], [`ToolsError::Secret`].
    pub async fn upstream(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        request: UpstreamRequest,
        until: Instant,
    ) -> Result<UpstreamAnswer, ToolsError> {
        self.forward(ws, principal, server, until, |conn| async move {
            let service = &conn.service;
            let caps = service.peer_info().map(|i| i.capabilities.clone()).unwrap_or_default();
            let refused = |what: &str| ToolsError::Refused {
                server: server.to_owned(),
                code: rmcp::model::ErrorCode::METHOD_NOT_FOUND.0,
                detail: format!("the server offers no {what}"),
            };
            let failed = |e| service_error(server, e, &conn.scrubber);
            let answer = match request {
                UpstreamRequest::ListPrompts if caps.prompts.is_none() => UpstreamAnswer::Prompts(Vec::new()),
                UpstreamRequest::ListResources if caps.resources.is_none() => UpstreamAnswer::Resources(Vec::new()),
                UpstreamRequest::ListResourceTemplates if caps.resources.is_none() => {
                    UpstreamAnswer::ResourceTemplates(Vec::new())
                }
                UpstreamRequest::GetPrompt(_) if caps.prompts.is_none() => return Err(refused("prompts")),
                UpstreamRequest::ReadResource(_) if caps.resources.is_none() => return Err(refused("resources")),
                UpstreamRequest::Complete(_) if caps.completions.is_none() => return Err(refused("completions")),
                UpstreamRequest::ListPrompts => {
                    UpstreamAnswer::Prompts(service.list_all_prompts().await.map_err(failed)?)
                }
                UpstreamRequest::GetPrompt(p) => UpstreamAnswer::Prompt(service.get_prompt(p).await.map_err(failed)?),
                UpstreamRequest::ListResources => {
                    UpstreamAnswer::Resources(service.list_all_resources().await.map_err(failed)?)
                }
                UpstreamRequest::ListResourceTemplates => {
                    UpstreamAnswer::ResourceTemplates(service.list_all_resource_templates().await.map_err(failed)?)
                }
                UpstreamRequest::ReadResource(p) => {
                    UpstreamAnswer::Resource(service.read_resource(p).await.map_err(failed)?)
                }
                UpstreamRequest::Complete(p) => UpstreamAnswer::Completion(service.complete(p).await.map_err(failed)?),
            };
            // Refused, not Unavailable: the connection is sound, so it is kept.
            scrub_answer(answer, &conn.scrubber).ok_or_else(|| ToolsError::Refused {
                server: server.to_owned(),
                code: rmcp::model::ErrorCode::INTERNAL_ERROR.0,
                detail: "the answer could not be scrubbed".into(),
            })
        })
        .await
    }

    /// Subscribes `relay` to updates of resource `uri` of `server`
    /// (`resources/subscribe` upstream); `notifications/resources/updated`
    /// for it reaches `relay` until [`Tools::unsubscribe`] or until `relay`
    /// is dropped.
    ///
    /// # Errors
    /// As [`Tools::upstream`].
    pub async fn subscribe(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        uri: &str,
        relay: &Arc<dyn CallRelay>,
        until: Instant,
    ) -> Result<(), ToolsError> {
        self.forward(ws, principal, server, until, |conn| async move {
            conn.service
                .subscribe(SubscribeRequestParams::new(uri))
                .await
                .map_err(|e| service_error(server, e, &conn.scrubber))?;
            conn.in_flight.subscribe(uri, relay);
            Ok(())
        })
        .await
    }

    /// Ends `relay`'s subscription to `uri`; the upstream subscription ends
    /// when no other gateway session of the workspace holds one.
    ///
    /// # Errors
    /// As [`Tools::upstream`].
    pub async fn unsubscribe(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        uri: &str,
        relay: &Arc<dyn CallRelay>,
        until: Instant,
    ) -> Result<(), ToolsError> {
        self.forward(ws, principal, server, until, |conn| async move {
            if conn.in_flight.unsubscribe(uri, relay) {
                return Ok(());
            }
            conn.service
                .unsubscribe(UnsubscribeRequestParams::new(uri))
                .await
                .map_err(|e| service_error(server, e, &conn.scrubber))
        })
        .await
    }

    /// The checks, the lease and the size cap around one forwarded request.
    async fn forward<T, F, Fut>(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        until: Instant,
        op: F,
    ) -> Result<T, ToolsError>
    where
        F: FnOnce(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, ToolsError>>,
        T: serde::Serialize,
    {
        let entry = self.enabled_server(ws, server).await?;
        let (reg, w) = (self.registry.clone(), ws.clone());
        let policy = blocking(move || reg.policy(&w)).await?;
        if !policy.allows_server(server) {
            return Err(ToolsError::Denied { server: server.to_owned(), tool: "*".to_owned() });
        }
        if let Err(denied) = principal.check(Action::CallTool, &Target::tool(true, false)) {
            return Err(ToolsError::NotPermitted {
                server: server.to_owned(),
                tool: "*".to_owned(),
                reason: denied.to_string(),
            });
        }
        let caller = Caller::host(principal.clone());
        let lease = self.pool.lease(ws, &entry, until, &caller).await?;
        let result = tokio::time::timeout_at(until, op(lease.conn.clone())).await;
        // As for tool calls: a failure below MCP replaces the connection.
        let closed = matches!(&result, Ok(Err(ToolsError::Unavailable { .. })));
        self.pool.finish(&lease, closed).await;
        let answer = match result {
            Err(_) => return Err(ToolsError::Unavailable { server: server.to_owned(), detail: "timed out".into() }),
            Ok(r) => r?,
        };
        let size = serde_json::to_string(&answer).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > self.limits().max_result_bytes {
            return Err(ToolsError::ResultTooLarge { size, limit: self.limits().max_result_bytes });
        }
        Ok(answer)
    }
}

/// `answer` with the connection's secret values replaced; `None` when it
/// could not be scrubbed.
fn scrub_answer(answer: UpstreamAnswer, scrubber: &orbit_scrub::Scrubber) -> Option<UpstreamAnswer> {
    use crate::pool::scrubbed;
    Some(match answer {
        UpstreamAnswer::Prompts(p) => UpstreamAnswer::Prompts(scrubbed(p, scrubber)?),
        UpstreamAnswer::Prompt(p) => UpstreamAnswer::Prompt(scrubbed(p, scrubber)?),
        UpstreamAnswer::Resources(r) => UpstreamAnswer::Resources(scrubbed(r, scrubber)?),
        UpstreamAnswer::ResourceTemplates(r) => UpstreamAnswer::ResourceTemplates(scrubbed(r, scrubber)?),
        UpstreamAnswer::Resource(r) => UpstreamAnswer::Resource(scrubbed(r, scrubber)?),
        UpstreamAnswer::Completion(c) => UpstreamAnswer::Completion(scrubbed(c, scrubber)?),
    })
}
