//! HTTP plumbing both services share: RFC 9457 problem details, the strict
//! JSON body extractor, authentication and authorisation (the extractors
//! [`ClientScope`] and [`OperatorKey`] check who may call an endpoint, as
//! its [`Admits`] type says, before any body is read), request and
//! correlation ids, request metrics, and the position header.
//!
//! - [`error`]: [`ApiError`], the one error both services and every use
//!   case answer, rendered through [`Problem`].
//! - [`server`]: the HTTP/1.1 server under [`serve`]: bounds on slow and
//!   idle clients, the connection limit, graceful shutdown.

use std::marker::PhantomData;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use sextant_domain::metadata::Actor;
use sextant_domain::values::Role;

use crate::keys;

mod error;
mod required;
mod server;

pub use error::{ApiError, DomainRefusal};
pub use required::required_fields;

pub const POSITION_HEADER: &str = "sextant-position";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// Default body limit (docs/http-api.md: 1 MiB; documents get their own, larger one).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// One validation failure: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details, rendered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Where the read model stood, for 503s of `min_position` waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:sextant:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            position: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request is not valid",
                detail,
            )
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            "the body is larger than this endpoint accepts",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// The only text an internal failure shows; the cause goes to the log.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; it has been logged",
        )
    }

    pub fn client_not_found() -> Self {
        Self::not_found("no such client")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(position) = self.position {
            set_position(&mut response, position);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A JSON body that must be `application/json`, well-formed, of the right
/// shape, and nothing more (request types deny unknown fields). Every
/// failure is a problem naming the field.
pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = declares_json(req.headers());
        let bytes = read_body(req, state).await?;
        // No body at all is told what the body must hold, whatever its
        // content type says: that is what the caller is missing.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(missing_body::<T>());
        }
        if !is_json {
            let fields = required_fields::<T>();
            let detail = if fields.is_empty() {
                "send the body as application/json".to_owned()
            } else {
                format!(
                    "send the body as application/json: an object with {}",
                    list_fields(&fields)
                )
            };
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail,
            ));
        }
        parse_json(&bytes).map(StrictJson)
    }
}

/// The answer to a request without a body: 422 naming every field the body
/// must have (as far as its type tells).
fn missing_body<T: DeserializeOwned>() -> Problem {
    let fields = required_fields::<T>();
    if fields.is_empty() {
        return Problem::invalid_field(".", "the body must be a JSON object");
    }
    let detail = format!("the body must be JSON with {}", list_fields(&fields));
    Problem {
        detail,
        ..Problem::validation(
            fields
                .iter()
                .map(|field| FieldError {
                    field: field.clone(),
                    message: "is required".into(),
                })
                .collect(),
        )
    }
}

/// `` `a` ``, `` `a` and `b` ``, `` `a`, `b` and `c` ``.
fn list_fields(fields: &[String]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Whether the request says its body is JSON (`application/json`, or an
/// `application/…+json` type).
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// The whole body, buffered within the route's limit: over it, 413;
/// otherwise unreadable, 400.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::payload_too_large()
        } else {
            Problem::bad_request(rejection.body_text())
        }
    })
}

/// Like [`StrictJson`], for endpoints whose body is optional: an empty body
/// is `None`; anything else must be valid.
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(CONTENT_TYPE).is_none()
                && !req
                    .headers()
                    .contains_key(axum::http::header::TRANSFER_ENCODING));
        if empty {
            return Ok(Self(None));
        }
        StrictJson::from_request(req, state)
            .await
            .map(|StrictJson(value)| Self(Some(value)))
    }
}

/// Parses a JSON document into `T`, naming the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Postgres text and jsonb cannot hold NUL: refuse it here with a clear
    // 422 rather than fail at the insert.
    if contains_nul_escape(bytes) {
        return Err(Problem::invalid_field(
            ".",
            "text must not contain NUL (\\u0000) characters",
        ));
    }
    // A JSON value costs far more memory than its text when deeply nested
    // (a 600 KB batch of items nested 100 levels took 35 MB): refused
    // before anything is built. No document Sextant keeps is that deep.
    if nesting_depth(bytes) > MAX_DEPTH {
        return Err(Problem::invalid_field(
            ".",
            format!("JSON may be nested at most {MAX_DEPTH} levels deep"),
        ));
    }
    // Parsed once as a document, to check what any body may hold, then
    // into its type (naming the failing field).
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| json_problem(".", &err))?;
    if let Some(path) = out_of_range_number(&document, String::new()) {
        return Err(Problem::invalid_field(
            &path,
            format!("numbers must lie between -{MAX_NUMBER:e} and {MAX_NUMBER:e}"),
        ));
    }
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_problem(&path, &inner)
    })
}

