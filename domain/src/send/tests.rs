//! Given/when/then tests of the Send aggregate, and the pure rules beside it.

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;
use uuid::Uuid;

use super::input::{OutcomeInput, SendInput};
use super::*;

fn facts() -> SendFacts {
    SendFacts {
        provider: "smartlead".into(),
        provider_message_id: "msg-1".into(),
        lead_ref: "lr_0123456789abcdef".into(),
        lead: LeadSnapshot::default(),
        channel: Channel::Email,
        campaign_id: None,
        step: Some(1),
        experiment_id: None,
        variant: None,
        content: ContentFeatures::default(),
        context_version: Some(3),
        agent: None,
        prompt_version: None,
        resource: None,
        sent_at: Utc
            .with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
            .single()
            .expect("an unambiguous time"),
    }
}

fn outcome(kind: OutcomeKind) -> OutcomeFacts {
    OutcomeFacts {
        provider: "smartlead".into(),
        provider_message_id: "msg-1".into(),
        kind,
        intent: None,
        bounce_type: None,
        provider_event_id: None,
        occurred_at: Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .single()
            .expect("an unambiguous time"),
    }
}

type SendTest = TestFramework<Send>;

#[test]
fn a_send_is_recorded_once() {
    SendTest::with(())
        .given_no_previous_events()
        .when(SendCommand::RecordSend(Box::new(facts())))
        .then_expect_events(vec![SendEvent::SendRecorded(Box::new(facts()))]);
    SendTest::with(())
        .given(vec![SendEvent::SendRecorded(Box::new(facts()))])
        .when(SendCommand::RecordSend(Box::new(facts())))
        .then_expect_error(SendError::DuplicateSend);
}

#[test]
fn each_outcome_kind_counts_once_per_send() {
    SendTest::with(())
        .given(vec![
            SendEvent::SendRecorded(Box::new(facts())),
            SendEvent::OutcomeRecorded(outcome(OutcomeKind::Opened)),
        ])
        .when(SendCommand::RecordOutcome(outcome(OutcomeKind::Opened)))
        .then_expect_error(SendError::DuplicateOutcome("opened"));
    SendTest::with(())
        .given(vec![
            SendEvent::SendRecorded(Box::new(facts())),
            SendEvent::OutcomeRecorded(outcome(OutcomeKind::Opened)),
        ])
        .when(SendCommand::RecordOutcome(outcome(OutcomeKind::Replied)))
        .then_expect_events(vec![SendEvent::OutcomeRecorded(outcome(
            OutcomeKind::Replied,
        ))]);
}

fn reply(intent: Option<ReplyIntent>) -> OutcomeFacts {
    OutcomeFacts {
        intent,
        ..outcome(OutcomeKind::Replied)
    }
}

#[test]
fn a_reply_recorded_without_its_intent_gets_it_once_when_it_comes_again_classified() {
    SendTest::with(())
        .given(vec![
            SendEvent::SendRecorded(Box::new(facts())),
            SendEvent::OutcomeRecorded(reply(None)),
        ])
        .when(SendCommand::RecordOutcome(reply(Some(
            ReplyIntent::Interested,
        ))))
        .then_expect_events(vec![SendEvent::ReplyClassified(reply(Some(
            ReplyIntent::Interested,
        )))]);
    // Classified once: a second classification is a repeat.
    SendTest::with(())
        .given(vec![
            SendEvent::OutcomeRecorded(reply(None)),
            SendEvent::ReplyClassified(reply(Some(ReplyIntent::Interested))),
        ])
        .when(SendCommand::RecordOutcome(reply(Some(
            ReplyIntent::NotInterested,
        ))))
        .then_expect_error(SendError::DuplicateOutcome("replied"));
    // A reply that came with its intent is not classified again.
    SendTest::with(())
        .given(vec![SendEvent::OutcomeRecorded(reply(Some(
            ReplyIntent::Question,
        )))])
        .when(SendCommand::RecordOutcome(reply(Some(
            ReplyIntent::Interested,
        ))))
        .then_expect_error(SendError::DuplicateOutcome("replied"));
    // And a reply without an intent, again, is a repeat.
    SendTest::with(())
        .given(vec![SendEvent::OutcomeRecorded(reply(None))])
        .when(SendCommand::RecordOutcome(reply(None)))
        .then_expect_error(SendError::DuplicateOutcome("replied"));
}

