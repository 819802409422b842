//! The one error of both services and of every use case behind them. Each
//! renders as problem+json; internal causes are logged here and never sent
//! to the caller.

use axum::response::{IntoResponse, Response};
use sextant_domain::client::ClientError;
use sextant_domain::context::ContextError;
use sextant_domain::experiment::ExperimentError;

use super::{FieldError, Problem};
use crate::store::CommandError;

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
        if crate::db::is_unavailable(&err) {
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
            Self::Unavailable => Problem::unavailable(
                "the database is unavailable; nothing was changed, retry shortly",
            )
            .into_response(),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                Problem::internal().into_response()
            }
        }
    }
}

/// How a domain refusal reads over HTTP.
pub trait DomainRefusal: std::error::Error {
    fn problem(&self) -> Problem;
}

impl DomainRefusal for ClientError {
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::NotRegistered => Problem::client_not_found(),
            Self::UnknownKey(_) => Problem::not_found(detail),
            Self::AlreadyRegistered
            | Self::DuplicateKey(_)
            | Self::KeyAlreadyRevoked(_)
            | Self::AlreadySuspended
            | Self::NotSuspended => Problem::conflict(detail),
            Self::EmptyFingerprint | Self::MalformedKeyHash => {
                Problem::invalid_field("body", detail)
            }
        }
    }
}

impl DomainRefusal for ContextError {
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::PatchNotObject => Problem::invalid_field("patch", detail),
            Self::BaseVersionInFuture { .. } => Problem::invalid_field("base_version", detail),
            Self::DocumentTooLarge { .. } => Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "document-too-large",
                "Context document too large",
                detail,
            ),
            Self::UnknownUpdate(_) => Problem::not_found(detail),
            Self::NoSuchVersion(_) => Problem::not_found(detail),
            Self::Stale { conflicts, .. } => {
                let mut problem = Problem::conflict(detail.clone());
                problem.kind = "urn:sextant:problem:stale-update".into();
                problem.errors = conflicts
                    .iter()
                    .map(|path| FieldError {
                        field: path.clone(),
                        message: "changed since the update's base version".into(),
                    })
                    .collect();
                problem
            }
            Self::NotPending { .. }
            | Self::DuplicatePending(_)
            | Self::DuplicateOfRejected(_)
            | Self::AlreadyAtVersion(_)
            | Self::DuplicateUpdateId(_)
            | Self::VersionMismatch(_) => Problem::conflict(detail),
            Self::VersionNotReadable(_) => Problem::unavailable(detail),
            Self::NotPermitted { .. } => Problem::forbidden(detail),
        }
    }
}

impl DomainRefusal for ExperimentError {
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::TooFewVariants | Self::BadVariantIds | Self::BadWeights => {
                Problem::invalid_field("variants", detail)
            }
            Self::BadName => Problem::invalid_field("name", detail),
            Self::Unknown => Problem::not_found("no such experiment"),
            Self::AlreadyExists | Self::AlreadyConcluded | Self::UnknownWinner => {
                Problem::conflict(detail)
            }
        }
    }
}

impl<E: DomainRefusal> From<CommandError<E>> for ApiError {
    fn from(err: CommandError<E>) -> Self {
        match err {
            CommandError::Rejected(refusal) => Self::Problem(refusal.problem()),
            CommandError::Conflict => Self::Problem(Problem::conflict(
                "another change to the same record won the race; retry",
            )),
            CommandError::Unavailable => Self::Unavailable,
            CommandError::Store(message) => Self::Internal(anyhow::anyhow!(message)),
        }
    }
}
