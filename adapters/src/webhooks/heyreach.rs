//! HeyReach (LinkedIn) webhooks (docs/providers.md, "HeyReach").
//!
//! HeyReach signs nothing; the client's secret must accompany the call
//! (`x-sextant-webhook-secret` header or `secret` query parameter on the
//! registered URL). Event types are documented (`CONNECTION_REQUEST_SENT`,
//! `CONNECTION_REQUEST_ACCEPTED`, `MESSAGE_SENT`, `MESSAGE_REPLY_RECEIVED`,
//! `EVERY_MESSAGE_REPLY_RECEIVED`, `INMAIL_SENT`, `INMAIL_REPLY_RECEIVED`,
//! `FOLLOW_SENT`, `LIKED_POST`, `VIEWED_PROFILE`, `CAMPAIGN_COMPLETED`,
//! `LEAD_TAG_UPDATED`), but no payload schema was found in HeyReach's public
//! documentation; the fields are read leniently under the names integrators
//! report (`eventType`/`event_type`, `lead`/`leadProfile`, `campaign.id`/
//! `campaignId`, `timestamp`).
//!
//! LinkedIn touches: `{campaign_id}:{lead}:connection` (request sent →
//! accepted), `:message` (first message → replies) and `:inmail`, with
//! `{lead}` the HeyReach lead id or else a hash of the profile URL / email.

use serde_json::Value;

use sextant_domain::send::input::{LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind};
use sextant_domain::values::Provider;

use super::{
    first_id, first_text, first_time, id, lead_token, outcome, parse_object, provider_lead_ref,
    reply, text, unusable, verify_shared_secret, Mapped, SignatureError, Unmappable,
    WebhookRequest,
};

const PROVIDER: Provider = Provider::Heyreach;

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    verify_shared_secret(request, secret)
}

/// HeyReach documents no delivery or event id.
pub(super) fn delivery_id(_request: &WebhookRequest<'_>) -> Option<String> {
    None
}

#[derive(Clone, Copy)]
enum Touch {
    Connection,
    Message,
    Inmail,
}

impl Touch {
    fn suffix(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Message => "message",
            Self::Inmail => "inmail",
        }
    }
}

enum Event {
    Send(Touch),
    Accepted,
    Reply(Touch),
    Nothing,
}

fn event(name: &str) -> Option<Event> {
    Some(match name {
        "CONNECTION_REQUEST_SENT" => Event::Send(Touch::Connection),
        "CONNECTION_REQUEST_ACCEPTED" => Event::Accepted,
        "MESSAGE_SENT" => Event::Send(Touch::Message),
        "MESSAGE_REPLY_RECEIVED" | "EVERY_MESSAGE_REPLY_RECEIVED" => Event::Reply(Touch::Message),
        "INMAIL_SENT" => Event::Send(Touch::Inmail),
        "INMAIL_REPLY_RECEIVED" => Event::Reply(Touch::Inmail),
        "FOLLOW_SENT" | "LIKED_POST" | "VIEWED_PROFILE" | "CAMPAIGN_COMPLETED"
        | "LEAD_TAG_UPDATED" => Event::Nothing,
        _ => return None,
    })
}

const LEAD: [&str; 2] = ["lead", "leadProfile"];

fn lead_field(v: &Value, fields: &[&str]) -> Option<String> {
    LEAD.iter()
        .flat_map(|lead| fields.iter().map(move |f| [*lead, *f]))
        .find_map(|path| text(v, &path))
}

/// `firstName lastName`, or whichever of them is given, or `fullName`.
fn lead_name(v: &Value) -> Option<String> {
    let parts: Vec<String> = [&["firstName", "first_name"][..], &["lastName", "last_name"]]
        .iter()
        .filter_map(|fields| lead_field(v, fields))
        .collect();
    if parts.is_empty() {
        lead_field(v, &["fullName", "full_name", "name"])
    } else {
        Some(parts.join(" "))
    }
}

fn lead_email(v: &Value) -> Option<String> {
    lead_field(v, &["emailAddress", "email_address", "email"])
}

fn lead_id(v: &Value) -> Option<String> {
    LEAD.iter().find_map(|lead| id(v, &[*lead, "id"]))
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let name = first_text(&v, &[&["eventType"], &["event_type"], &["type"]])
        .ok_or_else(|| Unmappable::Malformed("no eventType".into()))?
        .to_ascii_uppercase();
    let event = event(&name).ok_or_else(|| Unmappable::UnknownEvent(name.clone()))?;
    let touch = match event {
        Event::Nothing => return Ok(Vec::new()),
        Event::Send(touch) | Event::Reply(touch) => touch,
        Event::Accepted => Touch::Connection,
    };
    let message_id = touch_id(&v, touch)?;
    let at = first_time(&v, &[&["timestamp"], &["createdAt"], &["created_at"]])
        .ok_or_else(|| unusable("no timestamp"))?;
    Ok(vec![match event {
        Event::Nothing => return Ok(Vec::new()),
        Event::Accepted => outcome(PROVIDER, message_id, None, OutcomeKind::Accepted, at),
        Event::Reply(_) => reply(PROVIDER, message_id, None, None, at),
        Event::Send(_) => {
            let email = lead_email(&v);
            let lead_ref = match &email {
                Some(_) => None,
                None => lead_id(&v)
                    .and_then(|lead| provider_lead_ref(PROVIDER, "lead", &lead))
                    .or_else(|| {
                        lead_field(&v, &["linkedInUrl", "profileUrl", "profile_url"])
                            .and_then(|url| provider_lead_ref(PROVIDER, "li", &lead_token(&url)))
                    }),
            };
            if email.is_none() && lead_ref.is_none() {
                return Err(unusable("a send without the lead's email, id or profile"));
            }
            Mapped::Send(SendInput {
                provider: PROVIDER.as_str().to_owned(),
                provider_message_id: message_id,
                lead_ref,
                // The name and profile URL are kept with the lead's identity
                // (never in the log), so that erasing the lead finds what
                // else names it by them.
                lead: LeadInput {
                    email,
                    name: lead_name(&v),
                    title: lead_field(&v, &["position", "headline"]),
                    profile_url: lead_field(&v, &["linkedInUrl", "profileUrl", "profile_url"]),
                    ..LeadInput::default()
                },
                channel: Channel::Linkedin,
                campaign_id: campaign_id(&v),
                step: None,
                experiment_id: None,
                variant: None,
                content: Default::default(),
                context_version: None,
                agent: None,
                prompt_version: None,
                resource: None,
                sent_at: at,
            })
        }
    }])
}

