//! Browser sessions of the dashboard.
//!
//! A session is a random id in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` under TLS) that names, on this server only, the tokens pasted
//! into it: one per workspace. The token is never sent back to the
//! browser, and it is checked by the API on every request the dashboard
//! makes for the page, so revoking it signs the browser out at its next
//! click.
//!
//! Every state-changing form carries the session's CSRF token (a
//! synchronizer token, compared in constant time); the sign-in form, which
//! comes before any session, uses a double-submit cookie instead.
//!
//! Sessions live in this process's memory: a restart signs every browser
//! out (the tokens stay valid), and several nodes behind one name need
//! sticky sessions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "orbit_session";
/// The sign-in form's double-submit cookie.
pub(crate) const SIGNIN_COOKIE: &str = "orbit_signin";
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions; the least recently used goes first.
const MAX_SESSIONS: usize = 10_000;
/// At most this many workspaces (tokens) in one session.
pub(crate) const MAX_WORKSPACES: usize = 32;
/// At most this many sessions hold the same token: signing in again past
/// it ends that token's least recently used session, so one token cannot
/// fill the table and push everyone else out.
const MAX_SESSIONS_PER_TOKEN: usize = 16;
/// A message shown once is cut at this many bytes.
const MAX_FLASH_BYTES: usize = 300;

/// A message shown once, on the next page.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    /// `true` for a success (`role="status"`), `false` for an error
    /// (`role="alert"`).
    pub ok: bool,
    /// The text (escaped when rendered).
    pub text: String,
}

impl Flash {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Self { ok: true, text: clip(text.into()) }
    }

    pub(crate) fn error(text: impl Into<String>) -> Self {
        Self { ok: false, text: clip(text.into()) }
    }
}

/// `text` cut at [`MAX_FLASH_BYTES`] (it may echo what a form sent).
fn clip(mut text: String) -> String {
    if text.len() > MAX_FLASH_BYTES {
        let mut end = MAX_FLASH_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

struct Session {
    /// Workspace slug -> the token pasted for it.
    tokens: BTreeMap<String, Zeroizing<String>>,
    csrf: String,
    flash: Option<Flash>,
    last_seen: Instant,
}

/// What a page needs of its session.
#[derive(Debug, Clone)]
pub(crate) struct SessionView {
    /// The workspaces it holds a token for, by slug.
    pub workspaces: Vec<String>,
    /// Its CSRF token, for the page's forms.
    pub csrf: String,
}

/// Every live session of this server.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    secure: bool,
}

impl Sessions {
    /// `secure`: mark cookies `Secure` (served over TLS).
    pub(crate) fn new(secure: bool) -> Self {
        Self { map: Mutex::new(HashMap::new()), secure }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session holding `token` for `slug`, and the tokens of session
    /// `previous` (which ends: a sign-in always gets a fresh id, so an id
    /// planted in the browser beforehand never learns the new token); its
    /// id.
    pub(crate) fn create(&self, previous: Option<&str>, slug: &str, token: Zeroizing<String>) -> String {
        let id = random_hex(32);
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        let mut tokens = previous.and_then(|p| map.remove(p)).map(|s| s.tokens).unwrap_or_default();
        if tokens.len() >= MAX_WORKSPACES && !tokens.contains_key(slug) {
            // Full: the new workspace takes the place of the first.
            let first = tokens.keys().next().cloned();
            if let Some(first) = first {
                tokens.remove(&first);
            }
        }
        tokens.insert(slug.to_owned(), token.clone());
        let holding: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, s)| s.tokens.values().any(|t| same(t, &token)))
            .map(|(k, s)| (k.clone(), s.last_seen))
            .collect();
        if holding.len() >= MAX_SESSIONS_PER_TOKEN
            && let Some((oldest, _)) = holding.iter().min_by_key(|(_, seen)| *seen)
        {
            map.remove(oldest);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), Session { tokens, csrf: random_hex(32), flash: None, last_seen: now });
        id
    }

    /// The session `id`, if live.
    pub(crate) fn view(&self, id: &str) -> Option<SessionView> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if s.last_seen.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        s.last_seen = Instant::now();
        Some(SessionView { workspaces: s.tokens.keys().cloned().collect(), csrf: s.csrf.clone() })
    }

    /// The token session `id` holds for `slug`.
    pub(crate) fn token(&self, id: &str, slug: &str) -> Option<Zeroizing<String>> {
        self.lock().get(id)?.tokens.get(slug).cloned()
    }

    /// Drops `slug`'s token from session `id` (it stopped working); the
    /// session ends when it held no other.
    pub(crate) fn drop_token(&self, id: &str, slug: &str) {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(id) {
            s.tokens.remove(slug);
            if s.tokens.is_empty() {
                map.remove(id);
            }
        }
    }

    /// Ends session `id` (sign out).
    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Leaves `flash` for session `id`'s next page.
    pub(crate) fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(id) {
            s.flash = Some(flash);
        }
    }

    /// Takes session `id`'s pending message.
    pub(crate) fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id)?.flash.take()
    }

    /// Whether `sent` is session `id`'s CSRF token.
    pub(crate) fn csrf_ok(&self, id: &str, sent: &str) -> bool {
        self.lock().get(id).is_some_and(|s| same(&s.csrf, sent))
    }

    /// A `Set-Cookie` value for `name` = `value`, or clearing it when
    /// `value` is `None`.
    pub(crate) fn cookie(&self, name: &'static str, value: Option<&str>) -> HeaderValue {
        let mut c = Cookie::build((name, value.unwrap_or("").to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure);
        if value.is_none() {
            c = c.max_age(cookie::time::Duration::ZERO);
        }
        HeaderValue::from_str(&c.build().to_string()).expect("cookie names and hex values are valid header text")
    }
}

