//! Outreach API webhooks (docs/providers.md, "Outreach").
//!
//! A webhook created with a `secret` signs each delivery:
//! `Outreach-Webhook-Signature` is the hex HMAC-SHA256 of the raw body keyed
//! with that secret. Deliveries are JSON:API documents: `data` (the resource,
//! with `type`, `id`, the created/changed `attributes` and `relationships`)
//! and `meta` (`eventName` as `resource.action`, `deliveredAt`).
//!
//! A mailing's events share the mailing's id, which is the message id.

use chrono::{DateTime, Utc};
use serde_json::Value;

use sextant_domain::send::input::{ContentInput, LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind};
use sextant_domain::values::Provider;

use super::{
    at, bounce, first_time, header, hex_digest, hmac_sha256, id, outcome, parse_object,
    provider_lead_ref, text, unusable, verify_hex, Mapped, SignatureError, Unmappable,
    WebhookRequest,
};

const PROVIDER: Provider = Provider::Outreach;
pub(super) const SIGNATURE_HEADER: &str = "outreach-webhook-signature";
pub(super) const ID_HEADER: &str = "outreach-webhook-id";

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    let signature = header(request.headers, SIGNATURE_HEADER).ok_or(SignatureError::Missing)?;
    verify_hex(hmac_sha256(secret, &[request.body]), signature)
}

pub(super) fn sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "Outreach-Webhook-Signature".to_owned(),
        hex_digest(hmac_sha256(secret, &[body])),
    )]
}

/// The `Outreach-Webhook-ID` header (a UUID per request).
pub(super) fn delivery_id(request: &WebhookRequest<'_>) -> Option<String> {
    header(request.headers, ID_HEADER).map(str::to_owned)
}

/// Resources and actions a webhook can subscribe to (developers.outreach.io,
/// "Responding to Platform Events using Webhooks").
const RESOURCES: [(&str, &[&str]); 14] = [
    ("account", &["created", "updated", "destroyed"]),
    ("call", &["created", "updated", "destroyed"]),
    ("emailAddress", &["created", "updated", "destroyed"]),
    ("import", &["created", "finished"]),
    ("kaiaRecording", &["created"]),
    (
        "mailing",
        &[
            "created",
            "updated",
            "destroyed",
            "bounced",
            "delivered",
            "opened",
            "replied",
        ],
    ),
    ("opportunity", &["created", "updated", "destroyed"]),
    (
        "opportunityProspectRole",
        &["created", "updated", "destroyed"],
    ),
    ("prospect", &["created", "updated", "destroyed"]),
    ("sequence", &["created", "updated", "destroyed"]),
    (
        "sequenceState",
        &["created", "updated", "destroyed", "advanced", "finished"],
    ),
    ("task", &["created", "updated", "destroyed", "completed"]),
    ("user", &["created", "updated"]),
    ("install", &["created", "deleted"]),
];

fn documented(resource: &str, action: &str) -> bool {
    RESOURCES
        .iter()
        .any(|(r, actions)| *r == resource && actions.contains(&action))
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let name = text(&v, &["meta", "eventName"])
        .ok_or_else(|| Unmappable::Malformed("no meta.eventName".into()))?;
    let Some((resource, action)) = name.split_once('.').filter(|(r, a)| documented(r, a)) else {
        return Err(Unmappable::UnknownEvent(name));
    };
    if resource != "mailing" {
        return Ok(Vec::new());
    }
    let data = at(&v, &["data"])
        .filter(|d| d.is_object())
        .ok_or_else(|| Unmappable::Malformed("no data".into()))?;
    let mailing = id(data, &["id"]).ok_or_else(|| unusable("a mailing without id"))?;
    let delivered_meta = first_time(&v, &[&["meta", "deliveredAt"]]);
    let when = |attribute: &str| -> Result<DateTime<Utc>, Unmappable> {
        first_time(data, &[&["attributes", attribute]])
            .or(delivered_meta)
            .ok_or_else(|| unusable(format!("no {attribute} and no meta.deliveredAt")))
    };
    match action {
        "delivered" => {
            let sent_at = when("deliveredAt")?;
            Ok(vec![
                Mapped::Send(send(data, mailing.clone(), sent_at)?),
                outcome(PROVIDER, mailing, None, OutcomeKind::Delivered, sent_at),
            ])
        }
        "opened" => Ok(vec![outcome(
            PROVIDER,
            mailing,
            None,
            OutcomeKind::Opened,
            when("openedAt")?,
        )]),
        "replied" => Ok(vec![outcome(
            PROVIDER,
            mailing,
            None,
            OutcomeKind::Replied,
            when("repliedAt")?,
        )]),
        // Outreach documents no hard/soft distinction.
        "bounced" => Ok(vec![bounce(
            PROVIDER,
            mailing,
            None,
            None,
            when("bouncedAt")?,
        )]),
        "updated" => Ok(changed_outcomes(data, &mailing)),
        _ => Ok(Vec::new()),
    }
}

/// An update carries only the changed attributes; the engagement timestamps
/// among them are outcomes.
fn changed_outcomes(data: &Value, mailing: &str) -> Vec<Mapped> {
    [
        ("clickedAt", OutcomeKind::Clicked),
        ("unsubscribedAt", OutcomeKind::Unsubscribed),
        ("markedAsSpamAt", OutcomeKind::Complained),
    ]
    .into_iter()
    .filter_map(|(attribute, kind)| {
        first_time(data, &[&["attributes", attribute]])
            .map(|at| outcome(PROVIDER, mailing.to_owned(), None, kind, at))
    })
    .collect()
}

