//! Given/when/then tests of the ClientContext aggregate.

use cqrs_es::test::TestFramework;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::values::{PermissionMode, Role, UnitInterval};

type ContextTest = TestFramework<ClientContext>;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn text<T: TryFrom<&'static str, Error = String>>(value: &'static str) -> T {
    T::try_from(value).expect("a valid test value")
}

fn unit(value: f64) -> UnitInterval {
    UnitInterval::try_from(value).expect("a value between 0 and 1")
}

fn policy(mode: PermissionMode) -> Policy {
    Policy {
        mode,
        threshold: unit(0.8),
    }
}

/// Proposals of these tests come from a reviewer, who may propose from every
/// source, unless a test says otherwise.
const REVIEWER: Proposer = Proposer::Key(Role::Reviewer);

fn propose(n: u128, source: Source, patch: Value, mode: PermissionMode) -> ContextCommand {
    propose_as(REVIEWER, n, source, patch, mode)
}

fn propose_as(
    proposer: Proposer,
    n: u128,
    source: Source,
    patch: Value,
    mode: PermissionMode,
) -> ContextCommand {
    ContextCommand::ProposeUpdate {
        update_id: id(n),
        source,
        patch,
        base_version: None,
        rationale: text("because"),
        evidence: json!({"sends": 400}),
        confidence: Some(unit(0.9)),
        policy: policy(mode),
        proposer,
    }
}

fn proposed(n: u128, source: Source, patch: Value, base: u64, route: Route) -> ContextEvent {
    ContextEvent::UpdateProposed {
        update_id: id(n),
        source,
        paths: json::touched_paths(&patch),
        patch,
        base_version: base,
        rationale: text("because"),
        evidence: json!({"sends": 400}),
        confidence: Some(unit(0.9)),
        route,
    }
}

/// The document after applying `patches` in turn to an empty one.
fn doc_after(patches: &[&Value]) -> Value {
    let mut doc = json!({});
    for patch in patches {
        json::merge_patch(&mut doc, patch);
    }
    doc
}

fn applied(
    n: u128,
    version: u64,
    patch: Value,
    via: AppliedVia,
    history: &[&Value],
) -> ContextEvent {
    let mut all: Vec<&Value> = history.to_vec();
    all.push(&patch);
    let hash = short_hash(&doc_after(&all));
    ContextEvent::UpdateApplied {
        update_id: id(n),
        version,
        patch: patch.clone(),
        via,
        document_hash: hash,
    }
}

fn industries() -> Value {
    json!({"icp": {"industries": ["fintech"]}})
}

fn tone() -> Value {
    json!({"messaging": {"tone": "plain"}})
}

/// Version 1: industries (manual), version 2: tone (manual).
fn two_versions() -> Vec<ContextEvent> {
    vec![
        proposed(1, Source::Manual, industries(), 0, Route::Direct),
        applied(1, 1, industries(), AppliedVia::Direct, &[]),
        proposed(2, Source::Manual, tone(), 1, Route::Direct),
        applied(2, 2, tone(), AppliedVia::Direct, &[&industries()]),
    ]
}

#[test]
fn the_policy_table_routes_every_pathway_under_every_mode() {
    use PermissionMode::{Autopilot as Auto, CoPilot, Manual};
    use Route::{Autopilot, Direct, Review};
    let sure = Some(unit(0.95));
    let unsure = Some(unit(0.5));
    let cases = [
        (Source::Document, Manual, sure, Direct),
        (Source::Manual, CoPilot, None, Direct),
        (Source::Document, Auto, None, Direct),
        (Source::BestPractices, Manual, sure, Review),
        (Source::BestPractices, CoPilot, None, Direct),
        (Source::BestPractices, Auto, None, Direct),
        (Source::EmailPerformance, Manual, sure, Review),
        (Source::CrmAnalysis, CoPilot, sure, Review),
        (Source::LinkedinPerformance, Auto, sure, Autopilot),
        (Source::ContextRegression, Auto, unsure, Review),
        (Source::EmailPerformance, Auto, None, Review),
        (Source::AgentSuggestion, Manual, sure, Review),
        (Source::AgentSuggestion, CoPilot, sure, Review),
        (Source::AgentSuggestion, Auto, sure, Autopilot),
        (Source::AgentSuggestion, Auto, unsure, Review),
        (Source::CrossClientPatterns, Manual, sure, Review),
        (Source::CrossClientPatterns, CoPilot, sure, Review),
        (Source::CrossClientPatterns, Auto, sure, Review),
    ];
    for (source, mode, confidence, expected) in cases {
        assert_eq!(
            route(source, policy(mode), confidence),
            expected,
            "{source:?} under {mode:?}"
        );
    }
    // The threshold is inclusive.
    assert_eq!(
        route(Source::CrmAnalysis, policy(Auto), Some(unit(0.8))),
        Autopilot
    );
}

