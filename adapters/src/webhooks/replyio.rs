//! Reply.io webhooks (API v3 subscriptions; docs/providers.md, "Reply.io").
//!
//! Every delivery carries the `event` envelope (`id` — unique per delivery,
//! documented for idempotency —, `type`, `date`, `user_id`, `team_id`,
//! `subscription_id`), then flat event fields: `contact_fields` (`id`,
//! `email`, ...) and `sequence_fields` for sequence events.
//!
//! A subscription may be given a `secret`, documented only as an "HMAC key
//! used to sign webhook requests"; the header, algorithm and encoding are
//! not documented in the pages available, so no signature is checked and
//! the client's secret must accompany the call (`x-sextant-webhook-secret`
//! header or `secret` query parameter on the target URL).
//!
//! The touch is `{sequence_id}:{contact_id}:{step}` for emails (step from
//! `sequence_fields.step_number` when present, else the sequence and
//! contact alone), and `{sequence_id}:{contact_id}:li-connection` /
//! `:li-message` for LinkedIn.

use serde_json::Value;

use sextant_domain::send::input::{ContentInput, LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind, ReplyIntent};
use sextant_domain::values::Provider;

use super::{
    bounce, bounce_type, first_id, first_text, id, intent_from_category, outcome, parse_object,
    provider_lead_ref, reply, step, text, time, uint, unusable, verify_shared_secret, Mapped,
    SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Replyio;

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    verify_shared_secret(request, secret)
}

/// `event.id`, unique per delivery.
pub(super) fn delivery_id(request: &WebhookRequest<'_>) -> Option<String> {
    let v: Value = serde_json::from_slice(request.body).ok()?;
    id(&v, &["event", "id"])
}

#[derive(Clone, Copy)]
enum Touch {
    Email,
    LinkedinConnection,
    LinkedinMessage,
}

enum Event {
    Send(Touch),
    Outcome(Touch, OutcomeKind),
    Reply(Touch, Option<ReplyIntent>),
    Categorized(Touch),
    Bounce,
    Nothing,
}

fn event(name: &str) -> Option<Event> {
    use OutcomeKind as K;
    use Touch as T;
    Some(match name {
        "email_sent" => Event::Send(T::Email),
        "email_opened" => Event::Outcome(T::Email, K::Opened),
        "email_link_clicked" | "link_clicked" => Event::Outcome(T::Email, K::Clicked),
        "email_replied" => Event::Reply(T::Email, None),
        "reply_categorized" => Event::Categorized(T::Email),
        "email_bounced" => Event::Bounce,
        "email_auto_reply" | "auto_reply_received" => {
            Event::Reply(T::Email, Some(ReplyIntent::AutoReply))
        }
        "email_unsubscribed" => Event::Outcome(T::Email, K::Unsubscribed),
        "email_spam_reported" => Event::Outcome(T::Email, K::Complained),
        "meeting_booked" => Event::Outcome(T::Email, K::MeetingBooked),
        "linkedin_connection_request_sent" => Event::Send(T::LinkedinConnection),
        "linkedin_connection_request_accepted" => {
            Event::Outcome(T::LinkedinConnection, K::Accepted)
        }
        "linkedin_message_sent" => Event::Send(T::LinkedinMessage),
        "linkedin_message_replied" => Event::Reply(T::LinkedinMessage, None),
        "linkedin_reply_categorized" => Event::Categorized(T::LinkedinMessage),
        "email_account_connection_lost"
        | "email_account_error"
        | "email_account_reconnected"
        | "linkedin_account_alerts"
        | "sequence_started"
        | "sequence_stopped"
        | "sequence_completed"
        | "sequence_paused"
        | "sequence_resumed"
        | "meeting_cancelled"
        | "meeting_rescheduled"
        | "meeting_completed" => Event::Nothing,
        _ => return None,
    })
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let name = text(&v, &["event", "type"])
        .ok_or_else(|| Unmappable::Malformed("no event.type".into()))?;
    let event = event(&name).ok_or_else(|| Unmappable::UnknownEvent(name.clone()))?;
    if matches!(event, Event::Nothing) {
        return Ok(Vec::new());
    }
    let at = time(&v, &["event", "date"]).ok_or_else(|| unusable("no event.date"))?;
    let event_id = id(&v, &["event", "id"]);
    Ok(vec![match event {
        Event::Nothing => return Ok(Vec::new()),
        Event::Send(touch) => Mapped::Send(send(&v, touch, at)?),
        Event::Outcome(touch, kind) => outcome(PROVIDER, touch_id(&v, touch)?, event_id, kind, at),
        Event::Reply(touch, intent) => reply(PROVIDER, touch_id(&v, touch)?, event_id, intent, at),
        Event::Categorized(touch) => {
            let category = first_text(
                &v,
                &[&["category"], &["category_name"], &["reply_category"]],
            );
            match category.as_deref().and_then(intent_from_category) {
                Some(intent) => reply(PROVIDER, touch_id(&v, touch)?, event_id, Some(intent), at),
                None => return Ok(Vec::new()),
            }
        }
        Event::Bounce => {
            let kind = first_text(&v, &[&["bounce_type"], &["bounce_category"]]);
            bounce(
                PROVIDER,
                touch_id(&v, Touch::Email)?,
                event_id,
                kind.as_deref().and_then(bounce_type),
                at,
            )
        }
    }])
}

