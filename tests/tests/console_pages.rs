//! The console's pages beyond review, in a real browser against the real
//! APIs: the context (each agent's view, the version that held at a time),
//! registering a client from the operator's home, learning (pattern
//! tables, forest plots, the suggestion engine, experiments), sends
//! (deliverability, suppression, dead letters, recent sends, authorisation
//! decisions, erasure), reports (weekly, downloads, the platform report),
//! alerts, settings, the approval queue's filters, paging and polling, the
//! operator's queue of every client, and the keyboard. Every page a test
//! looks at is saved under `target/console/` and checked with axe-core
//! (no serious or critical violation).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_domain::values::Provider;
use sextant_tests::browser::Browser;
use sextant_tests::providers;
use sextant_tests::simulator::{world, Planted};
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

struct Client {
    id: Uuid,
    admin: String,
    reviewer: String,
    reader: String,
}

async fn client(app: &Running, name: &str) -> Client {
    let (id, [admin, reviewer, reader], position) = app
        .co_pilot_client(name, ["admin", "reviewer", "reader"])
        .await;
    let c = Client {
        id,
        admin,
        reviewer,
        reader,
    };
    read(app, &c, "", position).await;
    c
}

/// A read of the client's, waiting for `position`: the console's first
/// page after sign-in has no position to wait for.
async fn read(app: &Running, c: &Client, path: &str, position: i64) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let answer = app
        .query(
            &format!("/v1/clients/{}{path}{sep}min_position={position}", c.id),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {answer:?}");
    answer.body
}

/// Proposes an update as the operator; answers its id and position.
async fn propose(
    app: &Running,
    c: &Client,
    source: &str,
    path: &str,
    rationale: &str,
) -> (String, i64) {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/updates", c.id),
            Some(OPERATOR_KEY),
            Some(
                json!({ "source": source, "confidence": 0.5, "rationale": rationale,
                         "patch": { "playbook": { path: "from the data" } },
                         "evidence": { "sends": 400 } }),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_eq!(answer.body["status"], "pending", "{answer:?}");
    let id = answer.body["update_id"]
        .as_str()
        .expect("an update id")
        .to_owned();
    read(app, c, "/approvals", answer.position()).await;
    (id, answer.position())
}

fn send(message: &str, lead: &str, resource: &str, at: DateTime<Utc>) -> Value {
    json!({
        "provider": "smartlead", "provider_message_id": message,
        "lead": { "email": format!("{lead}@example.com"), "name": format!("Name of {lead}"),
                  "title": "VP Finance", "industry": "fintech", "company_size": "11-50" },
        "channel": "email", "campaign_id": "q4", "step": 1, "resource": resource,
        "content": { "subject": format!("{lead}, quick question?"), "body_words": 84 },
        "sent_at": at.to_rfc3339()
    })
}

fn outcome(message: &str, kind: &str, at: DateTime<Utc>) -> Value {
    let mut o = json!({ "provider": "smartlead", "provider_message_id": message,
        "provider_event_id": format!("evt-{message}-{kind}"), "kind": kind,
        "occurred_at": at.to_rfc3339() });
    if kind == "bounced" {
        o["bounce_type"] = json!("hard");
    }
    if kind == "replied" {
        o["intent"] = json!("interested");
    }
    o
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a time")
        .with_timezone(&Utc)
}

const RESOURCE: &str = "sdr1@acme.example";

/// Thirty sends in week 2026-W48 from [`RESOURCE`], three hard bounces
/// and two replies; answers the position.
async fn a_week_of_sends(app: &Running, c: &Client) -> i64 {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/resources", c.id),
            Some(OPERATOR_KEY),
            Some(json!({ "kind": "mailbox", "address": RESOURCE, "daily_cap": 200 })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let start = at("2026-11-25T09:00:00Z");
    let sends: Vec<Value> = (0..30)
        .map(|i| {
            send(
                &format!("m-{i:02}"),
                &format!("lead{i:02}"),
                RESOURCE,
                start + chrono::Duration::minutes(i),
            )
        })
        .collect();
    let sent = app.ingest(c.id, "sends", &sends).await;
    let later = start + chrono::Duration::hours(3);
    let outcomes = vec![
        outcome("m-01", "bounced", later),
        outcome("m-02", "bounced", later),
        outcome("m-03", "bounced", later),
        outcome("m-10", "replied", later),
        outcome("m-11", "replied", later),
    ];
    let position = sent.max(app.ingest(c.id, "outcomes", &outcomes).await);
    read(app, c, "/sends", position).await;
    read(app, c, "/suppression", position).await;
    position
}

/// The `min_position` a redirect after a write carries.
fn position_in(path: &str) -> i64 {
    path.split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("min_position="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no min_position in {path}"))
}

/// Texts of every element `css` selects, in order.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let value = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim());",
            vec![json!(css)],
        )
        .await
        .expect("texts");
    serde_json::from_value(value).expect("a list of texts")
}

/// Posts a form the page does not show, with the session's own CSRF
/// token: what a person crafting requests could do.
async fn forge(browser: &Browser, action: &str) {
    browser
        .client
        .execute(
            "const form = document.createElement('form');
             form.method = 'post';
             form.action = arguments[0];
             const csrf = document.createElement('input');
             csrf.name = 'csrf';
             csrf.value = document.querySelector('input[name=csrf]').value;
             form.appendChild(csrf);
             document.body.appendChild(form);
             form.submit();",
            vec![json!(action)],
        )
        .await
        .expect("a forged form");
    browser.find("#problem").await;
}

/// Clicks `css` and waits until a new page has replaced this one and
/// shows `until`: the page before may show `until` too (a notice).
async fn click_to_next_page(browser: &Browser, css: &str, until: &str) {
    browser
        .client
        .execute("window.sextantBeforeClick = true;", vec![])
        .await
        .expect("mark the page");
    browser.click(css).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let old = browser
            .client
            .execute("return window.sextantBeforeClick === true;", vec![])
            .await
            .unwrap_or(json!(true));
        if old == json!(false) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} led to no new page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.find(until).await;
}