#[test]
fn a_human_update_applies_at_once_as_version_one() {
    ContextTest::with(())
        .given_no_previous_events()
        .when(propose(
            1,
            Source::Manual,
            industries(),
            PermissionMode::Manual,
        ))
        .then_expect_events(vec![
            proposed(1, Source::Manual, industries(), 0, Route::Direct),
            applied(1, 1, industries(), AppliedVia::Direct, &[]),
        ]);
}

#[test]
fn an_agent_suggestion_waits_for_a_reviewer_in_co_pilot() {
    ContextTest::with(())
        .given_no_previous_events()
        .when(propose(
            1,
            Source::AgentSuggestion,
            industries(),
            PermissionMode::CoPilot,
        ))
        .then_expect_events(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )]);
}

#[test]
fn a_confident_analysis_applies_under_autopilot_and_is_marked_so() {
    ContextTest::with(())
        .given_no_previous_events()
        .when(propose(
            1,
            Source::EmailPerformance,
            industries(),
            PermissionMode::Autopilot,
        ))
        .then_expect_events(vec![
            proposed(
                1,
                Source::EmailPerformance,
                industries(),
                0,
                Route::Autopilot,
            ),
            applied(1, 1, industries(), AppliedVia::Autopilot, &[]),
        ]);
}

#[test]
fn approving_a_pending_update_applies_it() {
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(ContextCommand::ApproveUpdate {
            update_id: id(1),
            note: None,
        })
        .then_expect_events(vec![
            ContextEvent::UpdateApproved {
                update_id: id(1),
                note: None,
            },
            applied(1, 1, industries(), AppliedVia::Approved, &[]),
        ]);
}

#[test]
fn a_modified_update_applies_the_reviewers_patch_and_keeps_both() {
    let edited = json!({"icp": {"industries": ["fintech", "insurtech"]}});
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(ContextCommand::ModifyUpdate {
            update_id: id(1),
            patch: edited.clone(),
            note: Some(text("insurtech too")),
        })
        .then_expect_events(vec![
            ContextEvent::UpdateModified {
                update_id: id(1),
                patch: edited.clone(),
                paths: vec!["/icp/industries".into()],
                note: Some(text("insurtech too")),
            },
            applied(1, 1, edited, AppliedVia::Modified, &[]),
        ]);
}

#[test]
fn a_rejected_update_records_the_reason() {
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(ContextCommand::RejectUpdate {
            update_id: id(1),
            reason: text("not our market"),
        })
        .then_expect_events(vec![ContextEvent::UpdateRejected {
            update_id: id(1),
            reason: text("not our market"),
        }]);
}

#[test]
fn only_pending_updates_can_be_decided() {
    let mut history = two_versions();
    history.push(proposed(
        3,
        Source::AgentSuggestion,
        json!({"x": 1}),
        2,
        Route::Review,
    ));
    history.push(ContextEvent::UpdateRejected {
        update_id: id(3),
        reason: text("no"),
    });
    for (target, status) in [(1, "applied"), (3, "rejected")] {
        ContextTest::with(())
            .given(history.clone())
            .when(ContextCommand::ApproveUpdate {
                update_id: id(target),
                note: None,
            })
            .then_expect_error(ContextError::NotPending {
                update_id: id(target),
                status,
            });
    }
    ContextTest::with(())
        .given(history)
        .when(ContextCommand::RejectUpdate {
            update_id: id(9),
            reason: text("?"),
        })
        .then_expect_error(ContextError::UnknownUpdate(id(9)));
}

