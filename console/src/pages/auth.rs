//! Sign-in with a key (any role's, or the operator's) and sign-out. The
//! key travels only in the body of the sign-in POST and in the
//! server-side session; `GET /v1/whoami` tells who it is. The sign-in
//! form's CSRF token rides in a short-lived cookie of its own, since there
//! is no session yet.

use std::time::Duration;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::pages::{html, see_other, Params};
use crate::session::{
    cookie, form_fields, random_token, set_cookie, tokens_match, ApiKey, PostForm, Role, Signed,
    Who, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::view::Page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: Page,
    token: String,
    error: Option<String>,
}

/// How long the sign-in form may stay open before it must be reloaded.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

fn sign_in_form(
    state: &AppState,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let token = random_token();
    let page = SignInPage {
        page: Page::bare("Sign in").with_notice(notice),
        token: token.clone(),
        error,
    };
    let mut response = html(status, &page)?;
    let value = set_cookie(
        SIGN_IN_COOKIE,
        &token,
        SIGN_IN_FORM_LIFETIME,
        state.secure_cookies,
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}

async fn sign_in_page(
    State(state): State<AppState>,
    signed: Option<Signed>,
    params: Params,
) -> Result<Response, ConsoleError> {
    if signed.is_some() {
        return Ok(see_other("/"));
    }
    sign_in_form(&state, StatusCode::OK, params.done().notice(), None)
}

#[derive(Debug, Deserialize)]
struct Identity {
    role: String,
    client_id: Option<Uuid>,
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Result<Response, ConsoleError> {
    let (parts, body) = req.into_parts();
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    let fields = form_fields(parts, body, &state).await?;
    if !tokens_match(fields.get("csrf").unwrap_or(""), &expected) {
        return Err(ConsoleError::Csrf);
    }
    let key = fields.get("key").unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return sign_in_form(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter an API key or the operator key.".into()),
        );
    }
    let key = ApiKey::new(key);
    let identity: Identity = match state.api.query(&key, "/v1/whoami", &[], None).await {
        Ok(identity) => identity,
        Err(failure) if failure.status == 401 => {
            return sign_in_form(
                &state,
                StatusCode::UNAUTHORIZED,
                None,
                Some("That key is not valid: it is unknown, malformed or revoked.".into()),
            );
        }
        Err(failure) => return Err(failure.into()),
    };
    let who = match (identity.role.as_str(), identity.client_id) {
        ("operator", _) => Who::Operator,
        (role, Some(client_id)) => match Role::parse(role) {
            Some(role) => Who::Key { role, client_id },
            None => {
                return Err(ConsoleError::BadRequest(
                    "the key has an unknown role".into(),
                ))
            }
        },
        _ => return Err(ConsoleError::BadRequest("the key has no client".into())),
    };
    tracing::info!(who = %who.label(), "signed in");
    let id = state.sessions.open(key, who);
    let mut response = see_other("/");
    let cookies = [
        set_cookie(
            SESSION_COOKIE,
            &id,
            state.sessions.lifetime(),
            state.secure_cookies,
        ),
        set_cookie(SIGN_IN_COOKIE, "", Duration::ZERO, state.secure_cookies),
    ];
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, form: PostForm) -> Response {
    state.sessions.close(&form.signed.id);
    tracing::info!(who = %form.signed.session.who.label(), "signed out");
    let mut response = see_other("/sign-in?done=signed_out");
    let value = set_cookie(SESSION_COOKIE, "", Duration::ZERO, state.secure_cookies);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response.into_response()
}
