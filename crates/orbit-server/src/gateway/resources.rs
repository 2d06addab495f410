//! The workspace's upstream prompts, resources, resource templates,
//! subscriptions and completions, aggregated by the gateway.
//!
//! - **Prompts** are named like tools: `<server>__<prompt>`, or the prompt's
//!   own name for the unprefixed server; `prompts/get` is routed by the name.
//! - **Resources** keep their URIs (a URI already names its server's
//!   space); `resources/read`, `subscribe` and `unsubscribe` go to the server
//!   that lists the URI, else to one whose template matches it. When two
//!   servers list the same URI, the first server (by name) has it. Each
//!   session remembers which server listed a URI ([`ResourceRoutes`], from
//!   its last `resources/list` or lookup), so a read goes straight to that
//!   server while it stays enabled and allowed, instead of listing every
//!   server's resources again.
//! - Every request is checked as a read (see [`orbit::orbit_tools::UpstreamRequest`]);
//!   servers the policy denies wholesale are left out. A server that fails
//!   to answer a list is left out of that list (the operator's log says
//!   why); a failed get or read is an MCP error naming only the server.

use std::sync::Arc;

use orbit::orbit_tools::{CallRelay, ToolsError, UpstreamAnswer, UpstreamRequest};
use rmcp::model::{
    CompleteRequestParams, CompleteResult, ErrorCode, GetPromptRequestParams, GetPromptResult, Prompt,
    ReadResourceRequestParams, ReadResourceResult, Reference, Resource, ResourceTemplate,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::{LIST_TIMEOUT, SEPARATOR};
use crate::OrbitMcp;
use crate::auth::Caller;

/// URIs one session's routes remember; past it they are forgotten and
/// learnt again, so a server listing millions of resources cannot grow a
/// session without bound.
const MAX_ROUTES: usize = 10_000;

/// One session's resource routes: URI → the server that listed it.
#[derive(Debug, Default)]
pub(crate) struct ResourceRoutes {
    by_uri: std::collections::HashMap<String, String>,
}

impl ResourceRoutes {
    /// Remembers that `server` lists each of `uris`, unless an earlier
    /// server (by name, in the order servers are asked) already does.
    fn learn<'a>(&mut self, server: &str, uris: impl IntoIterator<Item = &'a str>) {
        for uri in uris {
            if self.by_uri.len() >= MAX_ROUTES && !self.by_uri.contains_key(uri) {
                self.by_uri.clear();
            }
            self.by_uri.entry(uri.to_owned()).or_insert_with(|| server.to_owned());
        }
    }
}

/// The enabled servers of the caller's workspace that the policy does not
/// deny wholesale, with whether each is unprefixed, by name.
fn servers(mcp: &OrbitMcp, caller: &Caller) -> Vec<(String, bool)> {
    let tools = mcp.orbit().tools();
    let (Ok(list), Ok(policy)) =
        (tools.registry().list_servers(&caller.workspace), tools.registry().policy(&caller.workspace))
    else {
        return Vec::new();
    };
    list.into_iter()
        .filter(|s| s.enabled && policy.allows_server(&s.name))
        .map(|s| (s.name, s.spec.unprefixed))
        .collect()
}

/// The MCP error for a failed forwarded request: the server's own JSON-RPC
/// code with a fixed text, never its detail.
fn upstream_error(server: &str, e: &ToolsError) -> ErrorData {
    match e {
        ToolsError::Refused { code, .. } => {
            ErrorData::new(ErrorCode(*code), format!("the MCP server {server} refused the request"), None)
        }
        ToolsError::NotPermitted { reason, .. } => {
            ErrorData::invalid_request(format!("permission denied: {reason}"), None)
        }
        other => ErrorData::internal_error(super::failure_text(other), None),
    }
}

/// Whether `uri` fits RFC 6570 template `template` (level 1: each
/// `{name}` stands for one or more characters).
pub(crate) fn matches_template(template: &str, uri: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literals.push(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { return false };
        rest = &rest[open + close + 1..];
    }
    literals.push(rest);
    if literals.len() == 1 {
        return template == uri;
    }
    let (first, last) = (literals[0], literals[literals.len() - 1]);
    let Some(mut remaining) = uri.strip_prefix(first) else { return false };
    for literal in &literals[1..literals.len() - 1] {
        // Each variable takes at least one character.
        match remaining.get(1..).and_then(|r| r.find(literal)) {
            Some(at) => remaining = &remaining[1 + at + literal.len()..],
            None => return false,
        }
    }
    remaining.len() > last.len() && remaining.ends_with(last)
}

impl OrbitMcp {
    async fn ask(&self, caller: &Caller, server: &str, request: UpstreamRequest) -> Result<UpstreamAnswer, ToolsError> {
        let until = tokio::time::Instant::now() + LIST_TIMEOUT;
        self.orbit().tools().upstream(&caller.workspace, &caller.principal, server, request, until).await
    }

