//! The console's one error type. Each variant renders as a page in the
//! common layout with its status; an API's refusal shows the API's own
//! detail (its 403 names who may act, its 409 what conflicts).

use askama::Template;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::api::ApiFailure;
use crate::view::Page;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: a read goes to the sign-in page, anything else is
    /// refused.
    #[error("not signed in")]
    SignedOut { read: bool },
    /// A POST without the session's CSRF token.
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// An API refused, or could not be reached.
    #[error("the API answered {}: {}", .0.status, .0.detail)]
    Api(ApiFailure),
    #[error("a page could not be rendered: {0}")]
    Render(#[from] askama::Error),
}

impl From<ApiFailure> for ConsoleError {
    fn from(failure: ApiFailure) -> Self {
        Self::Api(failure)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    heading: String,
    detail: String,
    fields: Vec<(String, String)>,
    request_id: Option<String>,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, heading, detail, fields, request_id) = match self {
            Self::SignedOut { read: true } => {
                return (StatusCode::SEE_OTHER, [(LOCATION, "/sign-in")]).into_response();
            }
            Self::SignedOut { read: false } => (
                StatusCode::FORBIDDEN,
                "Not signed in".to_owned(),
                "Your session has ended or was never started. Sign in again; nothing was changed."
                    .to_owned(),
                Vec::new(),
                None,
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Refused".to_owned(),
                "This form did not carry the session's security token, so nothing was changed. \
                 Go back, reload the page and try again."
                    .to_owned(),
                Vec::new(),
                None,
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Not found".to_owned(),
                what,
                Vec::new(),
                None,
            ),
            Self::BadRequest(what) => (
                StatusCode::BAD_REQUEST,
                "Bad request".to_owned(),
                what,
                Vec::new(),
                None,
            ),
            Self::Api(failure) => {
                let status =
                    StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let heading = match failure.status {
                    403 => "Not allowed".to_owned(),
                    404 => "Not found".to_owned(),
                    409 => "Conflict".to_owned(),
                    _ => failure.title.clone(),
                };
                let fields = failure
                    .errors
                    .iter()
                    .map(|e| (e.field.clone(), e.message.clone()))
                    .collect();
                (status, heading, failure.detail, fields, failure.request_id)
            }
            Self::Render(err) => {
                tracing::error!(error = %err, "a page could not be rendered");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "something went wrong on our side; it has been logged",
                )
                    .into_response();
            }
        };
        let page = ErrorPage {
            page: Page::bare(&heading),
            heading,
            detail,
            fields,
            request_id,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "the error page could not be rendered");
                status.into_response()
            }
        }
    }
}
