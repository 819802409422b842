//! Smartlead campaign webhooks (docs/providers.md, "Smartlead").
//!
//! Payloads are flat JSON objects named by `event_type` (`EMAIL_SENT`,
//! `EMAIL_OPEN`, `EMAIL_LINK_CLICK`, `EMAIL_REPLY`, `EMAIL_BOUNCE`,
//! `LEAD_UNSUBSCRIBED`, `LEAD_CATEGORY_UPDATED`, ...); an older revision of
//! the API reference names them `event` / `EMAIL_OPENED` / `EMAIL_REPLIED`
//! and so on, which are accepted as aliases. A message's events share its
//! `stats_id`.
//!
//! Campaign webhooks are not signed: each payload carries the webhook's
//! `secret_key`. Smartlead's help centre also documents an
//! `X-Smartlead-Signature: sha256=<hex HMAC-SHA256 of the raw body>` header
//! (with `X-Request-Id` as a unique event id); when that header is present
//! it decides.

use chrono::{DateTime, Utc};
use serde_json::Value;

use sextant_domain::send::input::{ContentInput, LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind};
use sextant_domain::values::Provider;

use super::{
    bounce, check_secrets, first_id, first_text, first_time, header, hex_digest, hmac_sha256, id,
    intent_from_category, outcome, parse_object, presented_secrets, provider_lead_ref, reply, step,
    text, unusable, verify_hex, Mapped, SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Smartlead;
pub(super) const SIGNATURE_HEADER: &str = "x-smartlead-signature";

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    if let Some(signature) = header(request.headers, SIGNATURE_HEADER) {
        let digest = signature.strip_prefix("sha256=").unwrap_or(signature);
        return verify_hex(hmac_sha256(secret, &[request.body]), digest);
    }
    let mut presented = presented_secrets(request);
    if let Ok(body) = serde_json::from_slice::<Value>(request.body) {
        presented.extend(text(&body, &["secret_key"]));
    }
    check_secrets(&presented, secret)
}

pub(super) fn sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "X-Smartlead-Signature".to_owned(),
        format!("sha256={}", hex_digest(hmac_sha256(secret, &[body]))),
    )]
}

/// Smartlead's `X-Request-Id` cannot be told apart from the request id our
/// own HTTP layer gives every request that lacks one, so it is not used:
/// the caller dedupes Smartlead deliveries by a hash of the body.
pub(super) fn delivery_id(_request: &WebhookRequest<'_>) -> Option<String> {
    None
}

enum Event {
    Sent,
    Outcome(OutcomeKind),
    CategoryUpdated,
    Nothing,
}

fn event(name: &str) -> Option<Event> {
    Some(match name {
        "EMAIL_SENT" | "FIRST_EMAIL_SENT" => Event::Sent,
        "EMAIL_OPEN" | "EMAIL_OPENED" => Event::Outcome(OutcomeKind::Opened),
        "EMAIL_LINK_CLICK" | "EMAIL_CLICKED" | "LINK_CLICKED" => {
            Event::Outcome(OutcomeKind::Clicked)
        }
        "EMAIL_REPLY" | "EMAIL_REPLIED" => Event::Outcome(OutcomeKind::Replied),
        "EMAIL_BOUNCE" | "EMAIL_BOUNCED" => Event::Outcome(OutcomeKind::Bounced),
        "LEAD_UNSUBSCRIBED" | "EMAIL_UNSUBSCRIBED" => Event::Outcome(OutcomeKind::Unsubscribed),
        "LEAD_CATEGORY_UPDATED" => Event::CategoryUpdated,
        // Documented, but about campaigns, inboxes or replies to no tracked
        // message: nothing about a send.
        "CAMPAIGN_STATUS_CHANGED"
        | "CAMPAIGN_STATUS_CHANGE"
        | "UNTRACKED_REPLIES"
        | "MANUAL_STEP_REACHED" => Event::Nothing,
        _ => return None,
    })
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let Some(name) = first_text(&v, &[&["event_type"], &["event"]]) else {
        // The help centre's account-level alerts (`email.account.disconnected`
        // and the like) are named by a dotted `type` and concern no send.
        if text(&v, &["type"]).is_some_and(|t| t.contains('.')) {
            return Ok(Vec::new());
        }
        return Err(Unmappable::Malformed("no event_type".into()));
    };
    let event = event(&name).ok_or_else(|| Unmappable::UnknownEvent(name.clone()))?;
    match event {
        Event::Nothing => Ok(Vec::new()),
        Event::Sent => Ok(vec![Mapped::Send(send(&v)?)]),
        Event::Outcome(kind) => {
            let message_id = message_id(&v)?;
            let at = occurred_at(&v)?;
            Ok(vec![match kind {
                // Smartlead documents no hard/soft distinction.
                OutcomeKind::Bounced => bounce(PROVIDER, message_id, None, None, at),
                other => outcome(PROVIDER, message_id, None, other, at),
            }])
        }
        Event::CategoryUpdated => category_updated(&v),
    }
}