#[test]
fn an_approval_is_refused_as_stale_when_a_path_it_touches_changed_since_its_base() {
    // Proposed against version 1; version 2 changed the tone it also touches.
    let mut history = vec![
        proposed(1, Source::Manual, industries(), 0, Route::Direct),
        applied(1, 1, industries(), AppliedVia::Direct, &[]),
    ];
    let conflicting = json!({"messaging": {"tone": "bold"}, "icp": {"regions": ["AU"]}});
    history.push(proposed(
        5,
        Source::AgentSuggestion,
        conflicting,
        1,
        Route::Review,
    ));
    history.push(proposed(2, Source::Manual, tone(), 1, Route::Direct));
    history.push(applied(2, 2, tone(), AppliedVia::Direct, &[&industries()]));
    ContextTest::with(())
        .given(history)
        .when(ContextCommand::ApproveUpdate {
            update_id: id(5),
            note: None,
        })
        .then_expect_error(ContextError::Stale {
            base: 1,
            conflicts: vec!["/messaging/tone".into()],
        });
}

#[test]
fn an_approval_against_an_untouched_older_base_rebases_and_applies() {
    let regions = json!({"icp": {"regions": ["AU"]}});
    let mut history = vec![
        proposed(1, Source::Manual, industries(), 0, Route::Direct),
        applied(1, 1, industries(), AppliedVia::Direct, &[]),
    ];
    history.push(proposed(
        5,
        Source::AgentSuggestion,
        regions.clone(),
        1,
        Route::Review,
    ));
    history.push(proposed(2, Source::Manual, tone(), 1, Route::Direct));
    history.push(applied(2, 2, tone(), AppliedVia::Direct, &[&industries()]));
    ContextTest::with(())
        .given(history)
        .when(ContextCommand::ApproveUpdate {
            update_id: id(5),
            note: None,
        })
        .then_expect_events(vec![
            ContextEvent::UpdateApproved {
                update_id: id(5),
                note: None,
            },
            applied(
                5,
                3,
                regions,
                AppliedVia::Approved,
                &[&industries(), &tone()],
            ),
        ]);
}

#[test]
fn the_same_patch_cannot_be_pending_twice() {
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(propose(
            2,
            Source::CrmAnalysis,
            industries(),
            PermissionMode::CoPilot,
        ))
        .then_expect_error(ContextError::DuplicatePending(id(1)));
}

#[test]
fn a_rejected_suggestion_returns_only_with_materially_new_evidence() {
    let history = vec![
        proposed(1, Source::AgentSuggestion, industries(), 0, Route::Review),
        ContextEvent::UpdateRejected {
            update_id: id(1),
            reason: text("no"),
        },
    ];
    ContextTest::with(())
        .given(history.clone())
        .when(ContextCommand::ProposeUpdate {
            update_id: id(2),
            source: Source::AgentSuggestion,
            patch: industries(),
            base_version: None,
            rationale: text("again"),
            evidence: json!({"sends": 401}),
            confidence: None,
            policy: policy(PermissionMode::CoPilot),
            proposer: REVIEWER,
        })
        .then_expect_error(ContextError::DuplicateOfRejected(id(1)));
    let events = ContextTest::with(())
        .given(history)
        .when(ContextCommand::ProposeUpdate {
            update_id: id(2),
            source: Source::AgentSuggestion,
            patch: industries(),
            base_version: None,
            rationale: text("again"),
            evidence: json!({"sends": 4000}),
            confidence: None,
            policy: policy(PermissionMode::CoPilot),
            proposer: REVIEWER,
        })
        .inspect_result()
        .expect("the command is accepted");
    assert_eq!(events.len(), 1);
}

