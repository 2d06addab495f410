//! The dashboard's forms (POST): each checks the CSRF token first, then
//! sends one API request as the session's token, then redirects back to
//! its page with the outcome as a one-time message (POST/redirect/GET).
//! Issuing a token is the exception: its page is the response, so the new
//! token is shown once and kept nowhere.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::IgnoredAny;
use serde_json::json;
use zeroize::Zeroizing;

use super::Dash;
use super::client::{ApiFailure, seg};
use super::pages::{Ctx, Tokens, error_page, render, signin_page};
use super::session::{Flash, SESSION_COOKIE, SIGNIN_COOKIE, cookie_value, same};
use crate::api::{IssuedTokenView, Me, MemberAddedView, MemberRemovedView, TokenList};

/// A form's fields; blank ones read as absent.
pub(crate) type Fields = Form<HashMap<String, String>>;

fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    f.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn forbidden() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form is stale or was not sent from this dashboard: reload the page and try again.",
    )
}

/// Whether a browser's `Origin` is this very host. The server-wide check
/// admits any loopback port (for MCP clients); a dashboard form must come
/// from the dashboard's own origin, so a page on another local port cannot
/// post one (sign-in included). A request without `Origin` is not a
/// browser's cross-site form post.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// A signed-in form post in `slug`: the origin and CSRF token are checked
/// before anything else is done.
async fn posted(dash: &Dash, headers: &HeaderMap, slug: &str, f: &HashMap<String, String>) -> Result<Ctx, Response> {
    let sid = cookie_value(headers, SESSION_COOKIE).unwrap_or_default();
    if !same_origin(headers) || !dash.sessions.csrf_ok(&sid, f.get("csrf").map_or("", String::as_str)) {
        return Err(forbidden());
    }
    Ctx::resolve(dash, headers, slug).await
}

impl Ctx {
    /// `method /workspaces/{slug}{rest}` of the API with `body`.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        rest: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiFailure> {
        let path = format!("/workspaces/{}{rest}", seg(&self.slug));
        self.dash.api.send(&self.token, method, &path, body).await
    }

    /// Back to `section` with the outcome of `result` as the next page's
    /// message (`ok` says what was done).
    fn back<T>(&self, section: &str, result: Result<T, ApiFailure>, ok: impl FnOnce(T) -> String) -> Response {
        let flash = match result {
            Ok(v) => Flash::ok(ok(v)),
            Err(ApiFailure::SignedOut) => return super::pages::ended(&self.dash, &self.sid, &self.slug),
            Err(e) => Flash::error(e.text()),
        };
        self.dash.sessions.flash(&self.sid, flash);
        let to = if section.is_empty() {
            format!("/w/{}", seg(&self.slug))
        } else {
            format!("/w/{}/{section}", seg(&self.slug))
        };
        Redirect::to(&to).into_response()
    }
}

/// `POST /signin`: the token is checked by the API (`/me`); its workspace
/// joins the session (a new one when there is none).
pub(crate) async fn signin(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Form(f): Fields,
) -> Result<Response, Response> {
    let cookie = cookie_value(&headers, SIGNIN_COOKIE).unwrap_or_default();
    let sent = f.get("csrf").map_or("", String::as_str);
    if !same_origin(&headers) || cookie.is_empty() || !same(&cookie, sent) {
        return Err(forbidden());
    }
    let sid = cookie_value(&headers, SESSION_COOKIE).unwrap_or_default();
    let Some(token) = field(&f, "token").map(|t| Zeroizing::new(t.to_owned())) else {
        return signin_page(&dash, &sid, Some("Paste a token.".into()), StatusCode::BAD_REQUEST);
    };
    let me: Me = match dash.api.get(&token, "/me").await {
        Ok(me) => me,
        Err(ApiFailure::SignedOut) => {
            let text = "That token is not valid: it is unknown, expired or revoked.".to_owned();
            return signin_page(&dash, &sid, Some(text), StatusCode::UNAUTHORIZED);
        }
        Err(e) => return signin_page(&dash, &sid, Some(e.text()), StatusCode::BAD_GATEWAY),
    };
    let slug = me.workspace;
    // Always a fresh session id; the workspaces of the session it replaces
    // come along (that is "Add workspace").
    let previous = dash.sessions.view(&sid).map(|_| sid.as_str());
    let sid = dash.sessions.create(previous, &slug, token);
    dash.sessions.flash(&sid, Flash::ok(format!("Signed in to {slug} as {}.", me.user)));
    let mut response = Redirect::to(&format!("/w/{}", seg(&slug))).into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, dash.sessions.cookie(SESSION_COOKIE, Some(&sid)));
    h.append(header::SET_COOKIE, dash.sessions.cookie(SIGNIN_COOKIE, None));
    Ok(response)
}

