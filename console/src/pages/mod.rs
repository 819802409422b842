//! The console's pages, one module (and one router) per area. A page
//! module reads through [`crate::api::Api`] as the signed-in key, renders
//! an askama template in the common layout (`templates/base.html`), and
//! answers a form POST with a redirect (303) to the page that shows its
//! result, carrying the command's position as `min_position`.
//!
//! - [`auth`]: sign-in and sign-out.
//! - [`home`]: the operator's home (every client) and a client's home.
//! - [`approvals`]: the approval queue and the review of one update.
//! - [`context`]: the context now, its history, comparisons, rollback.
//! - [`learning`]: pattern tables with forest plots, suggestions, experiments.
//! - [`sends`]: deliverability, suppression, dead letters, sends, erasure.
//! - [`reports`]: the weekly report, its downloads, the platform report.
//! - [`alerts`]: open and resolved alerts, acknowledging one.
//! - [`settings`]: profile, mode, limits, webhooks, keys, resources.

pub mod alerts;
pub mod approvals;
pub mod auth;
pub mod context;
pub mod home;
pub mod learning;
pub mod reports;
pub mod sends;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::Written;
use crate::error::ConsoleError;
use crate::session::{Fields, Signed};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(home::router())
        .merge(approvals::router())
        .merge(context::router())
        .merge(learning::router())
        .merge(sends::router())
        .merge(reports::router())
        .merge(alerts::router())
        .merge(settings::router())
}

/// A rendered template with a status.
pub fn html(
    status: StatusCode,
    template: &impl askama::Template,
) -> Result<Response, ConsoleError> {
    Ok((status, Html(compact(&template.render()?))).into_response())
}

/// The page without the templates' indentation and blank lines: every run
/// of whitespace between a line break and a tag becomes the line break
/// alone. Text from the system is escaped, so a raw `<` is always the
/// template's own: no value's spacing is touched, and `<pre>` content in
/// the templates starts its lines with a tag.
pub fn compact(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(at) = rest.find('\n') {
        out.push_str(&rest[..=at]);
        let after = &rest[at + 1..];
        let trimmed = after.trim_start_matches([' ', '\t', '\n', '\r']);
        rest = if trimmed.starts_with('<') {
            trimmed
        } else {
            after
        };
    }
    out.push_str(rest);
    out
}

/// 303 See Other: the answer to every successful form POST.
pub fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location.to_owned())]).into_response()
}

/// A client id from the path; one that does not parse names no page.
pub fn client_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::try_parse(text).map_err(|_| ConsoleError::NotFound("There is no such client.".into()))
}

/// Where a redirect after a write goes: `path`, with the write's position
/// as `min_position` (so the next page reads it), what was done, and the
/// version it made, if any.
pub fn after_write(path: &str, written: &Written, done: &str) -> String {
    let mut query = vec![("done", done.to_owned())];
    if let Some(position) = written.position {
        query.push(("min_position", position.to_string()));
    }
    if let Some(version) = written.body.get("version").and_then(|v| v.as_i64()) {
        query.push(("version_made", version.to_string()));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    format!("{path}?{query}")
}

/// What a page shows after a redirect from a write. Only known codes
/// produce a notice: the URL cannot make the page say anything else.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    pub done: Option<String>,
    pub version_made: Option<i64>,
    pub count: Option<u32>,
}

impl Done {
    pub fn notice(&self) -> Option<String> {
        let version = self
            .version_made
            .map(|v| format!(" The context is now at version {v}."))
            .unwrap_or_default();
        let text = match self.done.as_deref()? {
            "approved" => format!("Approved.{version}"),
            "modified" => format!("Modified and applied.{version}"),
            "rejected" => "Rejected. The context is unchanged.".to_owned(),
            "rolled_back" => format!("Rolled back.{version}"),
            "bulk_approved" => format!(
                "Approved {} update{}.",
                self.count.unwrap_or(0),
                if self.count == Some(1) { "" } else { "s" }
            ),
            "suggestions_run" => format!(
                "The suggestion engine ran and made {} suggestion{}.",
                self.count.unwrap_or(0),
                if self.count == Some(1) { "" } else { "s" }
            ),
            "experiment_created" => "The experiment has started.".to_owned(),
            "experiment_concluded" => "The experiment is concluded.".to_owned(),
            "acknowledged" => "Acknowledged.".to_owned(),
            "erased" => "The lead's personal data is erased.".to_owned(),
            "settings_saved" => "Saved.".to_owned(),
            "webhook_set" => "The webhook secret is set.".to_owned(),
            "key_revoked" => "The key is revoked: it is refused from now on.".to_owned(),
            "client_registered" => {
                "The client is registered. Issue its keys in its settings.".to_owned()
            }
            "resource_saved" => "The sending resource is saved.".to_owned(),
            "none_selected" => "Nothing was selected, so nothing was approved.".to_owned(),
            "signed_out" => "You are signed out.".to_owned(),
            _ => return None,
        };
        Some(text)
    }
}