/// The deepest JSON nesting a body may have.
pub const MAX_DEPTH: usize = 32;

/// How deeply the arrays and objects of a JSON text nest (brackets inside
/// strings do not count). Malformed text is left to the parser.
pub fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The field a deserialization error is about. Serde reports a missing
/// field at the path of the object that lacks it (`.` at the top), and
/// names the field only in its message: the field's own path is both.
pub fn error_field(path: &str, message: &str) -> String {
    let within = (!path.is_empty() && path != ".").then_some(path);
    match (required::missing_field(message), within) {
        (Some(name), Some(path)) => format!("{path}.{name}"),
        (Some(name), None) => name.to_owned(),
        (None, Some(path)) => path.to_owned(),
        (None, None) => ".".to_owned(),
    }
}

/// The largest magnitude a number may have. Bodies end up in jsonb, whose
/// numbers are decimal: one near `f64::MAX` comes back as a decimal that no
/// longer parses as a double, and the record holding it could never be read
/// again.
pub const MAX_NUMBER: f64 = 1e100;

/// The path of the first number out of range, if any.
fn out_of_range_number(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| !f.is_finite() || f.abs() > MAX_NUMBER)
            .map(|_| if path.is_empty() { ".".into() } else { path }),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            out_of_range_number(
                v,
                if path.is_empty() {
                    format!("[{i}]")
                } else {
                    format!("{path}[{i}]")
                },
            )
        }),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            out_of_range_number(
                v,
                if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                },
            )
        }),
        _ => None,
    }
}

fn contains_nul_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && (w[1] == b'u' || w[1] == b'U') && &w[2..] == b"0000")
}

fn json_problem(path: &str, err: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    let message = strip_position(&err.to_string());
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Problem::bad_request(format!("malformed JSON: {message}"))
        }
        Category::Data => Problem::invalid_field(&error_field(path, &message), message),
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Operator,
    Key {
        key_id: Uuid,
        client_id: Uuid,
        role: Role,
    },
}

impl Principal {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Operator => Actor::Operator,
            Self::Key { key_id, .. } => Actor::Key(*key_id),
        }
    }

    /// May act on `client_id` with one of `roles` (an admin always may; the
    /// operator always may). A key of another client gets 404, as if the
    /// client did not exist; a key of this client without the role, 403
    /// naming every caller that may.
    pub fn authorize(&self, client_id: Uuid, roles: &[Role]) -> Result<(), Problem> {
        match self {
            Self::Operator => Ok(()),
            Self::Key {
                client_id: own,
                role,
                ..
            } => {
                if *own != client_id {
                    Err(Problem::client_not_found())
                } else if *role == Role::Admin || roles.contains(role) {
                    Ok(())
                } else {
                    Err(Problem::forbidden(format!(
                        "{} may not do this; it needs {}",
                        key_of(*role),
                        who_may(roles)
                    )))
                }
            }
        }
    }

    /// Every role may read its own client.
    pub fn authorize_read(&self, client_id: Uuid) -> Result<(), Problem> {
        self.authorize(client_id, EVERY_ROLE)
    }

    pub fn require_operator(&self) -> Result<(), Problem> {
        match self {
            Self::Operator => Ok(()),
            Self::Key { .. } => Err(Problem::forbidden("only the operator may do this")),
        }
    }

    /// Is admitted by `A` to act on `client_id`.
    pub fn admit<A: Admits>(&self, client_id: Uuid) -> Result<(), Problem> {
        // A key of another client is 404 on every endpoint, operator-only
        // ones included: nothing about another client is revealed.
        self.authorize_read(client_id)?;
        match A::ROLES {
            Some(roles) => self.authorize(client_id, roles),
            None => self.require_operator(),
        }
    }
}

/// "a reader key", "an ingest key".
fn key_of(role: Role) -> String {
    let article = if matches!(role, Role::Admin | Role::Ingest) {
        "an"
    } else {
        "a"
    };
    format!("{article} {} key", role.as_str())
}

/// Every caller `roles` admits, in words: the roles, admin (which may do
/// whatever its client may) and the operator key.
pub fn who_may(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles
        .iter()
        .filter(|r| **r != Role::Admin)
        .map(|r| r.as_str())
        .collect();
    if names.is_empty() {
        return "an admin key or the operator key".into();
    }
    names.push("admin");
    format!("one of: {}, or the operator key", names.join(", "))
}