/// `POST /signout`: ends the session (its tokens stay valid).
pub(crate) async fn signout(State(dash): State<Dash>, headers: HeaderMap, Form(f): Fields) -> Response {
    let sid = cookie_value(&headers, SESSION_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || !dash.sessions.csrf_ok(&sid, f.get("csrf").map_or("", String::as_str)) {
        return forbidden();
    }
    dash.sessions.end(&sid);
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(header::SET_COOKIE, dash.sessions.cookie(SESSION_COOKIE, None));
    response
}

/// `POST /w/{slug}/servers/install`: an MCP server reached over streamable
/// HTTP (headers `Name: value`, one per line; `secret:NAME` values are
/// credentials the host injects).
pub(crate) async fn install_server(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let mut sent_headers = serde_json::Map::new();
    for line in field(&f, "headers").unwrap_or("").lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once(':') else {
            let shown: String = line.chars().take(60).collect();
            let e = ApiFailure::Refused(crate::api::Problem::new(
                "invalid-input",
                format!("header line {shown:?} is not `Name: value`"),
            ));
            return Ok(c.back("servers", Err::<(), _>(e), |_| String::new()));
        };
        sent_headers.insert(k.trim().to_owned(), json!(v.trim()));
    }
    let body = json!({
        "name": field(&f, "name").unwrap_or(""),
        "url": field(&f, "url").unwrap_or(""),
        "headers": sent_headers,
        "unprefixed": field(&f, "unprefixed").is_some(),
    });
    let r = c.send::<IgnoredAny>(Method::POST, "/servers", Some(body)).await;
    let name = field(&f, "name").unwrap_or("").to_owned();
    Ok(c.back("servers", r, |_| format!("Installed server {name}.")))
}

/// `POST /w/{slug}/servers/{name}/{enable|disable|refresh|remove}`.
pub(crate) async fn server_op(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, name, op)): Path<(String, String, String)>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let path = format!("/servers/{}", seg(&name));
    let r = match op.as_str() {
        "enable" | "disable" => {
            c.send::<IgnoredAny>(Method::PATCH, &path, Some(json!({"enabled": op == "enable"}))).await.map(|_| ())
        }
        "refresh" => c.send::<IgnoredAny>(Method::POST, &format!("{path}/refresh"), None).await.map(|_| ()),
        "remove" => c.send::<IgnoredAny>(Method::DELETE, &path, None).await.map(|_| ()),
        _ => return Err(error_page(StatusCode::NOT_FOUND, "no such action")),
    };
    let done = match op.as_str() {
        "enable" => "Enabled",
        "disable" => "Disabled",
        "refresh" => "Refreshed",
        _ => "Removed",
    };
    Ok(c.back("servers", r, |_| format!("{done} server {name}.")))
}

/// `POST /w/{slug}/policy`: allow or deny a server or one of its tools,
/// and open or close it to read-only members.
pub(crate) async fn policy(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let target = field(&f, "target").unwrap_or("").to_owned();
    let (server, tool) = match target.split_once('/') {
        Some((s, t)) => (s, Some(t)),
        None => (target.as_str(), None),
    };
    let mut body = json!({"read_only": field(&f, "read_only").is_some()});
    if let Some(t) = tool {
        body["tool"] = json!(t);
    }
    if let Some(rule) = field(&f, "rule") {
        body["rule"] = json!(rule);
    }
    let r = c.send::<IgnoredAny>(Method::PATCH, &format!("/servers/{}", seg(server)), Some(body)).await;
    Ok(c.back("servers", r, |_| format!("Policy on {target} set.")))
}