/// A page's query string, read leniently: unknown parameters are ignored,
/// a number that does not parse is a 400 naming it.
pub struct Params(pub Fields);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Fields::parse(parts.uri.query().unwrap_or("").as_bytes()).map(Params)
    }
}

impl Params {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).filter(|v| !v.is_empty())
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ConsoleError> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => {
                text.trim().parse().map(Some).map_err(|_| {
                    ConsoleError::BadRequest(format!("`{name}` must be a whole number"))
                })
            }
        }
    }

    /// `min_position`: where the previous write left the log.
    pub fn min_position(&self) -> Result<Option<i64>, ConsoleError> {
        self.int("min_position")
    }

    pub fn done(&self) -> Done {
        Done {
            done: self.text("done").map(str::to_owned),
            version_made: self.int("version_made").ok().flatten(),
            count: self
                .int("count")
                .ok()
                .flatten()
                .and_then(|c| u32::try_from(c).ok()),
        }
    }
}

/// How long a client's name, once read by a session, is shown without
/// asking again.
const NAME_LIFETIME: Duration = Duration::from_secs(60);

/// Client names each session has read, for the navigation of the pages
/// that follow: a page then asks the APIs only for what it shows. Kept per
/// session, so that a name is only ever shown to a session that was
/// allowed to read it.
#[derive(Clone, Default)]
pub struct Names(Arc<Mutex<NameMap>>);

/// (session id, client) → (name, when it was read).
type NameMap = HashMap<(String, Uuid), (String, Instant)>;

impl Names {
    fn get(&self, session: &str, client: Uuid) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(session.to_owned(), client))
            .filter(|(_, at)| at.elapsed() < NAME_LIFETIME)
            .map(|(name, _)| name.clone())
    }

    fn put(&self, session: &str, client: Uuid, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < NAME_LIFETIME);
        }
        map.insert(
            (session.to_owned(), client),
            (name.to_owned(), Instant::now()),
        );
    }
}

/// A client's name, for the navigation and headings. After a write
/// (`min_position`) it is read again: the write may have renamed it.
pub async fn client_name(
    state: &AppState,
    signed: &Signed,
    client: Uuid,
    min_position: Option<i64>,
) -> Result<String, ConsoleError> {
    if min_position.is_none() {
        if let Some(name) = state.names.get(&signed.id, client) {
            return Ok(name);
        }
    }
    let detail: serde_json::Value = state
        .api
        .query(
            &signed.session.key,
            &format!("/v1/clients/{client}"),
            &[],
            min_position,
        )
        .await?;
    let name = detail
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("(unnamed)")
        .to_owned();
    state.names.put(&signed.id, client, &name);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indentation_before_tags_goes_and_text_keeps_its_spacing() {
        assert_eq!(
            compact("<ol>\n    <li>a\n   b</li>\n\n  \n  </ol>\n"),
            "<ol>\n<li>a\n   b</li>\n</ol>\n"
        );
        assert_eq!(compact("x &lt;\n  &lt;y"), "x &lt;\n  &lt;y");
    }

    #[test]
    fn a_write_leads_to_its_page_at_its_position_and_names_the_version_it_made() {
        let written = Written {
            body: json!({ "version": 4, "position": 77 }),
            position: Some(77),
        };
        assert_eq!(
            after_write("/clients/x/context", &written, "rolled_back"),
            "/clients/x/context?done=rolled_back&min_position=77&version_made=4"
        );
        let done = Done {
            done: Some("rolled_back".into()),
            version_made: Some(4),
            count: None,
        };
        assert_eq!(
            done.notice().as_deref(),
            Some("Rolled back. The context is now at version 4.")
        );
        let made_up = Done {
            done: Some("<b>you won</b>".into()),
            ..Done::default()
        };
        assert_eq!(made_up.notice(), None);
    }
}
