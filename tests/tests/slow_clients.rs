//! Slow and heavy clients: a client that trickles its headers or its body,
//! keeps a connection idle, opens more connections than allowed, or sends
//! hostile batches holds the services only as long and as much as their
//! `SEXTANT_HTTP_*` settings allow, and leaves no memory behind.
//!
//! The timeouts are set small here (hundreds of milliseconds) and probed
//! over raw TCP, where a test controls every byte and its timing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sextant_adapters::config::Settings;
use sextant_tests::procs::{Binary, Service};
use sextant_tests::{Parts, Running, TestEnv, OPERATOR_KEY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(url: &str) -> &str {
    url.trim_start_matches("http://")
}

async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(addr(url))
        .await
        .expect("connect to the service")
}

/// Reads until the service closes the connection (a reset counts: a
/// socket closed with bytes unread is reset); answers what came first.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return seen
            }
            Err(err) => panic!("reading from the service failed: {err}"),
        }
    }
}

/// One HTTP/1.1 answer read off `stream`: its status, head and body.
async fn read_answer(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.expect("read an answer");
        assert!(n > 0, "closed before an answer");
        seen.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content length");
    while seen.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read the body");
        assert!(n > 0, "closed inside the body");
        seen.extend_from_slice(&buf[..n]);
    }
    (status, head, seen[head_end..head_end + length].to_vec())
}

fn health_request() -> &'static [u8] {
    b"GET /healthz HTTP/1.1\r\nHost: sextant\r\n\r\n"
}

