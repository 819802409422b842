//! Sessions, server-side: a random 256-bit id in an `HttpOnly`,
//! `SameSite=Strict` cookie names an entry of an in-memory map that holds
//! the key (never shown, never logged), who the key is, the session's CSRF
//! token and its expiry. Sign-out removes the entry, so the old cookie names
//! nothing. Every POST carries the CSRF token in a hidden field, checked in
//! constant time by [`PostForm`] before the handler runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "sextant_console";
/// Carries the sign-in form's CSRF token before there is a session.
pub const SIGN_IN_COOKIE: &str = "sextant_console_sign_in";

/// An API key or the operator key. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(SecretString::from(key))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

/// A client key's role, as `GET /v1/whoami` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Reviewer,
    Ingest,
    Reader,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "reviewer" => Some(Self::Reviewer),
            "ingest" => Some(Self::Ingest),
            "reader" => Some(Self::Reader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Reviewer => "reviewer",
            Self::Ingest => "ingest",
            Self::Reader => "reader",
        }
    }
}

/// Who a session's key is.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    Operator,
    Key { role: Role, client_id: Uuid },
}

impl Who {
    /// May approve, modify, reject and roll back: the operator, admin and
    /// reviewer keys (the command API's `Reviewers`). The console shows
    /// these actions only to them; the API decides all the same.
    pub fn may_review(&self) -> bool {
        match self {
            Self::Operator => true,
            Self::Key { role, .. } => matches!(role, Role::Admin | Role::Reviewer),
        }
    }

    /// May change the client's settings, issue and revoke keys, erase a
    /// lead, run the suggestion engine and start or conclude experiments:
    /// the operator and admin keys (the command API's `Admins`).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Operator => true,
            Self::Key { role, .. } => matches!(role, Role::Admin),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Self::Operator)
    }

    /// The client a key belongs to; `None` for the operator.
    pub fn own_client(&self) -> Option<Uuid> {
        match self {
            Self::Operator => None,
            Self::Key { client_id, .. } => Some(*client_id),
        }
    }

    /// "operator", "reviewer key".
    pub fn label(&self) -> String {
        match self {
            Self::Operator => "operator".into(),
            Self::Key { role, .. } => format!("{} key", role.as_str()),
        }
    }
}

/// One signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub key: ApiKey,
    pub who: Who,
    pub csrf: String,
    expires: Instant,
}

/// Every live session, by id.
#[derive(Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Session>>>,
    lifetime: Duration,
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            map: Arc::new(Mutex::new(HashMap::new())),
            lifetime,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map as it was between
        // two whole operations: still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; answers its id (the cookie's value).
    pub fn open(&self, key: ApiKey, who: Who) -> String {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            key,
            who,
            csrf: random_token(),
            expires: now + self.lifetime,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session);
        id
    }

    /// The live session `id` names, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// 256 random bits from the operating system, as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `presented` is `expected`, in time independent of where they
/// differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, and
/// `Secure` when the console is served over TLS. `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// The signed-in session of a request, with its id. Without one, a GET is
/// sent to the sign-in page and anything else refused.
pub struct Signed {
    pub id: String,
    pub session: Session,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let found = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| {
            state
                .sessions
                .get(&id)
                .map(|session| Signed { id, session })
        });
        found.ok_or(ConsoleError::SignedOut {
            read: parts.method == Method::GET || parts.method == Method::HEAD,
        })
    }
}

/// `Option<Signed>`: a page that works both signed in and out.
impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Signed as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// The fields of a form, in order, repeated names kept.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, ConsoleError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(Self)
            .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every field whose name starts with `prefix`, the prefix removed.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|k| (k, v.as_str())))
    }
}

/// A form POST of a signed-in session whose CSRF token matches: anything
/// else is refused (403) before the handler runs.
pub struct PostForm {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<AppState> for PostForm {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let fields = form_fields(parts, body, state).await?;
        let presented = fields.get("csrf").unwrap_or("");
        if !tokens_match(presented, &signed.session.csrf) {
            return Err(ConsoleError::Csrf);
        }
        Ok(Self { signed, fields })
    }
}

/// A form body's fields (`application/x-www-form-urlencoded` only).
pub async fn form_fields(
    parts: Parts,
    body: axum::body::Body,
    state: &AppState,
) -> Result<Fields, ConsoleError> {
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(ConsoleError::Csrf);
    }
    let req = Request::from_parts(parts, body);
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|_| ConsoleError::BadRequest("the form is too large or was cut off".into()))?;
    Fields::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let key = ApiKey::new("sxk_secret_value".into());
        assert!(!format!("{key:?}").contains("secret"));
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.open(key, Who::Operator);
        let session = sessions.get(&id).expect("a live session");
        assert!(!format!("{session:?}").contains("sxk_secret_value"));
    }

    #[test]
    fn a_closed_or_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.open(ApiKey::new("k".into()), Who::Operator);
        assert!(sessions.get(&id).is_some());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        let brief = Sessions::new(Duration::from_millis(0));
        let id = brief.open(ApiKey::new("k".into()), Who::Operator);
        assert!(brief.get(&id).is_none());
    }

    #[test]
    fn tokens_are_random_256_bit_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(tokens_match(&a, &a));
        assert!(!tokens_match(&a[..63], &a));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            "a=1; sextant_console=abc; b=2".parse().expect("a header"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "abc", Duration::from_secs(60), true);
        assert_eq!(
            set,
            "sextant_console=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
    }
}
