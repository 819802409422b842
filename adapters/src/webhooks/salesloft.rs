//! Salesloft webhook subscriptions (docs/providers.md, "Salesloft").
//!
//! `x-salesloft-signature` is the hex HMAC-SHA1 of the raw body keyed with
//! the subscription's `callback_token`; `x-salesloft-event` names the event
//! (`email_updated`, `meeting_booked`, ...). The body is the bare resource
//! (an Email, a Meeting, a Person...) as the REST API returns it, with no
//! event name or event id in it.
//!
//! An `email_updated` body is the email's current state, so it maps to the
//! send (once the email is sent) plus every outcome its state shows:
//! `bounced`, `counts.views`, `counts.clicks`, `counts.replies`. The domain
//! counts each outcome once per send, so repeating them on every update is
//! harmless.
//!
//! Touches are named `{cadence_id}:{person_id}:{step_id}` when the email or
//! meeting belongs to a cadence step (so a meeting booked from a cadence step
//! lands on that step's email), else `email:{id}`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use sextant_domain::send::input::{ContentInput, LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind};
use sextant_domain::values::Provider;

use super::{
    at, boolean, first_time, header, hex_digest, hmac_sha1, id, outcome, parse_object, text, uint,
    unusable, verify_hex, Mapped, SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Salesloft;
pub(super) const SIGNATURE_HEADER: &str = "x-salesloft-signature";
pub(super) const EVENT_HEADER: &str = "x-salesloft-event";

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    let signature = header(request.headers, SIGNATURE_HEADER).ok_or(SignatureError::Missing)?;
    verify_hex(hmac_sha1(secret, request.body), signature)
}

pub(super) fn sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        SIGNATURE_HEADER.to_owned(),
        hex_digest(hmac_sha1(secret, body)),
    )]
}

/// Salesloft documents no delivery or event id.
pub(super) fn delivery_id(_request: &WebhookRequest<'_>) -> Option<String> {
    None
}

/// Event types documented at developers.salesloft.com that concern no email
/// or meeting.
const OTHER_EVENTS: [&str; 35] = [
    "account_created",
    "account_updated",
    "account_deleted",
    "bulk_job_completed",
    "cadence_created",
    "cadence_updated",
    "cadence_deleted",
    "cadence_membership_created",
    "cadence_membership_updated",
    "call_created",
    "call_updated",
    "call_data_record_created",
    "call_data_record_updated",
    "conversation_created",
    "conversation_recording_created",
    "conversation_transcript_created",
    "link_swap",
    "meeting_updated",
    "note_created",
    "note_updated",
    "note_deleted",
    "person_created",
    "person_updated",
    "person_deleted",
    "step_created",
    "step_updated",
    "step_deleted",
    "success_created",
    "task_created",
    "task_updated",
    "task_completed",
    "task_deleted",
    "user_created",
    "user_updated",
    "user_deleted",
];

/// Maps a delivery; `event` is the `x-salesloft-event` header when the
/// caller has it, else the event is inferred from the resource's shape.
pub(super) fn map(event: Option<&str>, body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    match event {
        Some("email_updated" | "email_with_body_and_subject_updated") => email(&v),
        Some("meeting_booked") => meeting(&v),
        Some(other) if OTHER_EVENTS.contains(&other) => Ok(Vec::new()),
        Some(other) => Err(Unmappable::UnknownEvent(other.to_owned())),
        None if is_email(&v) => email(&v),
        None if is_meeting(&v) => meeting(&v),
        None if at(&v, &["id"]).is_some() => Ok(Vec::new()),
        None => Err(Unmappable::Malformed("not a Salesloft resource".into())),
    }
}

fn is_email(v: &Value) -> bool {
    at(v, &["recipient_email_address"]).is_some()
        || (at(v, &["counts"]).is_some_and(Value::is_object) && at(v, &["bounced"]).is_some())
}

fn is_meeting(v: &Value) -> bool {
    at(v, &["start_time"]).is_some()
        && (at(v, &["meeting_type"]).is_some() || at(v, &["booked_by_user"]).is_some())
}

/// `{cadence_id}:{person_id}:{step_id}` for a cadence step's touch.
fn touch_id(v: &Value, person: &[&str]) -> Option<String> {
    let cadence = id(v, &["cadence", "id"])?;
    let person = id(v, person)?;
    let step = id(v, &["step", "id"])?;
    Some(format!("{cadence}:{person}:{step}"))
}