    /// Every server's prompts under their gateway names.
    pub(crate) async fn gateway_prompts(&self, caller: &Caller) -> Vec<Prompt> {
        let mut out = Vec::new();
        for (server, unprefixed) in servers(self, caller) {
            match self.ask(caller, &server, UpstreamRequest::ListPrompts).await {
                Ok(UpstreamAnswer::Prompts(prompts)) => out.extend(prompts.into_iter().filter_map(|mut p| {
                    p.name = super::gateway_name(&server, &p.name, unprefixed)?;
                    Some(p)
                })),
                Ok(_) => {}
                Err(e) => tracing::warn!(server = %server, error = %e, "listing an upstream server's prompts"),
            }
        }
        out
    }

    /// The server and upstream name of the prompt offered as `name`.
    async fn prompt_target(&self, caller: &Caller, name: &str) -> Option<(String, String)> {
        for (server, unprefixed) in servers(self, caller) {
            let upstream = if unprefixed {
                name.to_owned()
            } else {
                match name.strip_prefix(&format!("{server}{SEPARATOR}")) {
                    Some(rest) => rest.to_owned(),
                    None => continue,
                }
            };
            if let Ok(UpstreamAnswer::Prompts(prompts)) = self.ask(caller, &server, UpstreamRequest::ListPrompts).await
                && prompts.iter().any(|p| p.name == upstream)
            {
                return Some((server, upstream));
            }
        }
        None
    }