#[test]
fn a_newer_proposal_from_the_same_source_for_the_same_paths_supersedes_the_older() {
    let newer = json!({"icp": {"industries": ["saas"]}});
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(propose(
            2,
            Source::AgentSuggestion,
            newer.clone(),
            PermissionMode::CoPilot,
        ))
        .then_expect_events(vec![
            proposed(2, Source::AgentSuggestion, newer, 0, Route::Review),
            ContextEvent::UpdateSuperseded {
                update_id: id(1),
                by: id(2),
            },
        ]);
}

/// What the suggestion engine found when it looked at the update's evidence
/// again.
fn weaker_evidence() -> Value {
    json!({"sends": 900, "q": 0.4, "was": {"sends": 400, "q": 0.01}})
}

fn withdraw(n: u128) -> ContextCommand {
    ContextCommand::WithdrawUpdate {
        update_id: id(n),
        reason: text("the evidence no longer holds"),
        evidence: weaker_evidence(),
    }
}

fn withdrawn(n: u128) -> ContextEvent {
    ContextEvent::UpdateWithdrawn {
        update_id: id(n),
        reason: text("the evidence no longer holds"),
        evidence: weaker_evidence(),
    }
}

#[test]
fn withdrawing_a_pending_update_records_the_reason_and_the_evidence_that_withdrew_it() {
    ContextTest::with(())
        .given(vec![proposed(
            1,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )])
        .when(withdraw(1))
        .then_expect_events(vec![withdrawn(1)]);
}

#[test]
fn a_withdrawal_is_recorded_as_update_withdrawn_with_its_evidence() {
    let event = withdrawn(1);
    assert_eq!(event.event_type(), "update_withdrawn");
    let payload = serde_json::to_value(&event).expect("an event serializes");
    assert_eq!(payload["type"], "update_withdrawn");
    assert_eq!(payload["reason"], "the evidence no longer holds");
    assert_eq!(payload["evidence"], weaker_evidence());
    let read: ContextEvent = serde_json::from_value(payload).expect("an event deserializes");
    assert_eq!(read, event);
}

#[test]
fn only_a_pending_update_can_be_withdrawn() {
    let mut history = two_versions();
    history.extend([
        proposed(
            3,
            Source::AgentSuggestion,
            json!({"x": 1}),
            2,
            Route::Review,
        ),
        ContextEvent::UpdateRejected {
            update_id: id(3),
            reason: text("no"),
        },
        proposed(
            4,
            Source::AgentSuggestion,
            json!({"y": 1}),
            2,
            Route::Review,
        ),
        proposed(
            5,
            Source::AgentSuggestion,
            json!({"y": 2}),
            2,
            Route::Review,
        ),
        ContextEvent::UpdateSuperseded {
            update_id: id(4),
            by: id(5),
        },
        proposed(6, Source::CrmAnalysis, json!({"z": 1}), 2, Route::Review),
        withdrawn(6),
    ]);
    for (target, status) in [
        (1, "applied"),
        (3, "rejected"),
        (4, "superseded"),
        (6, "withdrawn"),
    ] {
        ContextTest::with(())
            .given(history.clone())
            .when(withdraw(target))
            .then_expect_error(ContextError::NotPending {
                update_id: id(target),
                status,
            });
    }
    ContextTest::with(())
        .given(history)
        .when(withdraw(9))
        .then_expect_error(ContextError::UnknownUpdate(id(9)));
}

#[test]
fn a_withdrawn_update_can_no_longer_be_approved_modified_or_rejected() {
    let history = vec![
        proposed(1, Source::AgentSuggestion, industries(), 0, Route::Review),
        withdrawn(1),
    ];
    let refused = ContextError::NotPending {
        update_id: id(1),
        status: "withdrawn",
    };
    for command in [
        ContextCommand::ApproveUpdate {
            update_id: id(1),
            note: None,
        },
        ContextCommand::ModifyUpdate {
            update_id: id(1),
            patch: tone(),
            note: None,
        },
        ContextCommand::RejectUpdate {
            update_id: id(1),
            reason: text("no"),
        },
    ] {
        ContextTest::with(())
            .given(history.clone())
            .when(command)
            .then_expect_error(refused.clone());
    }
}