const SENT_STATUSES: [&str; 3] = ["sent", "sent_from_gmail", "sent_from_external"];

fn email(v: &Value) -> Result<Vec<Mapped>, Unmappable> {
    let email_id = id(v, &["id"]).ok_or_else(|| unusable("an email without id"))?;
    let message_id =
        touch_id(v, &["recipient", "id"]).unwrap_or_else(|| format!("email:{email_id}"));
    let status = text(v, &["status"]).unwrap_or_default();
    let sent_at = first_time(v, &[&["sent_at"]]);
    let sent = SENT_STATUSES.contains(&status.as_str()) || sent_at.is_some();
    if !sent {
        // Scheduled, pending, failed or cancelled: nothing went out yet.
        return Ok(Vec::new());
    }
    let sent_at = sent_at
        .or_else(|| first_time(v, &[&["updated_at"], &["created_at"]]))
        .ok_or_else(|| unusable("a sent email without sent_at"))?;
    let updated_at: DateTime<Utc> = first_time(v, &[&["updated_at"]]).unwrap_or(sent_at);

    let mut mapped = vec![Mapped::Send(SendInput {
        provider: PROVIDER.as_str().to_owned(),
        provider_message_id: message_id.clone(),
        lead_ref: None,
        lead: LeadInput {
            email: text(v, &["recipient_email_address"]),
            ..LeadInput::default()
        },
        channel: Channel::Email,
        campaign_id: id(v, &["cadence", "id"]),
        // Salesloft names the step by id, not by position.
        step: None,
        experiment_id: None,
        variant: None,
        content: ContentInput {
            subject: text(v, &["subject"]),
            ..ContentInput::default()
        },
        context_version: None,
        agent: None,
        prompt_version: None,
        resource: None,
        sent_at,
    })];
    if boolean(v, &["bounced"]) == Some(true) {
        mapped.push(outcome(
            PROVIDER,
            message_id.clone(),
            None,
            OutcomeKind::Bounced,
            updated_at,
        ));
    }
    for (count, kind) in [
        ("views", OutcomeKind::Opened),
        ("clicks", OutcomeKind::Clicked),
        ("replies", OutcomeKind::Replied),
    ] {
        if uint(v, &["counts", count]).is_some_and(|n| n > 0) {
            mapped.push(outcome(
                PROVIDER,
                message_id.clone(),
                None,
                kind,
                updated_at,
            ));
        }
    }
    Ok(mapped)
}

