//! Instantly (API v2) webhooks (docs/providers.md, "Instantly").
//!
//! Payloads are flat JSON objects named by `event_type`; every one carries
//! `timestamp`, `campaign_id` and (for lead events) `lead_email`, `step` and
//! `variant`. Instantly documents no signature; a webhook can be given
//! custom `headers`, so the client's secret goes in
//! `x-sextant-webhook-secret` (or the `secret` query parameter).
//!
//! `email_id` is the id of *an* email ("reply_to_uuid"): the sent email on
//! `email_sent`, but on `reply_received` the id to reply to, i.e. the
//! lead's reply, so it is not shared across a message's events. The touch is
//! therefore named `{campaign_id}:{lead}:{step}`, with `{lead}` a hash of the
//! lead's email (the email itself never goes into an id).

use serde_json::Value;

use sextant_domain::send::input::{ContentInput, LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind, ReplyIntent};
use sextant_domain::values::Provider;

use super::{
    bounce, id, lead_token, outcome, parse_object, reply, step, text, time, uint, unusable,
    verify_shared_secret, Mapped, SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Instantly;

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    verify_shared_secret(request, secret)
}

/// Instantly documents no delivery or event id.
pub(super) fn delivery_id(_request: &WebhookRequest<'_>) -> Option<String> {
    None
}

enum Event {
    Sent,
    Outcome(OutcomeKind),
    Reply(Option<ReplyIntent>),
    Nothing,
}

fn event(name: &str) -> Option<Event> {
    use OutcomeKind as K;
    Some(match name {
        "email_sent" => Event::Sent,
        "email_opened" => Event::Outcome(K::Opened),
        "email_link_clicked" | "link_clicked" => Event::Outcome(K::Clicked),
        "reply_received" => Event::Reply(None),
        "auto_reply_received" => Event::Reply(Some(ReplyIntent::AutoReply)),
        "email_bounced" => Event::Outcome(K::Bounced),
        "lead_unsubscribed" => Event::Outcome(K::Unsubscribed),
        "lead_interested" => Event::Reply(Some(ReplyIntent::Interested)),
        "lead_not_interested" | "lead_wrong_person" => {
            Event::Reply(Some(ReplyIntent::NotInterested))
        }
        "lead_out_of_office" => Event::Reply(Some(ReplyIntent::OutOfOffice)),
        "lead_meeting_booked" => Event::Outcome(K::MeetingBooked),
        "lead_closed" => Event::Outcome(K::Converted),
        "lead_neutral"
        | "lead_meeting_completed"
        | "lead_no_show"
        | "campaign_completed"
        | "account_error"
        | "supersearch_enrichment_completed" => Event::Nothing,
        _ => return None,
    })
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let name =
        text(&v, &["event_type"]).ok_or_else(|| Unmappable::Malformed("no event_type".into()))?;
    let event = event(&name).ok_or_else(|| Unmappable::UnknownEvent(name.clone()))?;
    if matches!(event, Event::Nothing) {
        return Ok(Vec::new());
    }
    let message_id = touch_id(&v)?;
    let at = time(&v, &["timestamp"]).ok_or_else(|| unusable("no timestamp"))?;
    Ok(vec![match event {
        Event::Nothing => return Ok(Vec::new()),
        Event::Sent => Mapped::Send(SendInput {
            provider: PROVIDER.as_str().to_owned(),
            provider_message_id: message_id,
            lead_ref: None,
            lead: LeadInput {
                email: text(&v, &["lead_email"]),
                ..LeadInput::default()
            },
            channel: Channel::Email,
            campaign_id: text(&v, &["campaign_id"]),
            step: step(&v, &["step"]),
            experiment_id: None,
            variant: uint(&v, &["variant"]).map(|n| n.to_string()),
            content: ContentInput {
                subject: text(&v, &["email_subject"]),
                ..ContentInput::default()
            },
            context_version: None,
            agent: None,
            prompt_version: None,
            resource: text(&v, &["email_account"]),
            sent_at: at,
        }),
        // Instantly documents no hard/soft distinction.
        Event::Outcome(OutcomeKind::Bounced) => bounce(PROVIDER, message_id, None, None, at),
        Event::Outcome(kind) => outcome(PROVIDER, message_id, None, kind, at),
        Event::Reply(intent) => reply(PROVIDER, message_id, None, intent, at),
    }])
}