/// The message's `stats_id`, shared by all its events; else the touch
/// `{campaign_id}:{lead_id}:{sequence_number}`.
fn message_id(v: &Value) -> Result<String, Unmappable> {
    if let Some(stats_id) = id(v, &["stats_id"]) {
        return Ok(stats_id);
    }
    let campaign = id(v, &["campaign_id"]);
    let lead = first_id(v, &[&["sl_email_lead_id"], &["lead_id"], &["lead", "id"]]);
    let sequence = id(v, &["sequence_number"]);
    match (campaign, lead, sequence) {
        (Some(c), Some(l), Some(s)) => Ok(format!("{c}:{l}:{s}")),
        _ => Err(unusable(
            "no stats_id and no campaign_id, lead id and sequence_number to name the message",
        )),
    }
}

fn occurred_at(v: &Value) -> Result<DateTime<Utc>, Unmappable> {
    first_time(
        v,
        &[
            &["event_timestamp"],
            &["timestamp"],
            &["time_sent"],
            &["time_opened"],
            &["time_clicked"],
            &["time_replied"],
            &["reply_message", "time"],
            &["reply", "received_at"],
            &["created_at"],
        ],
    )
    .ok_or_else(|| unusable("no event timestamp"))
}

fn send(v: &Value) -> Result<SendInput, Unmappable> {
    let provider_message_id = message_id(v)?;
    let sent_at = first_time(
        v,
        &[
            &["event_timestamp"],
            &["time_sent"],
            &["sent_message", "time"],
            &["timestamp"],
        ],
    )
    .ok_or_else(|| unusable("no send time"))?;
    let email = first_text(
        v,
        &[
            &["sl_lead_email"],
            &["to_email"],
            &["lead", "email"],
            &["lead_email"],
        ],
    );
    let lead_ref = match &email {
        Some(_) => None,
        None => first_id(v, &[&["sl_email_lead_id"], &["lead_id"], &["lead", "id"]])
            .and_then(|lead| provider_lead_ref(PROVIDER, "lead", &lead)),
    };
    if email.is_none() && lead_ref.is_none() {
        return Err(unusable("a send without the lead's email or id"));
    }
    Ok(SendInput {
        provider: PROVIDER.as_str().to_owned(),
        provider_message_id,
        lead_ref,
        lead: LeadInput {
            email,
            name: text(v, &["to_name"]),
            ..LeadInput::default()
        },
        channel: Channel::Email,
        campaign_id: id(v, &["campaign_id"]),
        step: step(v, &["sequence_number"]),
        experiment_id: None,
        variant: None,
        content: ContentInput {
            subject: first_text(
                v,
                &[&["subject"], &["custom_subject"], &["email", "subject"]],
            ),
            ..ContentInput::default()
        },
        context_version: None,
        agent: None,
        prompt_version: None,
        resource: text(v, &["from_email"]),
        sent_at,
    })
}

/// A category set on a lead (by hand or by Smartlead's AI) is the intent of
/// the lead's last reply; categories that name no intent say nothing.
fn category_updated(v: &Value) -> Result<Vec<Mapped>, Unmappable> {
    let Some(category) = first_text(v, &[&["lead_category", "new_name"], &["category"]]) else {
        return Ok(Vec::new());
    };
    let Some(intent) = intent_from_category(&category) else {
        return Ok(Vec::new());
    };
    let message_id = first_id(
        v,
        &[
            &["last_reply", "stats_id"],
            &["lastReply", "stats_id"],
            &["stats_id"],
        ],
    )
    .ok_or_else(|| unusable("a category update without the stats_id of the reply"))?;
    let at = first_time(
        v,
        &[
            &["event_timestamp"],
            &["last_reply", "time"],
            &["lastReply", "time"],
            &["created_at"],
        ],
    )
    .ok_or_else(|| unusable("no event timestamp"))?;
    Ok(vec![reply(PROVIDER, message_id, None, Some(intent), at)])
}