/// `POST /w/{slug}/secrets/set`: a credential's value and bindings (the
/// value is sent to the API and never shown again).
pub(crate) async fn set_secret(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let name = field(&f, "name").unwrap_or("").to_owned();
    let hosts: Vec<&str> = field(&f, "hosts")
        .unwrap_or("")
        .split(|c: char| c == '\n' || c == ',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    // The value is used as typed: only a trailing newline a paste adds goes.
    let value = Zeroizing::new(f.get("value").map_or("", |v| v.trim_end_matches(['\r', '\n'])).to_owned());
    let body = json!({
        "value": value.as_str(),
        "hosts": hosts,
        "header": field(&f, "header").unwrap_or("Authorization"),
        "template": field(&f, "template").unwrap_or("Bearer {}"),
    });
    let r = c.send::<IgnoredAny>(Method::PUT, &format!("/secrets/{}", seg(&name)), Some(body)).await;
    Ok(c.back("secrets", r, |_| format!("Saved credential {name}.")))
}

/// `POST /w/{slug}/secrets/{name}/{delete|reassign}`.
pub(crate) async fn secret_op(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, name, op)): Path<(String, String, String)>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let path = format!("/secrets/{}", seg(&name));
    let (r, done) = match op.as_str() {
        "delete" => (c.send::<IgnoredAny>(Method::DELETE, &path, None).await, format!("Deleted credential {name}.")),
        "reassign" => {
            let owner = field(&f, "owner").unwrap_or("").to_owned();
            let r =
                c.send::<IgnoredAny>(Method::POST, &format!("{path}/reassign"), Some(json!({"owner": owner}))).await;
            (r, format!("Credential {name} now belongs to {owner}."))
        }
        _ => return Err(error_page(StatusCode::NOT_FOUND, "no such action")),
    };
    Ok(c.back("secrets", r, |_| done))
}

/// `POST /w/{slug}/members/invite`.
pub(crate) async fn invite(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let body = json!({"user": field(&f, "user").unwrap_or(""), "role": field(&f, "role").unwrap_or("member")});
    let r = c.send::<MemberAddedView>(Method::POST, "/members", Some(body)).await;
    Ok(c.back("members", r, |a| {
        let team = if a.became_team { " This is now a team workspace." } else { "" };
        format!("Added {} as {}.{team} Issue them a token on the Tokens page.", a.member.user, a.member.role)
    }))
}

/// `POST /w/{slug}/members/{user}/role`.
pub(crate) async fn set_role(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, user)): Path<(String, String)>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let role = field(&f, "role").unwrap_or("").to_owned();
    let r = c.send::<IgnoredAny>(Method::PATCH, &format!("/members/{}", seg(&user)), Some(json!({"role": role}))).await;
    Ok(c.back("members", r, |_| format!("{user} is now {role}.")))
}

/// `POST /w/{slug}/members/{user}/remove` (after the confirmation page).
pub(crate) async fn remove_member(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, user)): Path<(String, String)>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let r = c.send::<MemberRemovedView>(Method::DELETE, &format!("/members/{}", seg(&user)), None).await;
    Ok(c.back("members", r, |m| {
        format!(
            "Removed {}: {} token(s) revoked, {} item(s) orphaned.",
            m.member.user,
            m.revoked_tokens.len(),
            m.orphaned.len()
        )
    }))
}

/// `POST /w/{slug}/tokens/issue`: the response is the tokens page showing
/// the new token this once.
pub(crate) async fn issue_token(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let mut body = serde_json::Map::new();
    for (form, api) in
        [("user", "user"), ("role", "role"), ("agent", "agent"), ("expires_in", "expires_in"), ("name", "name")]
    {
        if let Some(v) = field(&f, form) {
            body.insert(api.into(), json!(v));
        }
    }
    if body.get("user").and_then(|u| u.as_str()) == Some(c.me.user.as_str()) {
        body.remove("user");
    }
    let issued = match c.send::<IssuedTokenView>(Method::POST, "/tokens", Some(body.into())).await {
        Ok(v) => v,
        Err(e) => return Ok(c.back("tokens", Err::<(), _>(e), |_| String::new())),
    };
    // The new token is shown even if the list cannot be read now: it is
    // the only time it can be.
    let list: TokenList = c.get("/tokens").await.unwrap_or(TokenList { tokens: Vec::new() });
    let mut page = Tokens {
        f: c.frame("tokens"),
        list,
        issued: Some(Zeroizing::new(issued.token)),
        issued_for: issued.record.user.clone(),
    };
    page.f.flash = Some(Flash::ok(format!(
        "Issued a {} token for {}. Copy it now: it is not shown again.",
        issued.record.role, issued.record.user
    )));
    render(&page)
}

/// `POST /w/{slug}/tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    Form(f): Fields,
) -> Result<Response, Response> {
    let c = posted(&dash, &headers, &slug, &f).await?;
    let r = c.send::<IgnoredAny>(Method::DELETE, &format!("/tokens/{}", seg(&id)), None).await;
    Ok(c.back("tokens", r, |_| format!("Revoked token {id}.")))
}
