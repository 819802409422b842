//! lemlist webhooks (docs/providers.md, "lemlist").
//!
//! lemlist posts the activity object (`_id`, `type`, `leadId`,
//! `campaignId`, `sequenceId`, `stepId`, `createdAt`, ...) for each event a
//! hook subscribed to (`emailsSent`, `emailsOpened`, `linkedinInviteAccepted`,
//! ...). lemlist documents no signature or secret for webhooks; the client's
//! secret must accompany the call (`x-sextant-webhook-secret` header or
//! `secret` query parameter on the `targetUrl`).
//!
//! The touch is `{campaignId}:{leadId}:{stepId}`, shared by a step's sent,
//! opened, clicked, replied... activities.

use serde_json::Value;

use sextant_domain::send::input::{LeadInput, SendInput};
use sextant_domain::send::{Channel, OutcomeKind, ReplyIntent};
use sextant_domain::values::Provider;

use super::{
    bounce, first_text, id, outcome, parse_object, provider_lead_ref, reply, text, time, unusable,
    verify_shared_secret, Mapped, SignatureError, Unmappable, WebhookRequest,
};

const PROVIDER: Provider = Provider::Lemlist;

pub(super) fn verify(request: &WebhookRequest<'_>, secret: &str) -> Result<(), SignatureError> {
    verify_shared_secret(request, secret)
}

/// The activity's `_id`.
pub(super) fn delivery_id(request: &WebhookRequest<'_>) -> Option<String> {
    let v: Value = serde_json::from_slice(request.body).ok()?;
    id(&v, &["_id"])
}

enum Event {
    Send(Channel),
    Outcome(OutcomeKind),
    Reply(Option<ReplyIntent>),
    Nothing,
}

/// Activity types are plural in the hook types (`emailsOpened`) and singular
/// in the activity object's description (`emailOpened`); both are accepted.
fn event(name: &str) -> Option<Event> {
    use OutcomeKind as K;
    let name = name.strip_prefix("email").map_or_else(
        || name.to_owned(),
        |rest| format!("emails{}", rest.strip_prefix('s').unwrap_or(rest)),
    );
    Some(match name.as_str() {
        "emailsSent" => Event::Send(Channel::Email),
        "emailsOpened" => Event::Outcome(K::Opened),
        "emailsClicked" => Event::Outcome(K::Clicked),
        "emailsReplied" => Event::Reply(None),
        "emailsBounced" => Event::Outcome(K::Bounced),
        "emailsUnsubscribed" => Event::Outcome(K::Unsubscribed),
        "emailsInterested" | "linkedinInterested" => Event::Reply(Some(ReplyIntent::Interested)),
        "emailsNotInterested" | "linkedinNotInterested" => {
            Event::Reply(Some(ReplyIntent::NotInterested))
        }
        "linkedinSent" | "linkedinInviteDone" => Event::Send(Channel::Linkedin),
        "linkedinOpened" => Event::Outcome(K::Opened),
        "linkedinReplied" => Event::Reply(None),
        "linkedinInviteAccepted" => Event::Outcome(K::Accepted),
        // Documented activities that are no touch or no outcome of one, and
        // the lead-state groups (which aggregate the activities above).
        "emailsFailed"
        | "linkedinSendFailed"
        | "linkedinVisitDone"
        | "linkedinVisitFailed"
        | "linkedinFollowDone"
        | "linkedinFollowFailed"
        | "linkedinFollowSkipped"
        | "linkedinInviteFailed"
        | "linkedinEndorseDone"
        | "linkedinEndorseFailed"
        | "linkedinEndorseSkipped"
        | "contacted"
        | "hooked"
        | "attracted"
        | "warmed"
        | "interested"
        | "notInterested" => Event::Nothing,
        other
            if ["whatsapp", "sms", "call", "aircall", "manual", "api"]
                .iter()
                .any(|prefix| other.starts_with(prefix)) =>
        {
            Event::Nothing
        }
        _ => return None,
    })
}