/// Which callers an endpoint admits, as a type, so that its extractor
/// ([`ClientScope`], [`OperatorKey`]) checks it before the body is read: a
/// caller that may not call an endpoint gets 403 whatever its body.
pub trait Admits: Send + Sync + 'static {
    /// The key roles admitted; admin keys and the operator key always are.
    /// `None`: the operator key alone.
    const ROLES: Option<&'static [Role]>;
}

/// Any key of the client: reads.
pub struct AnyRole;
/// `ingest`: sends, outcomes, send authorisation.
pub struct Ingesters;
/// `ingest` or `reviewer`: context proposals and documents. What each may
/// propose, and whether it applies without review, is the context ledger's
/// own rule (`sextant_domain::context::route_for`).
pub struct Proposers;
/// `reviewer`: review and rollback.
pub struct Reviewers;
/// `admin` alone.
pub struct Admins;
/// The operator key alone.
pub struct OperatorOnly;

const EVERY_ROLE: &[Role] = &[Role::Admin, Role::Reviewer, Role::Ingest, Role::Reader];

impl Admits for AnyRole {
    const ROLES: Option<&'static [Role]> = Some(EVERY_ROLE);
}
impl Admits for Ingesters {
    const ROLES: Option<&'static [Role]> = Some(&[Role::Ingest]);
}
impl Admits for Proposers {
    const ROLES: Option<&'static [Role]> = Some(&[Role::Ingest, Role::Reviewer]);
}
impl Admits for Reviewers {
    const ROLES: Option<&'static [Role]> = Some(&[Role::Reviewer]);
}
impl Admits for Admins {
    const ROLES: Option<&'static [Role]> = Some(&[Role::Admin]);
}
impl Admits for OperatorOnly {
    const ROLES: Option<&'static [Role]> = None;
}

