//! The operator CLI (`sextant`), run as a binary against the real services:
//! every command family, bulk import (idempotent, resumable after SIGINT or
//! a kill, malformed rows rejected with their line), `events tail` on the
//! test's own stream, JSON output as the API's own, and the exit codes.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sextant_tests::cli::{send_row, show, write_sends_csv, Sextant};
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

async fn client(app: &Running, name: &str) -> Uuid {
    app.register_client(name).await.0
}

async fn sends_recorded(env: &TestEnv, client: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE client_id = $1 AND event_type = 'send_recorded'",
    )
    .bind(client)
    .fetch_one(&env.pool)
    .await
    .expect("count sends")
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_commands_register_show_update_list_and_suspend_a_client() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, None);

    let created = cli
        .json(&[
            "clients",
            "create",
            "--name",
            "Acme",
            "--industry",
            "fintech",
            "--company-size",
            "11-50",
            "--region",
            "AU",
            "--timezone",
            "Australia/Sydney",
        ])
        .await;
    let id = created["client_id"].as_str().expect("client_id").to_owned();
    // A script passes the position a command answered to the reads after it.
    let position = created["position"].as_i64().expect("position").to_string();

    let shown = cli
        .json(&["clients", "show", &id, "--min-position", &position])
        .await;
    assert_eq!(shown["name"], "Acme");
    assert_eq!(shown["timezone"], "Australia/Sydney");

    let out = cli
        .run(&[
            "clients",
            "update",
            &id,
            "--region",
            "EMEA",
            "--permission-mode",
            "manual",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("EMEA"),
        "{}",
        show(&out)
    );

    let list = cli.json(&["clients", "list"]).await;
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["client_id"] == id.as_str()),
        "{list}"
    );

    let out = cli
        .run(&["clients", "suspend", &id, "--reason", "unpaid invoices"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("suspended") && text.contains("unpaid invoices"),
        "{text}"
    );
    let shown = cli.json(&["clients", "show", &id]).await;
    assert_eq!(shown["status"], "suspended");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_issued_once_listed_and_revoked_and_a_revoked_key_is_refused() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Keys").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));

    let issued = cli
        .json(&["keys", "issue", "--role", "reader", "--label", "dashboards"])
        .await;
    let key = issued["key"].as_str().expect("the key").to_owned();
    let key_id = issued["key_id"].as_str().expect("key_id").to_owned();

    let reader = Sextant::new(&app, &env, &key, Some(id));
    let me = reader.json(&["whoami"]).await;
    assert_eq!(me["role"], "reader");
    assert_eq!(me["client_id"], id.to_string());

    let listed = cli.json(&["keys", "list"]).await;
    assert!(
        listed
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["key_id"] == key_id.as_str()),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains(&key),
        "a listing never shows the key"
    );

    let out = cli.run(&["keys", "revoke", &key_id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = reader.run(&["whoami"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("check SEXTANT_KEY / sextant login"),
        "{err}"
    );
    assert!(!err.contains(&key), "the key is never printed back");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_are_set_and_shown_by_their_fingerprint_only() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Hooks").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let secret = "a-webhook-secret-of-some-length";

    let set = cli
        .json(&["webhooks", "set", "smartlead", "--secret", secret])
        .await;
    let fingerprint = set["fingerprint"].as_str().expect("fingerprint").to_owned();
    let shown = cli.json(&["webhooks", "show", "smartlead"]).await;
    assert_eq!(shown["secret_fingerprint"], fingerprint.as_str());
    let out = cli.run(&["webhooks", "show", "smartlead"]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));

    let out = cli.run(&["webhooks", "show", "instantly"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_commands_propose_show_diff_roll_back_and_upload_a_document() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Context").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let patch = cli.path("patch.json");
    write(&patch, r#"{"messaging": {"tone": "warm"}}"#);

    let proposed = cli
        .json(&[
            "context",
            "propose",
            "--file",
            patch.to_str().expect("a path"),
            "--rationale",
            "the team agreed",
        ])
        .await;
    assert_eq!(proposed["status"], "applied");
    assert_eq!(proposed["version"], 1);

    let shown = cli.json(&["context", "show"]).await;
    assert_eq!(shown["document"]["messaging"]["tone"], "warm");
    let old = cli.json(&["context", "show", "--version", "0"]).await;
    assert_eq!(old["version"], 0);

    let history = cli.json(&["context", "history"]).await;
    assert_eq!(history["items"][0]["version"], 1);

    let diff = cli.json(&["context", "diff", "0", "1"]).await;
    assert!(
        diff["changes"][0]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/messaging")),
        "{diff}"
    );
    let out = cli.run(&["context", "diff", "0", "1"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--- version 0") && text.contains("+++ version 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && !l.starts_with("+++") && l.contains("warm")),
        "{text}"
    );

    let rolled = cli
        .json(&["context", "rollback", "0", "--reason", "too warm"])
        .await;
    assert_eq!(rolled["version"], 2);
    let shown = cli.json(&["context", "show"]).await;
    assert_eq!(shown["version"], 2);
    assert!(shown["document"].get("messaging").is_none(), "{shown}");

    let doc = cli.path("notes.md");
    write(
        &doc,
        "Meeting notes: the ICP is CFOs at fintechs with 50 to 200 staff.\nTone: warm.\n",
    );
    let captured = cli
        .json(&[
            "context",
            "upload",
            doc.to_str().expect("a path"),
            "--source",
            "meeting_notes",
        ])
        .await;
    assert_eq!(captured["changed"], true, "{captured}");
    let again = cli
        .json(&[
            "context",
            "upload",
            doc.to_str().expect("a path"),
            "--source",
            "meeting_notes",
        ])
        .await;
    assert_eq!(again["changed"], false, "{again}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_shown_approved_modified_and_rejected() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Approvals").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let mut ids = Vec::new();
    for (i, tone) in ["warm", "bold", "calm"].iter().enumerate() {
        let patch = cli.path(&format!("p{i}.json"));
        write(
            &patch,
            &format!(r#"{{"messaging": {{"tone{i}": "{tone}"}}}}"#),
        );
        let proposed = cli
            .json(&[
                "context",
                "propose",
                "--file",
                patch.to_str().expect("a path"),
                "--source",
                "email_performance",
                "--rationale",
                "replies rose",
                "--evidence",
                r#"{"sends": 400}"#,
            ])
            .await;
        assert_eq!(proposed["status"], "pending", "{proposed}");
        ids.push(
            proposed["update_id"]
                .as_str()
                .expect("update_id")
                .to_owned(),
        );
    }

    let queue = cli.json(&["approvals", "list"]).await;
    let listed: Vec<&str> = queue["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["update_id"].as_str())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());

    let out = cli.run(&["approvals", "show", &ids[0]]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replies rose") && text.contains("400") && text.contains("/messaging/tone0"),
        "{text}"
    );

    let approved = cli
        .json(&["approvals", "approve", &ids[0], "--note", "yes"])
        .await;
    assert_eq!(approved["version"], 1);
    let modified_patch = cli.path("modified.json");
    write(&modified_patch, r#"{"messaging": {"tone1": "measured"}}"#);
    let modified = cli
        .json(&[
            "approvals",
            "modify",
            &ids[1],
            "--file",
            modified_patch.to_str().expect("a path"),
        ])
        .await;
    assert_eq!(modified["version"], 2);
    cli.json(&["approvals", "reject", &ids[2], "--reason", "not our voice"])
        .await;

    let queue = cli.json(&["approvals", "list"]).await;
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(0), "{queue}");
    let shown = cli.json(&["context", "show"]).await;
    assert_eq!(shown["document"]["messaging"]["tone1"], "measured");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_suggestions_experiments_reports_and_alerts_answer_through_the_cli() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Learning").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));

    let table = cli.json(&["patterns", "what", "--metric", "reply"]).await;
    assert_eq!(table["family"], "what");
    assert_eq!(table["metric"], "reply");
    let out = cli.run(&["patterns", "nonsense"]).await;
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));

    let run = cli.json(&["suggestions", "run"]).await;
    assert!(run["suggestions"].is_array(), "{run}");

    let created = cli
        .json(&[
            "experiments",
            "create",
            "--name",
            "short subject",
            "--variant",
            "a:1",
            "--variant",
            "b:1",
            "--metric",
            "reply",
        ])
        .await;
    let exp = created["experiment_id"]
        .as_str()
        .expect("experiment_id")
        .to_owned();
    let list = cli.json(&["experiments", "list"]).await;
    assert_eq!(list["items"][0]["experiment_id"], exp.as_str());
    let shown = cli.json(&["experiments", "show", &exp]).await;
    assert_eq!(shown["experiment"]["name"], "short subject");
    let assigned = cli
        .json(&["experiments", "assign", &exp, "--lead", "lead-ref-0001"])
        .await;
    assert!(
        assigned["variant"] == "a" || assigned["variant"] == "b",
        "{assigned}"
    );
    let concluded = cli.json(&["experiments", "conclude", &exp]).await;
    assert!(concluded["decision"].is_string(), "{concluded}");

    let report = cli.json(&["reports", "weekly"]).await;
    assert_eq!(report["client_id"], id.to_string());
    let csv = cli.path("week.csv");
    let out = cli
        .run(&[
            "reports",
            "weekly",
            "--format",
            "csv",
            "-o",
            csv.to_str().expect("a path"),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(std::fs::read_to_string(&csv)
        .expect("the CSV")
        .contains(','));

    let alerts = cli.json(&["alerts", "list", "--status", "all"]).await;
    assert!(alerts["items"].is_array(), "{alerts}");
    let out = cli
        .run(&["alerts", "ack", &Uuid::new_v4().to_string()])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_apis_own_json() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Shapes").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let patch = cli.path("patch.json");
    write(&patch, r#"{"icp": {"size": "50-200"}}"#);
    cli.json(&[
        "context",
        "propose",
        "--file",
        patch.to_str().expect("a path"),
        "--rationale",
        "x",
    ])
    .await;

    for (args, path) in [
        (vec!["clients", "show"], format!("/v1/clients/{id}")),
        (
            vec!["context", "history"],
            format!("/v1/clients/{id}/context/versions"),
        ),
        (
            vec!["context", "diff", "0", "1"],
            format!("/v1/clients/{id}/context/diff?from=0&to=1"),
        ),
        (
            vec!["alerts", "list", "--status", "all"],
            format!("/v1/clients/{id}/alerts?status=all"),
        ),
        (
            vec!["experiments", "list"],
            format!("/v1/clients/{id}/experiments"),
        ),
    ] {
        let printed = cli.json(&args).await;
        let api = app.query(&path, Some(OPERATOR_KEY)).await;
        assert_eq!(printed, api.body, "sextant {args:?} against GET {path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_3_for_404_4_for_409_1_for_401_2_for_usage_and_5_when_nothing_listens() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Codes").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));

    let out = cli
        .run(&["clients", "show", &Uuid::new_v4().to_string()])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );

    let patch = cli.path("patch.json");
    write(&patch, r#"{"icp": {"size": "50-200"}}"#);
    cli.json(&[
        "context",
        "propose",
        "--file",
        patch.to_str().expect("a path"),
        "--rationale",
        "x",
    ])
    .await;
    let out = cli
        .run(&["context", "rollback", "1", "--reason", "the current one"])
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));

    let stranger = Sextant::new(&app, &env, "sxk_not_a_key", Some(id));
    let out = stranger.run(&["clients", "show"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check SEXTANT_KEY / sextant login"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("sxk_not_a_key"));

    let out = cli.run(&["clients", "show", "--no-such-flag"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    let port = sextant_tests::nats::free_port();
    let nowhere = Sextant::new(&app, &env, OPERATOR_KEY, Some(id))
        .with("SEXTANT_COMMAND_URL", &format!("http://127.0.0.1:{port}"))
        .with("SEXTANT_QUERY_URL", &format!("http://127.0.0.1:{port}"));
    for args in [vec!["clients", "show"], vec!["suggestions", "run"]] {
        let out = nowhere.run(&args).await;
        assert_eq!(out.status.code(), Some(5), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && !err.contains("reqwest::Error"),
            "{err}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_a_private_profile_that_later_commands_use_and_never_prints_the_key() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Login").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));

    let out = cli.run(&["login", "--name", "staging"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(OPERATOR_KEY));
    let file = cli.dir.join(".config/sextant/config.toml");
    let text = std::fs::read_to_string(&file).expect("the profile file");
    assert!(text.contains("[profiles.staging]"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Nothing in the environment: the profile says it all.
    let bare = Sextant::new(&app, &env, OPERATOR_KEY, None)
        .without("SEXTANT_KEY")
        .without("SEXTANT_COMMAND_URL")
        .without("SEXTANT_QUERY_URL")
        .with("HOME", cli.dir.to_str().expect("a path"));
    let shown = bare
        .json(&["clients", "show", "--profile", "staging"])
        .await;
    assert_eq!(shown["client_id"], id.to_string());
    // The flag wins over the profile.
    let out = bare
        .run(&[
            "clients",
            "show",
            "--profile",
            "staging",
            "--query-url",
            "http://127.0.0.1:9",
        ])
        .await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let out = bare.run(&["clients", "show", "--profile", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_generated_for_bash_zsh_and_fish() {
    let env = TestEnv::new().await;
    let app = Running::at("http://127.0.0.1:9".into(), "http://127.0.0.1:9".into());
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, None);
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", shell]).await;
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("sextant"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_hundred_thousand_row_csv_twice_records_nothing_the_second_time() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Import").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let csv = cli.path("sends.csv");
    write_sends_csv(&csv, (0..100_000).map(send_row));
    let file = csv.to_str().expect("a path");

    let first = cli.json(&["import", "sends", file]).await;
    assert_eq!(first["rows"], 100_000, "{first}");
    assert_eq!(first["recorded"], 100_000, "{first}");
    assert_eq!(first["errors"], 0, "{first}");
    assert!(
        !cli.path("sends.csv.checkpoint").exists(),
        "a finished import leaves no checkpoint"
    );

    let second = cli.json(&["import", "sends", file]).await;
    assert_eq!(second["recorded"], 0, "{second}");
    assert_eq!(second["duplicates"], 100_000, "{second}");
    assert_eq!(sends_recorded(&env, id).await, 100_000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_interrupted_with_sigint_resumes_and_records_every_row_once() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Interrupted").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let csv = cli.path("sends.csv");
    write_sends_csv(&csv, (0..60_000).map(send_row));
    let file = csv.to_str().expect("a path");
    let checkpoint = cli.path("sends.csv.checkpoint");

    let child = cli
        .spawnable(&[
            "import",
            "sends",
            file,
            "--output",
            "json",
            "--concurrency",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the import");
    let started = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no batch was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().expect("a pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().await.expect("the import exits");
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    assert_eq!(summary["complete"], false, "{summary}");
    let done = summary["rows"].as_u64().expect("rows");
    assert!(done < 60_000, "the import stopped early: {summary}");
    assert!(
        checkpoint.exists(),
        "an interrupted import keeps its checkpoint"
    );
    assert_eq!(
        sends_recorded(&env, id).await,
        done as i64,
        "what was acknowledged, and no more"
    );

    let resumed = cli.json(&["import", "sends", file]).await;
    assert_eq!(resumed["complete"], true, "{resumed}");
    assert_eq!(resumed["rows"].as_u64(), Some(60_000 - done), "{resumed}");
    assert_eq!(sends_recorded(&env, id).await, 60_000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_outright_resumes_from_its_checkpoint_and_every_row_lands_once() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Killed").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let csv = cli.path("sends.csv");
    write_sends_csv(&csv, (0..40_000).map(send_row));
    let file = csv.to_str().expect("a path");
    let checkpoint = cli.path("sends.csv.checkpoint");

    let mut child = cli
        .spawnable(&["import", "sends", file, "--output", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the import");
    let started = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no batch was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    child.kill().await.expect("SIGKILL");
    assert!(
        sends_recorded(&env, id).await < 40_000,
        "killed before the end"
    );

    let resumed = cli.json(&["import", "sends", file]).await;
    assert_eq!(resumed["complete"], true, "{resumed}");
    assert_eq!(sends_recorded(&env, id).await, 40_000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_in_the_middle_goes_to_the_reject_file_with_its_line_and_the_rest_is_imported(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Rejects").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let csv = cli.path("sends.csv");
    // Row i is on line i + 2 (the header is line 1).
    write_sends_csv(
        &csv,
        (0..5000).map(|i| match i {
            1200 => "csv,m-1200,lead@example.com,email,import,1,yesterday".to_owned(),
            2500 => "csv,m-2500,too,few".to_owned(),
            3700 => "csv,m-3700,lead@example.com,pigeon,import,1,2026-01-05T09:00:00Z".to_owned(),
            _ => send_row(i),
        }),
    );
    let summary = cli
        .json(&[
            "import",
            "sends",
            csv.to_str().expect("a path"),
            "--batch-size",
            "500",
        ])
        .await;
    assert_eq!(summary["recorded"], 4997, "{summary}");
    assert_eq!(summary["errors"], 3, "{summary}");
    assert_eq!(sends_recorded(&env, id).await, 4997);

    let rejects =
        std::fs::read_to_string(cli.path("sends.csv.rejects.csv")).expect("the reject file");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(rejects.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(&header[..4], ["line", "field", "reason", "provider"]);
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.expect("a record");
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1202".to_owned(), "sent_at".to_owned()),
            ("2502".to_owned(), ".".to_owned()),
            ("3702".to_owned(), "channel".to_owned()),
        ],
        "{rejects}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_json_lines_import_in_the_apis_own_shape() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Jsonl").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    let sends = cli.path("sends.jsonl");
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(
            &json!({"provider": "jl", "provider_message_id": format!("j-{i}"),
                    "lead": {"email": format!("l{i}@example.com")}, "channel": "email",
                    "sent_at": "2026-01-05T09:00:00Z"})
            .to_string(),
        );
        text.push('\n');
    }
    write(&sends, &text);
    let summary = cli
        .json(&["import", "sends", sends.to_str().expect("a path")])
        .await;
    assert_eq!(summary["recorded"], 300, "{summary}");

    let outcomes = cli.path("outcomes.csv");
    let mapping = cli.path("mapping.toml");
    write(
        &mapping,
        "[columns]\n\"Message\" = \"provider_message_id\"\n\"Event\" = \"kind\"\n\"When\" = \"occurred_at\"\n\
         [fixed]\nprovider = \"jl\"\n[values.kind]\n\"Opened\" = \"opened\"\n\"Replied\" = \"replied\"\n",
    );
    let mut text = String::from("Message,Event,When\n");
    for i in 0..300 {
        text.push_str(&format!(
            "j-{i},{},2026-01-05 10:00:00\n",
            if i % 2 == 0 { "Opened" } else { "Replied" }
        ));
    }
    write(&outcomes, &text);
    let args = [
        "import",
        "outcomes",
        outcomes.to_str().expect("a path"),
        "--mapping",
        mapping.to_str().expect("a path"),
    ];
    let summary = cli.json(&args).await;
    assert_eq!(summary["recorded"], 300, "{summary}");
    let again = cli.json(&args).await;
    assert_eq!(again["recorded"], 0, "{again}");
    assert_eq!(again["duplicates"], 300, "{again}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_the_events_committed_after_it_started_in_order() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Tail").await;
    let other = client(&app, "Other").await;
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    // The stream exists once the relay published the registrations.
    env.eventually(
        "the stream has the registrations",
        Duration::from_secs(20),
        || async { env.stream_events().await.len() >= 2 },
    )
    .await;

    let mut tail = cli
        .spawnable(&["events", "tail"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the tail");
    let stderr = tail.stderr.take().expect("stderr");
    let mut stderr = tokio::io::BufReader::new(stderr).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
        .await
        .expect("the tail says it follows")
        .expect("stderr")
        .expect("a line");
    assert!(ready.starts_with("following "), "{ready}");

    let mut positions = Vec::new();
    for (i, tone) in ["warm", "bold", "calm"].iter().enumerate() {
        let answer = app
            .command(
                Method::POST,
                &format!("/v1/clients/{id}/context/updates"),
                Some(OPERATOR_KEY),
                Some(json!({"source": "manual", "patch": {"messaging": {format!("t{i}"): tone}}, "rationale": "r"})),
            )
            .await;
        assert!(answer.status.is_success(), "{answer:?}");
        positions.push(answer.position());
        // Another client's event, which the tail of this client leaves out.
        app.command(
            Method::POST,
            &format!("/v1/clients/{other}/context/updates"),
            Some(OPERATOR_KEY),
            Some(json!({"source": "manual", "patch": {"x": i}, "rationale": "r"})),
        )
        .await;
    }
    let last = *positions.last().expect("positions");

    let stdout = tail.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen: Vec<Value> = Vec::new();
    while seen
        .last()
        .and_then(|e| e["sextantposition"].as_i64())
        .unwrap_or(0)
        < last
    {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("an event within 20 s")
            .expect("stdout")
            .expect("a line");
        seen.push(serde_json::from_str(&line).expect("one CloudEvent per line"));
    }
    let seen_positions: Vec<i64> = seen
        .iter()
        .filter_map(|e| e["sextantposition"].as_i64())
        .collect();
    assert!(
        seen_positions.windows(2).all(|w| w[0] < w[1]),
        "in order: {seen_positions:?}"
    );
    for p in &positions {
        assert!(seen_positions.contains(p), "{p} in {seen_positions:?}");
    }
    assert!(
        seen.iter().all(|e| e["sextantclient"] == id.to_string()),
        "{seen:?}"
    );
    assert!(seen.iter().all(|e| e["specversion"] == "1.0"));
    tail.kill().await.expect("stop the tail");

    // From a position, a bounded replay: exactly the events from there on.
    let out = cli
        .run(&[
            "events",
            "tail",
            "--since",
            &positions[0].to_string(),
            "--limit",
            "2",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let replayed: Vec<Value> = BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| serde_json::from_str(&l.expect("a line")).expect("JSON"))
        .collect();
    assert_eq!(replayed.len(), 2);
    assert_eq!(replayed[0]["sextantposition"], json!(positions[0]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactive_review_in_a_terminal_approves_modifies_and_rejects_by_key() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let id = client(&app, "Reviewed").await;
    let mut position = 0;
    for (path, value) in [("tone", "plain"), ("length", "short"), ("cta", "meeting")] {
        let answer = app
            .command(
                Method::POST,
                &format!("/v1/clients/{id}/context/updates"),
                Some(OPERATOR_KEY),
                Some(json!({
                    "source": "email_performance",
                    "patch": {"messaging": {path: value}},
                    "rationale": format!("{path} {value} did better"),
                    "evidence": {"sends": 1200}, "confidence": 0.8,
                })),
            )
            .await;
        assert!(answer.status.is_success(), "{answer:?}");
        assert_eq!(answer.body["status"], "pending", "{answer:?}");
        position = answer.position();
    }
    let cli = Sextant::new(&app, &env, OPERATOR_KEY, Some(id));
    // The editor `m` opens: it shortens "short" to "brief".
    let editor = cli.path("editor.sh");
    write(&editor, "#!/bin/sh\nsed -i 's/short/brief/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make the editor executable");
    let cli = cli.with("EDITOR", editor.to_str().expect("a path"));
    let command = cli.std_command(&[
        "approvals",
        "review",
        "--min-position",
        &position.to_string(),
    ]);
    let screen = tokio::task::spawn_blocking(move || -> Result<String, expectrl::Error> {
        let mut term = expectrl::Session::spawn(command)?;
        term.set_expect_timeout(Some(Duration::from_secs(30)));
        term.expect("rationale: tone plain did better")?;
        term.expect("[a]pprove")?;
        term.send("a")?;
        term.expect("rationale: length short did better")?;
        term.expect("[a]pprove")?;
        term.send("m")?;
        term.expect("rationale: cta meeting did better")?;
        term.expect("[a]pprove")?;
        term.send("r")?;
        term.expect("reason: ")?;
        term.send_line("not for this client")?;
        let done = term.expect("skipped 0")?;
        Ok(String::from_utf8_lossy(done.before()).into_owned())
    })
    .await
    .expect("the terminal session")
    .expect("the review answers each key");
    assert!(
        screen.contains("approved 1, modified 1, rejected 1"),
        "{screen}"
    );

    env.caught_up(Duration::from_secs(30)).await;
    let decided = cli.json(&["approvals", "list", "--status", "all"]).await;
    let items = decided["items"].as_array().cloned().unwrap_or_default();
    let status_of = |path: &str| -> String {
        let item = items
            .iter()
            .find(|u| u["patch"]["messaging"].get(path).is_some())
            .unwrap_or_else(|| panic!("no update of {path}: {decided}"));
        item["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(status_of("tone"), "applied", "{decided}");
    assert_eq!(status_of("length"), "applied", "{decided}");
    assert_eq!(status_of("cta"), "rejected", "{decided}");
    let context = cli.json(&["context", "show"]).await;
    assert_eq!(
        context["document"]["messaging"],
        json!({"tone": "plain", "length": "brief"}),
        "{context}"
    );
    app.stop().await;
}
