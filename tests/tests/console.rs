//! The review console in a real browser (headless Chromium through
//! chromedriver), against the real command and query APIs: sign-in, the
//! approval queue, review, the context and its history, and the console's
//! safety rules (roles, CSRF, escaping, sign-out). Each test saves a
//! screenshot of every page it looks at under `target/console/`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_tests::browser::Browser;
use sextant_tests::{Answer, Running, TestEnv, OPERATOR_KEY};
use uuid::Uuid;

struct Client {
    id: Uuid,
    ingest: String,
    reviewer: String,
}

async fn client(app: &Running, name: &str) -> Client {
    let (id, [ingest, reviewer], position) =
        app.co_pilot_client(name, ["ingest", "reviewer"]).await;
    let c = Client {
        id,
        ingest,
        reviewer,
    };
    caught_up(app, &c, position).await;
    c
}

/// A suggestion that waits for review: its update id and position.
async fn suggest(app: &Running, c: &Client, patch: Value, evidence: Value) -> (String, i64) {
    suggest_because(
        app,
        c,
        patch,
        evidence,
        "replies rose where the tone was plain",
    )
    .await
}

async fn suggest_because(
    app: &Running,
    c: &Client,
    patch: Value,
    evidence: Value,
    rationale: &str,
) -> (String, i64) {
    let answer = app
        .command(
            Method::POST,
            &format!("/v1/clients/{}/context/updates", c.id),
            Some(&c.ingest),
            Some(
                json!({ "source": "agent_suggestion", "patch": patch, "rationale": rationale,
                         "evidence": evidence, "confidence": 0.5 }),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_eq!(answer.body["status"], "pending", "{answer:?}");
    caught_up(app, c, answer.position()).await;
    (
        answer.body["update_id"]
            .as_str()
            .expect("an update id")
            .to_owned(),
        answer.position(),
    )
}

/// A human's change, applied at once: its position.
async fn set(app: &Running, c: &Client, patch: Value) -> i64 {
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
    caught_up(app, c, answer.position()).await;
    answer.position()
}

/// Waits until the read models the console reads have reached `position`:
/// the console's first page after sign-in has no position to wait for.
async fn caught_up(app: &Running, c: &Client, position: i64) {
    let seen = read(app, c, "/approvals", position).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
}

async fn read(app: &Running, c: &Client, path: &str, position: i64) -> Answer {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.query(
        &format!("/v1/clients/{}{path}{sep}min_position={position}", c.id),
        Some(&c.reviewer),
    )
    .await
}

/// The status of an update, as the query API lists it.
async fn status_of(app: &Running, c: &Client, update: &str, position: i64) -> String {
    let all = read(app, c, "/approvals?status=all", position).await;
    all.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|u| u["update_id"] == update))
        .and_then(|u| u["status"].as_str())
        .expect("the update is listed")
        .to_owned()
}

async fn version_of(app: &Running, c: &Client, position: i64) -> i64 {
    read(app, c, "/context", position).await.body["version"]
        .as_i64()
        .expect("a version")
}