#[cfg(test)]
mod tests {
    use sextant_domain::send::ReplyIntent;

    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const SENT: &str = include_str!("fixtures/smartlead/email_sent.json");
    const OPEN: &str = include_str!("fixtures/smartlead/email_open.json");
    const REPLY: &str = include_str!("fixtures/smartlead/email_reply.json");
    const BOUNCE: &str = include_str!("fixtures/smartlead/email_bounce.json");
    const UNSUBSCRIBED: &str = include_str!("fixtures/smartlead/lead_unsubscribed.json");
    const CATEGORY: &str = include_str!("fixtures/smartlead/lead_category_updated.json");
    const STATS_ID: &str = "a891fe37-c45d-21e8-67ba-fcd44e9c33a8";
    const BODY_SECRET: &str = "4f7c8d23-a619-58c2-93g6-72936ee16f38";

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn email_sent_maps_to_a_send_keyed_by_stats_id() {
        let items = mapped(SENT);
        let send = only_send(&items);
        assert_eq!(send.provider, "smartlead");
        assert_eq!(send.provider_message_id, STATS_ID);
        assert_eq!(
            send.lead.email.as_deref(),
            Some("james.parker@prospect.example")
        );
        assert_eq!(send.lead.name.as_deref(), Some("James Parker"));
        assert_eq!(send.channel, Channel::Email);
        assert_eq!(send.campaign_id.as_deref(), Some("9181"));
        assert_eq!(send.step, Some(1));
        assert_eq!(
            send.content.subject.as_deref(),
            Some("Some more conversions?")
        );
        assert_eq!(send.resource.as_deref(), Some("alex@sender.example"));
        assert_eq!(send.sent_at, ts("2025-03-28T08:15:01Z"));
        assert!(send.lead_ref.is_none());
    }

    #[test]
    fn opens_replies_bounces_and_unsubscribes_share_the_message_id() {
        let open = mapped(OPEN);
        let open = only_outcome(&open);
        assert_eq!(
            (open.kind, open.provider_message_id.as_str()),
            (OutcomeKind::Opened, STATS_ID)
        );
        assert_eq!(open.occurred_at, ts("2025-03-28T09:02:11.618881Z"));

        let reply = mapped(REPLY);
        let reply = only_outcome(&reply);
        assert_eq!(
            (reply.kind, reply.provider_message_id.as_str()),
            (OutcomeKind::Replied, STATS_ID)
        );
        assert_eq!(reply.intent, None);
        assert_eq!(reply.occurred_at, ts("2025-03-28T09:35:01Z"));

        let bounced = mapped(BOUNCE);
        let bounced = only_outcome(&bounced);
        assert_eq!(bounced.kind, OutcomeKind::Bounced);
        assert_eq!(
            bounced.provider_message_id,
            "c21f0e10-5b7a-4e6c-9d2d-0f3c2b1a9e77"
        );
        assert_eq!(bounced.bounce_type, None);

        let unsubscribed = mapped(UNSUBSCRIBED);
        let unsubscribed = only_outcome(&unsubscribed);
        assert_eq!(unsubscribed.kind, OutcomeKind::Unsubscribed);
        assert_eq!(unsubscribed.provider_message_id, STATS_ID);
        assert_eq!(unsubscribed.occurred_at, ts("2025-03-29T11:16:24.671Z"));
    }

    #[test]
    fn a_lead_category_is_the_intent_of_the_last_reply() {
        let items = mapped(CATEGORY);
        let reply = only_outcome(&items);
        assert_eq!(reply.kind, OutcomeKind::Replied);
        assert_eq!(reply.intent, Some(ReplyIntent::Interested));
        assert_eq!(reply.provider_message_id, STATS_ID);

        for (category, intent) in [
            ("Out Of Office", ReplyIntent::OutOfOffice),
            ("Meeting Request", ReplyIntent::MeetingRequest),
            ("Do Not Contact", ReplyIntent::Unsubscribe),
            ("Not Interested", ReplyIntent::NotInterested),
        ] {
            let body = CATEGORY.replace("\"Interested\"", &format!("{category:?}"));
            assert_eq!(
                only_outcome(&mapped(&body)).intent,
                Some(intent),
                "{category}"
            );
        }
        let custom = CATEGORY.replace("\"Interested\"", "\"VIP follow-up\"");
        assert!(mapped(&custom).is_empty());
    }