#[test]
fn an_outcome_before_its_send_is_kept_and_the_send_still_arrives() {
    SendTest::with(())
        .given_no_previous_events()
        .when(SendCommand::RecordOutcome(outcome(OutcomeKind::Delivered)))
        .then_expect_events(vec![SendEvent::OutcomeRecorded(outcome(
            OutcomeKind::Delivered,
        ))]);
    SendTest::with(())
        .given(vec![SendEvent::OutcomeRecorded(outcome(
            OutcomeKind::Delivered,
        ))])
        .when(SendCommand::RecordSend(Box::new(facts())))
        .then_expect_events(vec![SendEvent::SendRecorded(Box::new(facts()))]);
}

#[test]
fn send_ids_derive_from_client_provider_and_message_id() {
    let a = Uuid::from_u128(1);
    let b = Uuid::from_u128(2);
    assert_eq!(send_id(a, "smartlead", "m1"), send_id(a, "smartlead", "m1"));
    assert_ne!(send_id(a, "smartlead", "m1"), send_id(b, "smartlead", "m1"));
    assert_ne!(send_id(a, "smartlead", "m1"), send_id(a, "instantly", "m1"));
    assert_eq!(send_id(a, "smartlead", "m1").get_version_num(), 8);
}

#[test]
fn tiers_open_channels_in_order() {
    use Channel::*;
    assert!(Tier::Cold.allows(Email));
    assert!(!Tier::Cold.allows(Linkedin));
    assert!(Tier::Cool.allows(Linkedin) && !Tier::Cool.allows(Voice));
    assert!(Tier::Warm.allows(Voice) && !Tier::Warm.allows(Sms) && !Tier::Warm.allows(Mail));
    assert!(Tier::Hot.allows(Sms) && Tier::Hot.allows(Mail) && Tier::Hot.allows(Email));
}

#[test]
fn unsubscribes_hard_bounces_and_complaints_suppress_the_lead() {
    let mut replied = outcome(OutcomeKind::Replied);
    assert_eq!(suppression_reason(&replied), None);
    replied.intent = Some(ReplyIntent::Unsubscribe);
    assert_eq!(
        suppression_reason(&replied),
        Some(SuppressionReason::Unsubscribed)
    );
    let mut bounced = outcome(OutcomeKind::Bounced);
    bounced.bounce_type = Some(BounceType::Soft);
    assert_eq!(suppression_reason(&bounced), None);
    bounced.bounce_type = Some(BounceType::Hard);
    assert_eq!(
        suppression_reason(&bounced),
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        suppression_reason(&outcome(OutcomeKind::Unsubscribed)),
        Some(SuppressionReason::Unsubscribed)
    );
    assert_eq!(
        suppression_reason(&outcome(OutcomeKind::Complained)),
        Some(SuppressionReason::Complaint)
    );
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
        .single()
        .expect("an unambiguous time")
}

#[test]
fn a_send_input_is_split_into_facts_for_the_log_and_personal_parts() {
    let input: SendInput = serde_json::from_value(json!({
        "provider": "smartlead", "provider_message_id": "msg-123",
        "lead": {"email": " Ana@Example.com ", "industry": "fintech", "company_size": "11-50",
                 "seniority": "vp", "title": "VP Finance", "region": "AU", "tier": "warm", "score": 72,
                 "name": "Ana Lima", "profile_url": "https://www.linkedin.com/in/ana-lima"},
        "channel": "email", "campaign_id": "q4-fintech", "step": 1,
        "experiment_id": null, "variant": null,
        "content": {"subject": "Quick question on month-end close?", "body_words": 84,
                    "personalized": true, "cta": "meeting", "angle": "compliance"},
        "context_version": 7, "agent": "email_strategist", "prompt_version": "2.3",
        "resource": "sam@acme-mail.com", "sent_at": "2026-11-18T09:12:00Z"
    }))
    .expect("the documented example parses");
    let (facts, personal) = input
        .into_facts(now(), |email| format!("lr_{}", email.len()))
        .expect("the documented example is valid");
    assert_eq!(personal.email.as_deref(), Some("ana@example.com"));
    assert_eq!(
        personal.subject.as_deref(),
        Some("Quick question on month-end close?")
    );
    assert_eq!(facts.lead_ref, "lr_15");
    assert_eq!(facts.content.subject_words, Some(5));
    assert_eq!(facts.content.subject_question, Some(true));
    assert_eq!(personal.name.as_deref(), Some("Ana Lima"));
    assert_eq!(personal.title.as_deref(), Some("VP Finance"));
    assert_eq!(
        personal.profile_url.as_deref(),
        Some("https://www.linkedin.com/in/ana-lima")
    );
    assert_eq!(facts.lead.seniority.as_deref(), Some("vp"));
    let logged = serde_json::to_string(&facts).expect("facts serialize");
    for personal in ["ana@", "month-end", "Ana Lima", "VP Finance", "ana-lima"] {
        assert!(!logged.contains(personal), "{personal}: {logged}");
    }
}