/// `{campaign_id}:{hash of lead_email}:{step}`.
fn touch_id(v: &Value) -> Result<String, Unmappable> {
    let campaign = id(v, &["campaign_id"]).ok_or_else(|| unusable("no campaign_id"))?;
    let lead = text(v, &["lead_email"]).ok_or_else(|| unusable("no lead_email"))?;
    let step = uint(v, &["step"])
        .ok_or_else(|| unusable("no step: the event does not say which touch it is about"))?;
    Ok(format!("{campaign}:{}:{step}", lead_token(&lead)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const SENT: &str = include_str!("fixtures/instantly/email_sent.json");
    const OPENED: &str = include_str!("fixtures/instantly/email_opened.json");
    const REPLY: &str = include_str!("fixtures/instantly/reply_received.json");
    const INTERESTED: &str = include_str!("fixtures/instantly/lead_interested.json");
    const MEETING: &str = include_str!("fixtures/instantly/lead_meeting_booked.json");
    const BOUNCED: &str = include_str!("fixtures/instantly/email_bounced.json");

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn email_sent_maps_to_a_send_on_the_touch() {
        let items = mapped(SENT);
        let send = only_send(&items);
        let touch = format!(
            "e205ce46-f772-42fd-a81c-40eaa996f54e:{}:1",
            lead_token("maria.lopez@prospect.example")
        );
        assert_eq!(send.provider_message_id, touch);
        assert!(!send.provider_message_id.contains('@'));
        assert_eq!(
            send.lead.email.as_deref(),
            Some("maria.lopez@prospect.example")
        );
        assert_eq!(send.step, Some(1));
        assert_eq!(send.variant.as_deref(), Some("2"));
        assert_eq!(
            send.content.subject.as_deref(),
            Some("Closing the books faster?")
        );
        assert_eq!(
            send.resource.as_deref(),
            Some("sam@outbound-sender.example")
        );
        assert_eq!(send.sent_at, ts("2025-05-12T14:03:27.412Z"));
    }

    #[test]
    fn later_events_land_on_the_same_touch() {
        let send_id = only_send(&mapped(SENT)).provider_message_id.clone();
        for (body, kind, intent) in [
            (OPENED, OutcomeKind::Opened, None),
            (REPLY, OutcomeKind::Replied, None),
            (
                INTERESTED,
                OutcomeKind::Replied,
                Some(ReplyIntent::Interested),
            ),
            (MEETING, OutcomeKind::MeetingBooked, None),
        ] {
            let items = mapped(body);
            let o = only_outcome(&items);
            assert_eq!(o.provider_message_id, send_id);
            assert_eq!((o.kind, o.intent), (kind, intent));
        }
        let bounced = mapped(BOUNCED);
        let bounced = only_outcome(&bounced);
        assert_eq!(bounced.kind, OutcomeKind::Bounced);
        assert_eq!(bounced.occurred_at, ts("2025-05-12T14:05:40Z"));
    }

    #[test]
    fn lead_status_events_carry_their_intent_or_outcome() {
        for (name, kind, intent) in [
            (
                "auto_reply_received",
                OutcomeKind::Replied,
                Some(ReplyIntent::AutoReply),
            ),
            (
                "lead_out_of_office",
                OutcomeKind::Replied,
                Some(ReplyIntent::OutOfOffice),
            ),
            (
                "lead_not_interested",
                OutcomeKind::Replied,
                Some(ReplyIntent::NotInterested),
            ),
            ("lead_unsubscribed", OutcomeKind::Unsubscribed, None),
            ("lead_closed", OutcomeKind::Converted, None),
            ("email_link_clicked", OutcomeKind::Clicked, None),
        ] {
            let body = INTERESTED.replace("lead_interested", name);
            let items = mapped(&body);
            let o = only_outcome(&items);
            assert_eq!((o.kind, o.intent), (kind, intent), "{name}");
        }
        for name in ["lead_neutral", "campaign_completed", "account_error"] {
            assert!(
                mapped(&INTERESTED.replace("lead_interested", name)).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_malformed_and_stepless_payloads_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, INTERESTED.replace("lead_interested", "my_custom_label").as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "my_custom_label"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"event_type\":"),
            Err(Unmappable::Malformed(_))
        ));
        let stepless = r#"{"event_type":"lead_interested","timestamp":"2025-05-13T09:00:00Z",
            "campaign_id":"c1","lead_email":"a@b.example"}"#;
        assert!(matches!(
            map_of(PROVIDER, stepless.as_bytes()),
            Err(Unmappable::Unusable(_))
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
            check(&header_pairs(&[("x-sextant-webhook-secret", "wrong")]), URL),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&none, &format!("{URL}&secret=wrong")),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn there_is_no_documented_delivery_id() {
        let headers = header_pairs(&[]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: SENT.as_bytes(),
        };
        assert_eq!(delivery_id_of(PROVIDER, &request), None);
    }
}
