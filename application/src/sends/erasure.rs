//! Erasing a lead's personal data: whatever Sextant keeps that names the
//! lead, found by what it knows of the lead (its identity: email, name,
//! profile URL, and its ref).
//!
//! - Its identity (`lead_identities`: email, name, title, profile URL) and
//!   the subject lines of its sends (`send_content`), by lead ref.
//! - Dead-lettered webhook payloads (`webhook_dead_letters`) that name the
//!   lead by any of its identity or its ref.
//! - Captured documents whose text names the lead the same way: the body
//!   (`document_bodies`) and every value its insights put into the context
//!   (`context_insights`), which the context's events hold only by
//!   reference (docs/decisions/erasable-insights.md).
//!
//! Emails and profile URLs are matched as text anywhere, without regard to
//! case; the ref whole (not inside a longer ref); a name as whole words,
//! and only a name of at least two words: one word ("Ana") names too many
//! people to erase by.

use serde::Serialize;
use uuid::Uuid;

use sextant_adapters::http::Problem;
use sextant_adapters::store::{append, Appended, Sequence};
use sextant_domain::send::input::parse_lead_ref;
use sextant_domain::send::{Lead, LeadEvent};

use crate::{insights, App, Caller, Result};

/// What an erasure removed.
#[derive(Debug, Serialize)]
pub struct ErasedCounts {
    pub identities: usize,
    pub subjects: u64,
    pub dead_letters: u64,
    /// Captured documents (their bodies) that named the lead.
    pub documents: u64,
    /// Values those documents' insights had put into the context.
    pub insights: u64,
}

#[derive(Debug, Serialize)]
pub struct Erased {
    pub lead_ref: String,
    pub erased: ErasedCounts,
    pub position: i64,
}

