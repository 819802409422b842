//! HubSpot Webhooks API (docs/providers.md, "HubSpot").
//!
//! Signature v3: `X-HubSpot-Signature-v3` is the base64 of
//! HMAC-SHA256(app client secret, method + URI + body + timestamp), with the
//! timestamp (epoch milliseconds) in `X-HubSpot-Request-Timestamp`;
//! requests older than 5 minutes are rejected (HubSpot's own client
//! libraries use `MAX_ALLOWED_TIMESTAMP = 300000`). The older v1/v2
//! signatures carry no timestamp and are not accepted.
//!
//! A delivery is a JSON array of CRM events (`subscriptionType` such as
//! `contact.propertyChange`, with `objectId`, `eventId`, `occurredAt` in
//! epoch ms, and for property changes `propertyName` / `propertyValue`).
//! HubSpot's webhooks say nothing about individual emails, so outcomes are
//! keyed by the CRM object: `contact:{objectId}` or `deal:{objectId}`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use sextant_domain::send::OutcomeKind;
use sextant_domain::values::Provider;

use super::{
    base64_digest, header, hmac_sha256, id, outcome, parse, text, time, unusable, verify_base64,
    Mapped, SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Hubspot;
pub(super) const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
pub(super) const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// Reject requests whose timestamp is more than 5 minutes away.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

pub(super) fn verify(
    request: &WebhookRequest<'_>,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let signature = header(request.headers, SIGNATURE_HEADER).ok_or(SignatureError::Missing)?;
    let timestamp = header(request.headers, TIMESTAMP_HEADER).ok_or(SignatureError::Missing)?;
    let sent_ms: i64 = timestamp.parse().map_err(|_| SignatureError::Invalid)?;
    let skew = now
        .timestamp_millis()
        .checked_sub(sent_ms)
        .and_then(i64::checked_abs)
        .ok_or(SignatureError::Stale)?;
    if skew > MAX_SKEW_MS {
        return Err(SignatureError::Stale);
    }
    let method = request.method.to_ascii_uppercase();
    // HubSpot signs the URI with some reserved characters decoded; accept
    // the URL as received and with those characters decoded.
    let decoded = decode_reserved(request.url);
    let candidates = if decoded == request.url {
        vec![request.url.to_owned()]
    } else {
        vec![request.url.to_owned(), decoded]
    };
    let matches = candidates.iter().any(|uri| {
        let mac = hmac_sha256(
            secret,
            &[
                method.as_bytes(),
                uri.as_bytes(),
                request.body,
                timestamp.as_bytes(),
            ],
        );
        verify_base64(mac, signature).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// The URL-encoded characters HubSpot's v3 instructions say to decode
/// before signing.
fn decode_reserved(url: &str) -> String {
    const TABLE: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = url.to_owned();
    for (encoded, plain) in TABLE {
        out = out
            .replace(encoded, plain)
            .replace(&encoded.to_ascii_lowercase(), plain);
    }
    out
}

pub(super) fn sign(
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let timestamp = now.timestamp_millis().to_string();
    let method = method.to_ascii_uppercase();
    let signature = base64_digest(hmac_sha256(
        secret,
        &[
            method.as_bytes(),
            url.as_bytes(),
            body,
            timestamp.as_bytes(),
        ],
    ));
    vec![
        ("X-HubSpot-Signature-v3".to_owned(), signature),
        ("X-HubSpot-Request-Timestamp".to_owned(), timestamp),
    ]
}

/// A batch's `eventId`: the id itself for one event, a digest of the sorted
/// ids for several. (`attemptNumber` changes between retries, so a hash of
/// the body would not recognize a retry.)
pub(super) fn delivery_id(request: &WebhookRequest<'_>) -> Option<String> {
    let value = parse(request.body).ok()?;
    let events = events(&value).ok()?;
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| id(e, &["eventId"]))
        .collect::<Option<Vec<_>>>()?;
    match ids.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            ids.sort();
            ids.dedup();
            let digest = Sha256::digest(ids.join(",").as_bytes());
            Some(format!("events:{}", &hex::encode(digest)[..32]))
        }
    }
}

fn events(value: &Value) -> Result<Vec<&Value>, Unmappable> {
    match value {
        Value::Array(items) => Ok(items.iter().collect()),
        Value::Object(_) => Ok(vec![value]),
        _ => Err(Unmappable::Malformed("expected an array of events".into())),
    }
}

const OBJECTS: [&str; 9] = [
    "contact",
    "company",
    "deal",
    "ticket",
    "product",
    "line_item",
    "conversation",
    "object",
    "event",
];
const ACTIONS: [&str; 9] = [
    "creation",
    "deletion",
    "propertyChange",
    "privacyDeletion",
    "merge",
    "associationChange",
    "restore",
    "newMessage",
    "completed",
];

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let value = parse(body)?;
    let mut mapped = Vec::new();
    for event in events(&value)? {
        if !event.is_object() {
            return Err(Unmappable::Malformed(
                "an event that is not an object".into(),
            ));
        }
        mapped.extend(map_event(event)?);
    }
    Ok(mapped)
}

