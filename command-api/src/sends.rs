//! Sends and outcomes: batched ingest with per-item results, send
//! authorisation, erasure of a lead's personal data. The use cases are
//! [`sextant_application::sends`]'.

use std::cell::Cell;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use sextant_adapters::http::{
    declares_json, parse_json, positioned, Admins, ClientScope, FieldError, Ingesters, Problem,
    RequestIds, StrictJson,
};
use sextant_application::sends::{self, Authorize, BatchResult, ItemResult, MAX_BATCH};
use sextant_application::{ApiError, Caller};

use crate::batch_counter::ItemCounter;
use crate::AppState;

/// Batches are larger than other bodies.
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    // Batch bodies are read by `read_counting`, which holds them to
    // BATCH_BODY_LIMIT itself.
    Router::new()
        .route("/v1/clients/{client_id}/sends", post(record_sends))
        .route("/v1/clients/{client_id}/outcomes", post(record_outcomes))
        .route("/v1/clients/{client_id}/sends/authorize", post(authorize))
        .route(
            "/v1/clients/{client_id}/leads/{lead_ref}/erase",
            post(erase),
        )
}

/// One item or `{"<key>": [...]}`; answers the items and whether it was a
/// batch. The batch's items are counted as they are read, and reading stops
/// at the first past [`MAX_BATCH`]: a batch of thousands is refused without
/// building a value for any of them.
fn items(body: &[u8], key: &str) -> Result<(Vec<Value>, bool), Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::invalid_field(
            ".",
            format!(
                "the body must be JSON: one object, or {{\"{key}\": [...]}} of at most {MAX_BATCH}"
            ),
        ));
    }
    let too_many = Cell::new(false);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let shape = ShapeOf {
        key,
        too_many: &too_many,
    }
    .deserialize(&mut reader)
    .and_then(|shape| reader.end().map(|()| shape));
    let shape = match shape {
        Ok(shape) => shape,
        Err(_) if too_many.get() => return Err(batch_too_large()),
        Err(err) => return Err(unreadable(&err)),
    };
    match shape {
        Shape::Batch(raw) => {
            if raw.is_empty() {
                return Err(Problem::invalid_field(key, "must hold at least one item"));
            }
            let items = raw
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    parse_json::<Value>(item.get().as_bytes())
                        .map_err(|problem| within_item(problem, key, index))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((items, true))
        }
        Shape::Single => Ok((vec![parse_json(body)?], false)),
        Shape::NotAnArray => Err(Problem::invalid_field(key, "must be an array")),
        Shape::NotAnObject => Err(Problem::invalid_field(
            ".",
            format!("send one object or {{\"{key}\": [...]}}"),
        )),
    }
}

/// A body that is not JSON (400), or a batch that cannot be read (422).
fn unreadable(err: &serde_json::Error) -> Problem {
    let message = err.to_string();
    // serde_json appends " at line L column C"; the field path says more.
    let message = message
        .rfind(" at line ")
        .map_or(message.as_str(), |at| &message[..at]);
    match err.classify() {
        serde_json::error::Category::Data => Problem::invalid_field(".", message),
        _ => Problem::bad_request(format!("malformed JSON: {message}")),
    }
}

/// An item's problem, its fields named from the body's top
/// (`sends[3].lead.email`).
fn within_item(problem: Problem, key: &str, index: usize) -> Problem {
    let item = format!("{key}[{index}]");
    let name = |field: &str| match field {
        "" | "." => item.clone(),
        field if field.starts_with('[') => format!("{item}{field}"),
        field => format!("{item}.{field}"),
    };
    if problem.errors.is_empty() {
        return problem;
    }
    let errors: Vec<FieldError> = problem
        .errors
        .iter()
        .map(|e| FieldError {
            field: name(&e.field),
            message: e.message.clone(),
        })
        .collect();
    Problem {
        detail: errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        errors,
        ..problem
    }
}

/// What a sends or outcomes body holds, told from its first level: the
/// items of a batch stay unparsed slices of the body until counted.
enum Shape<'a> {
    Batch(Vec<&'a RawValue>),
    Single,
    NotAnArray,
    NotAnObject,
}