const PLANTED: [Planted; 1] = [Planted {
    family: "what",
    feature: "cta",
    value: "meeting",
    multiplier: 2.0,
}];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learning_page_shows_each_familys_patterns_sorted_on_the_server_with_a_forest_plot_and_an_admin_runs_the_suggestion_engine(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (sends, outcomes) = world(7, 3000, &PLANTED);
    let sent = app.ingest(c.id, "sends", &sends).await;
    let position = sent.max(app.ingest(c.id, "outcomes", &outcomes).await);
    for family in ["what", "when", "how", "who", "versions"] {
        read(&app, &c, &format!("/patterns/{family}"), position).await;
    }
    let browser = Browser::start("learning", &app).await;
    browser.sign_in(&c.admin).await;
    browser.goto(&format!("/clients/{}/learning", c.id)).await;
    browser.find("#patterns-what").await;
    browser.shot("patterns").await;

    for family in ["what", "when", "how", "who", "versions"] {
        let rows = browser.count(&format!("#patterns-{family} tbody tr")).await;
        assert!(rows > 0, "{family} has rows");
        assert_eq!(
            browser.count(&format!("#forest-{family} svg g.row")).await,
            rows,
            "one plotted row per table row of {family}"
        );
    }
    // The planted effect is significant, in the table and on the plot.
    let significant = texts(&browser, "#patterns-what tbody tr.significant th").await;
    assert!(
        significant.iter().any(|k| k.starts_with("cta=meeting")),
        "{significant:?}"
    );
    assert!(
        browser
            .has("#forest-what g.row.significant[data-key='cta=meeting']")
            .await
    );
    assert!(browser.has("#forest-what svg[role=img] > title").await);

    // Sorted on the server: by lift, largest first, then turned round.
    browser
        .click_then("#patterns-what thead th:nth-child(5) a", "#patterns-what")
        .await;
    assert!(
        browser.path().await.contains("sort=-lift"),
        "{}",
        browser.path().await
    );
    browser.shot("sorted-by-lift").await;
    let lifts: Vec<f64> = texts(&browser, "#patterns-what tbody tr > :nth-child(5)")
        .await
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(lifts.len() > 2, "{lifts:?}");
    assert!(
        lifts.windows(2).all(|w| w[0] >= w[1]),
        "descending: {lifts:?}"
    );
    assert_eq!(
        browser
            .find("#patterns-what thead th:nth-child(5)")
            .await
            .attr("aria-sort")
            .await
            .expect("attr")
            .as_deref(),
        Some("descending")
    );
    browser
        .click_then("#patterns-what thead th:nth-child(5) a", "#patterns-what")
        .await;
    assert!(browser.path().await.contains("sort=lift"));
    let lifts: Vec<f64> = texts(&browser, "#patterns-what tbody tr > :nth-child(5)")
        .await
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(
        lifts.windows(2).all(|w| w[0] <= w[1]),
        "ascending: {lifts:?}"
    );

    browser
        .goto(&format!("/clients/{}/learning#forest-what", c.id))
        .await;
    browser.find("#forest-what").await;
    browser.shot("forest").await;

    browser
        .click_then("#run-suggestions-button", "#notice")
        .await;
    browser.shot("engine-ran").await;
    let notice = browser.text("#notice").await;
    assert!(
        notice.starts_with("The suggestion engine ran and made"),
        "{notice}"
    );
    assert!(
        !notice.contains("made 0 "),
        "the planted effect is proposed: {notice}"
    );
    assert!(browser.path().await.contains("min_position="));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_starts_an_experiment_sees_its_variants_with_intervals_and_a_sample_ratio_warning_then_concludes_it(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let browser = Browser::start("experiment", &app).await;
    browser.sign_in(&c.admin).await;
    browser.goto(&format!("/clients/{}/learning", c.id)).await;
    browser.find("#experiments-empty").await;
    browser
        .fill("#experiment-name", "subject\u{202E}test")
        .await;
    browser.fill("#variant-1", "short").await;
    browser.fill("#variant-2", "long").await;
    browser.shot("new-experiment").await;
    browser.click_then("#create-experiment", "#variants").await;
    browser.shot("started").await;
    assert_eq!(browser.text("#notice").await, "The experiment has started.");
    let heading = browser.text("h1").await;
    assert!(heading.contains("subject[U+202E]test"), "{heading}");
    let path = browser.path().await;
    let experiment: Uuid = path
        .split('/')
        .nth(4)
        .and_then(|s| s.split('?').next())
        .and_then(|s| Uuid::try_parse(s).ok())
        .expect("the experiment's page");

    // Three times as many sends of one variant as of the other, at equal
    // weights: the assignment is broken, and the page says so.
    let (mut sends, mut outcomes) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let variant = if i % 4 == 0 { "long" } else { "short" };
        let message = format!("x-{i}");
        sends.push(json!({ "provider": "sim", "provider_message_id": message,
            "lead_ref": format!("lead-ref-{i:04}"), "channel": "email", "experiment_id": experiment,
            "variant": variant, "sent_at": "2026-11-18T09:00:00Z" }));
        if i % 10 == 0 {
            outcomes.push(json!({ "provider": "sim", "provider_message_id": message,
                "kind": "replied", "intent": "interested", "occurred_at": "2026-11-18T12:00:00Z" }));
        }
    }
    let sent = app.ingest(c.id, "sends", &sends).await;
    let position = sent.max(app.ingest(c.id, "outcomes", &outcomes).await);
    browser
        .goto(&format!(
            "/clients/{}/experiments/{experiment}?min_position={position}",
            c.id
        ))
        .await;
    browser.find("#sample-ratio-warning").await;
    browser.shot("results").await;
    let rows = texts(&browser, "#variants tbody tr").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("short") && r.contains("300") && r.contains('–')),
        "{rows:?}"
    );
    assert_eq!(browser.count("#forest-variants svg g.row").await, 2);
    assert_eq!(
        browser
            .find("#decision")
            .await
            .attr("data-decision")
            .await
            .expect("attr")
            .as_deref(),
        Some("sample_ratio_mismatch")
    );

    browser.click_then("#conclude-button", "#notice").await;
    browser.shot("concluded").await;
    assert_eq!(
        browser.text("#notice").await,
        "The experiment is concluded."
    );
    assert_eq!(
        browser
            .find("#experiment-status")
            .await
            .attr("data-status")
            .await
            .expect("attr")
            .as_deref(),
        Some("concluded")
    );
    assert!(
        !browser.has("#conclude").await,
        "an experiment concludes once"
    );
    browser.goto(&format!("/clients/{}/learning", c.id)).await;
    browser.find(&format!("#experiment-{experiment}")).await;
    browser.shot("listed").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sends_page_shows_deliverability_per_resource_suppression_dead_letters_and_recent_sends_with_outcomes(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let position = a_week_of_sends(&app, &c).await;
    providers::set_secret(
        &app,
        c.id,
        Provider::Instantly,
        "a-webhook-secret-of-some-length",
    )
    .await;
    let answer = providers::deliver_signed(
        &app,
        Provider::Instantly,
        "a-webhook-secret-of-some-length",
        c.id,
        "x",
        b"{not json at all",
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    read(&app, &c, "/dead-letters", position).await;
    read(&app, &c, "/reports/weekly", position).await;

    let browser = Browser::start("sends", &app).await;
    browser.sign_in(&c.admin).await;
    browser.goto(&format!("/clients/{}/sends", c.id)).await;
    browser.find("#resources").await;
    browser.shot("admin").await;
    let resource = browser.text("#resources tbody tr").await;
    assert!(
        resource.contains(RESOURCE) && resource.contains("200"),
        "{resource}"
    );
    assert!(resource.contains("10.0%"), "3 bounces of 30: {resource}");
    assert!(resource.contains("over limit"), "{resource}");
    assert_eq!(browser.count("#suppression-list tbody tr").await, 3);
    assert!(browser
        .text("#suppression-list")
        .await
        .contains("hard bounce"));
    assert_eq!(browser.count("#dead-list tbody tr").await, 1);
    assert_eq!(
        browser.count("#send-list tbody tr").await,
        25,
        "a page of 25"
    );
    let sends = browser.text("#send-list").await;
    assert!(
        sends.contains("Name of lead29"),
        "an admin sees names: {sends}"
    );
    assert!(sends.contains("replied (interested)"), "{sends}");
    browser.click_then("#sends-older", "#send-list").await;
    browser.shot("older").await;
    assert_eq!(
        browser.count("#send-list tbody tr").await,
        5,
        "the other five"
    );
    let older = browser.text("#send-list").await;
    assert!(older.contains("bounced (hard)"), "{older}");
    browser.close().await;

    let browser = Browser::start("sends-reader", &app).await;
    browser.sign_in(&c.reader).await;
    browser.goto(&format!("/clients/{}/sends", c.id)).await;
    browser.find("#send-list").await;
    browser.shot("reader").await;
    let text = browser.dom_text().await;
    assert!(!text.contains("@example.com"), "a reader sees no addresses");
    assert!(!text.contains("Name of lead"), "a reader sees no names");
    assert!(!browser.has("#erase-form").await, "a reader may not erase");
    assert!(!browser.has(".personal").await);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_lead_asks_for_confirmation_then_its_personal_data_is_gone_from_the_sends_page() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let position = a_week_of_sends(&app, &c).await;
    let listed = read(&app, &c, "/sends?limit=100", position).await;
    let lead_ref = listed["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["provider_message_id"] == "m-29"))
        .and_then(|s| s["lead_ref"].as_str())
        .expect("the lead of m-29")
        .to_owned();

    let browser = Browser::start("erase", &app).await;
    browser.sign_in(&c.admin).await;
    browser.goto(&format!("/clients/{}/sends", c.id)).await;
    assert!(browser.text("#send-list").await.contains("Name of lead29"));
    browser.fill("#lead-ref", &lead_ref).await;
    browser.click_then("#erase-start", "#erase-confirm").await;
    browser.shot("confirm").await;
    assert!(browser.text("h1").await.contains(&lead_ref));
    browser.click_then("#erase-button", "#notice").await;
    browser.shot("erased").await;
    assert_eq!(
        browser.text("#notice").await,
        "The lead's personal data is erased."
    );
    assert!(browser.path().await.contains("min_position="));
    let text = browser.text("#send-list").await;
    assert!(!text.contains("Name of lead29"), "{text}");
    assert!(!text.contains("lead29@example.com"), "{text}");
    assert!(text.contains("Name of lead28"), "other leads stay: {text}");
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_page_picks_a_week_shows_its_tables_and_passes_on_csv_and_html_downloads()
{
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let position = a_week_of_sends(&app, &c).await;
    read(&app, &c, "/reports/weekly?week=2026-W48", position).await;

    let browser = Browser::start("report", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser
        .goto(&format!("/clients/{}/reports?week=2026-W47", c.id))
        .await;
    browser.find("#week-picker").await;
    browser.shot("empty-week").await;
    assert!(browser.text("h1").await.contains("2026-W47"));
    browser.click_then("#next-week", "#breakdowns").await;
    assert!(browser.path().await.contains("week=2026-W48"));
    browser.shot("weekly").await;
    assert!(browser.text("#volume").await.starts_with("30 sends"));
    assert!(browser.count("#headline tbody tr").await >= 4);
    assert!(browser.count("#funnel tbody tr").await >= 3);
    let breakdowns = browser.text("#breakdowns").await;
    assert!(breakdowns.contains(RESOURCE), "{breakdowns}");
    browser.fill("#week", "2026-W47").await;
    browser
        .click_then("#week-picker button", "#week-picker")
        .await;
    assert!(browser.path().await.contains("week=2026-W47"));

    // A recent week (the last complete one, the page's default): its
    // meetings are still maturing, named with the date their window
    // closes, and the meeting rate is marked maturing, the delivery rate
    // (known within hours) not.
    let recent = read(&app, &c, "/reports/weekly", position).await;
    let meeting = &recent["maturity"]["meeting"];
    assert_eq!(meeting["maturing"], true, "{meeting}");
    let until = at(meeting["matures_at"].as_str().expect("a date"))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    browser.goto(&format!("/clients/{}/reports", c.id)).await;
    browser.find("#maturing").await;
    browser.shot("recent-week").await;
    let note = browser.text("#maturing-meeting").await;
    assert!(
        note.starts_with("Meetings") && note.contains(&until),
        "{note}"
    );
    let rows = texts(&browser, "#headline tbody th").await;
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.starts_with(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} row: {rows:?}"))
    };
    assert!(row("meeting rate").contains("(maturing)"), "{rows:?}");
    assert!(!row("delivery rate").contains("(maturing)"), "{rows:?}");

    // The downloads, fetched as the browser would, with its session.
    let cookie = browser.cookie("sextant_console").await;
    let http = reqwest::Client::new();
    for (format, kind, starts) in [
        ("csv", "text/csv", "section,row,field,value"),
        ("html", "text/html", "<!doctype html"),
    ] {
        let answer = http
            .get(browser.url(&format!(
                "/clients/{}/reports/download?format={format}&week=2026-W48",
                c.id
            )))
            .header("cookie", format!("sextant_console={cookie}"))
            .send()
            .await
            .expect("a download");
        assert_eq!(answer.status(), StatusCode::OK);
        let headers = answer.headers().clone();
        assert!(headers["content-type"]
            .to_str()
            .expect("text")
            .starts_with(kind));
        assert!(headers["content-disposition"]
            .to_str()
            .expect("text")
            .starts_with("attachment"));
        let body = answer.text().await.expect("a body");
        assert!(
            body.to_lowercase().starts_with(&starts.to_lowercase()),
            "{format}: {}",
            &body[..body.len().min(200)]
        );
        assert!(
            !body.contains(&c.reviewer),
            "the key never reaches the browser"
        );
    }
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .get(browser.url(&format!("/clients/{}/reports/download?format=csv", c.id)))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        refused.status(),
        StatusCode::SEE_OTHER,
        "no session, no download"
    );
    browser.close().await;

    let browser = Browser::start("platform-report", &app).await;
    browser.sign_in(OPERATOR_KEY).await;
    browser.click_then("#platform-report", "#platform").await;
    browser.goto("/reports?week=2026-W48").await;
    browser.find("#platform").await;
    browser.shot("platform").await;
    let row = browser.text("#platform tbody tr").await;
    assert!(row.contains("Acme") && row.contains("30"), "{row}");
    browser
        .click_then("#platform thead th:nth-child(2) a", "#platform")
        .await;
    assert!(browser.path().await.contains("sort=sends"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_alert_is_acknowledged_with_a_note_and_resolved_alerts_are_listed_apart() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let start = Utc::now() - chrono::Duration::hours(10);
    let sends: Vec<Value> = (0..200)
        .map(|i| {
            send(
                &format!("a-{i:03}"),
                &format!("l{i}"),
                RESOURCE,
                start + chrono::Duration::minutes(i),
            )
        })
        .collect();
    let bounces: Vec<Value> = (0..8)
        .map(|i| {
            outcome(
                &format!("a-{:03}", i * 20),
                "bounced",
                start + chrono::Duration::minutes(i * 20 + 1),
            )
        })
        .collect();
    let sent = app.ingest(c.id, "sends", &sends).await;
    let position = sent.max(app.ingest(c.id, "outcomes", &bounces).await);
    env.eventually(
        "the read models catch up",
        Duration::from_secs(60),
        || async {
            env.checkpoint("sends").await >= position
                && env.checkpoint("patterns").await >= position
                && env.checkpoint("clients").await >= position
        },
    )
    .await;
    let detected = app
        .command(Method::POST, "/v1/alerts/detect", Some(OPERATOR_KEY), None)
        .await;
    assert_eq!(detected.status, StatusCode::OK, "{detected:?}");
    read(&app, &c, "/alerts", detected.position()).await;

    let browser = Browser::start("alerts", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser.goto(&format!("/clients/{}/alerts", c.id)).await;
    browser.find("#alert-list").await;
    browser.shot("open").await;
    let alert = browser.text("#alert-list li").await;
    assert!(
        alert.contains("bounce rate") && alert.contains(RESOURCE),
        "{alert}"
    );
    assert!(alert.contains("sends 200"), "evidence as a table: {alert}");
    browser
        .fill("#alert-list li input[name=note]", "resting the mailbox")
        .await;
    browser
        .click_then("#alert-list li button.acknowledge", "#notice")
        .await;
    browser.shot("acknowledged").await;
    assert_eq!(browser.text("#notice").await, "Acknowledged.");
    assert!(browser.path().await.contains("min_position="));
    let acknowledged = browser.text("#alert-list li .acknowledged").await;
    assert!(
        acknowledged.contains("resting the mailbox"),
        "{acknowledged}"
    );
    assert!(
        !browser.has("#alert-list li .acknowledge-form").await,
        "once"
    );
    browser
        .goto(&format!("/clients/{}/alerts?status=resolved", c.id))
        .await;
    browser.find("#alerts-empty").await;
    browser.shot("resolved").await;
    browser.close().await;

    let browser = Browser::start("alerts-reader", &app).await;
    browser.sign_in(&c.reader).await;
    browser.goto(&format!("/clients/{}/alerts", c.id)).await;
    browser.find("#alert-list").await;
    browser.shot("reader").await;
    assert!(!browser.has(".acknowledge-form").await);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_mode_limits_and_recipients_sets_a_webhook_secret_issues_a_key_shown_once_revokes_it_and_adds_a_resource(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let browser = Browser::start("settings", &app).await;
    browser.sign_in(&c.admin).await;
    let settings = format!("/clients/{}/settings", c.id);
    browser.goto(&settings).await;
    browser.find("#mode").await;
    browser.shot("settings").await;
    assert!(browser
        .text("#mode")
        .await
        .contains("waits in the approval queue"));

    browser.fill("#timezone", "Australia/Sydney").await;
    click_to_next_page(&browser, "#save-profile", "#notice").await;
    assert_eq!(browser.text("#notice").await, "Saved.");
    assert_eq!(
        browser
            .find("#timezone")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("Australia/Sydney")
    );

    browser.click("#mode-autopilot").await;
    browser.fill("#autopilot-threshold", "0.8").await;
    click_to_next_page(&browser, "#save-mode", "#notice").await;
    assert!(browser
        .find("#mode-autopilot")
        .await
        .is_selected()
        .await
        .expect("checked"));

    browser.fill("#bounce-rate", "5").await;
    browser.fill("#complaint-rate", "0.2").await;
    browser
        .fill("#recipients", "ops@acme.example, ceo@acme.example")
        .await;
    click_to_next_page(&browser, "#save-limits", "#notice").await;
    browser.shot("saved").await;
    let detail = read(&app, &c, "", position_in(&browser.path().await)).await;
    assert_eq!(detail["alert_limits"]["bounce_rate"], json!(0.05));
    assert_eq!(detail["alert_limits"]["complaint_rate"], json!(0.002));
    assert_eq!(
        detail["report_recipients"],
        json!(["ops@acme.example", "ceo@acme.example"])
    );
    assert_eq!(detail["permission_mode"], "autopilot");
    assert_eq!(detail["timezone"], "Australia/Sydney");

    // A limit the API refuses (60% is above what a rate limit may be) is
    // shown on the settings page with the field it names; nothing changes.
    browser.fill("#bounce-rate", "60").await;
    click_to_next_page(&browser, "#save-limits", "#refused").await;
    browser.shot("refused").await;
    let refused = browser.text("#refused").await;
    assert!(
        refused.starts_with("Not saved") && refused.contains("bounce_rate"),
        "{refused}"
    );
    assert_eq!(
        browser
            .find("#bounce-rate")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("5"),
        "the settings as they are"
    );
    let unchanged = read(&app, &c, "", 0).await;
    assert_eq!(unchanged["alert_limits"]["bounce_rate"], json!(0.05));

    let secret = "a-webhook-secret-never-shown";
    assert!(browser.text("#webhook-smartlead").await.contains("not set"));
    browser.fill("#webhook-secret", secret).await;
    click_to_next_page(&browser, "#set-secret", "#notice").await;
    assert_eq!(browser.text("#notice").await, "The webhook secret is set.");
    assert!(browser
        .text("#webhook-smartlead .secret-state")
        .await
        .starts_with("set"));
    assert!(browser
        .text("#webhook-smartlead")
        .await
        .contains(&format!("/v1/webhooks/smartlead/{}", c.id)));
    assert!(!browser
        .client
        .source()
        .await
        .expect("source")
        .contains(secret));

    browser.fill("#key-label", "dashboard").await;
    click_to_next_page(&browser, "#issue-key-button", "#new-key").await;
    browser.shot("key-issued").await;
    let key = browser
        .find("#new-key")
        .await
        .prop("value")
        .await
        .expect("value")
        .expect("the key");
    assert!(key.starts_with("sxk_"), "{key}");
    assert!(
        !browser.path().await.contains(&key),
        "the key is in no address"
    );
    let whoami = app.query("/v1/whoami", Some(&key)).await;
    assert_eq!(whoami.body["role"], "reader", "{whoami:?}");
    click_to_next_page(&browser, "#back-to-settings", "#keys").await;
    assert!(
        !browser
            .client
            .source()
            .await
            .expect("source")
            .contains(&key),
        "shown once"
    );
    let key_id = whoami.body["key_id"].as_str().expect("a key id").to_owned();
    click_to_next_page(
        &browser,
        &format!("#key-{key_id} .revoke-form button"),
        "#notice",
    )
    .await;
    browser.shot("revoked").await;
    assert!(browser
        .text(&format!("#key-{key_id}"))
        .await
        .contains("revoked"));
    let refused = app.query("/v1/whoami", Some(&key)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");

    browser.fill("#resource-address", "sdr2@acme.example").await;
    browser.fill("#resource-cap", "150").await;
    click_to_next_page(&browser, "#save-resource", "#notice").await;
    browser.shot("resource").await;
    let resources = browser.text("#resource-list").await;
    assert!(
        resources.contains("sdr2@acme.example") && resources.contains("150"),
        "{resources}"
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_no_admin_forms_on_the_new_pages_and_a_forged_engine_run_is_refused_by_the_api(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let browser = Browser::start("reader-pages", &app).await;
    browser.sign_in(&c.reader).await;
    browser.goto(&format!("/clients/{}/learning", c.id)).await;
    browser.find("#experiments").await;
    browser.shot("learning").await;
    assert!(!browser.has("#run-suggestions").await);
    assert!(!browser.has("#new-experiment").await);
    browser.goto(&format!("/clients/{}/settings", c.id)).await;
    browser.find("#read-only").await;
    browser.shot("settings").await;
    for form in [
        "#profile",
        "#save-mode",
        "#save-limits",
        "#webhook-form",
        "#issue-key",
        "#resource-form",
        ".revoke-form",
    ] {
        assert!(!browser.has(form).await, "{form} is not shown to a reader");
    }
    forge(&browser, &format!("/clients/{}/learning/suggestions", c.id)).await;
    browser.shot("forged").await;
    let problem = browser.text("#problem").await;
    assert!(
        problem.contains("a reader key may not do this"),
        "{problem}"
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_filters_by_source_pathway_and_age_pages_by_its_cursor_and_shows_a_new_update_without_a_reload(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (a, _) = propose(&app, &c, "crm_analysis", "a", "won deals say a").await;
    let (b, _) = propose(&app, &c, "crm_analysis", "b", "won deals say b").await;
    let (s, _) = propose(&app, &c, "agent_suggestion", "s", "the agent says s").await;
    let browser = Browser::start("queue-filters", &app).await;
    browser.sign_in(&c.reviewer).await;
    let queue = format!("/clients/{}/approvals", c.id);

    browser
        .goto(&format!("{queue}?source=agent_suggestion"))
        .await;
    browser.find("#queue").await;
    browser.shot("by-source").await;
    assert_eq!(browser.count("#queue > li").await, 1);
    assert!(browser.has(&format!("#item-{s}")).await);
    browser.goto(&format!("{queue}?pathway=analysis")).await;
    browser.find("#queue").await;
    assert_eq!(browser.count("#queue > li").await, 2);
    browser.goto(&format!("{queue}?age=1d")).await;
    browser.find("#queue-empty").await;
    browser.shot("by-age").await;
    assert!(browser
        .text("#queue-empty")
        .await
        .contains("match the filters"));

    browser.goto(&format!("{queue}?limit=2")).await;
    browser.find("#queue-next").await;
    browser.shot("first-page").await;
    assert!(browser.has(&format!("#item-{a}")).await && browser.has(&format!("#item-{b}")).await);
    assert!(!browser.has("#queue-poll").await, "only the tail polls");
    browser
        .click_then("#queue-next", &format!("#item-{s}"))
        .await;
    browser.shot("second-page").await;
    assert_eq!(browser.count("#queue > li").await, 1);

    browser.goto(&queue).await;
    browser.find("#queue-poll").await;
    browser
        .client
        .execute("window.sextantMarker = 'still here';", vec![])
        .await
        .expect("a marker");
    let (new, _) = propose(&app, &c, "crm_analysis", "n", "a new one arrives").await;
    browser.find(&format!("#item-{new}")).await;
    browser.shot("polled").await;
    let marker = browser
        .client
        .execute("return window.sextantMarker;", vec![])
        .await
        .expect("the marker");
    assert_eq!(marker, json!("still here"), "the page was not reloaded");
    assert_eq!(browser.count("#queue > li").await, 4, "each update once");
    // The new one works as the others do.
    browser
        .click_then(&format!("#item-{new} button.approve"), "#notice")
        .await;
    assert!(browser.text("#notice").await.starts_with("Approved."));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reaches_the_queue_of_every_client_from_home_and_opens_an_update() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let acme = client(&app, "Acme").await;
    let globex = client(&app, "Globex").await;
    let (a, _) = propose(&app, &acme, "crm_analysis", "a", "acme's won deals").await;
    let (g, _) = propose(&app, &globex, "crm_analysis", "g", "globex's won deals").await;
    let browser = Browser::start("operator-queue", &app).await;
    browser.sign_in(OPERATOR_KEY).await;
    browser.find("#clients").await;
    browser.shot("operator-home").await;
    browser.click_then("#every-queue", "#all-queue").await;
    browser.shot("every-queue").await;
    assert!(browser.text(&format!("#cross-{a}")).await.contains("Acme"));
    assert!(browser
        .text(&format!("#cross-{g}"))
        .await
        .contains("Globex"));
    browser
        .click_then(&format!("#cross-{g} a[href$='{g}']"), "#approve")
        .await;
    browser.shot("item").await;
    assert_eq!(
        browser.path().await,
        format!("/clients/{}/approvals/{g}", globex.id)
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_shortcuts_move_the_selection_open_the_forms_approve_and_show_the_help() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (first, _) = propose(&app, &c, "crm_analysis", "a", "first").await;
    let (second, _) = propose(&app, &c, "crm_analysis", "b", "second").await;
    let browser = Browser::start("keyboard", &app).await;
    browser.sign_in(&c.reviewer).await;
    let queue = format!("/clients/{}/approvals", c.id);
    browser.goto(&queue).await;
    browser.find("#queue").await;

    browser.press('j').await;
    assert_eq!(browser.focused_id().await, format!("item-{first}"));
    browser.press('j').await;
    assert_eq!(browser.focused_id().await, format!("item-{second}"));
    browser.shot("second-selected").await;
    browser.press('k').await;
    assert_eq!(browser.focused_id().await, format!("item-{first}"));

    assert!(!browser
        .find("#shortcuts")
        .await
        .is_displayed()
        .await
        .expect("shown?"));
    browser.press('?').await;
    assert!(browser
        .find("#shortcuts")
        .await
        .is_displayed()
        .await
        .expect("shown?"));
    browser.shot("help").await;
    browser.press('?').await;
    assert!(!browser
        .find("#shortcuts")
        .await
        .is_displayed()
        .await
        .expect("shown?"));

    browser.press('m').await;
    browser.find("#modify").await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), format!("{queue}/{first}"));
    assert_eq!(url.fragment(), Some("modify"));
    browser.press('r').await;
    assert_eq!(
        browser.focused_id().await,
        "reason",
        "r on an update's page goes to the reason"
    );
    browser.shot("reject-focused").await;

    browser.goto(&queue).await;
    browser.find("#queue").await;
    browser.press('j').await;
    browser.press('r').await;
    browser.find("#reject").await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.fragment(), Some("reject"));

    browser.goto(&queue).await;
    browser.find("#queue").await;
    browser.press('j').await;
    browser.press('j').await;
    browser.press('a').await;
    browser.find("#notice").await;
    browser.shot("approved").await;
    assert!(browser.text("#notice").await.starts_with("Approved."));
    assert!(
        !browser.has(&format!("#item-{second}")).await,
        "the selected one was approved"
    );
    assert!(browser.has(&format!("#item-{first}")).await);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accessibility_check_finds_a_field_without_a_label_so_a_clean_page_means_something() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let browser = Browser::start("axe-sanity", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser.goto(&format!("/clients/{}/settings", c.id)).await;
    browser.find("#keys").await;
    assert_eq!(browser.accessibility_violations().await, json!([]));
    browser
        .client
        .execute(
            "const field = document.createElement('input');
             field.type = 'text';
             document.querySelector('main').appendChild(field);",
            vec![],
        )
        .await
        .expect("a field without a label");
    let found = browser.accessibility_violations().await;
    assert!(
        found
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["id"] == "label")),
        "{found}"
    );
    browser.close().await;
    app.stop().await;
}

/// A human's change as the client's reviewer, applied at once: the
/// version it made and when, as the query API has it.
async fn set_context(app: &Running, c: &Client, patch: Value) -> (i64, String) {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/updates", c.id),
            Some(&c.reviewer),
            Some(
                json!({ "source": "manual", "patch": patch, "rationale": "set by hand",
                         "confidence": 1.0 }),
            ),
        )
        .await;
    assert_eq!(answer.body["status"], "applied", "{answer:?}");
    let context = read(app, c, "/context", answer.position()).await;
    read(app, c, "", answer.position()).await;
    (
        context["version"].as_i64().expect("a version"),
        context["updated_at"]
            .as_str()
            .expect("when it was made")
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_page_shows_each_agents_view_and_the_version_that_held_at_a_time_and_a_refused_time_next_to_its_field(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (first, made) = set_context(
        &app,
        &c,
        json!({
            "company": { "value_proposition": "close books in 2 days" },
            "icp": { "industries": ["fintech"] },
            "personas": { "cfo": { "goals": ["faster close"] } },
            "messaging": { "tone": "plain" },
            "campaign_goals": { "meetings_per_week": 5 },
            "playbook": { "subject_patterns": ["question"], "lead_scoring": { "tier": "warm-by-title" } },
            "best_practices": { "email": ["keep under 120 words"], "linkedin": ["no pitch in invite"] },
            "prompts": { "email_strategist": { "instructions": "be brief" },
                         "persona_builder": { "instructions": "name the buyer" } }
        }),
    )
    .await;
    assert_eq!(first, 1);
    let (second, _) = set_context(&app, &c, json!({ "messaging": { "tone": "bold" } })).await;
    assert_eq!(second, 2);

    let browser = Browser::start("context-views", &app).await;
    browser.sign_in(&c.reader).await;
    browser.goto(&format!("/clients/{}/context", c.id)).await;
    browser.find("#agent-picker").await;
    browser.shot("document").await;
    let options = texts(&browser, "#agent option").await;
    assert_eq!(
        options,
        vec![
            "company research",
            "account intelligence",
            "persona builder",
            "email strategist",
            "linkedin outreach"
        ]
    );

    browser
        .find("#agent option[value=email_strategist]")
        .await
        .click()
        .await
        .expect("choose the agent");
    browser.click_then("#show-agent", "#context-now").await;
    browser.shot("email-strategist").await;
    assert!(browser.path().await.contains("agent=email_strategist"));
    assert!(browser.text("h1").await.contains("email strategist"));
    let keys: Vec<String> = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('section.context-section')).map(s => s.dataset.key);",
            vec![],
        )
        .await
        .map(|v| serde_json::from_value(v).expect("keys"))
        .expect("the sections");
    assert_eq!(
        keys,
        vec![
            "company",
            "personas",
            "messaging",
            "campaign_goals",
            "playbook",
            "best_practices",
            "instructions"
        ]
    );
    let text = browser.dom_text().await;
    assert!(
        text.contains("be brief") && text.contains("question"),
        "{text}"
    );
    assert!(text.contains("bold"), "the view is of the context now");
    assert!(text.contains("keep under 120 words"), "{text}");
    for absent in [
        "fintech",
        "warm-by-title",
        "no pitch in invite",
        "name the buyer",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} is not the email strategist's"
        );
    }
    assert_eq!(
        browser
            .find("#context-version")
            .await
            .attr("data-version")
            .await
            .expect("attr")
            .as_deref(),
        Some("2")
    );

    browser
        .goto(&format!("/clients/{}/context?agent=persona_builder", c.id))
        .await;
    browser.find("#context-now").await;
    let text = browser.dom_text().await;
    assert!(
        text.contains("fintech") && text.contains("name the buyer"),
        "{text}"
    );
    assert!(
        !text.contains("bold") && !text.contains("be brief"),
        "{text}"
    );

    // The time version 1 was made, typed into the field: version 1 held.
    browser.goto(&format!("/clients/{}/context", c.id)).await;
    browser.fill("#at", &made).await;
    browser.click_then("#show-at", "#context-now").await;
    browser.shot("as-of").await;
    assert!(browser.path().await.contains("at="));
    assert_eq!(
        browser
            .find("#context-version")
            .await
            .attr("data-version")
            .await
            .expect("attr")
            .as_deref(),
        Some("1")
    );
    assert!(browser
        .text("#context-version")
        .await
        .starts_with("Version 1 held then"));
    let text = browser.dom_text().await;
    assert!(text.contains("plain") && !text.contains("bold"), "{text}");

    browser
        .goto(&format!(
            "/clients/{}/context?at=2000-01-01T00:00:00Z",
            c.id
        ))
        .await;
    browser.find("#context-empty").await;
    assert!(browser.text("h1").await.contains("2000-01-01 00:00 UTC"));
    assert_eq!(
        browser
            .find("#context-version")
            .await
            .attr("data-version")
            .await
            .expect("attr")
            .as_deref(),
        Some("0")
    );

    for (typed, said) in [
        ("yesterday", "must be an RFC 3339 time"),
        ("+275000-01-01T00:00:00Z", "out of range"),
    ] {
        browser.goto(&format!("/clients/{}/context", c.id)).await;
        browser.fill("#at", typed).await;
        browser.click_then("#show-at", "#at-error").await;
        let error = browser.text("#at-error").await;
        assert!(error.contains(said), "{typed}: {error}");
        assert_eq!(
            browser
                .find("#at")
                .await
                .prop("value")
                .await
                .expect("value")
                .as_deref(),
            Some(typed),
            "kept for correction"
        );
        assert_eq!(
            browser
                .find("#at")
                .await
                .attr("aria-describedby")
                .await
                .expect("attr")
                .as_deref(),
            Some("at-error")
        );
        assert!(
            browser.has("#agent-picker").await,
            "the page, not an error page"
        );
    }
    browser.shot("refused-time").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_registers_a_client_from_home_lands_on_its_home_and_reaches_its_settings_where_keys_are_issued(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let acme = client(&app, "Acme").await;
    let browser = Browser::start("register-client", &app).await;
    browser.sign_in(OPERATOR_KEY).await;
    browser.find("#new-client").await;
    browser.shot("home").await;
    assert!(browser.has(&format!("#settings-{}", acme.id)).await);

    browser.fill("#new-name", "Globex\u{202E}Ltd").await;
    browser.fill("#new-industry", "logistics").await;
    browser.fill("#new-region", "EMEA").await;
    browser.fill("#new-timezone", "Mars/Olympus_Mons").await;
    browser
        .find("#new-size option[value='51-200']")
        .await
        .click()
        .await
        .expect("a size");
    browser
        .find("#new-mode option[value=manual]")
        .await
        .click()
        .await
        .expect("a mode");
    browser
        .click_then("#register-client", "#new-timezone-error")
        .await;
    browser.shot("refused").await;
    assert!(browser.text("#problem").await.contains("not registered"));
    assert_eq!(
        browser
            .find("#new-name")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("Globex\u{202E}Ltd"),
        "what was typed is kept"
    );
    let listed = app.query("/v1/clients", Some(OPERATOR_KEY)).await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "nothing was registered: {listed:?}"
    );

    browser.fill("#new-timezone", "Europe/Berlin").await;
    browser.click_then("#register-client", "#notice").await;
    browser.shot("registered").await;
    let path = browser.path().await;
    assert!(path.contains("done=client_registered"), "{path}");
    position_in(&path);
    let id: Uuid = path
        .trim_start_matches("/clients/")
        .split('?')
        .next()
        .and_then(|s| Uuid::try_parse(s).ok())
        .unwrap_or_else(|| panic!("the new client's home: {path}"));
    assert_eq!(
        browser.text("#notice").await,
        "The client is registered. Issue its keys in its settings."
    );
    assert!(browser.text("h1").await.contains("Globex[U+202E]Ltd"));
    let detail = app
        .query(&format!("/v1/clients/{id}"), Some(OPERATOR_KEY))
        .await;
    assert_eq!(detail.body["timezone"], "Europe/Berlin", "{detail:?}");
    assert_eq!(detail.body["permission_mode"], "manual");
    assert_eq!(detail.body["company_size"], "51-200");

    browser.goto("/").await;
    browser
        .click_then(&format!("#settings-{id}"), "#issue-key")
        .await;
    browser.shot("settings").await;
    assert_eq!(browser.path().await, format!("/clients/{id}/settings"));
    browser.close().await;

    let browser = Browser::start("register-client-admin", &app).await;
    browser.sign_in(&acme.admin).await;
    browser.goto("/").await;
    browser.find("#activity").await;
    assert_eq!(browser.path().await, format!("/clients/{}", acme.id));
    assert!(
        !browser.has("#new-client").await,
        "only the operator registers"
    );
    forge(&browser, "/clients").await;
    browser.shot("forged").await;
    assert!(browser
        .text("#problem")
        .await
        .contains("only the operator may do this"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sends_page_lists_authorisation_decisions_with_their_reasons_paged_by_the_audit_cursor_without_personal_data(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    a_week_of_sends(&app, &c).await;
    let authorize =
        |lead: String, channel: &'static str, resource: &'static str, tier: &'static str| {
            let app = &app;
            let id = c.id;
            async move {
                let answer = app
                    .command(
                        Method::POST,
                        &format!("/v1/clients/{id}/sends/authorize"),
                        Some(OPERATOR_KEY),
                        Some(
                            json!({ "lead_ref": lead, "channel": channel, "resource": resource,
                                 "lead_tier": tier }),
                        ),
                    )
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
                answer.position()
            }
        };
    // Oldest: a resource the client does not have; then 25 permits; newest:
    // a channel the tier does not allow, on a seat the client lacks.
    authorize(
        "lead-ref-oldest".into(),
        "email",
        "nobody@acme.example",
        "warm",
    )
    .await;
    for i in 0..25 {
        authorize(format!("lead-ref-{i:04}"), "email", RESOURCE, "warm").await;
    }
    let position = authorize("lead-ref-newest".into(), "linkedin", "seat-9", "cold").await;
    read(
        &app,
        &c,
        "/audit?event_type=authorization_decided",
        position,
    )
    .await;

    let browser = Browser::start("authorizations", &app).await;
    browser.sign_in(&c.admin).await;
    browser.goto(&format!("/clients/{}/sends", c.id)).await;
    browser.find("#decision-list").await;
    browser.shot("decisions").await;
    assert_eq!(browser.count("#decision-list tbody tr").await, 25, "a page");
    assert_eq!(browser.count("#decision-list tbody tr.permitted").await, 24);
    let newest = browser.text("#decision-list tbody tr:first-child").await;
    for part in [
        "lead-ref-newest",
        "linkedin",
        "seat-9",
        "cold",
        "refused",
        "channel not allowed for tier, unknown resource",
    ] {
        assert!(newest.contains(part), "{part}: {newest}");
    }
    let table = browser.text("#decision-list").await;
    assert!(table.contains(RESOURCE), "{table}");
    assert!(
        !table.contains("@example.com") && !table.contains("Name of"),
        "no personal data, even for an admin: {table}"
    );

    browser
        .click_then("#decisions-older", "#decision-list")
        .await;
    browser.shot("older-decisions").await;
    assert!(browser.path().await.contains("decisions_before="));
    let rows = texts(&browser, "#decision-list tbody tr").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[1].contains("lead-ref-oldest") && rows[1].contains("unknown resource"),
        "{rows:?}"
    );
    assert!(!browser.has("#decisions-older").await, "the last page");
    browser.close().await;
    app.stop().await;
}