pub(super) fn map(body: &[u8]) -> Result<Vec<Mapped>, Unmappable> {
    let v = parse_object(body)?;
    let name = text(&v, &["type"]).ok_or_else(|| Unmappable::Malformed("no type".into()))?;
    let event = event(&name).ok_or_else(|| Unmappable::UnknownEvent(name.clone()))?;
    if matches!(event, Event::Nothing) {
        return Ok(Vec::new());
    }
    let campaign = id(&v, &["campaignId"]).ok_or_else(|| unusable("no campaignId"))?;
    let lead = id(&v, &["leadId"]).ok_or_else(|| unusable("no leadId"))?;
    let step = id(&v, &["stepId"]).ok_or_else(|| unusable("no stepId"))?;
    let message_id = format!("{campaign}:{lead}:{step}");
    let at = time(&v, &["createdAt"]).ok_or_else(|| unusable("no createdAt"))?;
    let event_id = id(&v, &["_id"]);
    Ok(vec![match event {
        Event::Nothing => return Ok(Vec::new()),
        // lemlist documents no hard/soft distinction.
        Event::Outcome(OutcomeKind::Bounced) => bounce(PROVIDER, message_id, event_id, None, at),
        Event::Outcome(kind) => outcome(PROVIDER, message_id, event_id, kind, at),
        Event::Reply(intent) => reply(PROVIDER, message_id, event_id, intent, at),
        Event::Send(channel) => {
            let email = first_text(&v, &[&["leadEmail"], &["email"]]);
            let lead_ref = match &email {
                Some(_) => None,
                None => provider_lead_ref(PROVIDER, "lead", &lead),
            };
            Mapped::Send(SendInput {
                provider: PROVIDER.as_str().to_owned(),
                provider_message_id: message_id,
                lead_ref,
                lead: LeadInput {
                    email,
                    ..LeadInput::default()
                },
                channel,
                campaign_id: Some(campaign),
                step: None,
                experiment_id: None,
                variant: None,
                content: Default::default(),
                context_version: None,
                agent: None,
                prompt_version: None,
                resource: text(&v, &["sendUserEmail"]),
                sent_at: at,
            })
        }
    }])
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{delivery_id as delivery_id_of, map as map_of, verify as verify_of};
    use super::*;

    const SENT: &str = include_str!("fixtures/lemlist/emails_sent.json");
    const OPENED: &str = include_str!("fixtures/lemlist/emails_opened.json");
    const BOUNCED: &str = include_str!("fixtures/lemlist/emails_bounced.json");
    const ACCEPTED: &str = include_str!("fixtures/lemlist/linkedin_invite_accepted.json");
    const TOUCH: &str = "cam_A1b2C3d4E5:lea_R4t5Y6u7:stp_Q1w2E3";

    fn mapped(body: &str) -> Vec<Mapped> {
        map_of(PROVIDER, body.as_bytes()).expect("the body maps")
    }

    #[test]
    fn emails_sent_maps_to_a_send_on_the_step() {
        let items = mapped(SENT);
        let send = only_send(&items);
        assert_eq!(send.provider, "lemlist");
        assert_eq!(send.provider_message_id, TOUCH);
        assert_eq!(send.lead.email.as_deref(), Some("olivia@agency.example"));
        assert_eq!(send.campaign_id.as_deref(), Some("cam_A1b2C3d4E5"));
        assert_eq!(send.resource.as_deref(), Some("rep@sender.example"));
        assert_eq!(send.sent_at, ts("2025-10-29T09:00:03.120Z"));
    }

    #[test]
    fn activities_land_on_the_step_touch() {
        let items = mapped(OPENED);
        let opened = only_outcome(&items);
        assert_eq!(
            (opened.kind, opened.provider_message_id.as_str()),
            (OutcomeKind::Opened, TOUCH)
        );
        assert_eq!(
            opened.provider_event_id.as_deref(),
            Some("act_6b2e4d3c0f9a8b7c")
        );
        let items = mapped(BOUNCED);
        assert_eq!(only_outcome(&items).kind, OutcomeKind::Bounced);
        let items = mapped(ACCEPTED);
        let accepted = only_outcome(&items);
        assert_eq!(accepted.kind, OutcomeKind::Accepted);
        assert_eq!(
            accepted.provider_message_id,
            "cam_A1b2C3d4E5:lea_R4t5Y6u7:stp_L1i2N3"
        );
        let interested = OPENED.replace("emailsOpened", "emailsInterested");
        assert_eq!(
            only_outcome(&mapped(&interested)).intent,
            Some(ReplyIntent::Interested)
        );
        let singular = OPENED.replace("emailsOpened", "emailReplied");
        assert_eq!(only_outcome(&mapped(&singular)).kind, OutcomeKind::Replied);
        let invite = ACCEPTED.replace("linkedinInviteAccepted", "linkedinInviteDone");
        assert_eq!(only_send(&mapped(&invite)).channel, Channel::Linkedin);
    }

    #[test]
    fn documented_activities_about_no_touch_map_to_nothing() {
        for name in [
            "emailsFailed",
            "linkedinVisitDone",
            "warmed",
            "whatsappMessageSent",
        ] {
            assert!(
                mapped(&OPENED.replace("emailsOpened", name)).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_and_malformed_activities_are_errors() {
        assert!(matches!(
            map_of(PROVIDER, OPENED.replace("emailsOpened", "pigeonSent").as_bytes()),
            Err(Unmappable::UnknownEvent(name)) if name == "pigeonSent"
        ));
        assert!(matches!(
            map_of(PROVIDER, b"{\"type\""),
            Err(Unmappable::Malformed(_))
        ));
        assert!(matches!(
            map_of(
                PROVIDER,
                br#"{"type":"emailsOpened","createdAt":"2025-10-29T11:42:10Z"}"#
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
        assert_eq!(
            check(&header_pairs(&[("x-sextant-webhook-secret", SECRET)]), URL),
            Ok(())
        );
        assert_eq!(check(&none, &format!("{URL}&secret={SECRET}")), Ok(()));
        assert_eq!(
            check(&none, &format!("{URL}&secret=x")),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_activity_id_is_the_delivery_id() {
        let headers = header_pairs(&[]);
        let request = WebhookRequest {
            method: "POST",
            url: URL,
            headers: &headers,
            body: SENT.as_bytes(),
        };
        assert_eq!(
            delivery_id_of(PROVIDER, &request).as_deref(),
            Some("act_5a1d3c2b9e8f7a6b")
        );
    }
}