async fn head(env: &TestEnv) -> i64 {
    env.event_ids().await.last().map(|(p, _)| *p).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_signs_in_opens_an_update_sees_its_diff_approves_it_and_the_context_shows_the_new_version(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    set(&app, &c, json!({ "messaging": { "tone": "formal" } })).await;
    let (update, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "plain" } }),
        json!({ "sends": 1200, "reply_rate": { "plain": 0.061, "formal": 0.032 } }),
    )
    .await;
    let browser = Browser::start("approve", &app).await;

    browser.goto("/").await;
    browser.find("#key").await;
    browser.shot("sign-in").await;
    browser.sign_in(&c.reviewer).await;
    assert_eq!(browser.path().await, format!("/clients/{}", c.id));
    browser.shot("client-home").await;
    assert!(
        browser.text("#pending-count").await.contains("1 pending"),
        "{}",
        browser.text("#pending-count").await
    );

    browser
        .click_then(&format!("a[href='/clients/{}/approvals']", c.id), "#queue")
        .await;
    browser.shot("queue").await;
    let item = browser.text(&format!("#item-{update}")).await;
    assert!(
        item.contains("replies rose where the tone was plain"),
        "{item}"
    );
    // Evidence as a table of numbers, not JSON.
    assert!(
        browser
            .text(&format!("#item-{update} table.evidence"))
            .await
            .contains("reply_rate › plain 0.061"),
        "{item}"
    );
    assert!(!item.contains("{\""), "no raw JSON: {item}");

    browser
        .click_then(
            &format!("#item-{update} h2 a"),
            "#diff tr[data-path='/messaging/tone']",
        )
        .await;
    browser.shot("item").await;
    let row = browser.text("#diff tr[data-path='/messaging/tone']").await;
    assert!(
        row.contains("formal") && row.contains("plain") && row.to_lowercase().contains("changed"),
        "{row}"
    );
    let unified = browser
        .client
        .execute(
            "return document.querySelector('#diff .unified pre').textContent;",
            vec![],
        )
        .await
        .expect("the unified diff");
    assert_eq!(
        unified.as_str().map(str::trim),
        Some("- /messaging/tone: formal\n+ /messaging/tone: plain")
    );
    // The key is in no page and no address.
    let source = browser.client.source().await.expect("the page source");
    assert!(!source.contains(&c.reviewer));
    assert!(!browser.path().await.contains(&c.reviewer));

    browser.click_then("#approve-button", "#notice").await;
    browser.shot("approved").await;
    assert!(
        browser.path().await.contains("min_position="),
        "the next page reads the write: {}",
        browser.path().await
    );
    assert_eq!(
        browser.text("#notice").await,
        "Approved. The context is now at version 2."
    );
    assert!(browser.has("#queue-empty").await, "the queue is empty now");

    browser
        .click_then(
            &format!("a[href='/clients/{}/context']", c.id),
            "#context-version",
        )
        .await;
    browser.shot("context").await;
    let version = browser
        .find("#context-version")
        .await
        .attr("data-version")
        .await
        .expect("an attribute");
    assert_eq!(version.as_deref(), Some("2"));
    assert!(browser.dom_text().await.contains("plain"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modifying_with_a_value_the_api_refuses_shows_the_error_next_to_the_field_and_writes_nothing(
) {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (update, _) = suggest(
        &app,
        &c,
        json!({ "limits": { "daily_max": 50 }, "messaging": { "tone": "plain" } }),
        json!({ "sends": 400 }),
    )
    .await;
    let browser = Browser::start("modify-invalid", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser
        .goto(&format!("/clients/{}/approvals/{update}", c.id))
        .await;
    browser.find("#modify").await;
    browser.shot("item").await;

    let field = "#modify input[data-pointer='/limits/daily_max']";
    browser.fill(field, "1e200").await;
    browser.click_then("#modify-button", ".field-error").await;
    browser.shot("refused").await;
    let input = browser.find(field).await;
    assert_eq!(
        input.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    let described = input
        .attr("aria-describedby")
        .await
        .expect("attr")
        .expect("the field points at its error");
    let error = browser.text(&format!("#{described}")).await;
    assert!(error.contains("numbers must lie between"), "{error}");
    assert_eq!(
        input.prop("value").await.expect("value").as_deref(),
        Some("1e200"),
        "the value is kept for correction"
    );
    assert!(browser
        .text("#problem")
        .await
        .contains("nothing was changed"));

    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "pending");
    assert_eq!(version_of(&app, &c, position).await, 0, "nothing written");
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_without_a_reason_is_refused_by_the_form_and_by_the_api() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (update, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "plain" } }),
        json!({ "sends": 400 }),
    )
    .await;
    let browser = Browser::start("reject-no-reason", &app).await;
    browser.sign_in(&c.reviewer).await;
    let page = format!("/clients/{}/approvals/{update}", c.id);
    browser.goto(&page).await;
    browser.find("#reject").await;

    // The form will not send an empty reason.
    browser.click("#reject-button").await;
    let missing = browser
        .client
        .execute(
            "return document.querySelector('#reason').validity.valueMissing;",
            vec![],
        )
        .await
        .expect("the field's validity");
    assert_eq!(missing, json!(true));
    assert_eq!(browser.path().await, page, "nothing was sent");
    browser.shot("form-refuses").await;

    // Without the form's check, the API refuses it, next to the field.
    browser
        .client
        .execute(
            "document.querySelector('#reason').removeAttribute('required');",
            vec![],
        )
        .await
        .expect("script");
    browser.click_then("#reject-button", "#reason-error").await;
    browser.shot("api-refuses").await;
    let error = browser.text("#reason-error").await;
    assert!(error.contains("must not be empty"), "{error}");

    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "pending");

    // With a reason it is rejected.
    browser.fill("#reason", "we sell to banks").await;
    browser.click_then("#reject-button", "#notice").await;
    browser.shot("rejected").await;
    assert_eq!(
        browser.text("#notice").await,
        "Rejected. The context is unchanged."
    );
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "rejected");
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_stale_update_shows_the_conflicting_paths_and_a_link_to_the_current_context() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    set(&app, &c, json!({ "icp": { "industries": ["fintech"] } })).await;
    let (stale, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "bold" } }),
        json!({ "sends": 300 }),
    )
    .await;
    // A person changes the tone meanwhile.
    set(&app, &c, json!({ "messaging": { "tone": "plain" } })).await;

    let browser = Browser::start("stale", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser
        .goto(&format!("/clients/{}/approvals/{stale}", c.id))
        .await;
    browser.find("#approve").await;
    browser.shot("item").await;
    browser.click_then("#approve-button", "#conflicts").await;
    browser.shot("conflict").await;
    assert_eq!(browser.text("#conflicts").await, "/messaging/tone");
    browser
        .click_then("#current-context", "#context-version")
        .await;
    browser.shot("current-context").await;
    assert!(browser.dom_text().await.contains("plain"));
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &stale, position).await, "pending");
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_from_the_history_shows_the_diff_it_will_make_then_makes_a_new_version() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    set(&app, &c, json!({ "icp": { "industries": ["fintech"] } })).await;
    set(&app, &c, json!({ "messaging": { "tone": "plain" } })).await;

    let browser = Browser::start("rollback", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser
        .goto(&format!("/clients/{}/context/history", c.id))
        .await;
    browser.find("#versions").await;
    browser.shot("history").await;
    assert_eq!(browser.count("#versions tbody tr").await, 2);
    assert!(
        !browser.has("#rollback-2").await,
        "not to the version it is at"
    );

    browser.click_then("#rollback-1", "#rollback").await;
    browser.shot("confirm").await;
    let removed = browser.text("#diff tr[data-path='/messaging/tone']").await;
    assert!(removed.to_lowercase().contains("removed"), "{removed}");
    // Confirming is what writes: nothing yet.
    let position = head(&env).await;
    assert_eq!(version_of(&app, &c, position).await, 2);

    browser.fill("#reason", "the plain tone hurt replies").await;
    browser.click_then("#confirm-rollback", "#notice").await;
    browser.shot("rolled-back").await;
    assert_eq!(
        browser.text("#notice").await,
        "Rolled back. The context is now at version 3."
    );
    let version = browser
        .find("#context-version")
        .await
        .attr("data-version")
        .await
        .expect("attr");
    assert_eq!(version.as_deref(), Some("3"));
    assert!(!browser.dom_text().await.contains("plain"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_compare_side_by_side_and_unified_on_a_page_whose_address_can_be_shared() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    set(&app, &c, json!({ "icp": { "industries": ["fintech"] } })).await;
    set(&app, &c, json!({ "messaging": { "tone": "plain" } })).await;
    set(&app, &c, json!({ "icp": { "industries": ["banks"] } })).await;

    let browser = Browser::start("compare", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser
        .goto(&format!("/clients/{}/context/history", c.id))
        .await;
    browser.find("#versions").await;
    browser.click("#from-1").await;
    browser.click("#to-3").await;
    browser.click_then("#compare", "#diff").await;
    browser.shot("compare").await;
    let address = browser.path().await;
    assert_eq!(
        address,
        format!("/clients/{}/context/compare?from=1&to=3", c.id)
    );
    let rows: Vec<String> = {
        let mut rows = Vec::new();
        for row in browser
            .client
            .find_all(fantoccini::Locator::Css("#diff tbody tr"))
            .await
            .expect("rows")
        {
            rows.push(
                row.attr("data-path")
                    .await
                    .expect("attr")
                    .unwrap_or_default(),
            );
        }
        rows
    };
    assert_eq!(rows, vec!["/icp/industries", "/messaging/tone"]);
    let changed = browser.text("#diff tr[data-path='/icp/industries']").await;
    assert!(
        changed.contains("fintech") && changed.contains("banks"),
        "{changed}"
    );

    // The same address shows the same comparison in a fresh visit.
    browser.goto("/").await;
    browser.goto(&address).await;
    browser.find("#diff").await;
    browser.shot("shared").await;
    assert_eq!(browser.count("#diff tbody tr").await, 2);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_approval_lists_the_selection_on_a_confirmation_page_then_approves_each() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (a, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "plain" } }),
        json!({ "sends": 100 }),
    )
    .await;
    let (b, _) = suggest(
        &app,
        &c,
        json!({ "icp": { "regions": ["NZ"] } }),
        json!({ "sends": 200 }),
    )
    .await;
    let (left, _) = suggest(
        &app,
        &c,
        json!({ "playbook": { "steps": 4 } }),
        json!({ "sends": 300 }),
    )
    .await;

    let browser = Browser::start("bulk", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser.goto(&format!("/clients/{}/approvals", c.id)).await;
    browser.find("#queue").await;
    browser.click(&format!("#select-{a}")).await;
    browser.click(&format!("#select-{b}")).await;
    browser.shot("queue").await;
    browser.click_then("#bulk-approve", "#selected").await;
    browser.shot("confirm").await;
    assert_eq!(browser.count("#selected li").await, 2);
    let listed = browser.text("#selected").await;
    assert!(
        listed.contains("/messaging") && listed.contains("/icp"),
        "{listed}"
    );
    // Nothing is approved before the confirmation.
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &a, position).await, "pending");

    browser.click_then("#confirm-bulk", "#notice").await;
    browser.shot("approved").await;
    assert_eq!(browser.text("#notice").await, "Approved 2 updates.");
    assert_eq!(browser.count("#queue .item").await, 1);
    assert!(browser.has(&format!("#item-{left}")).await);
    let position = head(&env).await;
    for id in [&a, &b] {
        assert_eq!(status_of(&app, &c, id, position).await, "applied");
    }
    assert_eq!(status_of(&app, &c, &left, position).await, "pending");
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_key_sees_no_approve_buttons_and_a_forged_approval_is_refused_by_the_api() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let reader = app.issue_key(c.id, "reader").await;
    let (update, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "plain" } }),
        json!({ "sends": 100 }),
    )
    .await;
    let browser = Browser::start("reader", &app).await;
    browser.sign_in(&reader).await;
    browser.goto(&format!("/clients/{}/approvals", c.id)).await;
    browser.find(&format!("#item-{update}")).await;
    browser.shot("queue").await;
    assert_eq!(browser.count("button.approve").await, 0);
    assert_eq!(browser.count("#bulk-approve").await, 0);
    assert_eq!(browser.count("input[type=checkbox]").await, 0);
    browser
        .goto(&format!("/clients/{}/approvals/{update}", c.id))
        .await;
    browser.find("#rationale").await;
    browser.shot("item").await;
    for form in ["#approve", "#modify", "#reject"] {
        assert!(!browser.has(form).await, "{form} is not shown to a reader");
    }
    browser
        .goto(&format!("/clients/{}/context/history", c.id))
        .await;
    browser.find("h1").await;
    assert_eq!(browser.count(".rollback-link").await, 0);

    // A forged approval, with the session's own CSRF token: the API refuses.
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
            vec![json!(format!(
                "/clients/{}/approvals/{update}/approve",
                c.id
            ))],
        )
        .await
        .expect("script");
    let problem = browser.text("#problem").await;
    browser.shot("forged").await;
    assert_eq!(browser.text("h1").await, "Not allowed");
    assert!(
        problem.contains("a reader key may not do this"),
        "the API's refusal is shown: {problem}"
    );
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "pending");
    browser.close().await;
    app.stop().await;
}