#[test]
fn after_a_withdrawal_the_same_patch_may_be_proposed_again_on_the_same_evidence() {
    // A rejection on the same evidence would hold it back
    // (a_rejected_suggestion_returns_only_with_materially_new_evidence).
    ContextTest::with(())
        .given(vec![
            proposed(1, Source::AgentSuggestion, industries(), 0, Route::Review),
            withdrawn(1),
        ])
        .when(propose(
            2,
            Source::AgentSuggestion,
            industries(),
            PermissionMode::CoPilot,
        ))
        .then_expect_events(vec![proposed(
            2,
            Source::AgentSuggestion,
            industries(),
            0,
            Route::Review,
        )]);
}

#[test]
fn a_withdrawal_drops_the_pending_patch_from_the_state() {
    let mut context = ClientContext::default();
    context.apply(proposed(
        1,
        Source::AgentSuggestion,
        industries(),
        0,
        Route::Review,
    ));
    context.apply(withdrawn(1));
    let update = context.updates.get(&id(1)).expect("the update is known");
    assert_eq!(update.status, UpdateStatus::Withdrawn);
    assert_eq!(update.patch, None);
    assert_eq!(context.version(), 0);
    assert_eq!(context.document(), &json!({}));
}

#[test]
fn malformed_proposals_are_refused() {
    for patch in [json!([1, 2]), json!({}), json!("text"), Value::Null] {
        ContextTest::with(())
            .given_no_previous_events()
            .when(propose(1, Source::Manual, patch, PermissionMode::CoPilot))
            .then_expect_error(ContextError::PatchNotObject);
    }
    ContextTest::with(())
        .given(two_versions())
        .when(ContextCommand::ProposeUpdate {
            update_id: id(3),
            source: Source::Manual,
            patch: tone(),
            base_version: Some(5),
            rationale: text("r"),
            evidence: json!({}),
            confidence: None,
            policy: policy(PermissionMode::CoPilot),
            proposer: REVIEWER,
        })
        .then_expect_error(ContextError::BaseVersionInFuture {
            base: 5,
            current: 2,
        });
    let huge = json!({"company": {"blob": "x".repeat(MAX_DOCUMENT_BYTES)}});
    let result = ContextTest::with(())
        .given_no_previous_events()
        .when(propose(1, Source::Manual, huge, PermissionMode::CoPilot))
        .inspect_result();
    assert!(
        matches!(result, Err(ContextError::DocumentTooLarge { .. })),
        "{result:?}"
    );
}

#[test]
fn a_rollback_creates_a_new_version_equal_to_the_old_one() {
    let target = doc_after(&[&industries()]);
    ContextTest::with(())
        .given(two_versions())
        .when(ContextCommand::RollBack {
            to_version: 1,
            target: Some(target.clone()),
            reason: text("tone regressed"),
        })
        .then_expect_events(vec![ContextEvent::RolledBack {
            to_version: 1,
            version: 3,
            patch: json!({"messaging": null}),
            reason: text("tone regressed"),
            document_hash: short_hash(&target),
        }]);
}

#[test]
fn a_rollback_to_version_0_empties_the_document() {
    let patch = json!({"icp": null, "messaging": null});
    ContextTest::with(())
        .given(two_versions())
        .when(ContextCommand::RollBack {
            to_version: 0,
            target: Some(json!({})),
            reason: text("start over"),
        })
        .then_expect_events(vec![ContextEvent::RolledBack {
            to_version: 0,
            version: 3,
            patch: patch.clone(),
            reason: text("start over"),
            document_hash: short_hash(&json!({})),
        }]);
    let mut document = doc_after(&[&industries(), &tone()]);
    json::merge_patch(&mut document, &patch);
    assert_eq!(document, json!({}));
    // A client still at version 0 is there already.
    ContextTest::with(())
        .given_no_previous_events()
        .when(ContextCommand::RollBack {
            to_version: 0,
            target: Some(json!({})),
            reason: text("start over"),
        })
        .then_expect_error(ContextError::AlreadyAtVersion(0));
}