fn send(data: &Value, mailing: String, sent_at: DateTime<Utc>) -> Result<SendInput, Unmappable> {
    // Mailings name their prospect by id only.
    let lead_ref = id(data, &["relationships", "prospect", "data", "id"])
        .and_then(|prospect| provider_lead_ref(PROVIDER, "prospect", &prospect))
        .ok_or_else(|| unusable("a delivered mailing without its prospect"))?;
    Ok(SendInput {
        provider: PROVIDER.as_str().to_owned(),
        provider_message_id: mailing,
        lead_ref: Some(lead_ref),
        lead: LeadInput::default(),
        channel: Channel::Email,
        campaign_id: id(data, &["relationships", "sequence", "data", "id"]),
        step: None,
        experiment_id: None,
        variant: None,
        content: ContentInput {
            subject: text(data, &["attributes", "subject"]),
            ..ContentInput::default()
        },
        context_version: None,
        agent: None,
        prompt_version: None,
        resource: text(data, &["attributes", "mailboxAddress"]),
        sent_at,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const DELIVERED: &str = include_str!("fixtures/outreach/mailing_delivered.json");
    const OPENED: &str = include_str!("fixtures/outreach/mailing_opened.json");
    const REPLIED: &str = include_str!("fixtures/outreach/mailing_replied.json");
    const BOUNCED: &str = include_str!("fixtures/outreach/mailing_bounced.json");
    const PROSPECT: &str = include_str!("fixtures/outreach/prospect_updated.json");

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn a_delivered_mailing_is_a_send_and_its_delivery() {
        let items = mapped(DELIVERED);
        let send = only_send(&items[..1]);
        assert_eq!(send.provider, "outreach");
        assert_eq!(send.provider_message_id, "987654");
        assert_eq!(send.lead_ref.as_deref(), Some("outreach_prospect_4411"));
        assert_eq!(send.lead.email, None);
        assert_eq!(send.campaign_id.as_deref(), Some("312"));
        assert_eq!(
            send.content.subject.as_deref(),
            Some("Faster month-end close")
        );
        assert_eq!(send.resource.as_deref(), Some("rep@sender.example"));
        assert_eq!(send.sent_at, ts("2025-04-08T13:02:11Z"));
        let delivered = only_outcome(&items[1..]);
        assert_eq!(delivered.kind, OutcomeKind::Delivered);
        assert_eq!(delivered.provider_message_id, "987654");
    }

    #[test]
    fn opens_replies_and_bounces_land_on_the_mailing() {
        for (body, kind, at) in [
            (OPENED, OutcomeKind::Opened, "2025-04-08T15:40:00Z"),
            (REPLIED, OutcomeKind::Replied, "2025-04-09T08:15:30Z"),
        ] {
            let items = mapped(body);
            let o = only_outcome(&items);
            assert_eq!((o.kind, o.provider_message_id.as_str()), (kind, "987654"));
            assert_eq!(o.occurred_at, ts(at));
        }
        let items = mapped(BOUNCED);
        let bounced = only_outcome(&items);
        assert_eq!(
            (bounced.kind, bounced.provider_message_id.as_str()),
            (OutcomeKind::Bounced, "987655")
        );
    }

    #[test]
    fn updates_with_engagement_timestamps_are_outcomes() {
        let body = r#"{"data":{"type":"mailing","id":5,"attributes":{
            "clickedAt":"2025-04-08T16:00:00.000Z","unsubscribedAt":"2025-04-08T16:05:00.000Z"}},
            "meta":{"deliveredAt":"2025-04-08T16:05:01Z","eventName":"mailing.updated"}}"#;
        let kinds: Vec<OutcomeKind> = outcomes(&mapped(body)).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, vec![OutcomeKind::Clicked, OutcomeKind::Unsubscribed]);
        assert!(mapped(&DELIVERED.replace("mailing.delivered", "mailing.created")).is_empty());
        assert!(mapped(PROSPECT).is_empty());
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, DELIVERED.replace("mailing.delivered", "mailing.teleported").as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "mailing.teleported"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"data\""),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(PROVIDER, br#"{"data":{}}"#),
            Err(Unmappable::Malformed(_))
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
    fn the_hmac_signature_is_checked() {
        let good = headers_of(&sign(SECRET, DELIVERED.as_bytes()));
        assert_eq!(check(&good, DELIVERED), Ok(()));
        assert_eq!(check(&good, OPENED), Err(SignatureError::Invalid));
        assert_eq!(
            check(
                &header_pairs(&[("Outreach-Webhook-Signature", "deadbeef")]),
                DELIVERED
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&header_pairs(&[]), DELIVERED),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn the_webhook_id_header_is_the_delivery_id() {
        let headers = header_pairs(&[(
            "Outreach-Webhook-ID",
            "6f1d2c9e-8b1a-4c55-9a7e-3d2f1b0c9e8a",
        )]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: DELIVERED.as_bytes(),
        };
        assert_eq!(
            delivery_id_of(PROVIDER, &request).as_deref(),
            Some("6f1d2c9e-8b1a-4c55-9a7e-3d2f1b0c9e8a")
        );
    }
}