/// Checks the bearer key: the operator's, or a client key in the registry.
pub async fn authenticate(
    headers: &HeaderMap,
    pool: &PgPool,
    operator_key: &SecretString,
) -> Result<Principal, Problem> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <api key>`"))?;
    if keys::constant_time_eq(
        presented.as_bytes(),
        operator_key.expose_secret().as_bytes(),
    ) {
        return Ok(Principal::Operator);
    }
    let rejected = || Problem::unauthorized("the API key is not valid");
    let (key_id, secret) = keys::parse(presented).ok_or_else(rejected)?;
    let record = keys::find(pool, key_id).await.map_err(|err| {
        if crate::db::is_unavailable(&err) {
            Problem::unavailable("the database is unavailable; retry shortly")
        } else {
            tracing::error!(error = %err, "key lookup failed");
            Problem::internal()
        }
    })?;
    let record = record.ok_or_else(rejected)?;
    if record.revoked
        || !keys::constant_time_eq(
            keys::sha256_hex(secret).as_bytes(),
            record.key_hash.as_bytes(),
        )
    {
        return Err(rejected());
    }
    Ok(Principal::Key {
        key_id: record.key_id,
        client_id: record.client_id,
        role: record.role,
    })
}

/// What the [`Auth`] extractor needs from a service's state.
pub trait AuthState: Send + Sync {
    fn pool(&self) -> &PgPool;
    fn operator_key(&self) -> &SecretString;
}

/// The authenticated caller; rejects with 401 (or 503 when the key registry
/// cannot be read) before the body is even looked at.
pub struct Auth(pub Principal);

impl<S: AuthState> FromRequestParts<S> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state.pool(), state.operator_key())
            .await
            .map(Auth)
    }
}

/// The operator key, checked before the body is read: a client key gets 403
/// whatever its body. Holds the (operator) principal.
pub struct OperatorKey(pub Principal);

impl<S: AuthState> FromRequestParts<S> for OperatorKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = authenticate(&parts.headers, state.pool(), state.operator_key()).await?;
        principal.require_operator()?;
        Ok(Self(principal))
    }
}

/// The client a request's path names, and a caller `A` admits to act on
/// it, checked before the body is even read: a key of another client is
/// 404, as if the client did not exist; a key of this client that `A` does
/// not admit is 403, naming every caller that may.
pub struct ClientScope<A: Admits = AnyRole> {
    pub client_id: Uuid,
    pub principal: Principal,
    admits: PhantomData<A>,
}

impl<S: AuthState, A: Admits> FromRequestParts<S> for ClientScope<A> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(params) = axum::extract::Path::<
            std::collections::HashMap<String, String>,
        >::from_request_parts(parts, state)
        .await
        .map_err(|_| Problem::client_not_found())?;
        let principal = authenticate(&parts.headers, state.pool(), state.operator_key()).await?;
        let client_id =
            client_id_from_path(params.get("client_id").map(String::as_str).unwrap_or(""))?;
        principal.admit::<A>(client_id)?;
        Ok(Self {
            client_id,
            principal,
            admits: PhantomData,
        })
    }
}

/// Query-string parameters, with problem+json rejections.
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // Decoded, a parameter may hold NUL or other control characters,
        // which no parameter means and Postgres text cannot hold.
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|err| Problem::invalid_field("query", err.to_string()))?;
        for (name, value) in &pairs {
            if name.chars().chain(value.chars()).any(char::is_control) {
                let field = if name.chars().any(char::is_control) {
                    "query"
                } else {
                    name.as_str()
                };
                return Err(Problem::invalid_field(
                    field,
                    "must not contain control characters",
                ));
            }
        }
        serde_urlencoded::from_str(query)
            .map(StrictQuery)
            .map_err(|err| Problem::invalid_field("query", err.to_string()))
    }
}

/// A client id from the path: one that does not parse names no client, so it
/// is answered like any unknown client.
pub fn client_id_from_path(text: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(text).map_err(|_| Problem::client_not_found())
}

/// The request id (set by the request-id layer) and the correlation id (the
/// caller's, or the request id when it sent none).
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestIds {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ids_of(&parts.headers))
    }
}

fn ids_of(headers: &HeaderMap) -> RequestIds {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
    };
    let request_id = header(REQUEST_ID_HEADER).unwrap_or_else(|| Uuid::new_v4().to_string());
    let correlation_id = header(CORRELATION_ID_HEADER).unwrap_or_else(|| request_id.clone());
    RequestIds {
        request_id,
        correlation_id,
    }
}

pub fn set_position(response: &mut Response, position: i64) {
    if let Ok(value) = HeaderValue::from_str(&position.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(POSITION_HEADER), value);
    }
}

/// A JSON answer carrying `Sextant-Position`.
pub fn positioned<T: Serialize>(status: StatusCode, body: &T, position: i64) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    set_position(&mut response, position);
    response
}

/// A service: its `api` routes, plus what every service answers (health,
/// readiness, metrics, its OpenAPI document) and the fallbacks, with the
/// common layers around all of it. `elsewhere`, if any, is added to the
/// answer of a method the service does not take on a path, and of a read
/// (GET or HEAD) of a path it does not have: where such requests belong.
pub fn service<S: Clone + Send + Sync + 'static>(
    api: Router<S>,
    readyz: axum::routing::MethodRouter<S>,
    openapi: &'static str,
    elsewhere: Option<&'static str>,
    state: S,
) -> Router {
    let app = Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", readyz)
        .route("/metrics", axum::routing::get(metrics_endpoint))
        .route(
            "/openapi.json",
            axum::routing::get(
                move || async move { ([(CONTENT_TYPE, "application/json")], openapi) },
            ),
        )
        .merge(api)
        .fallback(move |method: Method| async move { fallback(&method, elsewhere) })
        .method_not_allowed_fallback(move |method: Method| async move {
            method_not_allowed(&method, elsewhere)
        })
        .with_state(state);
    with_common_layers(app)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// in-flight requests. `limits` bound what a client may hold: the time to
/// send headers, the time a keep-alive connection may idle, the time a
/// body and a whole request may take, and how many connections are served
/// at once ([`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: crate::config::HttpSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router, limits, shutdown).await
}

/// A command's answer when its position is all there is to say.
pub fn position_only(status: StatusCode, position: i64) -> Response {
    positioned(
        status,
        &serde_json::json!({ "position": position }),
        position,
    )
}