fn map_event(event: &Value) -> Result<Option<Mapped>, Unmappable> {
    let subscription = text(event, &["subscriptionType"])
        .ok_or_else(|| Unmappable::Malformed("an event without subscriptionType".into()))?;
    let Some((object, action)) = subscription
        .split_once('.')
        .filter(|(o, a)| OBJECTS.contains(o) && ACTIONS.contains(a))
    else {
        return Err(Unmappable::UnknownEvent(subscription));
    };
    if action != "propertyChange" {
        return Ok(None);
    }
    // Generic `object.*` events name the object type by id: 0-1 contacts,
    // 0-3 deals.
    let object = match (object, text(event, &["objectTypeId"]).as_deref()) {
        ("object", Some("0-1")) => "contact",
        ("object", Some("0-3")) => "deal",
        (other, _) => other,
    };
    let property = text(event, &["propertyName"]).unwrap_or_default();
    let value = text(event, &["propertyValue"]).unwrap_or_default();
    let kind = match (
        object,
        property.as_str(),
        value.to_ascii_lowercase().as_str(),
    ) {
        ("contact", "lifecyclestage", "customer") => OutcomeKind::Converted,
        ("contact", "hs_email_optout", "true") => OutcomeKind::Unsubscribed,
        ("contact", "engagements_last_meeting_booked", v) if !v.is_empty() => {
            OutcomeKind::MeetingBooked
        }
        ("deal", "dealstage", "closedwon") => OutcomeKind::Converted,
        _ => return Ok(None),
    };
    let object_id =
        id(event, &["objectId"]).ok_or_else(|| unusable("an event without objectId"))?;
    let at = time(event, &["occurredAt"]).ok_or_else(|| unusable("an event without occurredAt"))?;
    Ok(Some(outcome(
        PROVIDER,
        format!("{object}:{object_id}"),
        id(event, &["eventId"]),
        kind,
        at,
    )))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const BATCH: &str = include_str!("fixtures/hubspot/batch.json");
    const MEETING: &str = include_str!("fixtures/hubspot/meeting_booked.json");
    const OPTOUT: &str = include_str!("fixtures/hubspot/object_property_change.json");

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn a_batch_maps_lifecycle_and_deal_stage_changes_to_conversions() {
        let items = mapped(BATCH);
        let outcomes = outcomes(&items);
        assert_eq!(outcomes.len(), 2, "{items:?}");
        assert_eq!(outcomes[0].provider, "hubspot");
        assert_eq!(outcomes[0].provider_message_id, "contact:1246965");
        assert_eq!(outcomes[0].kind, OutcomeKind::Converted);
        assert_eq!(outcomes[0].provider_event_id.as_deref(), Some("3816279341"));
        assert_eq!(
            outcomes[0].occurred_at.timestamp_millis(),
            1_462_216_407_945
        );
        assert_eq!(outcomes[1].provider_message_id, "deal:9876543");
        assert_eq!(outcomes[1].kind, OutcomeKind::Converted);
    }

    #[test]
    fn meetings_and_opt_outs_map_from_contact_properties() {
        let items = mapped(MEETING);
        let meeting = only_outcome(&items);
        assert_eq!(meeting.kind, OutcomeKind::MeetingBooked);
        assert_eq!(meeting.provider_message_id, "contact:1246965");
        let items = mapped(OPTOUT);
        let optout = only_outcome(&items);
        assert_eq!(optout.kind, OutcomeKind::Unsubscribed);
        assert_eq!(optout.provider_event_id.as_deref(), Some("4013472200"));
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        let unknown = BATCH.replace("deal.propertyChange", "deal.teleported");
        assert!(matches!(
            map_of(PROVIDER, unknown.as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "deal.teleported"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"[{"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(PROVIDER, b"[1]"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(mapped("[]").is_empty());
    }

    fn check(headers: &axum::http::HeaderMap, url: &str, body: &str) -> Result<(), SignatureError> {
        let request = WebhookRequest {
            method: "POST",
            url,
            headers,
            body: body.as_bytes(),
        };
        verify_of(PROVIDER, &request, SECRET, now())
    }

    #[test]
    fn v3_signatures_are_checked() {
        let good = headers_of(&sign(SECRET, "POST", URL, BATCH.as_bytes(), now()));
        assert_eq!(check(&good, URL, BATCH), Ok(()));
        assert_eq!(
            check(&good, URL, &BATCH.replace("closedwon", "closedlost")),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&good, "https://other.example/w", BATCH),
            Err(SignatureError::Invalid)
        );
        let other_secret = headers_of(&sign("another", "POST", URL, BATCH.as_bytes(), now()));
        assert_eq!(
            check(&other_secret, URL, BATCH),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&header_pairs(&[]), URL, BATCH),
            Err(SignatureError::Missing)
        );
        let garbage = header_pairs(&[
            ("x-hubspot-signature-v3", "not base64!"),
            ("x-hubspot-request-timestamp", "1748779200000"),
        ]);
        assert_eq!(check(&garbage, URL, BATCH), Err(SignatureError::Invalid));
    }

    #[test]
    fn requests_older_than_five_minutes_are_stale() {
        let old = headers_of(&sign(
            SECRET,
            "POST",
            URL,
            BATCH.as_bytes(),
            now() - Duration::minutes(6),
        ));
        assert_eq!(check(&old, URL, BATCH), Err(SignatureError::Stale));
        let recent = headers_of(&sign(
            SECRET,
            "POST",
            URL,
            BATCH.as_bytes(),
            now() - Duration::minutes(4),
        ));
        assert_eq!(check(&recent, URL, BATCH), Ok(()));
        let future = headers_of(&sign(
            SECRET,
            "POST",
            URL,
            BATCH.as_bytes(),
            now() + Duration::minutes(6),
        ));
        assert_eq!(check(&future, URL, BATCH), Err(SignatureError::Stale));
        let absurd = header_pairs(&[
            ("x-hubspot-signature-v3", "AAAA"),
            ("x-hubspot-request-timestamp", "-9223372036854775808"),
        ]);
        assert_eq!(check(&absurd, URL, BATCH), Err(SignatureError::Stale));
    }

    #[test]
    fn the_uri_is_also_tried_with_reserved_characters_decoded() {
        let encoded = "https://hooks.sextant.example/webhooks/hubspot?client=c%3A1";
        let decoded = "https://hooks.sextant.example/webhooks/hubspot?client=c:1";
        let signed_decoded = headers_of(&sign(SECRET, "POST", decoded, BATCH.as_bytes(), now()));
        assert_eq!(check(&signed_decoded, encoded, BATCH), Ok(()));
    }

    #[test]
    fn the_delivery_id_comes_from_the_event_ids() {
        let headers = header_pairs(&[]);
        let id_of = |body: &str| {
            delivery_id_of(
                PROVIDER,
                &WebhookRequest {
                    method: "POST",
                    url: URL,
                    headers: &headers,
                    body: body.as_bytes(),
                },
            )
        };
        assert_eq!(id_of(MEETING).as_deref(), Some("4013472101"));
        let batch = id_of(BATCH).expect("a batch has a delivery id");
        assert!(batch.starts_with("events:"), "{batch}");
        // A retry carries another attemptNumber but the same events.
        assert_eq!(
            id_of(&BATCH.replace("\"attemptNumber\": 0", "\"attemptNumber\": 1")),
            Some(batch)
        );
        assert_eq!(id_of("not json"), None);
    }
}
