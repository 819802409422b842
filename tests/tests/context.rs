//! The context ledger over HTTP: the five pathways under each permission
//! mode, the review cycle, stale approvals, duplicates, versions, diffs,
//! rollback, agent views, replay.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

struct Client {
    id: Uuid,
    ingest: String,
    reviewer: String,
}

async fn client(app: &Running, mode: &str) -> Client {
    let (id, _) = app.register_client("Acme").await;
    let answer = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{id}"),
            Some(OPERATOR_KEY),
            Some(json!({ "permission_mode": mode, "autopilot_confidence_threshold": 0.8 })),
        )
        .await;
    assert!(answer.status.is_success(), "{answer:?}");
    Client {
        id,
        ingest: app.issue_key(id, "ingest").await,
        reviewer: app.issue_key(id, "reviewer").await,
    }
}

/// Proposes `body` with the key its source needs: analyses and agent
/// suggestions come from the ingest key; human, best-practice and
/// cross-client updates need a reviewer (an ingest key proposing them is
/// refused: `an_ingest_key_may_propose_only_analyses_and_agent_suggestions`).
async fn propose(app: &Running, c: &Client, body: Value) -> Answer {
    let key = match body["source"].as_str() {
        Some("manual" | "document" | "best_practices" | "cross_client_patterns") => &c.reviewer,
        _ => &c.ingest,
    };
    propose_with(app, c, key, body).await
}

async fn propose_with(app: &Running, c: &Client, key: &str, body: Value) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{}/context/updates", c.id),
        Some(key),
        Some(body),
    )
    .await
}

fn update(source: &str, patch: Value, confidence: f64) -> Value {
    json!({ "source": source, "patch": patch, "rationale": "because the numbers say so",
            "evidence": { "sends": 1200, "reply_rate": 0.041 }, "confidence": confidence })
}

async fn decide(
    app: &Running,
    c: &Client,
    update_id: &str,
    action: &str,
    body: Option<Value>,
) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{}/context/updates/{update_id}/{action}", c.id),
        Some(&c.reviewer),
        body,
    )
    .await
}

async fn read(app: &Running, c: &Client, path: &str, position: i64) -> Answer {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.query(
        &format!("/v1/clients/{}{path}{sep}min_position={position}", c.id),
        Some(&c.reviewer),
    )
    .await
}