    #[test]
    fn the_older_event_names_and_touch_ids_are_understood() {
        let body = r#"{"event":"EMAIL_OPENED","timestamp":"2024-11-25T10:30:00Z",
            "campaign_id":123,"lead_id":789,"sequence_number":2,
            "lead":{"email":"lead@example.com"}}"#;
        let items = mapped(body);
        let open = only_outcome(&items);
        assert_eq!(open.provider_message_id, "123:789:2");
        assert_eq!(open.kind, OutcomeKind::Opened);
    }

    #[test]
    fn documented_events_about_no_send_map_to_nothing() {
        assert!(mapped(r#"{"event_type":"CAMPAIGN_STATUS_CHANGED","campaign_id":1}"#).is_empty());
        assert!(
            mapped(r#"{"id":"evt_test_001","type":"email.account.disconnected","data":{}}"#)
                .is_empty()
        );
    }

    #[test]
    fn unknown_and_malformed_payloads_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, br#"{"event_type":"EMAIL_TELEPORTED"}"#),
            Err(Unmappable::UnknownEvent(name)) if name == "EMAIL_TELEPORTED"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{not json"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(PROVIDER, b"[]"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(
                PROVIDER,
                br#"{"event_type":"EMAIL_OPEN","event_timestamp":"2025-01-01T00:00:00Z"}"#
            ),
            Err(Unmappable::Unusable(_))
        ));
    }

    fn check(
        headers: &axum::http::HeaderMap,
        url: &str,
        body: &str,
        secret: &str,
    ) -> Result<(), SignatureError> {
        let request = WebhookRequest {
            method: "POST",
            url,
            headers,
            body: body.as_bytes(),
        };
        verify_of(PROVIDER, &request, secret, now())
    }

    #[test]
    fn the_signature_header_is_checked_when_present() {
        let good = headers_of(&sign(SECRET, SENT.as_bytes()));
        assert_eq!(check(&good, URL, SENT, SECRET), Ok(()));
        assert_eq!(
            check(&good, URL, &SENT.replace("9181", "9182"), SECRET),
            Err(SignatureError::Invalid)
        );
        let bad = header_pairs(&[("x-smartlead-signature", "sha256=00ff")]);
        assert_eq!(check(&bad, URL, SENT, SECRET), Err(SignatureError::Invalid));
        // A bad signature is not rescued by a right secret elsewhere.
        let url = format!("{URL}&secret={SECRET}");
        assert_eq!(
            check(&bad, &url, SENT, SECRET),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn unsigned_campaign_webhooks_need_the_secret_key_or_the_shared_secret() {
        let none = header_pairs(&[]);
        let body = r#"{"event_type":"EMAIL_SENT"}"#;
        assert_eq!(
            check(&none, URL, body, SECRET),
            Err(SignatureError::Missing)
        );
        // The secret_key Smartlead puts in every payload.
        assert_eq!(check(&none, URL, SENT, BODY_SECRET), Ok(()));
        assert_eq!(
            check(&none, URL, SENT, SECRET),
            Err(SignatureError::Invalid)
        );
        // The shared secret in a header or the query.
        let with_header = header_pairs(&[("x-sextant-webhook-secret", SECRET)]);
        assert_eq!(check(&with_header, URL, body, SECRET), Ok(()));
        let with_query = format!("{URL}&secret={SECRET}");
        assert_eq!(check(&none, &with_query, body, SECRET), Ok(()));
        let wrong = header_pairs(&[("x-sextant-webhook-secret", "nope")]);
        assert_eq!(
            check(&wrong, URL, body, SECRET),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_request_id_header_is_not_trusted_as_a_delivery_id() {
        // Our own HTTP layer sets X-Request-Id on every request without one.
        let headers = header_pairs(&[("X-Request-Id", "evt_123")]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: SENT.as_bytes(),
        };
        assert_eq!(delivery_id_of(PROVIDER, &request), None);
        let empty = header_pairs(&[]);
        let request = WebhookRequest {
            headers: &empty,
            ..request
        };
        assert_eq!(delivery_id_of(PROVIDER, &request), None);
    }
}
