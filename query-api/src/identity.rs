//! `GET /v1/whoami`: who the presented key is (its role, its client and its
//! id, or the operator), for a caller that holds a key and must learn what
//! it may do, as the review console does at sign-in. Any valid key may ask;
//! the answer says nothing the key's holder could not learn by calling
//! the endpoints themselves.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use sextant_adapters::http::{Auth, Principal, StrictQuery};
use sextant_application::ApiError;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}

/// No parameters: an unknown one is refused naming it, as on every query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Who a key is.
#[derive(Debug, Serialize, PartialEq)]
pub struct Identity {
    /// `admin`, `reviewer`, `ingest`, `reader`, or `operator`.
    pub role: &'static str,
    /// The key's client; `None` for the operator.
    pub client_id: Option<Uuid>,
    /// The key's id; `None` for the operator.
    pub key_id: Option<Uuid>,
}

impl Identity {
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Operator => Self {
                role: "operator",
                client_id: None,
                key_id: None,
            },
            Principal::Key {
                key_id,
                client_id,
                role,
            } => Self {
                role: role.as_str(),
                client_id: Some(*client_id),
                key_id: Some(*key_id),
            },
        }
    }
}

async fn whoami(
    Auth(principal): Auth,
    StrictQuery(NoParams {}): StrictQuery<NoParams>,
) -> Result<Response, ApiError> {
    let mut response = (StatusCode::OK, axum::Json(Identity::of(&principal))).into_response();
    // Who a key is may change (revocation): never from a cache.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_domain::values::Role;

    #[test]
    fn the_identity_names_the_role_and_the_client_of_a_key_and_nothing_for_the_operator() {
        assert_eq!(
            Identity::of(&Principal::Operator),
            Identity {
                role: "operator",
                client_id: None,
                key_id: None
            }
        );
        let key = Principal::Key {
            key_id: Uuid::from_u128(9),
            client_id: Uuid::from_u128(1),
            role: Role::Reader,
        };
        assert_eq!(
            Identity::of(&key),
            Identity {
                role: "reader",
                client_id: Some(Uuid::from_u128(1)),
                key_id: Some(Uuid::from_u128(9)),
            }
        );
    }
}