    /// `prompts/get` of an upstream prompt by its gateway name.
    pub(crate) async fn gateway_get_prompt(
        &self,
        caller: &Caller,
        mut params: GetPromptRequestParams,
    ) -> Result<GetPromptResult, ErrorData> {
        let Some((server, upstream)) = self.prompt_target(caller, &params.name).await else {
            return Err(ErrorData::invalid_params(format!("unknown prompt {:?}", params.name), None));
        };
        params.name = upstream;
        match self.ask(caller, &server, UpstreamRequest::GetPrompt(params)).await {
            Ok(UpstreamAnswer::Prompt(p)) => Ok(p),
            Ok(_) => Err(ErrorData::internal_error("unexpected answer", None)),
            Err(e) => Err(upstream_error(&server, &e)),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, ResourceRoutes> {
        self.resource_routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every server's resources (first server wins a URI).
    pub(crate) async fn gateway_resources(&self, caller: &Caller) -> Vec<Resource> {
        let mut out: Vec<Resource> = Vec::new();
        // A fresh listing replaces what the session knew.
        self.routes().by_uri.clear();
        for (server, _) in servers(self, caller) {
            match self.ask(caller, &server, UpstreamRequest::ListResources).await {
                Ok(UpstreamAnswer::Resources(list)) => {
                    self.routes().learn(&server, list.iter().map(|r| r.uri.as_str()));
                    for r in list {
                        if !out.iter().any(|o| o.uri == r.uri) {
                            out.push(r);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(server = %server, error = %e, "listing an upstream server's resources"),
            }
        }
        out
    }

    /// Every server's resource templates.
    pub(crate) async fn gateway_resource_templates(&self, caller: &Caller) -> Vec<ResourceTemplate> {
        let mut out = Vec::new();
        for (server, _) in servers(self, caller) {
            match self.ask(caller, &server, UpstreamRequest::ListResourceTemplates).await {
                Ok(UpstreamAnswer::ResourceTemplates(list)) => out.extend(list),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(server = %server, error = %e, "listing an upstream server's resource templates")
                }
            }
        }
        out
    }

    /// The server that lists `uri`, else the first whose template fits it.
    /// A server this session saw list `uri` is asked directly while it is
    /// still enabled and allowed (it answers for itself if it no longer has
    /// the resource).
    async fn resource_server(&self, caller: &Caller, uri: &str) -> Option<String> {
        let servers = servers(self, caller);
        let known = self.routes().by_uri.get(uri).cloned();
        if let Some(server) = known
            && servers.iter().any(|(s, _)| *s == server)
        {
            return Some(server);
        }
        for (server, _) in &servers {
            if let Ok(UpstreamAnswer::Resources(list)) = self.ask(caller, server, UpstreamRequest::ListResources).await
            {
                self.routes().learn(server, list.iter().map(|r| r.uri.as_str()));
                if list.iter().any(|r| r.uri == uri) {
                    return Some(server.clone());
                }
            }
        }
        for (server, _) in &servers {
            if let Ok(UpstreamAnswer::ResourceTemplates(list)) =
                self.ask(caller, server, UpstreamRequest::ListResourceTemplates).await
                && list.iter().any(|t| t.uri_template == uri || matches_template(&t.uri_template, uri))
            {
                return Some(server.clone());
            }
        }
        None
    }

    fn no_resource(uri: &str) -> ErrorData {
        ErrorData::resource_not_found(format!("no MCP server of this workspace offers resource {uri:?}"), None)
    }

    /// `resources/read`, routed by URI.
    pub(crate) async fn gateway_read_resource(
        &self,
        caller: &Caller,
        params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResult, ErrorData> {
        let Some(server) = self.resource_server(caller, &params.uri).await else {
            return Err(Self::no_resource(&params.uri));
        };
        let until = tokio::time::Instant::now() + self.orbit().tools().limits().call_timeout;
        let request = UpstreamRequest::ReadResource(params);
        match self.orbit().tools().upstream(&caller.workspace, &caller.principal, &server, request, until).await {
            Ok(UpstreamAnswer::Resource(r)) => Ok(r),
            Ok(_) => Err(ErrorData::internal_error("unexpected answer", None)),
            Err(e) => Err(upstream_error(&server, &e)),
        }
    }

    /// This session's relay for resource updates, made on first use.
    fn subscriber(&self, context: &RequestContext<RoleServer>) -> Arc<dyn CallRelay> {
        let mut slot = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| {
            let relay: Arc<dyn CallRelay> =
                super::relay::SessionRelay::new(context.peer.clone(), None, self.log_level.clone());
            relay
        })
        .clone()
    }

    /// `resources/subscribe` (and, with `subscribe == false`,
    /// `resources/unsubscribe`), routed by URI.
    pub(crate) async fn gateway_subscription(
        &self,
        caller: &Caller,
        uri: &str,
        subscribe: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(server) = self.resource_server(caller, uri).await else {
            return Err(Self::no_resource(uri));
        };
        let relay = self.subscriber(context);
        let until = tokio::time::Instant::now() + LIST_TIMEOUT;
        let tools = self.orbit().tools();
        let (ws, principal) = (&caller.workspace, &caller.principal);
        let done = if subscribe {
            tools.subscribe(ws, principal, &server, uri, &relay, until).await
        } else {
            tools.unsubscribe(ws, principal, &server, uri, &relay, until).await
        };
        done.map_err(|e| upstream_error(&server, &e))
    }

    /// `completion/complete` for an upstream prompt (by gateway name) or
    /// resource template.
    pub(crate) async fn gateway_complete(
        &self,
        caller: &Caller,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, ErrorData> {
        let server = match &mut params.r#ref {
            Reference::Prompt(prompt) => {
                let Some((server, upstream)) = self.prompt_target(caller, &prompt.name).await else {
                    return Err(ErrorData::invalid_params(format!("unknown prompt {:?}", prompt.name), None));
                };
                prompt.name = upstream;
                server
            }
            Reference::Resource(resource) => match self.resource_server(caller, &resource.uri).await {
                Some(server) => server,
                None => return Err(Self::no_resource(&resource.uri)),
            },
            _ => return Err(ErrorData::invalid_params("unsupported completion reference", None)),
        };
        match self.ask(caller, &server, UpstreamRequest::Complete(params)).await {
            Ok(UpstreamAnswer::Completion(c)) => Ok(c),
            Ok(_) => Err(ErrorData::internal_error("unexpected answer", None)),
            Err(e) => Err(upstream_error(&server, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_ROUTES, ResourceRoutes, matches_template};

    #[test]
    fn routes_keep_the_first_server_and_stay_bounded() {
        let mut routes = ResourceRoutes::default();
        routes.learn("alpha", ["a://1", "a://2"]);
        routes.learn("beta", ["a://2", "b://1"]);
        assert_eq!(routes.by_uri["a://2"], "alpha", "the first server to list a URI has it");
        assert_eq!(routes.by_uri["b://1"], "beta");
        let many: Vec<String> = (0..MAX_ROUTES + 5).map(|i| format!("m://{i}")).collect();
        routes.learn("gamma", many.iter().map(String::as_str));
        assert!(routes.by_uri.len() <= MAX_ROUTES);
        assert_eq!(routes.by_uri[many.last().unwrap()], "gamma");
    }

    #[test]
    fn templates() {
        assert!(matches_template("test://template/{id}/data", "test://template/123/data"));
        assert!(!matches_template("test://template/{id}/data", "test://template//data"));
        assert!(!matches_template("test://template/{id}/data", "test://other/123/data"));
        assert!(matches_template("file:///{path}", "file:///a/b"));
        assert!(!matches_template("file:///{path}", "file:///"));
        assert!(matches_template("test://static-text", "test://static-text"));
        assert!(matches_template("x://{a}-{b}", "x://1-2"));
        assert!(!matches_template("x://{a}-{b}", "x://1-"));
    }
}