#[test]
fn a_rollback_needs_an_existing_other_version_whose_document_matches_its_hash() {
    let cases = [
        (3, Some(json!({})), ContextError::NoSuchVersion(3)),
        (
            0,
            Some(json!({"forged": true})),
            ContextError::VersionMismatch(0),
        ),
        (2, Some(json!({})), ContextError::AlreadyAtVersion(2)),
        (1, None, ContextError::VersionNotReadable(1)),
        (
            1,
            Some(json!({"forged": true})),
            ContextError::VersionMismatch(1),
        ),
    ];
    for (to_version, target, error) in cases {
        ContextTest::with(())
            .given(two_versions())
            .when(ContextCommand::RollBack {
                to_version,
                target,
                reason: text("r"),
            })
            .then_expect_error(error);
    }
}

#[test]
fn a_document_unchanged_since_its_last_capture_produces_nothing() {
    let captured = ContextEvent::DocumentCaptured {
        key: text("icp"),
        title: text("ICP"),
        source: DocumentSource::IcpHypothesis,
        content_hash: "h1".into(),
        previous_hash: None,
        captured_at: chrono::DateTime::UNIX_EPOCH,
        extractor: None,
    };
    let capture = |hash: &str, insights: Option<Insights>| ContextCommand::CaptureDocument {
        key: text("icp"),
        title: text("ICP"),
        source: DocumentSource::IcpHypothesis,
        content_hash: hash.into(),
        captured_at: chrono::DateTime::UNIX_EPOCH,
        insights,
        proposer: REVIEWER,
    };
    ContextTest::with(())
        .given(vec![captured.clone()])
        .when(capture("h1", None))
        .then_expect_events(vec![]);
    let insights = document_insights();
    let events = ContextTest::with(())
        .given(vec![captured])
        .when(capture("h2", Some(insights)))
        .inspect_result()
        .expect("the capture is accepted");
    let types: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        types,
        vec!["document_captured", "update_proposed", "update_applied"]
    );
    assert!(
        matches!(&events[0], ContextEvent::DocumentCaptured { previous_hash: Some(h), .. } if h == "h1")
    );
}

const INGEST: Proposer = Proposer::Key(Role::Ingest);
const READER: Proposer = Proposer::Key(Role::Reader);

const ALL_SOURCES: [Source; 9] = [
    Source::CrmAnalysis,
    Source::EmailPerformance,
    Source::LinkedinPerformance,
    Source::ContextRegression,
    Source::Document,
    Source::Manual,
    Source::AgentSuggestion,
    Source::CrossClientPatterns,
    Source::BestPractices,
];

#[test]
fn an_ingest_key_may_propose_only_analysis_and_agent_sources_and_a_reader_nothing() {
    let ingest_may = [
        Source::CrmAnalysis,
        Source::EmailPerformance,
        Source::LinkedinPerformance,
        Source::ContextRegression,
        Source::AgentSuggestion,
    ];
    for source in ALL_SOURCES {
        assert_eq!(
            INGEST.may_propose(source),
            ingest_may.contains(&source),
            "ingest, {source:?}"
        );
        assert!(!READER.may_propose(source), "reader, {source:?}");
        for authority in [
            Proposer::Key(Role::Reviewer),
            Proposer::Key(Role::Admin),
            Proposer::Operator,
            Proposer::System,
        ] {
            assert!(authority.may_propose(source), "{authority:?}, {source:?}");
            // Whoever may propose gets the policy table's route.
            for mode in [
                PermissionMode::Manual,
                PermissionMode::CoPilot,
                PermissionMode::Autopilot,
            ] {
                assert_eq!(
                    route_for(source, authority, policy(mode), Some(unit(0.9))),
                    Ok(route(source, policy(mode), Some(unit(0.9)))),
                    "{authority:?}, {source:?}, {mode:?}"
                );
            }
        }
    }
}