#[test]
fn a_send_recorded_with_a_title_in_the_lead_still_reads() {
    let snapshot: LeadSnapshot =
        serde_json::from_value(json!({"industry": "fintech", "title": "VP Finance"}))
            .expect("a snapshot of an earlier send reads");
    assert_eq!(snapshot.industry.as_deref(), Some("fintech"));
}

#[test]
fn invalid_items_name_their_field() {
    let base = json!({"provider": "smartlead", "provider_message_id": "m", "lead_ref": "lr_0123456789",
                      "channel": "email", "sent_at": "2026-11-18T09:12:00Z"});
    let with = |field: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[field] = value;
        serde_json::from_value::<SendInput>(v).map_err(|e| e.to_string())
    };
    let check = |field: &str, value: serde_json::Value, expected: &str| {
        let input = with(field, value).expect("the input parses");
        let err = input
            .into_facts(now(), |_| String::new())
            .err()
            .map(|e| e.field);
        assert_eq!(err.as_deref(), Some(expected), "{field}");
    };
    check("sent_at", json!("2027-01-01T00:00:00Z"), "sent_at");
    // Before the window, and before what Postgres `timestamptz` holds.
    check("sent_at", json!("1999-12-31T23:59:59Z"), "sent_at");
    check("sent_at", json!("0001-01-01T00:00:00Z"), "sent_at");
    check("sent_at", json!("-5000-01-01T00:00:00Z"), "sent_at");
    check("provider", json!("Smart Lead"), "provider");
    check("provider_message_id", json!(""), "provider_message_id");
    check("lead_ref", json!("ana@example.com"), "lead_ref");
    check("step", json!(0), "step");
    assert!(with("channel", json!("pigeon")).is_err());
    let no_lead =
        serde_json::from_value::<SendInput>(json!({"provider": "x", "provider_message_id": "m",
        "channel": "email", "sent_at": "2026-11-18T09:12:00Z"}))
        .expect("a send without a lead parses");
    assert_eq!(
        no_lead
            .into_facts(now(), |_| String::new())
            .err()
            .map(|e| e.field),
        Some("lead".to_owned())
    );
    let bad_email =
        serde_json::from_value::<SendInput>(json!({"provider": "x", "provider_message_id": "m",
        "lead": {"email": "not-an-email"}, "channel": "email", "sent_at": "2026-11-18T09:12:00Z"}))
        .expect("a send with a bad email parses");
    assert_eq!(
        bad_email
            .into_facts(now(), |_| String::new())
            .err()
            .map(|e| e.field),
        Some("lead.email".to_owned())
    );
}

#[test]
fn outcome_inputs_check_their_kind_specific_fields() {
    let parse = |v: serde_json::Value| {
        serde_json::from_value::<OutcomeInput>(v).expect("the outcome parses")
    };
    let ok = parse(
        json!({"provider": "smartlead", "provider_message_id": "msg-123", "provider_event_id": "evt-9",
        "kind": "replied", "intent": "interested", "occurred_at": "2026-11-18T15:40:00Z"}),
    );
    assert!(ok.into_facts(now()).is_ok());
    let wrong = parse(
        json!({"provider": "smartlead", "provider_message_id": "m", "kind": "opened",
        "intent": "interested", "occurred_at": "2026-11-18T15:40:00Z"}),
    );
    assert_eq!(
        wrong.into_facts(now()).err().map(|e| e.field.clone()),
        Some("intent".to_owned())
    );
    let future = parse(
        json!({"provider": "smartlead", "provider_message_id": "m", "kind": "opened",
        "occurred_at": "2030-01-01T00:00:00Z"}),
    );
    assert_eq!(
        future.into_facts(now()).err().map(|e| e.field.clone()),
        Some("occurred_at".to_owned())
    );
    let ancient = parse(
        json!({"provider": "smartlead", "provider_message_id": "m", "kind": "opened",
        "occurred_at": "1970-01-01T00:00:00Z"}),
    );
    assert_eq!(
        ancient.into_facts(now()).err().map(|e| e.field.clone()),
        Some("occurred_at".to_owned())
    );
}