async fn start(env: &TestEnv, tune: impl FnOnce(&mut Settings)) -> Running {
    let mut settings = env.settings();
    tune(&mut settings);
    env.start_against(&settings, Parts::apis_only()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_headers_slowly_is_cut_off_at_the_header_timeout() {
    let env = TestEnv::new().await;
    let header_timeout = Duration::from_millis(500);
    let app = start(&env, |s| s.http.header_timeout = header_timeout).await;
    for url in [&app.command_url, &app.query_url] {
        // Trickled: a header line every 100 ms, never the blank line.
        let started = Instant::now();
        let (mut reader, mut writer) = connect(url).await.into_split();
        let trickle = tokio::spawn(async move {
            let mut line = b"GET /healthz HTTP/1.1\r\nHost: sextant\r\n".to_vec();
            for i in 0..100 {
                if writer.write_all(&line).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                line = format!("x-slow-{i}: 1\r\n").into_bytes();
            }
        });
        let answered = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut reader))
            .await
            .expect("the connection is closed well before 5 s");
        let took = started.elapsed();
        assert!(
            answered.is_empty(),
            "{url}: closed, not answered: {}",
            String::from_utf8_lossy(&answered)
        );
        assert!(
            took >= header_timeout - Duration::from_millis(50) && took < Duration::from_secs(3),
            "{url}: closed after {took:?}, not at the header timeout"
        );
        trickle.abort();

        // Silent: connected, nothing sent.
        let started = Instant::now();
        let mut silent = connect(url).await;
        tokio::time::timeout(Duration::from_secs(5), until_closed(&mut silent))
            .await
            .expect("a silent connection is closed well before 5 s");
        assert!(started.elapsed() >= header_timeout - Duration::from_millis(50));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_and_not_before() {
    let env = TestEnv::new().await;
    let header_timeout = Duration::from_millis(400);
    let idle_timeout = Duration::from_millis(1500);
    let app = start(&env, |s| {
        s.http.header_timeout = header_timeout;
        s.http.idle_timeout = idle_timeout;
    })
    .await;
    for url in [&app.command_url, &app.query_url] {
        let mut stream = connect(url).await;
        stream.write_all(health_request()).await.expect("write");
        assert_eq!(read_answer(&mut stream).await.0, 200);
        // Idle past the header timeout: the idle timeout is the one that
        // applies between requests, so the connection still serves.
        tokio::time::sleep(header_timeout * 2).await;
        stream.write_all(health_request()).await.expect("write");
        assert_eq!(read_answer(&mut stream).await.0, 200, "{url}: kept alive");
        let idle_from = Instant::now();
        let after = tokio::time::timeout(Duration::from_secs(6), until_closed(&mut stream))
            .await
            .expect("an idle connection is closed well before 6 s");
        let took = idle_from.elapsed();
        assert!(after.is_empty(), "{url}: nothing more was sent");
        assert!(
            took >= idle_timeout - Duration::from_millis(100) && took < Duration::from_secs(4),
            "{url}: closed after {took:?} idle, not at the idle timeout"
        );
    }
    app.stop().await;
}

/// A request whose body stops short of its `Content-Length` (200 bytes
/// announced, a dozen sent), to `method path` as the operator.
fn stalled(method: &str, path: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: sextant\r\nAuthorization: Bearer {OPERATOR_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\": \"Sl"
    )
}

/// The answer a request got once the request timeout abandoned it.
fn assert_abandoned(answer: &sextant_tests::Answer, which: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{which}: {answer:?}"
    );
    assert_eq!(
        answer.body["type"], "urn:sextant:problem:timeout",
        "{which}: {answer:?}"
    );
    assert!(
        answer.headers.contains_key("x-request-id"),
        "{which}: {answer:?}"
    );
}

/// Both services run under the same server and settings. The command API
/// reads bodies, so a slow one meets its timeouts there. The query API
/// reads none (every route is a GET answered from the read models): a body
/// sent to it never holds it, the answer comes without waiting for the
/// body, and the connection closes rather than wait for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_a_408_and_a_slow_answer_a_503_at_their_timeouts() {
    let env = TestEnv::new().await;
    // A body that stalls: 408 at the body timeout, and the connection
    // closes.
    let app = start(&env, |s| {
        s.http.body_timeout = Duration::from_millis(500);
        s.http.request_timeout = Duration::from_secs(20);
    })
    .await;
    let started = Instant::now();
    let mut stream = connect(&app.command_url).await;
    stream
        .write_all(stalled("POST", "/v1/clients").as_bytes())
        .await
        .expect("write");
    let (status, head, body) = read_answer(&mut stream).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let problem: Value = serde_json::from_slice(&body).expect("a problem");
    assert_eq!(problem["type"], "urn:sextant:problem:request-timeout");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    until_closed(&mut stream).await;
    // The query API answers the same stalled body without reading it, and
    // closes the connection instead of waiting for the rest.
    let mut stream = connect(&app.query_url).await;
    stream
        .write_all(stalled("GET", "/v1/clients").as_bytes())
        .await
        .expect("write");
    let (status, head, body) = read_answer(&mut stream).await;
    assert_eq!(status, 200, "{head}");
    let page: Value = serde_json::from_slice(&body).expect("a page of clients");
    assert!(page["items"].is_array(), "{page}");
    tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
        .await
        .expect("the connection is closed, not held for the rest of the body");
    app.stop().await;

    // A body still trickling at the request timeout: 408 too (the client is
    // the slow one). An answer that takes too long: 503 (the server is).
    let app = start(&env, |s| {
        s.http.body_timeout = Duration::from_secs(20);
        // Room for the ordinary requests below on a busy machine.
        s.http.request_timeout = Duration::from_secs(2);
        s.min_position_wait = Duration::from_secs(20);
    })
    .await;
    let mut stream = connect(&app.command_url).await;
    stream
        .write_all(stalled("POST", "/v1/clients").as_bytes())
        .await
        .expect("write");
    let (status, head, body) = read_answer(&mut stream).await;
    assert_eq!(status, 408, "{head}");
    let problem: Value = serde_json::from_slice(&body).expect("a problem");
    assert_eq!(problem["type"], "urn:sextant:problem:request-timeout");

    // The query API: no projector runs, so the wait for the client's
    // position would last `min_position_wait`, and the request timeout
    // ends it first.
    let (_, position) = app.register_client("Waited for").await;
    let started = Instant::now();
    let answer = app
        .query(
            &format!("/v1/clients?min_position={position}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_abandoned(&answer, "query API");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The command API: the event log is locked against appends, so the
    // registration waits for the lock, and the request timeout ends it
    // first.
    let mut lock = env.pool.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock the event log");
    let started = Instant::now();
    let answer = app
        .command(
            Method::POST,
            "/v1/clients",
            Some(OPERATOR_KEY),
            Some(json!({
                "name": "Locked out", "industry": "fintech", "company_size": "11-50", "region": "AU"
            })),
        )
        .await;
    assert_abandoned(&answer, "command API");
    assert!(started.elapsed() < Duration::from_secs(10));
    lock.rollback().await.expect("unlock the event log");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_limit_waits_unaccepted_until_one_closes() {
    let env = TestEnv::new().await;
    let app = start(&env, |s| s.http.max_connections = 2).await;
    // Each service counts its own connections.
    for url in [&app.command_url, &app.query_url] {
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut stream = connect(url).await;
            stream.write_all(health_request()).await.expect("write");
            assert_eq!(read_answer(&mut stream).await.0, 200, "{url}");
            open.push(stream);
        }
        // The third connects (the kernel's backlog takes it) but is not
        // served.
        let mut third = connect(url).await;
        third.write_all(health_request()).await.expect("write");
        let early = tokio::time::timeout(Duration::from_millis(800), read_answer(&mut third)).await;
        assert!(early.is_err(), "{url}: served beyond the limit: {early:?}");
        // One closes: the third is served.
        drop(open.pop());
        let (status, _, _) = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut third))
            .await
            .expect("served once a connection closed");
        assert_eq!(status, 200, "{url}");
        drop(open);
    }
    app.stop().await;
}