fn campaign_id(v: &Value) -> Option<String> {
    first_id(v, &[&["campaign", "id"], &["campaignId"], &["campaign_id"]])
}

fn touch_id(v: &Value, touch: Touch) -> Result<String, Unmappable> {
    let campaign = campaign_id(v).ok_or_else(|| unusable("no campaign id"))?;
    let lead = lead_id(v)
        .or_else(|| {
            lead_field(v, &["linkedInUrl", "profileUrl", "profile_url"])
                .or_else(|| lead_email(v))
                .map(|personal| lead_token(&personal))
        })
        .ok_or_else(|| unusable("no lead id, profile URL or email"))?;
    Ok(format!("{campaign}:{lead}:{}", touch.suffix()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const SENT: &str = include_str!("fixtures/heyreach/connection_request_sent.json");
    const ACCEPTED: &str = include_str!("fixtures/heyreach/connection_request_accepted.json");
    const MESSAGE: &str = include_str!("fixtures/heyreach/message_sent.json");
    const REPLY: &str = include_str!("fixtures/heyreach/message_reply_received.json");

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn connection_requests_are_linkedin_sends_and_acceptance_is_accepted() {
        let items = mapped(SENT);
        let send = only_send(&items);
        assert_eq!(send.channel, Channel::Linkedin);
        assert_eq!(send.provider_message_id, "123:ld_88231:connection");
        assert_eq!(send.lead.email.as_deref(), Some("jane@company.example"));
        assert_eq!(send.lead.name.as_deref(), Some("Jane Smith"));
        assert_eq!(
            send.lead.profile_url.as_deref(),
            Some("https://linkedin.com/in/janesmith")
        );
        assert_eq!(send.campaign_id.as_deref(), Some("123"));
        let items = mapped(ACCEPTED);
        let accepted = only_outcome(&items);
        assert_eq!(accepted.kind, OutcomeKind::Accepted);
        assert_eq!(accepted.provider_message_id, send.provider_message_id);
        assert_eq!(accepted.occurred_at, ts("2026-05-26T12:00:00Z"));
    }

    #[test]
    fn messages_are_sends_and_replies_land_on_them() {
        let items = mapped(MESSAGE);
        let send = only_send(&items);
        assert_eq!(send.provider_message_id, "123:ld_88231:message");
        let items = mapped(REPLY);
        let reply = only_outcome(&items);
        assert_eq!(reply.kind, OutcomeKind::Replied);
        assert_eq!(reply.provider_message_id, "123:ld_88231:message");
        let every = REPLY.replace("MESSAGE_REPLY_RECEIVED", "every_message_reply_received");
        assert_eq!(only_outcome(&mapped(&every)).kind, OutcomeKind::Replied);
    }

    #[test]
    fn leads_without_ids_are_named_by_a_hash_never_by_their_url() {
        let body = r#"{"event_type":"connection_request_accepted","timestamp":"2026-05-26T12:00:00Z",
            "campaignId":9,"lead":{"profile_url":"https://linkedin.com/in/janesmith"}}"#;
        let items = mapped(body);
        let accepted = only_outcome(&items);
        assert!(accepted.provider_message_id.starts_with("9:h"));
        assert!(!accepted.provider_message_id.contains("linkedin"));
    }

    #[test]
    fn documented_events_about_no_send_map_to_nothing() {
        for name in [
            "FOLLOW_SENT",
            "LIKED_POST",
            "VIEWED_PROFILE",
            "CAMPAIGN_COMPLETED",
        ] {
            assert!(
                mapped(&SENT.replace("CONNECTION_REQUEST_SENT", name)).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, SENT.replace("CONNECTION_REQUEST_SENT", "POKE_SENT").as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "POKE_SENT"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"eventType\":}"),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(
                PROVIDER,
                br#"{"eventType":"MESSAGE_SENT","timestamp":"2026-05-26T12:00:00Z"}"#
            ),
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
        assert_eq!(check(&none, &format!("{URL}&secret={SECRET}")), Ok(()));
        assert_eq!(
            check(&header_pairs(&[("x-sextant-webhook-secret", SECRET)]), URL),
            Ok(())
        );
        assert_eq!(
            check(&header_pairs(&[("x-sextant-webhook-secret", "guess")]), URL),
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
