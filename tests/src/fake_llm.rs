//! A local HTTP server that answers like an OpenAI-compatible
//! chat-completions API, with failure modes a test can switch on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the next answers are.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with this content as the assistant message.
    Answer(String),
    /// This status, every time.
    Fail(u16),
    /// `n` failures with this status, then the answer.
    FailThen(usize, u16, String),
    /// Sleeps this long before answering (for timeouts).
    Slow(Duration, String),
}

#[derive(Clone)]
struct Shared {
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<AtomicUsize>,
    last_request: Arc<Mutex<Value>>,
}

pub struct FakeLlm {
    pub url: String,
    shared: Shared,
}

impl FakeLlm {
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Shared {
            behaviour: Arc::new(Mutex::new(behaviour)),
            requests: Arc::new(AtomicUsize::new(0)),
            last_request: Arc::new(Mutex::new(Value::Null)),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = behaviour;
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn last_request(&self) -> Value {
        self.shared
            .last_request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The body of a successful chat completion, as the API documents it.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_763_700_000,
        "model": "gpt-test",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000}
    })
}

fn error_body(status: u16) -> Value {
    json!({"error": {"message": format!("simulated {status}"), "type": "server_error", "code": null}})
}

async fn answer(State(shared): State<Shared>, Json(request): Json<Value>) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    *shared
        .last_request
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = request;
    let behaviour = shared
        .behaviour
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let fail = |status: u16| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(error_body(status)),
        )
            .into_response()
    };
    match behaviour {
        Behaviour::Answer(content) => Json(completion(&content)).into_response(),
        Behaviour::Fail(status) => fail(status),
        Behaviour::FailThen(failures, status, content) => {
            if n < failures {
                fail(status)
            } else {
                Json(completion(&content)).into_response()
            }
        }
        Behaviour::Slow(delay, content) => {
            tokio::time::sleep(delay).await;
            Json(completion(&content)).into_response()
        }
    }
}
