//! Weekly reports end to end: a hand-computed week read back number by
//! number; weeks in the client's time zone (Sydney's Monday, a daylight
//! saving change, a change of zone); maturing cohorts; a late reply moving
//! its send's cohort; the CSV and HTML forms parsed back; the operator's
//! platform report; replay equals live; no lead's data in any report.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_application::reports::IsoWeek;
use sextant_domain::stats::{benjamini_hochberg, two_proportion_test, wilson_interval, Z_95};
use sextant_domain::values::Tz;
use sextant_tests::{Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

async fn register(app: &Running, name: &str, timezone: &str) -> Uuid {
    let answer = app
        .command(
            Method::POST,
            "/v1/clients",
            Some(OPERATOR_KEY),
            Some(
                json!({ "name": name, "industry": "fintech", "company_size": "11-50",
                "region": "AU", "timezone": timezone }),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    answer.body["client_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a client id")
}

/// A send of `client` at `at`; its lead carries a name and an e-mail that
/// no report may show.
fn send(id: &str, at: &str, campaign: Option<&str>, resource: &str) -> Value {
    json!({ "provider": "sim", "provider_message_id": id, "channel": "email",
        "campaign_id": campaign, "agent": "email_strategist", "context_version": 1,
        "resource": resource, "sent_at": at,
        "lead": { "email": format!("{id}@lead-secret.example"), "name": format!("Leadname {id}") } })
}

fn outcome(id: &str, kind: &str, at: &str) -> Value {
    json!({ "provider": "sim", "provider_message_id": id, "kind": kind, "occurred_at": at })
}

async fn ingest(app: &Running, client: Uuid, path: &str, items: Vec<Value>) -> i64 {
    app.ingest(client, path, &items).await
}

async fn report(app: &Running, client: Uuid, week: &str, position: i64) -> Value {
    let answer = app
        .query(
            &format!("/v1/clients/{client}/reports/weekly?week={week}&min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body
}

/// The raw text of a query answer, with its content type.
async fn raw(
    app: &Running,
    path: &str,
    key: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = app
        .http
        .get(format!("{}{path}", app.query_url))
        .bearer_auth(key);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("a response");
    let status = response.status();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, media, response.text().await.expect("a body"))
}

fn close(actual: &Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {actual}"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} is not {expected}"
    );
}

/// `rate` reads `events` of `sends` with its Wilson interval.
fn check_rate(rate: &Value, events: u64, sends: u64, what: &str) {
    assert_eq!(rate["events"], events, "{what}: {rate}");
    assert_eq!(rate["sends"], sends, "{what}: {rate}");
    let expected = if sends == 0 {
        0.0
    } else {
        events as f64 / sends as f64
    };
    close(&rate["rate"], expected, &format!("{what}.rate"));
    let (low, high) = wilson_interval(events, sends, Z_95);
    close(&rate["low"], low, &format!("{what}.low"));
    close(&rate["high"], high, &format!("{what}.high"));
}

/// The hand-computed fixture: week 2026-W40 (28 September to 4 October,
/// UTC, matured long ago) and the week before.
///
/// W40: 10 sends, campaign `spring` 6 on `a@box.example` and `autumn` 4 on
/// `b@box.example`; 9 delivered, 1 hard bounce (s9, `b@`); 5 opened (s0-s4);
/// 2 clicked (s0, s1); 3 replied (s0 positive, s1, s5); 1 meeting (s0);
/// 1 conversion (s0); 1 unsubscribed (s5); 0 complaints.
/// W39: 10 sends, 10 delivered, 1 reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_computed_week_reads_exactly_in_every_number() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Fixture Co", "UTC").await;
    let mut sends = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..10 {
        let (campaign, resource) = if i < 6 {
            ("spring", "a@box.example")
        } else {
            ("autumn", "b@box.example")
        };
        let id = format!("s{i}");
        sends.push(send(&id, "2026-09-30T10:00:00Z", Some(campaign), resource));
        if i == 9 {
            outcomes.push(
                json!({ "provider": "sim", "provider_message_id": id, "kind": "bounced",
                "bounce_type": "hard", "occurred_at": "2026-09-30T10:05:00Z" }),
            );
        } else {
            outcomes.push(outcome(&id, "delivered", "2026-09-30T10:01:00Z"));
        }
        if i < 5 {
            outcomes.push(outcome(&id, "opened", "2026-09-30T12:00:00Z"));
        }
        if i < 2 {
            outcomes.push(outcome(&id, "clicked", "2026-09-30T12:05:00Z"));
        }
    }
    outcomes.push(
        json!({ "provider": "sim", "provider_message_id": "s0", "kind": "replied",
        "intent": "interested", "occurred_at": "2026-10-01T09:00:00Z" }),
    );
    outcomes.push(outcome("s1", "replied", "2026-10-01T10:00:00Z"));
    outcomes.push(outcome("s5", "replied", "2026-10-02T10:00:00Z"));
    outcomes.push(outcome("s0", "meeting_booked", "2026-10-02T11:00:00Z"));
    outcomes.push(outcome("s0", "converted", "2026-10-03T11:00:00Z"));
    outcomes.push(outcome("s5", "unsubscribed", "2026-10-02T10:30:00Z"));
    for i in 0..10 {
        let id = format!("p{i}");
        sends.push(send(
            &id,
            "2026-09-23T10:00:00Z",
            Some("spring"),
            "a@box.example",
        ));
        outcomes.push(outcome(&id, "delivered", "2026-09-23T10:01:00Z"));
    }
    outcomes.push(outcome("p0", "replied", "2026-09-24T10:00:00Z"));
    ingest(&app, client, "sends", sends).await;
    let position = ingest(&app, client, "outcomes", outcomes).await;
    let body = report(&app, client, "2026-W40", position).await;

    assert_eq!(body["client_id"], client.to_string());
    assert_eq!(body["week"], "2026-W40");
    assert_eq!(body["starts_on"], "2026-09-28");
    assert_eq!(body["ends_on"], "2026-10-04");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(body["reply_window_days"], 14);
    assert_eq!(body["maturing"], false);
    assert_eq!(body["matures_at"], "2026-10-19T00:00:00Z");

    // Headline.
    let volume = &body["headline"]["volume"];
    assert_eq!(volume["sends"], 10);
    assert_eq!(volume["previous_week"], 10);
    close(
        &volume["trailing_8_weeks_mean"],
        10.0 / 8.0,
        "trailing mean",
    );
    // (metric, this week's events, the previous week's) of 10 and 10 sends;
    // the trailing 8 weeks are the previous week alone.
    let expected = [
        ("delivery_rate", 9, 10),
        ("open_rate", 5, 0),
        ("click_rate", 2, 0),
        ("reply_rate", 3, 1),
        ("positive_reply_rate", 1, 0),
        ("meeting_rate", 1, 0),
        ("conversion_rate", 1, 0),
        ("bounce_rate", 1, 0),
        ("unsubscribe_rate", 1, 0),
        ("complaint_rate", 0, 0),
    ];
    let metrics = body["headline"]["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), expected.len());
    let p: Vec<f64> = expected
        .iter()
        .map(|(_, x, y)| two_proportion_test(*x, 10, *y, 10).1)
        .collect();
    let q = benjamini_hochberg(&p);
    for (i, ((name, x, y), m)) in expected.iter().zip(metrics).enumerate() {
        assert_eq!(m["metric"], *name);
        check_rate(m, *x, 10, name);
        assert_eq!(m["maturing"], false);
        for comparison in ["previous_week", "trailing_8_weeks"] {
            let c = &m[comparison];
            check_rate(&c["against"], *y, 10, &format!("{name} {comparison}"));
            close(&c["difference"], (*x as f64 - *y as f64) / 10.0, name);
            close(&c["p"], p[i], &format!("{name} p"));
            close(&c["q"], q[i], &format!("{name} q"));
            // Ten sends a week: no difference here survives the correction.
            assert_eq!(c["significant"], false, "{name}: {c}");
            assert_eq!(c["verdict"], "no significant change");
        }
    }

    // Funnel.
    let funnel: Vec<(String, u64)> = body["funnel"]
        .as_array()
        .expect("funnel")
        .iter()
        .map(|s| {
            check_rate(s, s["count"].as_u64().expect("a count"), 10, "funnel");
            (
                s["stage"].as_str().expect("a stage").to_owned(),
                s["count"].as_u64().expect("a count"),
            )
        })
        .collect();
    let stages: Vec<(String, u64)> = [
        ("sent", 10),
        ("delivered", 9),
        ("opened", 5),
        ("replied", 3),
        ("positive", 1),
        ("meeting", 1),
        ("converted", 1),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_owned(), n))
    .collect();
    assert_eq!(funnel, stages);

    // Trend: 12 weeks to W40, sends only in W39 and W40.
    let trend = body["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 12);
    assert_eq!(trend[0]["week"], "2026-W29");
    for (i, point) in trend.iter().enumerate() {
        let (sends, replies, positive) = match i {
            10 => (10, 1, 0),
            11 => (10, 3, 1),
            _ => (0, 0, 0),
        };
        assert_eq!(point["sends"], sends, "{point}");
        check_rate(&point["reply_rate"], replies, sends, "trend reply");
        check_rate(
            &point["positive_reply_rate"],
            positive,
            sends,
            "trend positive",
        );
        assert_eq!(point["maturing"], false);
    }

    // Activity: what happened in W40, whatever week it was sent.
    assert_eq!(
        body["activity"],
        json!({ "sends": 10, "delivered": 9, "opened": 5, "clicked": 2, "replied": 3,
            "positive": 1, "meetings": 1, "conversions": 1, "bounced": 1, "hard_bounced": 1,
            "unsubscribed": 1, "complained": 0 })
    );

    // Breakdowns.
    let rows = body["breakdowns"].as_array().expect("breakdowns");
    let row = |dimension: &str, value: &str| {
        rows.iter()
            .find(|r| r["dimension"] == dimension && r["value"] == value)
            .unwrap_or_else(|| panic!("no {dimension}={value} in {rows:?}"))
    };
    let counts = |r: &Value| {
        [
            "sends",
            "delivered",
            "opened",
            "clicked",
            "replied",
            "positive",
            "meetings",
            "conversions",
            "bounced",
            "hard_bounced",
            "unsubscribed",
            "complained",
        ]
        .map(|c| r[c].as_i64().expect("a count"))
    };
    assert_eq!(
        counts(row("campaign", "spring")),
        [6, 6, 5, 2, 3, 1, 1, 1, 0, 0, 1, 0]
    );
    assert_eq!(
        counts(row("campaign", "autumn")),
        [4, 3, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    );
    assert_eq!(
        counts(row("resource", "b@box.example")),
        [4, 3, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    );
    check_rate(
        &row("resource", "b@box.example")["bounce_rate"],
        1,
        4,
        "b@ bounces",
    );
    check_rate(
        &row("campaign", "spring")["reply_rate"],
        3,
        6,
        "spring replies",
    );
    for (dimension, value) in [
        ("channel", "email"),
        ("agent", "email_strategist"),
        ("context_version", "1"),
        ("provider", "sim"),
    ] {
        assert_eq!(
            counts(row(dimension, value)),
            [10, 9, 5, 2, 3, 1, 1, 1, 1, 1, 1, 0]
        );
    }
    assert_eq!(rows.len(), 8, "{rows:?}");

    // Nothing changed, was learned or is to do; no alerts.
    assert_eq!(body["changes"], json!({ "versions": [], "declined": [] }));
    assert_eq!(
        body["learned"],
        json!({ "patterns": [], "waiting": [], "experiments_started": [], "experiments_concluded": [] })
    );
    assert_eq!(body["next_steps"], json!([]));
    assert_eq!(
        body["alerts"],
        json!({ "open": 0, "raised_this_week": 0, "items": [] })
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_at_sunday_2330_utc_counts_in_mondays_week_in_sydney() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let sydney = register(&app, "Sydney Co", "Australia/Sydney").await;
    let utc = register(&app, "London Co", "UTC").await;
    // Sunday 29 November 2026, 23:30 UTC: Monday 30 November, 10:30 in Sydney.
    ingest(
        &app,
        sydney,
        "sends",
        vec![send("m1", "2026-11-29T23:30:00Z", None, "a@box.example")],
    )
    .await;
    let position = ingest(
        &app,
        utc,
        "sends",
        vec![send("m1", "2026-11-29T23:30:00Z", None, "a@box.example")],
    )
    .await;
    let in_sydney = report(&app, sydney, "2026-W49", position).await;
    assert_eq!(in_sydney["headline"]["volume"]["sends"], 1);
    assert_eq!(in_sydney["starts_on"], "2026-11-30");
    let before = report(&app, sydney, "2026-W48", position).await;
    assert_eq!(before["headline"]["volume"]["sends"], 0);
    let in_utc = report(&app, utc, "2026-W48", position).await;
    assert_eq!(in_utc["headline"]["volume"]["sends"], 1);
    assert_eq!(
        report(&app, utc, "2026-W49", position).await["headline"]["volume"]["sends"],
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_across_a_daylight_saving_change_keeps_its_local_edges() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Sydney Co", "Australia/Sydney").await;
    // Sydney leaves daylight time (UTC+11 to UTC+10) on Sunday 5 April
    // 2026 at 03:00. Week 2026-W14 runs from Monday 30 March 00:00 +11
    // (29 March 13:00 UTC) to Monday 6 April 00:00 +10 (5 April 14:00 UTC).
    let sends = vec![
        send("before", "2026-03-29T12:30:00Z", None, "a@box.example"), // Sun 23:30 +11: W13
        send("first", "2026-03-29T13:30:00Z", None, "a@box.example"),  // Mon 00:30 +11: W14
        send("last", "2026-04-05T13:30:00Z", None, "a@box.example"),   // Sun 23:30 +10: W14
        send("after", "2026-04-05T14:30:00Z", None, "a@box.example"),  // Mon 00:30 +10: W15
    ];
    let position = ingest(&app, client, "sends", sends).await;
    for (week, sends) in [("2026-W13", 1), ("2026-W14", 2), ("2026-W15", 1)] {
        let body = report(&app, client, week, position).await;
        assert_eq!(body["headline"]["volume"]["sends"], sends, "{week}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_younger_than_the_reply_window_is_marked_maturing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Young Co", "UTC").await;
    let week = IsoWeek::last_complete(Utc::now(), Tz::UTC);
    let at = format!("{}T12:00:00Z", week.monday() + chrono::Duration::days(2));
    let position = ingest(
        &app,
        client,
        "sends",
        vec![send("y1", &at, None, "a@box.example")],
    )
    .await;
    // The default week is the last complete one.
    let answer = app
        .query(
            &format!("/v1/clients/{client}/reports/weekly?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let body = answer.body;
    assert_eq!(body["week"], week.to_string());
    assert_eq!(body["maturing"], true);
    let metric = |name: &str| {
        body["headline"]["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["metric"] == name))
            .cloned()
            .expect("a metric")
    };
    assert_eq!(metric("reply_rate")["maturing"], true);
    assert_eq!(metric("delivery_rate")["maturing"], false);
    let trend = body["trend"].as_array().expect("trend");
    assert_eq!(trend[11]["maturing"], true);
    assert!(body["breakdowns"]
        .as_array()
        .expect("breakdowns")
        .iter()
        .all(|r| r["maturing"] == true));
    // A week long past is not.
    let old = report(&app, client, "2026-W01", position).await;
    assert_eq!(old["maturing"], false);
    app.stop().await;
}

/// Two weeks before the last complete one (ended 14 to 21 days ago in
/// UTC): four sends on its Wednesday, two replied to, one with a meeting.
/// (client's week, position)
async fn a_week_two_to_three_weeks_past(app: &Running, client: Uuid) -> (IsoWeek, i64) {
    let week = IsoWeek::last_complete(Utc::now(), Tz::UTC).plus(-2);
    let day = week.monday() + chrono::Duration::days(2);
    let sends = (0..4)
        .map(|i| {
            send(
                &format!("w{i}"),
                &format!("{day}T12:00:00Z"),
                None,
                "a@box.example",
            )
        })
        .collect();
    ingest(app, client, "sends", sends).await;
    let position = ingest(
        app,
        client,
        "outcomes",
        vec![
            outcome("w0", "replied", &format!("{day}T13:00:00Z")),
            outcome("w1", "replied", &format!("{day}T14:00:00Z")),
            outcome("w0", "meeting_booked", &format!("{day}T15:00:00Z")),
        ],
    )
    .await;
    (week, position)
}

/// The headline metric `name` of a weekly report.
fn headline_metric(body: &Value, name: &str) -> Value {
    body["headline"]["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["metric"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// The funnel stage `name` of a weekly report.
fn funnel_stage(body: &Value, name: &str) -> Value {
    body["funnel"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["stage"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// The cells of the HTML headline table's row of `metric`, by column.
fn html_headline_row(html: &str, metric: &str) -> std::collections::HashMap<String, String> {
    let document = scraper::Html::parse_document(html);
    let select = |css: &str| scraper::Selector::parse(css).expect("a selector");
    let columns: Vec<String> = document
        .select(&select("table#table-headline thead th"))
        .map(|th| th.text().collect())
        .collect();
    document
        .select(&select("table#table-headline tbody tr"))
        .map(|tr| {
            columns
                .iter()
                .cloned()
                .zip(
                    tr.select(&select("td"))
                        .map(|td| td.text().collect::<String>()),
                )
                .collect::<std::collections::HashMap<_, _>>()
        })
        .find(|row| row.get("metric").map(String::as_str) == Some(metric))
        .unwrap_or_else(|| panic!("no {metric} row in the HTML headline"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_past_its_reply_window_has_matured_replies_but_maturing_meetings_and_conversions() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Ripening Co", "UTC").await;
    let (week, position) = a_week_two_to_three_weeks_past(&app, client).await;
    let body = report(&app, client, &week.to_string(), position).await;
    let ends = week.ends(Tz::UTC);
    let at = |days: i64| serde_json::to_value(ends + chrono::Duration::days(days)).expect("a time");

    // The reply window (14 days) has passed; the meeting (30) and
    // conversion (60) windows have not.
    assert_eq!(body["maturing"], false, "{body}");
    assert_eq!(body["reply_window_days"], 14);
    assert_eq!(body["matures_at"], at(14));
    let maturity = &body["maturity"];
    assert_eq!(
        maturity["reply"],
        json!({ "window_days": 14, "matures_at": at(14), "maturing": false })
    );
    assert_eq!(
        maturity["meeting"],
        json!({ "window_days": 30, "matures_at": at(30), "maturing": true })
    );
    assert_eq!(
        maturity["conversion"],
        json!({ "window_days": 60, "matures_at": at(60), "maturing": true })
    );

    // Each figure by its own window: headline, its comparisons, the funnel
    // and the breakdowns.
    for (metric, maturing) in [
        ("delivery_rate", false),
        ("reply_rate", false),
        ("positive_reply_rate", false),
        ("meeting_rate", true),
        ("conversion_rate", true),
        ("bounce_rate", false),
    ] {
        let m = headline_metric(&body, metric);
        assert_eq!(m["maturing"], maturing, "{metric}: {m}");
        assert_eq!(m["previous_week"]["maturing"], maturing, "{metric}");
        assert_eq!(m["trailing_8_weeks"]["maturing"], maturing, "{metric}");
    }
    check_rate(&headline_metric(&body, "meeting_rate"), 1, 4, "meetings");
    for (stage, maturing) in [("replied", false), ("meeting", true), ("converted", true)] {
        assert_eq!(funnel_stage(&body, stage)["maturing"], maturing, "{stage}");
    }
    let rows = body["breakdowns"].as_array().expect("breakdowns");
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row["maturing"], false, "{row}");
        assert_eq!(row["meetings_maturing"], true, "{row}");
        assert_eq!(row["conversions_maturing"], true, "{row}");
    }

    // The CSV summary carries the windows.
    let path = format!("/v1/clients/{client}/reports/weekly?week={week}&min_position={position}");
    let (status, _, summary) =
        raw(&app, &format!("{path}&table=summary"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let mut reader = csv::Reader::from_reader(summary.as_bytes());
    let headers = reader.headers().expect("a header").clone();
    let record = reader.records().next().expect("a row").expect("a record");
    let cell = |name: &str| {
        let i = headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"));
        record[i].to_owned()
    };
    assert_eq!(cell("maturity.reply.maturing"), "false");
    assert_eq!(cell("maturity.meeting.maturing"), "true");
    assert_eq!(cell("maturity.meeting.window_days"), "30");

    // The HTML says which rates are maturing, beside each.
    let (status, _, html) = raw(&app, &format!("{path}&format=html"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let meeting = html_headline_row(&html, "meeting_rate");
    assert!(meeting["rate"].contains("maturing"), "{meeting:?}");
    assert!(
        meeting["previous_week.verdict"].contains("maturing"),
        "{meeting:?}"
    );
    let conversion = html_headline_row(&html, "conversion_rate");
    assert!(conversion["rate"].contains("maturing"), "{conversion:?}");
    let reply = html_headline_row(&html, "reply_rate");
    assert!(!reply["rate"].contains("maturing"), "{reply:?}");
    assert!(
        !reply["previous_week.verdict"].contains("maturing"),
        "{reply:?}"
    );
    let document = scraper::Html::parse_document(&html);
    let select = |css: &str| scraper::Selector::parse(css).expect("a selector");
    assert_eq!(document.select(&select("p#maturing-meeting")).count(), 1);
    assert_eq!(document.select(&select("p#maturing-conversion")).count(), 1);
    assert_eq!(document.select(&select("p#maturing-reply")).count(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_meeting_window_decides_when_its_weeks_meeting_rate_matures() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Quick Meetings Co", "UTC").await;
    let (week, position) = a_week_two_to_three_weeks_past(&app, client).await;
    let before = report(&app, client, &week.to_string(), position).await;
    assert_eq!(before["maturity"]["meeting"]["maturing"], true, "{before}");
    assert_eq!(headline_metric(&before, "meeting_rate")["maturing"], true);

    // Meetings within a week of the send: the week has matured for them.
    let changed = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "maturity": { "meeting_days": 7 } })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let after = report(&app, client, &week.to_string(), changed.position()).await;
    let matures_at =
        serde_json::to_value(week.ends(Tz::UTC) + chrono::Duration::days(7)).expect("a time");
    assert_eq!(
        after["maturity"]["meeting"],
        json!({ "window_days": 7, "matures_at": matures_at, "maturing": false }),
        "{after}"
    );
    let meeting = headline_metric(&after, "meeting_rate");
    assert_eq!(meeting["maturing"], false, "{meeting}");
    assert_eq!(meeting["previous_week"]["maturing"], false);
    assert_eq!(funnel_stage(&after, "meeting")["maturing"], false);
    // The other windows are the client's as they were.
    assert_eq!(after["maturity"]["reply"]["window_days"], 14);
    assert_eq!(after["maturity"]["conversion"]["maturing"], true);
    assert_eq!(headline_metric(&after, "conversion_rate")["maturing"], true);
    let path = format!(
        "/v1/clients/{client}/reports/weekly?week={week}&format=html&min_position={}",
        changed.position()
    );
    let (status, _, html) = raw(&app, &path, OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let row = html_headline_row(&html, "meeting_rate");
    assert!(!row["rate"].contains("maturing"), "{row:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_three_weeks_after_its_send_counts_in_its_sends_week() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Late Co", "UTC").await;
    let sends = vec![
        send("l1", "2026-09-30T10:00:00Z", None, "a@box.example"),
        send("l2", "2026-09-30T10:00:00Z", None, "a@box.example"),
    ];
    ingest(&app, client, "sends", sends).await;
    let position = ingest(
        &app,
        client,
        "outcomes",
        vec![outcome("l1", "replied", "2026-10-21T09:00:00Z")],
    )
    .await;
    let sent_week = report(&app, client, "2026-W40", position).await;
    let reply = |body: &Value| {
        body["headline"]["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["metric"] == "reply_rate"))
            .cloned()
            .expect("the reply rate")
    };
    check_rate(&reply(&sent_week), 1, 2, "W40 cohort");
    assert_eq!(sent_week["activity"]["replied"], 0);
    let arrived = report(&app, client, "2026-W43", position).await;
    check_rate(&reply(&arrived), 0, 0, "W43 cohort");
    assert_eq!(arrived["activity"]["replied"], 1);
    assert_eq!(arrived["activity"]["sends"], 0);
    app.stop().await;
}

/// A client with a week of sends: (client, position).
async fn a_week_of_sends(app: &Running, timezone: &str) -> (Uuid, i64) {
    let client = register(app, "Forms Co", timezone).await;
    let mut sends = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..40 {
        let id = format!("f{i}");
        let resource = if i % 2 == 0 {
            "a@box.example"
        } else {
            "b@box.example"
        };
        sends.push(send(&id, "2026-09-30T10:00:00Z", Some("spring"), resource));
        if i % 4 == 0 {
            outcomes.push(outcome(&id, "replied", "2026-10-01T10:00:00Z"));
        }
        if i % 10 == 1 {
            outcomes.push(
                json!({ "provider": "sim", "provider_message_id": id, "kind": "bounced",
                "bounce_type": "hard", "occurred_at": "2026-09-30T10:05:00Z" }),
            );
        }
    }
    ingest(app, client, "sends", sends).await;
    let position = ingest(app, client, "outcomes", outcomes).await;
    (client, position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_forms_parse_back_into_the_reports_numbers() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = a_week_of_sends(&app, "UTC").await;
    let json = report(&app, client, "2026-W40", position).await;
    let path = format!("/v1/clients/{client}/reports/weekly?week=2026-W40&min_position={position}");

    // One file with a section column, by `format` or by `Accept`.
    let (status, media, by_format) =
        raw(&app, &format!("{path}&format=csv"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{by_format}");
    assert!(media.starts_with("text/csv"), "{media}");
    let (_, media, by_accept) = raw(&app, &path, OPERATOR_KEY, Some("text/csv")).await;
    assert!(media.starts_with("text/csv"), "{media}");
    for text in [&by_format, &by_accept] {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().expect("a header"),
            vec!["section", "row", "field", "value"]
        );
        let records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("a record")).collect();
        let value = |section: &str, row: &str, field: &str| {
            records
                .iter()
                .find(|r| &r[0] == section && &r[1] == row && &r[2] == field)
                .map(|r| r[3].to_owned())
                .unwrap_or_else(|| panic!("no {section}/{row}/{field}"))
        };
        assert_eq!(value("summary", "0", "week"), "2026-W40");
        assert_eq!(value("volume", "0", "sends"), "40");
        // reply_rate is the fourth headline metric.
        assert_eq!(value("headline", "3", "metric"), "reply_rate");
        let rate: f64 = value("headline", "3", "rate").parse().expect("a rate");
        assert_eq!(Some(rate), json["headline"]["metrics"][3]["rate"].as_f64());
        assert_eq!(value("funnel", "3", "count"), "10");
        let sections: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.get(0).unwrap_or("")).collect();
        for section in [
            "summary",
            "headline",
            "funnel",
            "trend",
            "activity",
            "breakdowns",
        ] {
            assert!(
                sections.contains(section),
                "{section} missing: {sections:?}"
            );
        }
    }

    // One table: a column per field.
    let (status, _, table) = raw(
        &app,
        &format!("{path}&table=breakdowns"),
        OPERATOR_KEY,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{table}");
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect("a column");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    let b = rows
        .iter()
        .find(|r| &r[column("dimension")] == "resource" && &r[column("value")] == "b@box.example")
        .expect("the b@ row");
    assert_eq!(&b[column("sends")], "20");
    assert_eq!(&b[column("bounced")], "4");
    let rate: f64 = b[column("bounce_rate.rate")].parse().expect("a rate");
    assert!((rate - 0.2).abs() < 1e-12);

    // An unknown table or format is named.
    let (status, _, body) = raw(&app, &format!("{path}&table=leads"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("\"table\""), "{body}");
    let (status, _, body) = raw(&app, &format!("{path}&format=pdf"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("\"format\""), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_form_is_one_self_contained_page_with_every_chart() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = a_week_of_sends(&app, "UTC").await;
    let path = format!(
        "/v1/clients/{client}/reports/weekly?week=2026-W40&format=html&min_position={position}"
    );
    let (status, media, html) = raw(&app, &path, OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(media.starts_with("text/html"), "{media}");
    let document = scraper::Html::parse_document(&html);
    assert!(document.errors.is_empty(), "{:?}", document.errors);
    let select = |css: &str| scraper::Selector::parse(css).expect("a selector");
    for chart in ["funnel", "trend", "volume"] {
        let svg: Vec<_> = document
            .select(&select(&format!("figure#chart-{chart} svg")))
            .collect();
        assert_eq!(svg.len(), 1, "no {chart} chart");
        // Drawn: more than an empty canvas.
        assert!(svg[0].descendants().count() > 10, "{chart} is empty");
    }
    assert_eq!(document.select(&select("svg")).count(), 3);
    // Self-contained: no script, stylesheet link, image or frame to fetch.
    for css in ["script", "link", "img", "iframe", "object", "embed"] {
        assert_eq!(
            document.select(&select(css)).count(),
            0,
            "{css} in the page"
        );
    }
    assert_eq!(
        document.select(&select("[src], [href]")).count(),
        0,
        "an external reference"
    );
    assert!(document.select(&select("style")).count() == 1);
    assert!(html.contains("@media print"));
    assert!(document
        .select(&select("table#table-headline"))
        .next()
        .is_some());
    assert!(document
        .select(&select("table#table-breakdowns"))
        .next()
        .is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_report_is_the_operators_alone_and_sorts() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (busy, _) = a_week_of_sends(&app, "UTC").await;
    let quiet = register(&app, "Quiet Co", "UTC").await;
    let position = ingest(
        &app,
        quiet,
        "sends",
        vec![send("q1", "2026-09-30T10:00:00Z", None, "a@box.example")],
    )
    .await;
    let key = app.issue_key(busy, "admin").await;
    let path = format!("/v1/reports/weekly?week=2026-W40&min_position={position}");
    assert_eq!(
        app.query(&path, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.query(&path, Some(&key)).await.status,
        StatusCode::FORBIDDEN
    );

    let answer = app
        .query(&format!("{path}&sort=-sends"), Some(OPERATOR_KEY))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let clients = answer.body["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0]["client_id"], busy.to_string());
    assert_eq!(clients[0]["sends"], 40);
    assert_eq!(clients[0]["bounce_rate"]["events"], 4);
    assert_eq!(clients[0]["last_activity"], "2026-09-30");
    assert_eq!(clients[1]["sends"], 1);
    let ascending = app
        .query(&format!("{path}&sort=sends"), Some(OPERATOR_KEY))
        .await;
    assert_eq!(ascending.body["clients"][0]["client_id"], quiet.to_string());

    for (query, field) in [
        ("sort=email", "sort"),
        ("week=2026-48", "week"),
        ("week=2026-W61", "week"),
    ] {
        let answer = app
            .query(&format!("/v1/reports/weekly?{query}"), Some(OPERATOR_KEY))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{answer:?}"
        );
        assert_eq!(answer.body["errors"][0]["field"], field, "{answer:?}");
    }
    let bad_week = app
        .query(
            &format!("/v1/clients/{busy}/reports/weekly?week=last"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(bad_week.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_week.body["errors"][0]["field"], "week");

    let (status, media, csv_text) = raw(
        &app,
        &format!("{path}&format=csv&table=clients"),
        OPERATOR_KEY,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(media.starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.records().count(), 2);
    let (status, media, html) = raw(&app, &format!("{path}&format=html"), OPERATOR_KEY, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(media.starts_with("text/html"));
    let document = scraper::Html::parse_document(&html);
    let rows = scraper::Selector::parse("table#table-clients tbody tr").expect("a selector");
    assert_eq!(document.select(&rows).count(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_report_holds_a_leads_personal_data() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let (client, position) = a_week_of_sends(&app, "UTC").await;
    let weekly =
        format!("/v1/clients/{client}/reports/weekly?week=2026-W40&min_position={position}");
    let platform = format!("/v1/reports/weekly?week=2026-W40&min_position={position}");
    let mut texts = Vec::new();
    for path in [&weekly, &platform] {
        for form in ["json", "csv", "html"] {
            let (status, _, text) =
                raw(&app, &format!("{path}&format={form}"), OPERATOR_KEY, None).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            texts.push(text);
        }
    }
    for text in &texts {
        for i in 0..40 {
            for personal in [
                format!("f{i}@lead-secret.example"),
                format!("Leadname f{i}"),
            ] {
                assert!(!text.contains(&personal), "{personal} in a report");
            }
        }
        assert!(
            !text.contains("lead-secret"),
            "a lead's e-mail domain in a report"
        );
        assert!(!text.contains("Leadname"), "a lead's name in a report");
        assert!(!text.contains("lead_ref"), "a lead reference in a report");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_zone_change_rebuilds_the_rollups_and_replay_equals_live() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let client = register(&app, "Moving Co", "Australia/Sydney").await;
    ingest(
        &app,
        client,
        "sends",
        vec![send("z1", "2026-11-29T23:30:00Z", None, "a@box.example")],
    )
    .await;
    let position = ingest(
        &app,
        client,
        "outcomes",
        vec![outcome("z1", "replied", "2026-11-29T23:50:00Z")],
    )
    .await;
    assert_eq!(
        report(&app, client, "2026-W49", position).await["headline"]["volume"]["sends"],
        1
    );
    // An outcome before its send, too.
    ingest(
        &app,
        client,
        "outcomes",
        vec![outcome("z2", "replied", "2026-11-30T01:00:00Z")],
    )
    .await;
    let moved = app
        .command(
            Method::PATCH,
            &format!("/v1/clients/{client}"),
            Some(OPERATOR_KEY),
            Some(json!({ "timezone": "UTC" })),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    ingest(
        &app,
        client,
        "sends",
        vec![send("z2", "2026-11-29T22:00:00Z", None, "a@box.example")],
    )
    .await;
    let position = ingest(
        &app,
        client,
        "outcomes",
        vec![outcome("z1", "opened", "2026-11-30T00:10:00Z")],
    )
    .await;
    let w48 = report(&app, client, "2026-W48", position).await;
    assert_eq!(w48["headline"]["volume"]["sends"], 2);
    assert_eq!(
        w48["funnel"][3]["count"], 2,
        "both replies in the UTC week of their sends"
    );
    assert_eq!(w48["funnel"][2]["count"], 1);
    assert_eq!(w48["activity"]["replied"], 1, "one reply on Sunday UTC");
    let w49 = report(&app, client, "2026-W49", position).await;
    assert_eq!(w49["headline"]["volume"]["sends"], 0);
    assert_eq!(w49["activity"]["replied"], 1, "one reply on Monday UTC");
    assert_eq!(w49["activity"]["opened"], 1);
    env.eventually(
        "the projections catch up",
        Duration::from_secs(30),
        || async { env.checkpoint("reports").await >= position },
    )
    .await;
    app.stop().await;
    env.assert_projections_equal_replay().await;
}