fn touch_id(v: &Value, touch: Touch) -> Result<String, Unmappable> {
    let sequence = first_id(
        v,
        &[
            &["sequence_fields", "id"],
            &["sequence_fields", "sequence_id"],
        ],
    )
    .filter(|s| s != "0")
    .ok_or_else(|| unusable("no sequence: the event is not about a sequence touch"))?;
    let contact =
        id(v, &["contact_fields", "id"]).ok_or_else(|| unusable("no contact_fields.id"))?;
    Ok(match touch {
        Touch::Email => match uint(v, &["sequence_fields", "step_number"]) {
            Some(step) => format!("{sequence}:{contact}:{step}"),
            None => format!("{sequence}:{contact}"),
        },
        Touch::LinkedinConnection => format!("{sequence}:{contact}:li-connection"),
        Touch::LinkedinMessage => format!("{sequence}:{contact}:li-message"),
    })
}

fn send(
    v: &Value,
    touch: Touch,
    sent_at: chrono::DateTime<chrono::Utc>,
) -> Result<SendInput, Unmappable> {
    let email = text(v, &["contact_fields", "email"]);
    let lead_ref = match &email {
        Some(_) => None,
        None => id(v, &["contact_fields", "id"])
            .and_then(|contact| provider_lead_ref(PROVIDER, "contact", &contact)),
    };
    Ok(SendInput {
        provider: PROVIDER.as_str().to_owned(),
        provider_message_id: touch_id(v, touch)?,
        lead_ref,
        lead: LeadInput {
            email,
            title: text(v, &["contact_fields", "title"]),
            ..LeadInput::default()
        },
        channel: match touch {
            Touch::Email => Channel::Email,
            Touch::LinkedinConnection | Touch::LinkedinMessage => Channel::Linkedin,
        },
        campaign_id: id(v, &["sequence_fields", "id"]),
        step: step(v, &["sequence_fields", "step_number"]),
        experiment_id: None,
        variant: None,
        content: ContentInput {
            subject: text(v, &["email_subject"]),
            ..ContentInput::default()
        },
        context_version: None,
        agent: None,
        prompt_version: None,
        resource: None,
        sent_at,
    })
}

