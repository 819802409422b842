//! What can go wrong, as one line for a person and an exit code for a
//! script.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | any other error (401/403 included, with a hint about the key) |
//! | 2 | usage: a bad flag, argument or configuration |
//! | 3 | not found (404) |
//! | 4 | conflict or stale (409, 412) |
//! | 5 | unavailable (503, 502, 504, 429, or nothing listening) |
//! | 130 | interrupted (Ctrl-C), after saving what was acknowledged |

use serde_json::Value;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const CONFLICT: u8 = 4;
pub const UNAVAILABLE: u8 = 5;
pub const INTERRUPTED: u8 = 130;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag, argument, file or configuration.
    #[error("{0}")]
    Usage(String),
    /// The API answered with a problem (RFC 9457).
    #[error("{}", problem_line(.status, .title, .detail, .errors))]
    Problem {
        status: u16,
        title: String,
        detail: String,
        errors: Vec<(String, String)>,
    },
    /// Nothing answered (connection refused, timed out, name unknown).
    #[error("{what} is unreachable at {url}: {reason}")]
    Unreachable {
        what: &'static str,
        url: String,
        reason: String,
    },
    /// Anything else (a file that cannot be written, NATS refusing, ...).
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: what was acknowledged is saved.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

fn problem_line(status: &u16, title: &str, detail: &str, errors: &[(String, String)]) -> String {
    let mut line = if detail.is_empty() || detail == title {
        title.to_owned()
    } else {
        format!("{title}: {detail}")
    };
    if !errors.is_empty() {
        let fields: Vec<String> = errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        line.push_str(&format!(" ({})", fields.join("; ")));
    }
    if line.is_empty() {
        line = format!("the API answered {status}");
    }
    line
}

impl CliError {
    /// A problem+json body (or whatever the API sent) with its status.
    pub fn from_answer(status: u16, body: &Value, text: &str) -> Self {
        let title = body["title"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_owned()
            });
        let detail = body["detail"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                // Not a problem document: a line of what came back, never more.
                text.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect()
            });
        let errors = body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self::Problem {
            status,
            title,
            detail,
            errors,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => USAGE,
            Self::Problem { status, .. } => match status {
                404 => NOT_FOUND,
                409 | 412 => CONFLICT,
                429 | 502 | 503 | 504 => UNAVAILABLE,
                _ => FAILED,
            },
            Self::Unreachable { .. } => UNAVAILABLE,
            Self::Failed(_) => FAILED,
            Self::Interrupted(_) => INTERRUPTED,
        }
    }

    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Problem { status, .. } => match status {
                401 => Some("check SEXTANT_KEY / sextant login"),
                403 => Some("check SEXTANT_KEY / sextant login: this key's role may not do this"),
                404 => Some("check the id, and the client (--client, SEXTANT_CLIENT)"),
                409 | 412 => Some("read the current state again, then retry"),
                429 | 502 | 503 | 504 => Some("the service is busy or starting: retry shortly"),
                _ => None,
            },
            Self::Unreachable { .. } => Some(
                "check the URL (--command-url/--query-url, SEXTANT_COMMAND_URL/SEXTANT_QUERY_URL) and that the service runs",
            ),
            Self::Usage(_) => Some("see sextant --help"),
            _ => None,
        }
    }

    /// `error: <what> — <what to do>`, one line.
    pub fn line(&self) -> String {
        let text = self.to_string().replace(['\n', '\r'], " ");
        match self.hint() {
            Some(hint) => format!("error: {text} — {hint}"),
            None => format!("error: {text}"),
        }
    }

    pub fn failed(what: impl std::fmt::Display) -> Self {
        Self::Failed(what.to_string())
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_problem_reads_as_its_title_detail_and_fields_on_one_line() {
        let e = CliError::from_answer(
            422,
            &json!({"title": "Validation failed", "detail": "the body is invalid",
                    "errors": [{"field": "name", "message": "must not be blank"}]}),
            "",
        );
        assert_eq!(
            e.line(),
            "error: Validation failed: the body is invalid (name: must not be blank)"
        );
        assert_eq!(e.exit_code(), FAILED);
    }

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        let code = |s| CliError::from_answer(s, &json!({}), "").exit_code();
        assert_eq!(code(404), 3);
        assert_eq!(code(409), 4);
        assert_eq!(code(412), 4);
        assert_eq!(code(503), 5);
        assert_eq!(code(401), 1);
        assert_eq!(code(403), 1);
    }

    #[test]
    fn an_unauthorized_answer_says_to_check_the_key() {
        let e = CliError::from_answer(
            401,
            &json!({"title": "Unauthorized", "detail": "no key"}),
            "",
        );
        assert!(
            e.line().contains("check SEXTANT_KEY / sextant login"),
            "{}",
            e.line()
        );
    }
}