#[test]
fn an_ingest_keys_analysis_still_follows_the_permission_mode() {
    use PermissionMode::{Autopilot as Auto, CoPilot, Manual};
    let cases = [
        (Source::EmailPerformance, Manual, Route::Review),
        (Source::CrmAnalysis, CoPilot, Route::Review),
        (Source::LinkedinPerformance, Auto, Route::Autopilot),
        (Source::AgentSuggestion, CoPilot, Route::Review),
        (Source::AgentSuggestion, Auto, Route::Autopilot),
    ];
    for (source, mode, expected) in cases {
        assert_eq!(
            route_for(source, INGEST, policy(mode), Some(unit(0.95))),
            Ok(expected),
            "{source:?} under {mode:?}"
        );
    }
}

#[test]
fn an_ingest_key_proposing_a_human_or_best_practice_update_is_refused_and_nothing_happens() {
    for source in [Source::Manual, Source::Document, Source::BestPractices] {
        for mode in [PermissionMode::Manual, PermissionMode::Autopilot] {
            ContextTest::with(())
                .given(two_versions())
                .when(propose_as(INGEST, 3, source, json!({"x": 1}), mode))
                .then_expect_error(ContextError::NotPermitted {
                    proposer: INGEST,
                    update_source: source,
                });
        }
    }
}

#[test]
fn the_refusal_names_who_may_propose_that_source() {
    let refusal = route_for(
        Source::Manual,
        INGEST,
        policy(PermissionMode::CoPilot),
        None,
    )
    .expect_err("an ingest key may not propose a manual update");
    assert_eq!(
        refusal.to_string(),
        "an ingest key may not propose an update from source `manual`; \
         it needs a reviewer or admin key, or the operator key"
    );
    let refusal = route_for(
        Source::AgentSuggestion,
        READER,
        policy(PermissionMode::CoPilot),
        None,
    )
    .expect_err("a reader key may not propose anything");
    assert_eq!(
        refusal.to_string(),
        "a reader key may not propose an update from source `agent_suggestion`; \
         it needs an ingest, reviewer or admin key, or the operator key"
    );
}

#[test]
fn a_reviewer_and_the_operator_write_manual_updates_directly_whatever_the_mode() {
    for proposer in [REVIEWER, Proposer::Key(Role::Admin), Proposer::Operator] {
        ContextTest::with(())
            .given_no_previous_events()
            .when(propose_as(
                proposer,
                1,
                Source::Manual,
                industries(),
                PermissionMode::Manual,
            ))
            .then_expect_events(vec![
                proposed(1, Source::Manual, industries(), 0, Route::Direct),
                applied(1, 1, industries(), AppliedVia::Direct, &[]),
            ]);
    }
}

fn capture_as(proposer: Proposer, insights: Option<Insights>) -> ContextCommand {
    ContextCommand::CaptureDocument {
        key: text("icp"),
        title: text("ICP"),
        source: DocumentSource::IcpHypothesis,
        content_hash: "h1".into(),
        captured_at: chrono::DateTime::UNIX_EPOCH,
        insights,
        proposer,
    }
}

/// What the ICP document said, by reference: one value, insight 70.
fn by_reference(patch: &Value) -> refs::ByReference {
    refs::by_reference(patch, || id(70)).0
}

/// The industries of the ICP document, as the log holds them.
fn referred_industries() -> Value {
    by_reference(&industries()).into_patch()
}

fn document_insights() -> Insights {
    Insights {
        update_id: id(7),
        patch: by_reference(&industries()),
        rationale: text("from the ICP document"),
        extractor: "deterministic".into(),
    }
}