/// Reads a body's [`Shape`]; `too_many` says the batch went past
/// [`MAX_BATCH`] (the read then fails at that item).
struct ShapeOf<'k> {
    key: &'k str,
    too_many: &'k Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ShapeOf<'_> {
    type Value = Shape<'de>;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ShapeOf<'_> {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "one object or {{\"{}\": [...]}}", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = 0usize;
        let mut batch = None;
        while let Some(name) = map.next_key::<String>()? {
            entries += 1;
            if entries == 1 && name == self.key {
                batch = Some(map.next_value_seed(CountedItems {
                    too_many: self.too_many,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match (entries, batch) {
            (1, Some(Some(items))) => Shape::Batch(items),
            (1, Some(None)) => Shape::NotAnArray,
            _ => Shape::Single,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::NotAnObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::NotAnObject)
    }
}

/// A batch's items, at most [`MAX_BATCH`] (`None`: not an array).
struct CountedItems<'k> {
    too_many: &'k Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CountedItems<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountedItems<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {MAX_BATCH} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == MAX_BATCH {
                self.too_many.set(true);
                return Err(de::Error::custom(format!(
                    "a batch holds at most {MAX_BATCH} items"
                )));
            }
            items.push(item);
        }
        Ok(Some(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A sends or outcomes body as it came: JSON by its content type, within
/// the batch limit, and left to [`items`] to read.
struct JsonBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = declares_json(req.headers());
        // Refused on its announced length, before a byte of it is buffered.
        let announced = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|length| length > BATCH_BODY_LIMIT as u64) {
            return Err(Problem::payload_too_large());
        }
        let key = if req.uri().path().ends_with("/outcomes") {
            "outcomes"
        } else {
            "sends"
        };
        let bytes = read_counting(req.into_body(), key).await?;
        // An empty body is told what it must hold, whatever its type.
        if !is_json && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
        Ok(Self(bytes))
    }
}

/// Reads a batch body frame by frame, counting its items as they arrive:
/// past [`MAX_BATCH`] it is refused there (413), nothing more kept; past
/// [`BATCH_BODY_LIMIT`] bytes too (for a body sent without a length).
async fn read_counting(mut body: Body, key: &'static str) -> Result<Bytes, Problem> {
    let mut counter = ItemCounter::new(key);
    let mut read: Vec<u8> = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        if read.len() + chunk.len() > BATCH_BODY_LIMIT {
            return Err(Problem::payload_too_large());
        }
        counter.feed(&chunk);
        if counter.items() > MAX_BATCH {
            linger(&mut body, read.len() + chunk.len()).await;
            return Err(batch_too_large());
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

async fn next_chunk(body: &mut Body) -> Result<Option<Bytes>, Problem> {
    loop {
        let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
        else {
            return Ok(None);
        };
        let frame = frame.map_err(|err| Problem::bad_request(err.to_string()))?;
        if let Ok(chunk) = frame.into_data() {
            return Ok(Some(chunk));
        }
    }
}

/// Reads and drops what a refused batch still sends, up to the body limit
/// and for a second at most, before the refusal is answered: a client
/// still writing into a connection the server closed with its bytes
/// unread is reset, and may lose the answer. A client that stops sending
/// gets its answer after the second.
async fn linger(body: &mut Body, mut seen: usize) {
    let drain = async {
        while let Ok(Some(chunk)) = next_chunk(body).await {
            seen += chunk.len();
            if seen > BATCH_BODY_LIMIT {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

fn batch_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch-too-large",
        "Batch too large",
        format!("a batch holds at most {MAX_BATCH} items; this one has more"),
    )
}

/// A batch answers 200 with a result per item; a single item answers as a
/// single command would: 201 recorded, 200 duplicate, 422 invalid.
fn answer(result: BatchResult, batch: bool) -> Result<Response, ApiError> {
    if !batch {
        return match result.items.first() {
            Some(ItemResult::Error { field, message }) => {
                Err(Problem::validation(vec![FieldError {
                    field: field.clone(),
                    message: message.clone(),
                }])
                .into())
            }
            Some(item) => {
                let status = if matches!(item, ItemResult::Recorded { .. }) {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut body = serde_json::to_value(item).map_err(anyhow::Error::from)?;
                body["position"] = json!(result.position);
                Ok(positioned(status, &body, result.position))
            }
            None => Err(Problem::invalid_field(".", "nothing to record").into()),
        };
    }
    let (mut recorded, mut duplicates, mut errors) = (0, 0, 0);
    let mut results = Vec::with_capacity(result.items.len());
    for (index, item) in result.items.iter().enumerate() {
        match item {
            ItemResult::Recorded { .. } => recorded += 1,
            ItemResult::Duplicate { .. } => duplicates += 1,
            ItemResult::Error { .. } => errors += 1,
        }
        let mut v = serde_json::to_value(item).map_err(anyhow::Error::from)?;
        v["index"] = json!(index);
        results.push(v);
    }
    Ok(positioned(
        StatusCode::OK,
        &json!({
            "results": results,
            "recorded": recorded,
            "duplicates": duplicates,
            "errors": errors,
            "position": result.position,
        }),
        result.position,
    ))
}

async fn record_sends(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Ingesters>,
    ids: RequestIds,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (raw, batch) = items(&body, "sends")?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let result = sends::record_sends(&state.app, &caller, client_id, raw).await?;
    answer(result, batch)
}

async fn record_outcomes(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Ingesters>,
    ids: RequestIds,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (raw, batch) = items(&body, "outcomes")?;
    let caller = Caller::principal(&principal, ids.correlation_id);
    let result = sends::record_outcomes(&state.app, &caller, client_id, raw).await?;
    answer(result, batch)
}

async fn authorize(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Ingesters>,
    ids: RequestIds,
    StrictJson(body): StrictJson<Authorize>,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let authorized = sends::authorize(&state.app, &caller, client_id, body).await?;
    Ok(positioned(StatusCode::OK, &authorized, authorized.position))
}

async fn erase(
    State(state): State<AppState>,
    ClientScope {
        client_id,
        principal,
        ..
    }: ClientScope<Admins>,
    Path((_, lead_ref)): Path<(String, String)>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    let caller = Caller::principal(&principal, ids.correlation_id);
    let erased = sends::erase(&state.app, &caller, client_id, &lead_ref).await?;
    Ok(positioned(StatusCode::OK, &erased, erased.position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Vec<u8> {
        let items: Vec<Value> = (0..n).map(|i| json!({ "n": i })).collect();
        serde_json::to_vec(&json!({ "sends": items })).expect("a batch")
    }

    #[test]
    fn a_batch_past_the_limit_is_refused_at_its_first_item_too_many() {
        let (items, is_batch) = items(&batch(MAX_BATCH), "sends").expect("a full batch");
        assert_eq!((items.len(), is_batch), (MAX_BATCH, true));
        let refused = items_of(&batch(MAX_BATCH + 1));
        assert_eq!(
            (refused.status, refused.kind.as_str()),
            (413, "urn:sextant:problem:batch-too-large")
        );
        // Malformed after the limit: refused as too large all the same,
        // since reading stopped before the damage.
        let mut broken = batch(5 * MAX_BATCH);
        broken.truncate(broken.len() - 3);
        assert_eq!(items_of(&broken).status, 413);
    }

    fn items_of(body: &[u8]) -> Problem {
        items(body, "sends").expect_err("a refusal")
    }

    #[test]
    fn a_single_item_and_the_shapes_that_are_neither_answer_as_before() {
        let (one, is_batch) = items(br#"{"provider": "x"}"#, "sends").expect("one item");
        assert_eq!((one, is_batch), (vec![json!({ "provider": "x" })], false));
        let (one, is_batch) =
            items(br#"{"x": 1, "sends": []}"#, "sends").expect("an object with more keys");
        assert_eq!((one.len(), is_batch), (1, false));
        let cases: [(&[u8], u16, &str); 7] = [
            (br#"{"sends": []}"#, 422, "sends"),
            (br#"{"sends": {"a": 1}}"#, 422, "sends"),
            (br#"[1, 2]"#, 422, "."),
            (br#""text""#, 422, "."),
            (b"  ", 422, "."),
            (br#"{"sends": [{"a": "x\u0000"}]}"#, 422, "sends[0]"),
            (
                br#"{"sends": [{"a": 1}, {"b": [1, 1e300]}]}"#,
                422,
                "sends[1].b[1]",
            ),
        ];
        for (body, status, field) in cases {
            let problem = items_of(body);
            assert_eq!(
                (
                    problem.status,
                    problem.errors.first().map(|e| e.field.as_str())
                ),
                (status, Some(field)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(items_of(br#"{"sends": [1,"#).status, 400);
    }
}