/// The `name="csrf"` value of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_owned()
}

/// The `name=value` of a `Set-Cookie` header for `name`.
fn set_cookie(answer: &reqwest::Response, name: &str) -> (String, String) {
    let header = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned();
    let pair = header.split(';').next().unwrap_or("").to_owned();
    (pair, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_sessions_csrf_token_is_refused_and_writes_nothing() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let (update, _) = suggest(
        &app,
        &c,
        json!({ "messaging": { "tone": "plain" } }),
        json!({ "sends": 100 }),
    )
    .await;
    let console = sextant_tests::browser::Console::start(&app).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let url = |path: &str| format!("{}{path}", console.url);

    // Sign in as a browser would: the form's token rides in its cookie.
    let form = http
        .get(url("/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let headers = form.headers().clone();
    let csp = headers["content-security-policy"].to_str().expect("text");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let (sign_in_cookie, _) = set_cookie(&form, "sextant_console_sign_in");
    let token = csrf_of(&form.text().await.expect("html"));
    let signed = http
        .post(url("/sign-in"))
        .header("cookie", &sign_in_cookie)
        .form(&[("csrf", token.as_str()), ("key", c.reviewer.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let (session, header) = set_cookie(&signed, "sextant_console");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(flag), "{header}");
    }
    // Signing in without the form's token is refused too.
    let refused = http
        .post(url("/sign-in"))
        .form(&[("csrf", token.as_str()), ("key", c.reviewer.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let queue = http
        .get(url(&format!("/clients/{}/approvals", c.id)))
        .header("cookie", &session)
        .send()
        .await
        .expect("the queue");
    assert_eq!(queue.status(), StatusCode::OK);
    let queue = queue.text().await.expect("html");
    assert!(!queue.contains(&c.reviewer), "the key is in no page");
    let csrf = csrf_of(&queue);
    let approve = url(&format!("/clients/{}/approvals/{update}/approve", c.id));
    let wrong = "0".repeat(64);
    for (cookie, fields) in [
        (session.as_str(), vec![]),
        (session.as_str(), vec![("csrf", wrong.as_str())]),
        (session.as_str(), vec![("csrf", "")]),
        ("", vec![("csrf", csrf.as_str())]),
    ] {
        let answer = http
            .post(&approve)
            .header("cookie", cookie)
            .form(&fields)
            .send()
            .await
            .expect("a forged POST");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{fields:?}");
    }
    // A JSON body is no form: refused, whatever it holds.
    let answer = http
        .post(&approve)
        .header("cookie", &session)
        .json(&json!({ "csrf": csrf }))
        .send()
        .await
        .expect("a JSON POST");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "pending");

    let answer = http
        .post(&approve)
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("the real POST");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let position = head(&env).await;
    assert_eq!(status_of(&app, &c, &update, position).await, "applied");
    console.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_in_client_names_context_values_and_evidence_renders_as_text() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let script = "<script>alert(1)</script>";
    let attribute = "\"onerror=alert(1)";
    let hidden = "abc\u{202E}cba\u{200B}z";
    let c = client(&app, script).await;
    let other = client(&app, &format!("{attribute} {hidden}")).await;
    let image = "<img src=x onerror=alert(1)>";
    let (update, _) = suggest_because(
        &app,
        &c,
        json!({ "messaging": { "tone": image, "sign_off": attribute }, "odd": { "name": hidden } }),
        json!({ "note": script, "who": attribute, "hidden": hidden, "sends": 10 }),
        &format!("{script} {attribute}"),
    )
    .await;

    let browser = Browser::start("hostile-text", &app).await;
    browser.sign_in(OPERATOR_KEY).await;
    browser.find("#clients").await;
    browser.shot("operator-home").await;
    let text = browser.dom_text().await;
    assert!(text.contains(script), "{text}");
    assert!(text.contains(attribute), "{text}");
    // Invisible and direction-changing characters are shown, not obeyed.
    assert!(text.contains("abc[U+202E]cba[U+200B]z"), "{text}");
    assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));
    browser.no_dialog().await;

    for (page, path) in [
        ("queue", format!("/clients/{}/approvals", c.id)),
        ("item", format!("/clients/{}/approvals/{update}", c.id)),
        ("other-client", format!("/clients/{}", other.id)),
    ] {
        browser.goto(&path).await;
        browser.find("main h1").await;
        browser.shot(page).await;
        browser.no_dialog().await;
        // Only the console's own two scripts, and no image at all.
        assert_eq!(browser.count("script").await, 2, "{page}");
        assert_eq!(browser.count("img").await, 0, "{page}");
        assert_eq!(browser.count("[onerror]").await, 0, "{page}");
    }
    browser
        .goto(&format!("/clients/{}/approvals/{update}", c.id))
        .await;
    let text = browser.dom_text().await;
    for expected in [script, attribute, image, "abc[U+202E]cba[U+200B]z"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    // The modify form holds the values as they are, attribute quotes and all.
    let value = browser
        .find("#modify input[data-pointer='/messaging/sign_off']")
        .await
        .prop("value")
        .await
        .expect("value");
    assert_eq!(value.as_deref(), Some(attribute));

    browser.click_then("#approve-button", "#notice").await;
    browser.goto(&format!("/clients/{}/context", c.id)).await;
    browser.find("#context-version").await;
    browser.shot("context").await;
    browser.no_dialog().await;
    let text = browser.dom_text().await;
    assert!(text.contains(image) && text.contains(attribute), "{text}");
    assert_eq!(browser.count("img").await, 0);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_the_old_cookie_no_longer_works() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let browser = Browser::start("sign-out", &app).await;
    browser.sign_in(&c.reviewer).await;
    browser.shot("signed-in").await;
    let session = browser.cookie("sextant_console").await;
    let home = browser.url(&format!("/clients/{}", c.id));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let cookie = format!("sextant_console={session}");
    let before = http
        .get(&home)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("home");
    assert_eq!(
        before.status(),
        StatusCode::OK,
        "the cookie works while signed in"
    );

    browser.click_then("#sign-out", "#key").await;
    browser.shot("signed-out").await;
    assert_eq!(browser.text("#notice").await, "You are signed out.");
    browser.goto(&format!("/clients/{}", c.id)).await;
    browser.find("#key").await;
    assert_eq!(browser.path().await, "/sign-in");

    let after = http
        .get(&home)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("home");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()["location"], "/sign-in");
    let post = http
        .post(browser.url("/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", "x")])
        .send()
        .await
        .expect("a POST");
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_names_a_keys_role_and_client_and_the_operator_as_such() {
    let env = TestEnv::new().await;
    let app = env.start().await;
    let c = client(&app, "Acme").await;
    let reader = app.issue_key(c.id, "reader").await;
    let answer = app.query("/v1/whoami", Some(&reader)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["role"], "reader");
    assert_eq!(answer.body["client_id"], c.id.to_string());
    assert!(answer.body["key_id"].is_string());
    assert_eq!(answer.headers["cache-control"], "no-store");
    let operator = app.query("/v1/whoami", Some(OPERATOR_KEY)).await;
    assert_eq!(
        operator.body,
        json!({ "role": "operator", "client_id": null, "key_id": null })
    );
    let unknown = app.query("/v1/whoami", Some("sxk_not_a_key")).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let nobody = app.query("/v1/whoami", None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