/// Constant-time equality of two secrets' texts.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `bytes` random bytes, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_tokens_per_workspace_and_ends_with_its_last() {
        let s = Sessions::new(false);
        let first = s.create(None, "team-a", Zeroizing::new("orb_a".into()));
        let id = s.create(Some(&first), "team-b", Zeroizing::new("orb_b".into()));
        assert_ne!(id, first, "a sign-in always gets a fresh id");
        assert!(s.view(&first).is_none(), "the previous session ended");
        assert_eq!(s.view(&id).unwrap().workspaces, ["team-a", "team-b"]);
        assert_eq!(s.token(&id, "team-b").unwrap().as_str(), "orb_b");
        s.drop_token(&id, "team-a");
        assert!(s.view(&id).is_some());
        s.drop_token(&id, "team-b");
        assert!(s.view(&id).is_none(), "a session with no token left is over");
    }

    #[test]
    fn csrf_tokens_are_per_session_and_checked_whole() {
        let s = Sessions::new(false);
        let a = s.create(None, "w", Zeroizing::new("t".into()));
        let b = s.create(None, "w", Zeroizing::new("t".into()));
        let csrf = s.view(&a).unwrap().csrf;
        assert!(s.csrf_ok(&a, &csrf));
        assert!(!s.csrf_ok(&b, &csrf), "another session's token");
        assert!(!s.csrf_ok(&a, &csrf[..10]), "a prefix");
        assert!(!s.csrf_ok(&a, ""));
        assert!(!s.csrf_ok("nope", &csrf));
    }

    #[test]
    fn one_token_holds_a_bounded_number_of_sessions() {
        let s = Sessions::new(false);
        let ids: Vec<String> = (0..40).map(|_| s.create(None, "w", Zeroizing::new("orb_same".into()))).collect();
        let live = ids.iter().filter(|id| s.view(id).is_some()).count();
        assert_eq!(live, MAX_SESSIONS_PER_TOKEN);
        assert!(s.view(ids.last().unwrap()).is_some(), "the newest stays");
        let other = s.create(None, "w", Zeroizing::new("orb_other".into()));
        assert!(s.view(&other).is_some());
        assert_eq!(s.lock().len(), MAX_SESSIONS_PER_TOKEN + 1);
    }

    #[test]
    fn flash_texts_are_cut() {
        let f = Flash::error("x".repeat(10_000));
        assert!(f.text.len() <= MAX_FLASH_BYTES + '…'.len_utf8());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_under_tls() {
        let text = Sessions::new(true).cookie(SESSION_COOKIE, Some("abc"));
        let c = Cookie::parse(text.to_str().unwrap().to_owned()).unwrap();
        assert_eq!((c.http_only(), c.same_site(), c.secure()), (Some(true), Some(SameSite::Strict), Some(true)));
        let plain = Sessions::new(false).cookie(SESSION_COOKIE, Some("abc"));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let cleared = Sessions::new(false).cookie(SESSION_COOKIE, None);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn cookie_values_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; orbit_session=xyz; b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