/// Erases what Sextant keeps of a lead's personal data and records that it
/// did, in one transaction. `lead_ref` that does not parse names no lead.
pub async fn erase(app: &App, caller: &Caller, client_id: Uuid, lead_ref: &str) -> Result<Erased> {
    let lead_ref = parse_lead_ref(lead_ref).map_err(|_| Problem::not_found("no such lead"))?;
    app.registered_client(client_id).await?;
    let mut tx = app.pool.begin().await?;
    let identities: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "DELETE FROM lead_identities WHERE client_id = $1 AND lead_ref = $2 \
         RETURNING email, name, profile_url",
    )
    .bind(client_id)
    .bind(&lead_ref)
    .fetch_all(&mut *tx)
    .await?;
    let subjects = sqlx::query("DELETE FROM send_content WHERE client_id = $1 AND lead_ref = $2")
        .bind(client_id)
        .bind(&lead_ref)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut needles = Needles::default();
    needles.lead_ref(&lead_ref);
    for (email, name, profile_url) in &identities {
        if let Some(email) = email {
            needles.email(email);
        }
        if let Some(name) = name {
            needles.name(name);
        }
        if let Some(url) = profile_url {
            needles.profile_url(url);
        }
    }
    // Payloads that could not be mapped may name the lead however the
    // provider wrote them.
    let dead_letters = sqlx::query(
        "DELETE FROM webhook_dead_letters WHERE client_id = $1 \
         AND (payload ILIKE ANY($2) OR payload ~* ANY($3))",
    )
    .bind(client_id)
    .bind(&needles.like)
    .bind(&needles.words)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let documents: Vec<String> = sqlx::query_scalar(
        "SELECT content_hash FROM document_bodies WHERE client_id = $1 \
         AND (content ILIKE ANY($2) OR content ~* ANY($3))",
    )
    .bind(client_id)
    .bind(&needles.like)
    .bind(&needles.words)
    .fetch_all(&mut *tx)
    .await?;
    let documents = insights::erase_documents(&mut tx, client_id, &documents).await?;
    let event = LeadEvent::LeadErased {
        lead_ref: lead_ref.clone(),
    };
    let position = append::<Lead>(
        &mut tx,
        &caller.writer(client_id),
        &[Appended {
            aggregate_id: Lead::id(client_id, &lead_ref),
            sequence: Sequence::Next,
            event: &event,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Erased {
        lead_ref,
        erased: ErasedCounts {
            identities: identities.len(),
            subjects,
            dead_letters,
            documents: documents.bodies,
            insights: documents.insights,
        },
        position,
    })
}

/// What to look for: `ILIKE` patterns (text anywhere) and case-insensitive
/// regular expressions (whole words).
#[derive(Debug, Default, PartialEq)]
struct Needles {
    like: Vec<String>,
    words: Vec<String>,
}

impl Needles {
    /// `value` anywhere; nothing shorter than 6 characters, which could be
    /// part of anything.
    fn text(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() >= 6 {
            let pattern = format!(
                "%{}%",
                value
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            if !self.like.contains(&pattern) {
                self.like.push(pattern);
            }
        }
    }

    /// The ref as a whole: not inside a longer ref.
    fn lead_ref(&mut self, lead_ref: &str) {
        let escaped: String = lead_ref
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            })
            .collect();
        self.words
            .push(format!("(^|[^[:alnum:]_-]){escaped}([^[:alnum:]_-]|$)"));
    }

    /// The address, and as a form or query string encodes it.
    fn email(&mut self, email: &str) {
        self.text(email);
        self.text(&email.replace('@', "%40"));
    }

    /// The profile without scheme, `www.`, query or trailing slash, so that
    /// every way of writing the URL is found.
    fn profile_url(&mut self, url: &str) {
        let url = url.trim();
        let url = url.split_once("://").map_or(url, |(_, rest)| rest);
        let url = url.strip_prefix("www.").unwrap_or(url);
        let url = url.split(['?', '#']).next().unwrap_or(url);
        let url = url.trim_end_matches('/');
        if url.contains('/') {
            self.text(url);
        }
    }

    /// A name of at least two words, as whole words, whatever white space
    /// separates them.
    fn name(&mut self, name: &str) {
        let words: Vec<&str> = name.split_whitespace().collect();
        if words.len() < 2 {
            return;
        }
        let escape = |word: &str| {
            word.chars()
                .map(|c| {
                    if c.is_alphanumeric() {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect::<String>()
        };
        let body = words
            .iter()
            .map(|w| escape(w))
            .collect::<Vec<_>>()
            .join("\\s+");
        let word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let pattern = format!(
            "{}{body}{}",
            if word_char(name.trim().chars().next()) {
                "\\m"
            } else {
                ""
            },
            if word_char(name.trim().chars().last()) {
                "\\M"
            } else {
                ""
            },
        );
        if !self.words.contains(&pattern) {
            self.words.push(pattern);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_is_looked_for_by_its_address_profile_full_name_and_ref() {
        let mut needles = Needles::default();
        needles.lead_ref("lr_0123456789abcdef");
        needles.email("ana_lima@example.com");
        needles.profile_url("https://www.linkedin.com/in/ana-lima/?utm=x");
        needles.name(" Ana  O'Neil ");
        assert_eq!(
            needles.like,
            vec![
                "%ana\\_lima@example.com%",
                "%ana\\_lima\\%40example.com%",
                "%linkedin.com/in/ana-lima%",
            ]
        );
        assert_eq!(
            needles.words,
            vec![
                "(^|[^[:alnum:]_-])lr\\_0123456789abcdef([^[:alnum:]_-]|$)",
                "\\mAna\\s+O\\'Neil\\M",
            ]
        );
    }

    #[test]
    fn one_word_names_and_bare_hosts_are_not_looked_for() {
        let mut needles = Needles::default();
        needles.name("Ana");
        needles.profile_url("https://linkedin.com/");
        needles.text("ab");
        assert_eq!(needles, Needles::default());
    }
}