/// A send of the API's shape (as in tests/sends.rs).
fn send(message: &str) -> Value {
    json!({
        "provider": "smartlead", "provider_message_id": message,
        "lead": {"email": "ana@example.com", "tier": "warm"}, "channel": "email",
        "sent_at": "2026-11-18T09:12:00Z"
    })
}

fn batch(n: usize) -> Vec<u8> {
    let sends: Vec<Value> = (0..n).map(|i| send(&format!("m-{i}"))).collect();
    serde_json::to_vec(&json!({ "sends": sends })).expect("a batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_thousands_is_refused_as_too_large_and_single_items_still_work() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Batches").await;
    let key = app.issue_key(client, "ingest").await;
    let url = format!("{}/v1/clients/{client}/sends", app.command_url);
    for items in [1001, 5000] {
        let answer = app
            .http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(batch(items))
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let problem: Value = answer.json().await.expect("a problem");
        assert_eq!(problem["type"], "urn:sextant:problem:batch-too-large");
        assert_eq!(problem["title"], "Batch too large");
    }
    let single = app
        .command(
            Method::POST,
            &format!("/v1/clients/{client}/sends"),
            Some(&key),
            Some(send("one")),
        )
        .await;
    assert_eq!(single.status, StatusCode::CREATED, "{single:?}");
    let full = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(batch(1000))
        .send()
        .await
        .expect("an answer");
    assert_eq!(full.status(), StatusCode::OK, "a full batch is taken");
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'send_recorded'")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(
        recorded, 1001,
        "the single one and the full batch, none of the refused"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_refused_at_its_item_past_the_limit_while_the_rest_is_still_unsent() {
    let env = TestEnv::new().await;
    let app = env.start_with(Parts::apis_only()).await;
    let (client, _) = app.register_client("Trickle").await;
    let key = app.issue_key(client, "ingest").await;
    // 3,000 items announced by their length; only the first 1,001 and a
    // bit are written, and the connection then waits, as a client still
    // uploading would. The answer must come now, not when the rest (never
    // sent) or the body timeout would: after a second of lingering at most.
    let body = batch(3000);
    let first = std::str::from_utf8(&body)
        .expect("JSON is text")
        .match_indices("\"provider_message_id\"")
        .nth(1001)
        .map(|(at, _)| at)
        .expect("a 1002nd item");
    let mut stream = connect(&app.command_url).await;
    let head = format!(
        "POST /v1/clients/{client}/sends HTTP/1.1\r\nHost: sextant\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write the head");
    stream
        .write_all(&body[..first])
        .await
        .expect("write part of the body");
    let (status, _, answer) =
        tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
            .await
            .expect("an answer before the body is complete");
    assert_eq!(status, 413);
    let problem: Value = serde_json::from_slice(&answer).expect("a problem");
    assert_eq!(
        problem["type"], "urn:sextant:problem:batch-too-large",
        "{problem}"
    );
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'send_recorded'")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(recorded, 0, "nothing of the refused batch is recorded");
    app.stop().await;
}

/// The process's resident memory, in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a memory figure")
}

