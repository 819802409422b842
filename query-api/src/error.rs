//! The query API's errors, rendered as problem+json; internal causes are
//! logged, never returned.

use axum::response::{IntoResponse, Response};
use sextant_adapters::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{}", .0.detail)]
    Problem(Problem),
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if sextant_adapters::db::is_unavailable(&err) {
            Self::Unavailable
        } else {
            Self::Internal(err.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) => problem.into_response(),
            Self::Unavailable => {
                Problem::unavailable("the database is unavailable; retry shortly").into_response()
            }
            Self::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                Problem::internal().into_response()
            }
        }
    }
}
