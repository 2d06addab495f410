//! The dashboard at `/` over real HTTP, as a browser without script would
//! use it: sessions and their cookies, CSRF on every form, what each role
//! is offered and refused, a revocation signing the browser out, untrusted
//! text escaped, a token shown once and a credential's value never. (The
//! same flows in a real browser: `dashboard.rs`.)

mod common;

use std::collections::HashMap;

use common::inproc::*;
use orbit::orbit_workspace::Role;
use orbit::orbit_workspace::permission::{self, Action};
use orbit::{Principal, TeamStore};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// A cookie jar and a client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field: {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: base.to_owned(), cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        for c in resp.headers().get_all(SET_COOKIE) {
            let text = c.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page { status: resp.status(), headers: resp.headers().clone(), body: resp.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp =
            self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.finish(resp).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// Signs in with `token`; the page it lands on.
    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/signin").await;
        let csrf = form.csrf();
        let done = self.post("/signin", &[("csrf", &csrf), ("token", token)]).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let to = done.location().to_owned();
        self.get(&to).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_sets_a_strict_http_only_session_and_every_form_needs_its_csrf_token() {
    let t = team(generous()).await;
    let mut b = Browser::new(&t.base);

    // Not signed in: every workspace page sends the browser to sign in.
    let page = b.get("/w/acme/members").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/signin"));

    // The sign-in form is double-submit protected.
    let form = b.get("/signin").await;
    assert_eq!(form.status, StatusCode::OK);
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(form.headers["x-frame-options"], "DENY");
    assert!(!form.body.contains("<script>") && !form.body.contains(" style="), "no inline script or style");
    let refused = b.post("/signin", &[("csrf", "forged"), ("token", t.token(Role::Owner))]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!b.cookies.contains_key("orbit_session"));

    // A bad token: the form again, with an alert that does not echo it.
    let csrf = b.get("/signin").await.csrf();
    let bogus = format!("orb_{}", "Q".repeat(43));
    let bad = b.post("/signin", &[("csrf", &csrf), ("token", &bogus)]).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains(r#"role="alert""#) && !bad.body.contains(&bogus), "{}", bad.body);

    // The owner's token: a session cookie, HttpOnly and SameSite=Strict,
    // whose value is not the token.
    let csrf = b.get("/signin").await.csrf();
    let done = b.post("/signin", &[("csrf", &csrf), ("token", t.token(Role::Owner))]).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, "/w/acme"));
    let set = done.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let session = set.iter().find(|c| c.starts_with("orbit_session=")).expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    assert!(!session.contains(t.token(Role::Owner)));
    let overview = b.get("/w/acme").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("Signed in to acme as alice"), "{}", overview.body);

    // A form without the session's CSRF token changes nothing.
    let ws = ws("acme");
    for form in
        [vec![("user", "mallory"), ("role", "admin")], vec![("csrf", "nope"), ("user", "mallory"), ("role", "admin")]]
    {
        let r = b.post("/w/acme/members/invite", &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(t.orbit.team().member(&ws, &user("mallory")).unwrap().is_none());
    }
    // Another session's CSRF token does not work either.
    let mut other = Browser::new(&t.base);
    let their_csrf = other.sign_in(t.token(Role::Admin)).await.csrf();
    let r = b.post("/w/acme/members/invite", &[("csrf", &their_csrf), ("user", "mallory"), ("role", "member")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With it, the member is added and the page says so.
    let csrf = overview.csrf();
    let r = b.post("/w/acme/members/invite", &[("csrf", &csrf), ("user", "mallory"), ("role", "read-only")]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/w/acme/members"));
    assert_eq!(t.orbit.team().member(&ws, &user("mallory")).unwrap().unwrap().role, Role::ReadOnly);
    let members = b.get("/w/acme/members").await;
    assert!(members.body.contains("Added mallory as read-only"), "{}", members.body);

    // Signing out ends the session: the cookie no longer opens a page.
    let cookie = b.cookies["orbit_session"].clone();
    let out = b.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/signin"));
    b.cookies.insert("orbit_session".into(), cookie);
    assert_eq!(b.get("/w/acme").await.location(), "/signin");
}

/// What a role may not do is not offered, and the API refuses it anyway
/// when the form is posted by hand.
#[tokio::test(flavor = "multi_thread")]
async fn each_role_is_offered_what_the_table_gives_it_and_refused_the_rest() {
    let t = team(generous()).await;
    for role in Role::ALL {
        let mut b = Browser::new(&t.base);
        let overview = b.sign_in(t.token(role)).await;
        let csrf = overview.csrf();
        let offered = |a: Action| permission::offered(role, a);
        assert_eq!(overview.body.contains("/w/acme/audit\""), offered(Action::ViewAudit), "{role}: audit link");
        let servers = b.get("/w/acme/servers").await;
        assert_eq!(servers.status, StatusCode::OK, "{role}");
        assert_eq!(servers.body.contains("Install a server"), offered(Action::CreateResource), "{role}: install");
        assert_eq!(servers.body.contains("Set policy"), offered(Action::ChangeToolPolicy), "{role}: policy");
        let members = b.get("/w/acme/members").await;
        assert_eq!(members.body.contains("Invite a member"), offered(Action::ManageMembers), "{role}: invite");
        let audit = b.get("/w/acme/audit").await;
        assert_eq!(audit.status == StatusCode::OK, offered(Action::ViewAudit), "{role}: audit page {}", audit.status);

        // Posted by hand anyway: refused by the API, shown as an alert,
        // and nothing changed.
        let name = format!("by-{role}");
        let r = b
            .post("/w/acme/servers/install", &[("csrf", &csrf), ("name", &name), ("url", "http://127.0.0.1:9/mcp")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{role}");
        let after = b.get("/w/acme/servers").await;
        let installed = t.orbit.tools().registry().server(&ws("acme"), &name).unwrap().is_some();
        assert_eq!(installed, offered(Action::CreateResource), "{role}: install by hand");
        let alerted = after.body.contains(r#"role="alert""#) && after.body.contains("Permission denied");
        assert_eq!(alerted, !installed, "{role}: {}", after.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_token_signs_the_browser_out_at_its_next_click() {
    let t = team(generous()).await;
    let mut carol = Browser::new(&t.base);
    assert_eq!(carol.sign_in(t.token(Role::ReadOnly)).await.status, StatusCode::OK);
    assert_eq!(carol.get("/w/acme/runs").await.status, StatusCode::OK);

    // The owner revokes carol's token from the dashboard.
    let mut alice = Browser::new(&t.base);
    let csrf = alice.sign_in(t.token(Role::Owner)).await.csrf();
    let id = t
        .orbit
        .team()
        .tokens(&Principal::local_operator(), &ws("acme"))
        .unwrap()
        .into_iter()
        .find(|tok| tok.user.as_str() == "carol")
        .unwrap()
        .id;
    let r = alice.post(&format!("/w/acme/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(alice.get("/w/acme/tokens").await.body.contains(&format!("Revoked token {id}")));

    let next = carol.get("/w/acme/runs").await;
    assert_eq!((next.status, next.location()), (StatusCode::SEE_OTHER, "/signin?ended=1"));
    let signin = carol.get("/signin?ended=1").await;
    assert!(signin.body.contains("signed out"), "{}", signin.body);
    // The session held only that workspace: it is over.
    assert_eq!(carol.get("/w/acme").await.location(), "/signin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_shown_once_and_a_credential_value_never() {
    let t = team(generous()).await;
    let mut alice = Browser::new(&t.base);
    let csrf = alice.sign_in(t.token(Role::Owner)).await.csrf();

    // A token issued for member carol (read-only), with an agent name.
    let issued = alice
        .post("/w/acme/tokens/issue", &[("csrf", &csrf), ("user", "carol"), ("agent", "helper"), ("expires_in", "1d")])
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let at = issued.body.find(r#"<output id="new-token""#).expect("the new token is shown");
    let text = &issued.body[at..];
    let token = &text[text.find('>').unwrap() + 1..text.find("</output>").unwrap()];
    assert!(token.starts_with("orb_"), "{token}");
    let me: Value =
        t.http.get(format!("{}/api/v1/me", t.base)).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str(), me["agent"].as_str()),
        (Some("carol"), Some("read-only"), Some("helper"))
    );
    // Never again: not on the tokens page, nor anywhere else.
    for page in ["/w/acme/tokens", "/w/acme", "/w/acme/audit"] {
        assert!(!alice.get(page).await.body.contains(token), "{page}");
    }
    // A member may not issue one for someone else: refused, nothing issued.
    let mut bob = Browser::new(&t.base);
    let bob_csrf = bob.sign_in(t.token(Role::Member)).await.csrf();
    let before = t.orbit.team().tokens(&Principal::local_operator(), &ws("acme")).unwrap().len();
    let r = bob.post("/w/acme/tokens/issue", &[("csrf", &bob_csrf), ("user", "carol")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(bob.get("/w/acme/tokens").await.body.contains(r#"role="alert""#));
    assert_eq!(t.orbit.team().tokens(&Principal::local_operator(), &ws("acme")).unwrap().len(), before);

    // A credential: its value goes to the vault and is never rendered.
    let value = "s3cr3t-value-that-must-not-show";
    let r = alice
        .post(
            "/w/acme/secrets/set",
            &[("csrf", &csrf), ("name", "github"), ("value", value), ("hosts", "https://api.github.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = alice.get("/w/acme/secrets").await;
    assert!(page.body.contains("Saved credential github"), "{}", page.body);
    assert!(page.body.contains("https://api.github.com:443") && page.body.contains("header Authorization"));
    assert!(!page.body.contains(value));
    assert!(!page.body.contains("s3cr3t"), "no prefix of it either");
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_text_is_rendered_as_text() {
    let t = team(generous()).await;
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    t.orbit
        .team()
        .add_member(&Principal::local_operator(), &ws("acme"), &user("eve"), Role::ReadOnly, Some(hostile))
        .unwrap();
    // A run whose log line and output are hostile, with several host calls.
    let bob = t.token(Role::Member).to_owned();
    let digest = t.upload(&bob, "ops").await;
    let script = json!([
        {"op": "put", "key": "k", "value": "v"},
        {"op": "get", "key": "k"},
        {"op": "log", "level": "warn", "message": hostile},
        {"op": "cache_set", "key": "c", "value": hostile, "ttl_ms": null},
    ])
    .to_string();
    let (status, run) = t
        .send("POST", "/api/v1/workspaces/acme/runs", Some(&bob), Some(json!({"digest": digest, "input": script})))
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let id = run["run_id"].as_str().unwrap();
    let (_, detail) = t.send("GET", &format!("/api/v1/workspaces/acme/runs/{id}"), Some(&bob), None).await;
    let spans = detail["spans"].as_array().unwrap().len();
    assert!(spans >= 3, "{detail}");

    let mut alice = Browser::new(&t.base);
    alice.sign_in(t.token(Role::Owner)).await;
    let members = alice.get("/w/acme/members").await;
    let page = alice.get(&format!("/w/acme/runs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for (label, body) in [("members", &members.body), ("run", &page.body)] {
        assert!(!body.contains("<script>alert") && !body.contains("<img src=x"), "{label}: {body}");
        let as_text = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&#60;script&#62;alert(1)&#60;/script&#62;"];
        assert!(as_text.iter().any(|t| body.contains(t)), "{label} shows it as text: {body}");
    }
    // The waterfall: one bar per span the API reports.
    assert_eq!(page.body.matches(r#"<rect class="span "#).count(), spans, "{}", page.body);
    assert!(page.body.contains(r#"aria-label="Span waterfall""#));
}

/// Per-row actions follow ownership as the table does: a member deletes
/// only its own credential; an admin deletes anyone's.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_is_offered_delete_only_on_its_own_credential() {
    let t = team(generous()).await;
    for (role, name) in [(Role::Owner, "alice-cred"), (Role::Member, "bob-cred")] {
        let mut b = Browser::new(&t.base);
        let csrf = b.sign_in(t.token(role)).await.csrf();
        let form = [
            ("csrf", csrf.as_str()),
            ("name", name),
            ("value", "value-of-the-secret"),
            ("hosts", "https://api.example.com"),
        ];
        assert_eq!(b.post("/w/acme/secrets/set", &form).await.status, StatusCode::SEE_OTHER);
        let saved = b.get("/w/acme/secrets").await;
        assert!(saved.body.contains(&format!("Saved credential {name}")), "{role}: {}", saved.body);
    }
    let delete = |name: &str| format!("/w/acme/secrets/{name}/delete");
    for (role, own, others) in [
        (Role::ReadOnly, false, false),
        (Role::Member, true, false),
        (Role::Admin, true, true),
        (Role::Owner, true, true),
    ] {
        let mut b = Browser::new(&t.base);
        b.sign_in(t.token(role)).await;
        let page = b.get("/w/acme/secrets").await;
        assert!(page.body.contains("bob-cred") && page.body.contains("alice-cred"), "{role} sees both: {}", page.body);
        assert_eq!(page.body.contains(&delete("bob-cred")), own, "{role}: delete bob's");
        assert_eq!(page.body.contains(&delete("alice-cred")), others, "{role}: delete alice's");
    }
}

/// A sign-in always gets a fresh session id (an id planted in the browser
/// never learns the token), carrying the workspaces of the session it
/// replaces; and a form from another origin on the same host (another
/// loopback port) is refused, sign-in included.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_mints_a_fresh_session_and_forms_must_come_from_this_origin() {
    let t = team(generous()).await;
    let mut b = Browser::new(&t.base);
    b.sign_in(t.token(Role::Owner)).await;
    let first = b.cookies["orbit_session"].clone();
    let page = b.sign_in(&t.zeta_bob).await;
    let second = b.cookies["orbit_session"].clone();
    assert_ne!(first, second, "a fresh id at each sign-in");
    assert!(page.body.contains(r#"href="/w/acme""#) && page.body.contains(r#"href="/w/zeta""#), "both workspaces");
    // The replaced id opens nothing.
    let mut stale = Browser::new(&t.base);
    stale.cookies.insert("orbit_session".into(), first);
    assert_eq!(stale.get("/w/acme").await.location(), "/signin");

    // Another origin: refused before anything is done.
    let csrf = b.get("/w/acme/members").await.csrf();
    let resp = b
        .http
        .post(format!("{}/w/acme/members/invite", t.base))
        .header("cookie", b.cookie_header())
        .header("origin", "http://localhost:1")
        .form(&[("csrf", csrf.as_str()), ("user", "mallory"), ("role", "member")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(t.orbit.team().member(&ws("acme"), &user("mallory")).unwrap().is_none());
    let signin_csrf = b.get("/signin").await.csrf();
    let resp = b
        .http
        .post(format!("{}/signin", t.base))
        .header("cookie", b.cookie_header())
        .header("origin", "http://127.0.0.1:1")
        .form(&[("csrf", signin_csrf.as_str()), ("token", t.token(Role::Member))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "login CSRF from another port");

    // A handle that is no handle is not a member page.
    let odd = b.get("/w/acme/members/..%2Ftokens/remove").await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND);
}