fn id_of(answer: &Answer) -> String {
    answer.body["update_id"]
        .as_str()
        .ok_or_else(|| format!("no update id in {answer:?}"))
        .expect("an answer names its update")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pathway_follows_its_policy_under_each_permission_mode() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    // (source, confidence) → expected status under manual, co_pilot, autopilot.
    let table = [
        ("document", 0.1, ["applied", "applied", "applied"]),
        ("manual", 0.1, ["applied", "applied", "applied"]),
        ("best_practices", 0.1, ["pending", "applied", "applied"]),
        ("email_performance", 0.95, ["pending", "pending", "applied"]),
        ("crm_analysis", 0.5, ["pending", "pending", "pending"]),
        ("agent_suggestion", 0.95, ["pending", "pending", "applied"]),
        (
            "cross_client_patterns",
            0.99,
            ["pending", "pending", "pending"],
        ),
    ];
    for (m, mode) in ["manual", "co_pilot", "autopilot"].iter().enumerate() {
        let c = client(&app, mode).await;
        for (i, (source, confidence, expected)) in table.iter().enumerate() {
            let patch = json!({ "playbook": { format!("row_{i}"): source } });
            let answer = propose(&app, &c, update(source, patch, *confidence)).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
            assert_eq!(
                answer.body["status"], expected[m],
                "{source} under {mode}: {answer:?}"
            );
            assert_eq!(answer.body["version"].is_u64(), expected[m] == "applied");
        }
        if *mode == "autopilot" {
            let position = env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0);
            let auto = read(&app, &c, "/approvals?status=auto_applied", position).await;
            let sources: Vec<&str> = auto.body["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|u| u["source"].as_str()).collect())
                .expect("an items array");
            assert_eq!(
                sources,
                vec!["email_performance", "agent_suggestion"],
                "listed for review after the fact"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_runs_the_whole_cycle_propose_queue_approve_modify_reject_versions_diff_rollback(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;

    // v1: a human sets the ICP.
    let v1 = propose(
        &app,
        &c,
        update(
            "manual",
            json!({ "icp": { "industries": ["fintech"], "regions": ["AU"] } }),
            1.0,
        ),
    )
    .await;
    assert_eq!(v1.body["version"], 1, "{v1:?}");

    // Three suggestions wait in the queue.
    let a = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "messaging": { "tone": "plain" } }),
                0.7,
            ),
        )
        .await,
    );
    let b = id_of(
        &propose(
            &app,
            &c,
            update(
                "email_performance",
                json!({ "playbook": { "subject_patterns": ["question"] } }),
                0.7,
            ),
        )
        .await,
    );
    let r = propose(
        &app,
        &c,
        update(
            "crm_analysis",
            json!({ "icp": { "industries": ["crypto"] } }),
            0.7,
        ),
    )
    .await;
    let rid = id_of(&r);
    let queue = read(&app, &c, "/approvals?status=pending", r.position()).await;
    assert_eq!(queue.status, StatusCode::OK, "{queue:?}");
    let items = queue.body["items"]
        .as_array()
        .cloned()
        .expect("an items array");
    assert_eq!(items.len(), 3, "{queue:?}");
    assert_eq!(items[0]["rationale"], "because the numbers say so");
    assert_eq!(items[0]["base_version"], 1);
    assert!(items[0]["age_seconds"].as_f64().is_some());
    assert_eq!(items[0]["evidence"]["sends"], 1200);

    // Approve one, modify one, reject one.
    let approved = decide(&app, &c, &a, "approve", Some(json!({ "note": "good" }))).await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    assert_eq!(approved.body["version"], 2);
    let modified = decide(&app, &c, &b, "modify", Some(json!({ "patch": { "playbook": { "subject_patterns": ["question", "number"] } }, "note": "add numbers" }))).await;
    assert_eq!(modified.body["version"], 3, "{modified:?}");
    let rejected = decide(
        &app,
        &c,
        &rid,
        "reject",
        Some(json!({ "reason": "we do not sell to crypto" })),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::OK, "{rejected:?}");

    let all = read(&app, &c, "/approvals?status=all", rejected.position()).await;
    let by_id = |id: &str| {
        all.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|u| u["update_id"] == id).cloned())
            .expect("the update is listed")
    };
    assert_eq!(by_id(&a)["status"], "applied");
    assert_eq!(by_id(&b)["via"], "modified");
    assert_eq!(
        by_id(&b)["patch"]["playbook"]["subject_patterns"],
        json!(["question"]),
        "the proposal is kept"
    );
    assert_eq!(
        by_id(&b)["modified_patch"]["playbook"]["subject_patterns"],
        json!(["question", "number"])
    );
    assert_eq!(by_id(&rid)["status"], "rejected");
    assert_eq!(by_id(&rid)["reason"], "we do not sell to crypto");
    let pending = read(&app, &c, "/approvals", rejected.position()).await;
    assert_eq!(pending.body["items"], json!([]));

    // The rejected suggestion cannot come back on the same evidence...
    let again = propose(
        &app,
        &c,
        update(
            "crm_analysis",
            json!({ "icp": { "industries": ["crypto"] } }),
            0.7,
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    // ... but can on materially new evidence.
    let mut fresh = update(
        "crm_analysis",
        json!({ "icp": { "industries": ["crypto"] } }),
        0.7,
    );
    fresh["evidence"]["sends"] = json!(9000);
    let back = propose(&app, &c, fresh).await;
    assert_eq!(back.status, StatusCode::ACCEPTED, "{back:?}");
    assert_eq!(back.body["status"], "pending");

    // Versions, newest first, with who and why.
    let versions = read(&app, &c, "/context/versions", back.position()).await;
    let list = versions.body["items"]
        .as_array()
        .cloned()
        .expect("an items array");
    let numbers: Vec<i64> = list.iter().filter_map(|v| v["version"].as_i64()).collect();
    assert_eq!(numbers, vec![3, 2, 1]);
    assert_eq!(list[0]["via"], "modified");
    assert_eq!(list[1]["source"], "agent_suggestion");
    assert!(list[1]["actor"].as_str().unwrap_or("").starts_with("key:"));

    // Roll back to v1, then the diff v3 → v4 shows exactly the reverted paths.
    let rolled = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/rollback", c.id),
            Some(&c.reviewer),
            Some(json!({ "to_version": 1, "reason": "tone and subjects hurt replies" })),
        )
        .await;
    assert_eq!(rolled.status, StatusCode::OK, "{rolled:?}");
    assert_eq!(rolled.body["version"], 4);
    let diff = read(&app, &c, "/context/diff?from=3&to=4", rolled.position()).await;
    let paths: Vec<(String, String)> = diff.body["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|ch| {
                    (
                        ch["path"].as_str().unwrap_or("").to_owned(),
                        ch["op"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .expect("a changes array");
    assert_eq!(
        paths,
        vec![
            ("/messaging".to_owned(), "removed".to_owned()),
            ("/playbook".to_owned(), "removed".to_owned())
        ],
        "{diff:?}"
    );
    let v4 = read(&app, &c, "/context", rolled.position()).await;
    let v1_doc = read(&app, &c, "/context?version=1", rolled.position()).await;
    assert_eq!(v4.body["document"], v1_doc.body["document"]);
    assert_eq!(v4.body["version"], 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_approval_names_its_conflicting_paths_and_an_untouched_base_rebases() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;
    propose(
        &app,
        &c,
        update(
            "manual",
            json!({ "icp": { "industries": ["fintech"] } }),
            1.0,
        ),
    )
    .await;
    let stale = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "messaging": { "tone": "bold" } }),
                0.5,
            ),
        )
        .await,
    );
    let rebased = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "icp": { "regions": ["NZ"] } }),
                0.5,
            ),
        )
        .await,
    );
    // A human changes the tone meanwhile.
    propose(
        &app,
        &c,
        update("manual", json!({ "messaging": { "tone": "plain" } }), 1.0),
    )
    .await;

    let refused = decide(&app, &c, &stale, "approve", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert_eq!(refused.body["errors"][0]["field"], "/messaging/tone");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("/messaging/tone"));

    let applied = decide(&app, &c, &rebased, "approve", None).await;
    assert_eq!(applied.status, StatusCode::OK, "{applied:?}");
    assert_eq!(applied.body["version"], 3);
    let doc = read(&app, &c, "/context", applied.position()).await;
    assert_eq!(
        doc.body["document"],
        json!({ "icp": { "industries": ["fintech"], "regions": ["NZ"] }, "messaging": { "tone": "plain" } })
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_versions_are_served_exactly_by_number_and_by_time() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;
    let mut documents = vec![json!({})];
    let mut times = Vec::new();
    let mut position = 0;
    for i in 1..=4 {
        let patch = json!({ "campaign_goals": { "objective": format!("goal {i}") }, "company": { format!("fact_{i}"): i } });
        let answer = propose(&app, &c, update("manual", patch.clone(), 1.0)).await;
        position = answer.position();
        let mut doc = documents.last().cloned().expect("a document before");
        sextant_domain::context::json::merge_patch(&mut doc, &patch);
        documents.push(doc);
        let seen = read(&app, &c, "/context", position).await;
        times.push(
            seen.body["updated_at"]
                .as_str()
                .expect("an updated_at")
                .to_owned(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (version, expected) in documents.iter().enumerate() {
        let answer = read(&app, &c, &format!("/context?version={version}"), position).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(&answer.body["document"], expected, "version {version}");
    }
    for (i, time) in times.iter().enumerate() {
        let answer = read(
            &app,
            &c,
            &format!("/context?at={}", time.replace('+', "%2B")),
            position,
        )
        .await;
        assert_eq!(answer.body["version"], i + 1, "at {time}: {answer:?}");
        assert_eq!(answer.body["document"], documents[i + 1]);
    }
    let before = read(&app, &c, "/context?at=2000-01-01T00:00:00Z", position).await;
    assert_eq!(before.body["version"], 0);
    let missing = read(&app, &c, "/context?version=99", position).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_shaped_view_once_an_approved_update_is_reached() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;
    let setup = propose(
        &app,
        &c,
        update(
            "manual",
            json!({
                "company": { "value_proposition": "close in 2 days" },
                "icp": { "industries": ["fintech"] },
                "prompts": { "email_strategist": { "instructions": "be brief" } }
            }),
            1.0,
        ),
    )
    .await;
    let path = "/context/agents/email_strategist";
    let first = read(&app, &c, path, setup.position()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["instructions"]["instructions"], "be brief");
    assert!(
        first.body.get("icp").is_none(),
        "the email agent does not get the ICP"
    );
    let etag = first
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an etag")
        .to_owned();

    // Unchanged: 304.
    let cached = app
        .http
        .get(format!("{}/v1/clients/{}{path}", app.query_url, c.id))
        .bearer_auth(&c.reader_key(&app).await)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    let suggestion = id_of(
        &propose(
            &app,
            &c,
            update(
                "email_performance",
                json!({ "playbook": { "subject_patterns": ["question"] } }),
                0.5,
            ),
        )
        .await,
    );
    let approved = decide(&app, &c, &suggestion, "approve", None).await;
    let after = read(&app, &c, path, approved.position()).await;
    assert_eq!(
        after.body["playbook"]["subject_patterns"],
        json!(["question"])
    );
    assert_eq!(after.body["context_version"], 2);
    assert_ne!(
        after
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .expect("an etag"),
        etag
    );
    let unknown = app
        .query(
            &format!("/v1/clients/{}/context/agents/closer", c.id),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

trait ReaderKey {
    async fn reader_key(&self, app: &Running) -> String;
}

impl ReaderKey for Client {
    async fn reader_key(&self, app: &Running) -> String {
        app.issue_key(self.id, "reader").await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_context_input_is_refused_with_a_clear_problem_and_writes_nothing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;
    let reader = c.reader_key(&app).await;
    let applied = propose(
        &app,
        &c,
        update(
            "manual",
            json!({ "icp": { "industries": ["fintech"] } }),
            1.0,
        ),
    )
    .await;
    let applied_id = id_of(&applied);
    let pending = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "messaging": { "tone": "x" } }),
                0.5,
            ),
        )
        .await,
    );
    let rejected = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "messaging": { "angles": ["y"] } }),
                0.5,
            ),
        )
        .await,
    );
    decide(
        &app,
        &c,
        &rejected,
        "reject",
        Some(json!({ "reason": "no" })),
    )
    .await;
    let before = env.event_ids().await.len();

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            update("manual", json!([1, 2]), 1.0),
            StatusCode::UNPROCESSABLE_ENTITY,
            "patch",
        ),
        (
            update("manual", json!("text"), 1.0),
            StatusCode::UNPROCESSABLE_ENTITY,
            "patch",
        ),
        (
            update("gossip", json!({ "a": 1 }), 1.0),
            StatusCode::UNPROCESSABLE_ENTITY,
            "source",
        ),
        (
            update("manual", json!({ "a": 1 }), 1.5),
            StatusCode::UNPROCESSABLE_ENTITY,
            "confidence",
        ),
        (
            json!({ "source": "manual", "patch": { "a": 1 }, "rationale": " " }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rationale",
        ),
        (
            json!({ "source": "manual", "patch": { "a": 1 }, "rationale": "r", "base_version": 9 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "base_version",
        ),
    ];
    for (body, status, field) in cases {
        let answer = propose(&app, &c, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {answer:?}");
        assert_eq!(
            answer.body["errors"][0]["field"], field,
            "{body}: {answer:?}"
        );
    }
    let huge = update(
        "manual",
        json!({ "company": { "blob": "x".repeat(300 * 1024) } }),
        1.0,
    );
    let answer = propose(&app, &c, huge).await;
    assert!(answer.status == StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");

    for (id, action, body) in [
        (applied_id.as_str(), "approve", None),
        (rejected.as_str(), "approve", None),
        (
            rejected.as_str(),
            "reject",
            Some(json!({ "reason": "again" })),
        ),
    ] {
        let answer = decide(&app, &c, id, action, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{action} {id}: {answer:?}"
        );
    }
    let answer = decide(&app, &c, &Uuid::new_v4().to_string(), "approve", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = decide(&app, &c, &pending, "reject", Some(json!({ "reason": "" }))).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    let answer = decide(&app, &c, &pending, "modify", Some(json!({ "patch": 5 }))).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    // A version after the current one; version 0, the empty document, is a
    // version like any other (edges::rollback_reaches_version_0_...).
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/rollback", c.id),
            Some(&c.reviewer),
            Some(json!({ "to_version": 7, "reason": "r" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    // Roles: the ingest key cannot decide nor write a manual update; a
    // reader cannot propose at all.
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/updates/{pending}/approve", c.id),
            Some(&c.ingest),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = propose_with(
        &app,
        &c,
        &c.ingest,
        update("manual", json!({ "a": 1 }), 1.0),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = propose_with(
        &app,
        &c,
        &reader,
        update("agent_suggestion", json!({ "a": 1 }), 1.0),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // Bad query input.
    let answer = app
        .query(
            &format!("/v1/clients/{}/approvals?status=maybe", c.id),
            Some(&c.reviewer),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = app
        .query(
            &format!("/v1/clients/{}/context/diff?from=1", c.id),
            Some(&c.reviewer),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        env.event_ids().await.len(),
        before,
        "bad input wrote events"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reviewers_approving_the_same_update_at_once_exactly_one_wins() {
    let env = TestEnv::new().await;
    let app = std::sync::Arc::new(env.start().await);
    let c = std::sync::Arc::new(client(&app, "co_pilot").await);
    for round in 0..3 {
        let id = id_of(
            &propose(
                &app,
                &c,
                update(
                    "agent_suggestion",
                    json!({ "playbook": { format!("r{round}"): 1 } }),
                    0.5,
                ),
            )
            .await,
        );
        let mut racers = Vec::new();
        for _ in 0..4 {
            let (app, c, id) = (app.clone(), c.clone(), id.clone());
            racers.push(tokio::spawn(async move {
                decide(&app, &c, &id, "approve", None).await.status
            }));
        }
        let mut statuses = Vec::new();
        for racer in racers {
            statuses.push(racer.await.expect("racer"));
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CONFLICT)
                .count(),
            3,
            "{statuses:?}"
        );
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'update_applied'")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(applied, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_context_projection_reproduces_it_exactly() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "autopilot").await;
    propose(
        &app,
        &c,
        update(
            "manual",
            json!({ "icp": { "industries": ["fintech"] } }),
            1.0,
        ),
    )
    .await;
    propose(
        &app,
        &c,
        update(
            "email_performance",
            json!({ "playbook": { "timing": "tue am" } }),
            0.9,
        ),
    )
    .await;
    let p = id_of(
        &propose(
            &app,
            &c,
            update(
                "agent_suggestion",
                json!({ "messaging": { "tone": "plain" } }),
                0.1,
            ),
        )
        .await,
    );
    decide(
        &app,
        &c,
        &p,
        "modify",
        Some(json!({ "patch": { "messaging": { "tone": "warm" } } })),
    )
    .await;
    let r = id_of(
        &propose(
            &app,
            &c,
            update("crm_analysis", json!({ "icp": { "titles": ["CFO"] } }), 0.1),
        )
        .await,
    );
    decide(&app, &c, &r, "reject", Some(json!({ "reason": "no" }))).await;
    let last = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/rollback", c.id),
            Some(&c.reviewer),
            Some(json!({ "to_version": 1, "reason": "regressed" })),
        )
        .await;
    assert_eq!(last.status, StatusCode::OK, "{last:?}");
    let doc = app
        .command(Method::POST, &format!("/v1/clients/{}/documents", c.id), Some(&c.ingest),
            Some(json!({ "key": "icp", "title": "ICP", "source": "icp_hypothesis", "content": "Regions: AU, NZ", "captured_at": "2026-11-01T00:00:00Z" })))
        .await;
    let head = doc.position();
    env.eventually(
        "the context projection reaches the head",
        Duration::from_secs(20),
        || async { env.checkpoint("context").await >= head },
    )
    .await;
    let projection = sextant_projections::by_name("context").expect("context projection");
    let live = sextant_projections::replay::checksum(&env.pool, projection.as_ref())
        .await
        .expect("checksum");
    sqlx::query("UPDATE context_current SET document = '{}'")
        .execute(&env.pool)
        .await
        .expect("damage");
    sextant_projections::replay::rebuild(&env.pool, projection.clone(), false)
        .await
        .expect("rebuild");
    let rebuilt = sextant_projections::replay::checksum(&env.pool, projection.as_ref())
        .await
        .expect("checksum");
    assert_eq!(rebuilt, live);
    app.stop().await;
}

/// Found by fuzzing: a number jsonb cannot give back as a double made the
/// client's context unreadable for every later command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_too_large_for_storage_is_refused_and_the_context_stays_usable() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "co_pilot").await;
    let huge = propose(
        &app,
        &c,
        update(
            "manual",
            json!({ "company": { "x": 1.7976931348623155e308 } }),
            1.0,
        ),
    )
    .await;
    assert_eq!(huge.status, StatusCode::UNPROCESSABLE_ENTITY, "{huge:?}");
    assert_eq!(huge.body["errors"][0]["field"], "patch.company.x");
    let fine = propose(
        &app,
        &c,
        update("manual", json!({ "company": { "x": 1.5e99 } }), 1.0),
    )
    .await;
    assert_eq!(fine.status, StatusCode::ACCEPTED, "{fine:?}");
    let pending = id_of(
        &propose(
            &app,
            &c,
            update("agent_suggestion", json!({ "icp": { "a": 1 } }), 0.1),
        )
        .await,
    );
    let approved = decide(&app, &c, &pending, "approve", None).await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_key_may_propose_only_analyses_and_agent_suggestions() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "autopilot").await;
    let before = env.event_ids().await.len();
    for (i, source) in [
        "manual",
        "document",
        "best_practices",
        "cross_client_patterns",
    ]
    .iter()
    .enumerate()
    {
        let body = update(
            source,
            json!({ "playbook": { format!("row_{i}"): 1 } }),
            1.0,
        );
        let answer = propose_with(&app, &c, &c.ingest, body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{source}: {answer:?}");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(source)
                && detail.contains("reviewer or admin key, or the operator key"),
            "{source}: {detail:?}"
        );
    }
    assert_eq!(
        env.event_ids().await.len(),
        before,
        "a refused proposal wrote events"
    );
    // What an ingest key may propose still follows the permission mode.
    let confident = propose_with(
        &app,
        &c,
        &c.ingest,
        update("email_performance", json!({ "playbook": { "a": 1 } }), 0.95),
    )
    .await;
    assert_eq!(confident.body["status"], "applied", "{confident:?}");
    let unsure = propose_with(
        &app,
        &c,
        &c.ingest,
        update("agent_suggestion", json!({ "playbook": { "b": 1 } }), 0.5),
    )
    .await;
    assert_eq!(unsure.body["status"], "pending", "{unsure:?}");
    // Reviewers, admins and the operator write human updates directly.
    let admin = app.issue_key(c.id, "admin").await;
    for (i, key) in [c.reviewer.as_str(), admin.as_str(), OPERATOR_KEY]
        .iter()
        .enumerate()
    {
        let answer = propose_with(
            &app,
            &c,
            key,
            update("manual", json!({ "company": { format!("k{i}"): 1 } }), 1.0),
        )
        .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
        assert_eq!(answer.body["status"], "applied", "{answer:?}");
    }
    app.stop().await;
}

async fn capture(app: &Running, c: &Client, key: &str, doc_key: &str, content: &str) -> Answer {
    app.command(
        Method::POST,
        &format!("/v1/clients/{}/documents", c.id),
        Some(key),
        Some(
            json!({ "key": doc_key, "title": "Notes", "source": "meeting_notes",
                     "content": content, "captured_at": "2026-11-01T00:00:00Z" }),
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insights_of_a_document_an_ingest_key_captures_wait_for_a_reviewer() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    // Even autopilot does not apply an ingest key's document unreviewed.
    let c = client(&app, "autopilot").await;
    let captured = capture(
        &app,
        &c,
        &c.ingest,
        "icp",
        "Target industries: fintech, insurtech\n",
    )
    .await;
    assert_eq!(captured.status, StatusCode::CREATED, "{captured:?}");
    assert_eq!(captured.body["update"]["status"], "pending", "{captured:?}");
    assert!(captured.body["update"]["version"].is_null(), "{captured:?}");
    let update_id = captured.body["update"]["update_id"]
        .as_str()
        .expect("the update the insights became")
        .to_owned();
    let queue = read(&app, &c, "/approvals?status=pending", captured.position()).await;
    let items = queue.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{queue:?}");
    assert_eq!(items[0]["source"], "document");
    assert_eq!(items[0]["update_id"], update_id.as_str());
    let now = read(&app, &c, "/context", captured.position()).await;
    assert_eq!(now.body["version"], 0, "{now:?}");

    let approved = decide(&app, &c, &update_id, "approve", None).await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    assert_eq!(approved.body["version"], 1);

    // A reviewer's document applies at once, as the operator's does.
    let direct = capture(&app, &c, &c.reviewer, "regions", "Regions: AU, NZ\n").await;
    assert_eq!(direct.status, StatusCode::CREATED, "{direct:?}");
    assert_eq!(direct.body["update"]["status"], "applied", "{direct:?}");
    assert_eq!(direct.body["update"]["version"], 2, "{direct:?}");
    let now = read(&app, &c, "/context", direct.position()).await;
    assert_eq!(
        now.body["document"]["icp"],
        json!({ "industries": ["fintech", "insurtech"], "regions": ["AU", "NZ"] })
    );
    app.stop().await;
}