#[test]
fn the_time_window_opens_in_2000_and_closes_an_hour_ahead() {
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    };
    let skew = chrono::Duration::minutes(input::MAX_FUTURE_SKEW_MINUTES);
    let now = now();
    assert!(input::check_time(at("2000-01-01T00:00:00Z"), now, skew).is_ok());
    assert!(input::check_time(now + skew, now, skew).is_ok());
    let early = input::check_time(at("1999-12-31T23:59:59Z"), now, skew);
    assert_eq!(
        early,
        Err("must not be before 2000-01-01T00:00:00Z".to_owned())
    );
    assert!(input::check_time(now + skew + chrono::Duration::seconds(1), now, skew).is_err());
}

#[test]
fn an_authorisation_lists_every_reason_to_refuse() {
    let ok = AuthorizationFacts {
        suppressed: false,
        client_suspended: false,
        tier: Tier::Cold,
        channel: Channel::Email,
        cap: Some(50),
        used_today: 49,
    };
    assert!(refusals(&ok).is_empty());
    let everything = AuthorizationFacts {
        suppressed: true,
        client_suspended: true,
        tier: Tier::Cold,
        channel: Channel::Sms,
        cap: Some(50),
        used_today: 50,
    };
    assert_eq!(
        refusals(&everything),
        vec![
            Refusal::ClientSuspended,
            Refusal::Suppressed,
            Refusal::ChannelNotAllowedForTier,
            Refusal::DailyCapReached
        ]
    );
    assert_eq!(
        refusals(&AuthorizationFacts { cap: None, ..ok }),
        vec![Refusal::UnknownResource]
    );
}

fn decide(reasons: Vec<Refusal>) -> DecideAuthorization {
    DecideAuthorization {
        authorization_id: Uuid::from_u128(7),
        lead_ref: "lr_0123456789abcdef0123456789abcdef".into(),
        channel: Channel::Email,
        resource: "ana@agency.example".into(),
        tier: Tier::Hot,
        reasons,
    }
}

#[test]
fn an_authorisation_without_reasons_against_it_is_a_permit_and_is_decided_once() {
    TestFramework::<Authorization>::with(())
        .given_no_previous_events()
        .when(decide(Vec::new()))
        .then_expect_events(vec![AuthorizationEvent::AuthorizationDecided {
            authorization_id: Uuid::from_u128(7),
            lead_ref: "lr_0123456789abcdef0123456789abcdef".into(),
            channel: Channel::Email,
            resource: "ana@agency.example".into(),
            tier: Tier::Hot,
            permit: true,
            reasons: Vec::new(),
        }]);
    TestFramework::<Authorization>::with(())
        .given(vec![decide(Vec::new()).decided()])
        .when(decide(Vec::new()))
        .then_expect_error(AuthorizationError::AlreadyDecided);
}

#[test]
fn an_authorisation_with_a_reason_against_it_is_refused_with_that_reason() {
    let refused = decide(vec![Refusal::Suppressed]).decided();
    assert!(matches!(
        refused,
        AuthorizationEvent::AuthorizationDecided { permit: false, ref reasons, .. }
            if reasons == &[Refusal::Suppressed]
    ));
}

#[test]
fn a_lead_may_be_erased_again_and_each_erasure_is_recorded() {
    let erased = LeadEvent::LeadErased {
        lead_ref: "lr_0123456789abcdef0123456789abcdef".into(),
    };
    TestFramework::<Lead>::with(())
        .given(vec![erased.clone()])
        .when(EraseLead {
            lead_ref: "lr_0123456789abcdef0123456789abcdef".into(),
        })
        .then_expect_events(vec![erased]);
}