/// A booked meeting attributed to a cadence step is that touch's
/// `meeting_booked`; one attributed to no step says nothing about a send.
fn meeting(v: &Value) -> Result<Vec<Mapped>, Unmappable> {
    if text(v, &["canceled_at"]).is_some() {
        return Ok(Vec::new());
    }
    if let Some(status) = text(v, &["status"]) {
        if status != "booked" {
            return Ok(Vec::new());
        }
    }
    let Some(message_id) = touch_id(v, &["person", "id"]) else {
        return Ok(Vec::new());
    };
    let at = first_time(v, &[&["created_at"], &["updated_at"]])
        .ok_or_else(|| unusable("a meeting without created_at"))?;
    Ok(vec![outcome(
        PROVIDER,
        message_id,
        None,
        OutcomeKind::MeetingBooked,
        at,
    )])
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{
        delivery_id as delivery_id_of, map as map_of, map_request, verify as verify_of,
    };
    use super::*;

    const EMAIL: &str = include_str!("fixtures/salesloft/email_updated.json");
    const MEETING: &str = include_str!("fixtures/salesloft/meeting_booked.json");
    const PERSON: &str = include_str!("fixtures/salesloft/person_updated.json");
    const TOUCH: &str = "2213:436664215:90817";

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn an_email_update_maps_to_the_send_and_the_outcomes_its_state_shows() {
        let items = mapped(EMAIL);
        let send = only_send(&items[..1]);
        assert_eq!(send.provider_message_id, TOUCH);
        assert_eq!(
            send.lead.email.as_deref(),
            Some("dana.kim@prospect.example")
        );
        assert_eq!(send.campaign_id.as_deref(), Some("2213"));
        assert_eq!(send.sent_at, ts("2025-04-02T18:00:01Z"));
        let kinds: Vec<OutcomeKind> = outcomes(&items).iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            vec![
                OutcomeKind::Opened,
                OutcomeKind::Clicked,
                OutcomeKind::Replied
            ]
        );
        assert!(outcomes(&items)
            .iter()
            .all(|o| o.provider_message_id == TOUCH
                && o.occurred_at == ts("2025-04-03T13:12:05.118832Z")));
    }

    #[test]
    fn bounces_unsent_and_one_off_emails() {
        let bounced = EMAIL.replace("\"bounced\": false", "\"bounced\": true");
        assert!(outcomes(&mapped(&bounced))
            .iter()
            .any(|o| o.kind == OutcomeKind::Bounced));
        let scheduled = EMAIL
            .replace("\"status\": \"sent\"", "\"status\": \"scheduled\"")
            .replace(
                "\"sent_at\": \"2025-04-02T14:00:01.000000-04:00\"",
                "\"sent_at\": null",
            );
        assert!(mapped(&scheduled).is_empty());
        let one_off = EMAIL.replace("\"cadence\": {", "\"no_cadence\": {");
        assert_eq!(
            only_send(&mapped(&one_off)[..1]).provider_message_id,
            "email:1357911"
        );
    }

    #[test]
    fn a_booked_meeting_lands_on_its_cadence_step() {
        let items = mapped(MEETING);
        let meeting = only_outcome(&items);
        assert_eq!(meeting.kind, OutcomeKind::MeetingBooked);
        assert_eq!(meeting.provider_message_id, TOUCH);
        let canceled = MEETING.replace(
            "\"canceled_at\": null",
            "\"canceled_at\": \"2025-04-04T10:00:00Z\"",
        );
        assert!(mapped(&canceled).is_empty());
    }

    #[test]
    fn the_event_header_decides_when_given() {
        let with_event = |event: &str, body: &str| {
            let headers = header_pairs(&[("x-salesloft-event", event)]);
            let request = WebhookRequest {
                method: "POST",
                url: URL,
                headers: &headers,
                body: body.as_bytes(),
            };
            map_request(PROVIDER, &request)
        };
        assert!(with_event("person_updated", PERSON).is_ok_and(|m| m.is_empty()));
        assert!(with_event("email_updated", EMAIL).is_ok_and(|m| m.len() == 4));
        assert!(with_event("meeting_booked", MEETING).is_ok_and(|m| m.len() == 1));
        assert!(matches!(
            with_event("email_teleported", EMAIL),
            Err(Unmappable::UnknownEvent(name)) if name == "email_teleported"
        ));
    }

    #[test]
    fn resources_about_no_send_and_malformed_bodies() {
        assert!(mapped(PERSON).is_empty());
        assert!(matches!(
            map_of(PROVIDER, b"{\"id\":"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{}"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(
                PROVIDER,
                br#"{"recipient_email_address":"a@b.example","status":"sent"}"#
            ),
            Err(Unmappable::Unusable(_))
        ));
    }

    fn check(headers: &axum::http::HeaderMap, body: &str) -> Result<(), SignatureError> {
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers,
            body: body.as_bytes(),
        };
        verify_of(PROVIDER, &request, SECRET, now())
    }

    #[test]
    fn the_sha1_signature_is_checked() {
        let good = headers_of(&sign(SECRET, EMAIL.as_bytes()));
        assert_eq!(check(&good, EMAIL), Ok(()));
        assert_eq!(
            check(&good, &EMAIL.replace("2213", "2214")),
            Err(SignatureError::Invalid)
        );
        let uppercase = header_pairs(&[(
            "x-salesloft-signature",
            &hex_digest(hmac_sha1(SECRET, EMAIL.as_bytes())).to_uppercase(),
        )]);
        assert_eq!(check(&uppercase, EMAIL), Ok(()));
        assert_eq!(
            check(&header_pairs(&[("x-salesloft-signature", "zz")]), EMAIL),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&header_pairs(&[]), EMAIL),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn there_is_no_documented_delivery_id() {
        let headers = header_pairs(&[("x-salesloft-event", "email_updated")]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: EMAIL.as_bytes(),
        };
        assert_eq!(delivery_id_of(PROVIDER, &request), None);
    }
}