fn document_proposal(route: Route) -> ContextEvent {
    ContextEvent::UpdateProposed {
        update_id: id(7),
        source: Source::Document,
        paths: json::touched_paths(&industries()),
        patch: referred_industries(),
        base_version: 0,
        rationale: text("from the ICP document"),
        evidence: json!({ "extractor": "deterministic" }),
        confidence: None,
        route,
    }
}

fn document_captured() -> ContextEvent {
    ContextEvent::DocumentCaptured {
        key: text("icp"),
        title: text("ICP"),
        source: DocumentSource::IcpHypothesis,
        content_hash: "h1".into(),
        previous_hash: None,
        captured_at: chrono::DateTime::UNIX_EPOCH,
        extractor: Some("deterministic".into()),
    }
}

#[test]
fn the_insights_of_a_document_an_ingest_key_captured_wait_for_a_reviewer() {
    ContextTest::with(())
        .given_no_previous_events()
        .when(capture_as(INGEST, Some(document_insights())))
        .then_expect_events(vec![document_captured(), document_proposal(Route::Review)]);
}

#[test]
fn the_insights_of_a_document_a_reviewer_or_the_operator_captured_apply_at_once() {
    for proposer in [REVIEWER, Proposer::Key(Role::Admin), Proposer::Operator] {
        ContextTest::with(())
            .given_no_previous_events()
            .when(capture_as(proposer, Some(document_insights())))
            .then_expect_events(vec![
                document_captured(),
                document_proposal(Route::Direct),
                applied(7, 1, referred_industries(), AppliedVia::Direct, &[]),
            ]);
    }
}

#[test]
fn a_document_insight_left_for_review_is_approved_like_any_pending_update() {
    ContextTest::with(())
        .given(vec![document_captured(), document_proposal(Route::Review)])
        .when(ContextCommand::ApproveUpdate {
            update_id: id(7),
            note: None,
        })
        .then_expect_events(vec![
            ContextEvent::UpdateApproved {
                update_id: id(7),
                note: None,
            },
            applied(7, 1, referred_industries(), AppliedVia::Approved, &[]),
        ]);
}

#[test]
fn a_documents_insights_reach_the_log_and_the_state_only_as_references() {
    let captured = ClientContext::default()
        .decide(capture_as(REVIEWER, Some(document_insights())))
        .expect("a reviewer's document applies");
    let logged = serde_json::to_string(&captured).expect("events serialize");
    assert!(!logged.contains("fintech"), "{logged}");
    let mut context = ClientContext::default();
    for event in captured {
        context.apply(event);
    }
    let state = serde_json::to_string(&context).expect("the state serializes");
    assert!(!state.contains("fintech"), "{state}");
    // The version's hash is over the reference: erasing the value, which
    // only the insights table holds, leaves every recorded hash valid, and
    // a rollback to the version checks against the document as the read
    // model holds it, by reference.
    assert_eq!(context.document(), &referred_industries());
    let mut later = context.clone();
    later.apply(proposed(8, Source::Manual, tone(), 1, Route::Direct));
    later.apply(applied(
        8,
        2,
        tone(),
        AppliedVia::Direct,
        &[&referred_industries()],
    ));
    assert!(later
        .decide(ContextCommand::RollBack {
            to_version: 1,
            target: Some(referred_industries()),
            reason: text("back"),
        })
        .is_ok());
}

#[test]
fn a_reader_key_may_not_capture_a_document() {
    ContextTest::with(())
        .given_no_previous_events()
        .when(capture_as(READER, Some(document_insights())))
        .then_expect_error(ContextError::NotPermitted {
            proposer: READER,
            update_source: Source::Document,
        });
}

#[test]
fn the_aggregate_state_survives_a_snapshot_round_trip() {
    let mut context = ClientContext::default();
    for event in two_versions() {
        context.apply(event);
    }
    let snapshot = serde_json::to_value(&context).expect("a context serializes");
    let restored: ClientContext =
        serde_json::from_value(snapshot).expect("a snapshot deserializes");
    assert_eq!(restored, context);
    assert_eq!(restored.version(), 2);
    assert_eq!(restored.document(), &doc_after(&[&industries(), &tone()]));
}