#[cfg(test)]
mod tests {
    use sextant_domain::send::BounceType;

    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const SENT: &str = include_str!("fixtures/replyio/email_sent.json");
    const REPLIED: &str = include_str!("fixtures/replyio/email_replied.json");
    const CATEGORIZED: &str = include_str!("fixtures/replyio/reply_categorized.json");
    const BOUNCED: &str = include_str!("fixtures/replyio/email_bounced.json");
    const ACCEPTED: &str =
        include_str!("fixtures/replyio/linkedin_connection_request_accepted.json");

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn email_sent_maps_to_a_send_on_the_sequence_step() {
        let items = mapped(SENT);
        let send = only_send(&items);
        assert_eq!(send.provider, "replyio");
        assert_eq!(send.provider_message_id, "777:12345:1");
        assert_eq!(send.lead.email.as_deref(), Some("prospect@example.com"));
        assert_eq!(send.campaign_id.as_deref(), Some("777"));
        assert_eq!(send.step, Some(1));
        assert_eq!(send.channel, Channel::Email);
        assert_eq!(send.sent_at, ts("2026-04-21T09:00:00Z"));
    }

    #[test]
    fn replies_categories_and_bounces_land_on_the_same_touch() {
        let items = mapped(REPLIED);
        let reply = only_outcome(&items);
        assert_eq!((reply.kind, reply.intent), (OutcomeKind::Replied, None));
        assert_eq!(reply.provider_message_id, "777:12345:1");
        assert_eq!(
            reply.provider_event_id.as_deref(),
            Some("4c1b9e74-5ac3-4b0f-9a60-2a37a9b4a2d1")
        );
        let items = mapped(CATEGORIZED);
        let categorized = only_outcome(&items);
        assert_eq!(categorized.intent, Some(ReplyIntent::Interested));
        assert_eq!(categorized.provider_message_id, "777:12345:1");
        let items = mapped(BOUNCED);
        let bounced = only_outcome(&items);
        assert_eq!(bounced.kind, OutcomeKind::Bounced);
        assert_eq!(bounced.bounce_type, Some(BounceType::Hard));
        assert_eq!(bounced.provider_message_id, "777:12346:1");
    }

    #[test]
    fn linkedin_events_use_linkedin_touches() {
        let items = mapped(ACCEPTED);
        let accepted = only_outcome(&items);
        assert_eq!(accepted.kind, OutcomeKind::Accepted);
        assert_eq!(accepted.provider_message_id, "777:12345:li-connection");
        let sent = ACCEPTED.replace(
            "linkedin_connection_request_accepted",
            "linkedin_connection_request_sent",
        );
        let items = mapped(&sent);
        let send = only_send(&items);
        assert_eq!(send.channel, Channel::Linkedin);
        assert_eq!(send.provider_message_id, "777:12345:li-connection");
    }

    #[test]
    fn documented_events_about_no_send_map_to_nothing() {
        assert!(mapped(&SENT.replace("\"email_sent\"", "\"sequence_paused\"")).is_empty());
        assert!(mapped(&CATEGORIZED.replace("Interested", "Other")).is_empty());
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, SENT.replace("\"email_sent\"", "\"fax_sent\"").as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "fax_sent"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"event\":"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"event\":{}}"),
            Err(Unmappable::Malformed(_))
        ));
    }

    #[test]
    fn the_shared_secret_is_required() {
        let check = |headers: &axum::http::HeaderMap, url: &str| {
            let request = WebhookRequest {
                method: "POST",
                url,
                headers,
                body: SENT.as_bytes(),
            };
            verify_of(PROVIDER, &request, SECRET, now())
        };
        let none = header_pairs(&[]);
        assert_eq!(check(&none, URL), Err(SignatureError::Missing));
        assert_eq!(
            check(&header_pairs(&[("x-sextant-webhook-secret", SECRET)]), URL),
            Ok(())
        );
        assert_eq!(check(&none, &format!("{URL}&secret={SECRET}")), Ok(()));
        assert_eq!(
            check(&none, &format!("{URL}&secret=nope")),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_event_id_is_the_delivery_id() {
        let headers = header_pairs(&[]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: REPLIED.as_bytes(),
        };
        assert_eq!(
            delivery_id_of(PROVIDER, &request).as_deref(),
            Some("4c1b9e74-5ac3-4b0f-9a60-2a37a9b4a2d1")
        );
    }
}