/// Hostile bodies, each about as heavy as a body may be: too many items,
/// far too many (3.5 MB), too many bytes (announced, 5 MiB), and nesting
/// far beyond the parser's limit (3 MiB of `[`).
fn hostile_bodies() -> Vec<Vec<u8>> {
    let too_deep = {
        let mut body = b"{\"sends\": [".to_vec();
        body.extend(std::iter::repeat_n(b'[', 3 * 1024 * 1024));
        body
    };
    let oversized = format!(
        "{{\"sends\": [{{\"x\": \"{}\"}}]}}",
        "x".repeat(5 * 1024 * 1024)
    )
    .into_bytes();
    vec![batch(1001), batch(20_000), oversized, too_deep]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_its_idle_level_after_a_burst_of_hostile_batches() {
    let env = TestEnv::new().await;
    // The binary as it ships: mimalloc with the services' reclaimer
    // (adapters/src/memory.rs), no allocator settings from the environment.
    let service = Service::start(Binary::Command, &env).await;
    let pid = service.pid().expect("a running service");
    let app = Running::at(service.url(), String::new());
    let (client, _) = app.register_client("Hostile").await;
    let key = app.issue_key(client, "ingest").await;
    let url = format!("{}/v1/clients/{client}/sends", service.url());
    // Each phase sends through its own HTTP client, closed before the
    // measurement: what open connections hold (hyper's buffers, sized by
    // the bodies they carried) is the connections', not a leak.
    let post = |http: &reqwest::Client, body: Vec<u8>| {
        let request = http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body);
        async move {
            // A body refused before it is all sent may meet a closed
            // connection instead of the answer: either is a refusal.
            request.send().await.map(|r| r.status()).ok()
        }
    };
    // Idle after ordinary use as concurrent as the burst, which sets up
    // what any busy process keeps: the pool's connections, the workers'
    // allocator caches.
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let warm = (0..50).map(|i| post(&http, batch(5 + i)));
        for status in futures::future::join_all(warm).await {
            assert_eq!(status, Some(StatusCode::OK));
        }
    }
    drop(http);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid, "VmRSS:");

    let bodies = hostile_bodies();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let burst = (0..50).map(|i| post(&http, bodies[i % bodies.len()].clone()));
        let statuses = futures::future::join_all(burst).await;
        assert!(
            statuses
                .iter()
                .all(|s| s.is_none_or(|s| s.is_client_error())),
            "every hostile body is refused: {statuses:?}"
        );
    }
    let peak = rss_kib(pid, "VmHWM:");
    drop(http);
    // Each burst holds up to 50 bodies of 3-4 MB at once, well over
    // 100 MiB; a leak of one body a request would leave over 400 MiB after
    // three. Measured: 20-25 MiB stay (the allocator's per-thread page
    // caches, which no purge returns while a page holds a live object);
    // without the services' reclaimer, 95-110 MiB stay for as long as the
    // process is idle. The reclaimer needs a tick after the purge delay
    // (about two seconds); a loaded machine gets ten.
    let bound = idle + 40 * 1024;
    let mut after = rss_kib(pid, "VmRSS:");
    for _ in 0..40 {
        if after <= bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = rss_kib(pid, "VmRSS:");
    }
    assert!(
        after <= bound,
        "resident memory {after} KiB after the bursts, idle was {idle} KiB (peak {peak} KiB)"
    );
}