/// Request ids, a tracing span per request (with both ids), request metrics,
/// panics turned into a logged 500 problem, the default body limit, and the
/// body and request deadlines [`serve`] sets (408 or 503 problems, inside
/// the span and with the request id).
pub fn with_common_layers(router: Router) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
        let ids = ids_of(req.headers());
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %ids.request_id,
            correlation_id = %ids.correlation_id,
        )
    });
    router
        .route_layer(axum::middleware::from_fn(track_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Problem::internal().into_response()
        }))
        .layer(axum::middleware::from_fn(server::bound_request))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("sextant_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("sextant_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics_endpoint() -> Response {
    let body = crate::telemetry::metrics_handle().render();
    let mut response = body.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Answers 404 problem+json for unknown paths; a read of one is told where
/// reads belong, if the service says.
pub fn fallback(method: &Method, elsewhere: Option<&str>) -> Problem {
    match elsewhere {
        Some(hint) if *method == Method::GET || *method == Method::HEAD => {
            Problem::not_found(format!("no such endpoint: {hint}"))
        }
        _ => Problem::not_found("no such endpoint"),
    }
}

/// Answers 405 problem+json for a known path with the wrong method, with
/// where such requests belong, if the service says.
pub fn method_not_allowed(method: &Method, elsewhere: Option<&str>) -> Problem {
    let detail = match elsewhere {
        Some(hint) => format!("this endpoint does not accept {method}: {hint}"),
        None => "this endpoint does not accept that method".to_owned(),
    };
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u8,
    }

    #[test]
    fn malformed_json_is_a_400_and_bad_fields_a_422_naming_the_field() {
        let err = parse_json::<Body>(b"{\"name\": ").err().map(|p| p.status);
        assert_eq!(err, Some(400));
        let err = parse_json::<Body>(br#"{"name": "a", "count": 300}"#).err();
        let err = err.expect("an out-of-range count is refused");
        assert_eq!(err.status, 422);
        assert_eq!(err.errors[0].field, "count");
        let err = parse_json::<Body>(br#"{"name": "a", "count": 1, "extra": true}"#).err();
        assert_eq!(err.map(|p| p.status), Some(422));
        let err = parse_json::<Body>(br#"{"name": "a", "count": 1} trailing"#).err();
        assert_eq!(err.map(|p| p.status), Some(400));
        let err = parse_json::<Body>(br#"{"name": "a\u0000b", "count": 1}"#).err();
        assert_eq!(err.map(|p| p.status), Some(422));
        let err =
            parse_json::<serde_json::Value>(br#"{"patch": {"a": [1, 1.7976931348623155e308]}}"#)
                .err();
        let err = err.expect("a number jsonb cannot give back is refused");
        assert_eq!(
            (err.status, err.errors[0].field.as_str()),
            (422, "patch.a[1]")
        );
    }

    #[test]
    fn json_nested_deeper_than_the_limit_is_refused_before_it_is_built() {
        assert_eq!(nesting_depth(br#"{"a": [1, {"b": "[[[{{{"}]}"#), 3);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse_json::<serde_json::Value>(deep.as_bytes()).expect_err("too deep");
        assert_eq!(err.status, 422);
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_json::<serde_json::Value>(fine.as_bytes()).is_ok());
    }

    #[test]
    fn keys_reach_only_their_own_client_and_role() {
        let own = Uuid::from_u128(1);
        let reader = Principal::Key {
            key_id: Uuid::from_u128(9),
            client_id: own,
            role: Role::Reader,
        };
        assert_eq!(reader.authorize_read(own), Ok(()));
        assert_eq!(
            reader
                .authorize(Uuid::from_u128(2), &[Role::Reader])
                .map_err(|p| p.status),
            Err(404)
        );
        assert_eq!(
            reader
                .authorize(own, &[Role::Reviewer])
                .map_err(|p| p.status),
            Err(403)
        );
        assert_eq!(reader.require_operator().map_err(|p| p.status), Err(403));
        assert_eq!(Principal::Operator.authorize(own, &[Role::Admin]), Ok(()));
    }

    #[test]
    fn a_refusal_names_every_caller_that_may_including_admin_and_the_operator() {
        let own = Uuid::from_u128(1);
        let key = |role| Principal::Key {
            key_id: Uuid::from_u128(9),
            client_id: own,
            role,
        };
        let reader = key(Role::Reader);
        let cases = [
            (
                reader.admit::<Ingesters>(own),
                "a reader key may not do this; it needs one of: ingest, admin, or the operator key",
            ),
            (
                reader.admit::<Proposers>(own),
                "a reader key may not do this; \
                 it needs one of: ingest, reviewer, admin, or the operator key",
            ),
            (
                key(Role::Ingest).admit::<Reviewers>(own),
                "an ingest key may not do this; it needs one of: reviewer, admin, or the operator key",
            ),
            (
                key(Role::Reviewer).admit::<Admins>(own),
                "a reviewer key may not do this; it needs an admin key or the operator key",
            ),
            (
                key(Role::Admin).admit::<OperatorOnly>(own),
                "only the operator may do this",
            ),
        ];
        for (admitted, expected) in cases {
            assert_eq!(
                admitted.map_err(|p| (p.status, p.detail)),
                Err((403, expected.to_owned()))
            );
        }
        // Another client's key is 404 whatever the endpoint admits.
        assert_eq!(
            key(Role::Admin)
                .admit::<OperatorOnly>(Uuid::from_u128(2))
                .map_err(|p| p.status),
            Err(404)
        );
        assert_eq!(key(Role::Admin).admit::<Reviewers>(own), Ok(()));
        assert_eq!(key(Role::Reader).admit::<AnyRole>(own), Ok(()));
        assert_eq!(Principal::Operator.admit::<OperatorOnly>(own), Ok(()));
    }
}
