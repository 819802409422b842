//! `sextant import sends|outcomes FILE`: bulk import over the batch API.
//!
//! - **Streams.** Rows are read one at a time (a csv reader over a
//!   `BufReader`, or lines of JSON), gathered into batches of up to 1000
//!   and posted to `POST /v1/clients/{id}/sends` (`{"sends": [...]}`) or
//!   `/outcomes`; at most `--concurrency` batches are in flight, so memory
//!   stays flat whatever the file's size.
//! - **Idempotent.** The API records a send once per provider and provider
//!   message id, and an outcome once per send and kind: a row sent again is
//!   a `duplicate`, never a second event. Importing a file twice records
//!   nothing the second time.
//! - **Resumable.** After each batch is answered (in file order), the
//!   checkpoint file records where the next unacknowledged row starts (byte
//!   offset and line) and how long the reject file was. A later run of the
//!   same import starts there; after a kill the batches that were in flight
//!   are sent again and answered as duplicates. Ctrl-C stops reading, waits
//!   for the batches in flight, saves, and exits 130. A run that reaches the
//!   end removes its checkpoint.
//! - **Retries.** 429, 502, 503, 504, timeouts and refused connections are
//!   retried with exponential backoff (100 ms doubling to 10 s, `Retry-After`
//!   honoured), up to 10 attempts per batch.
//! - **Rejects.** A row the import cannot map, or the API refuses, goes to
//!   the reject file (`FILE.rejects.csv`, `--rejects`) with its line
//!   number, the field and the reason; the rest is imported.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{seg, Service};
use crate::args::{Import, InputFormat};
use crate::commands::Ctx;
use crate::error::{CliError, Result};
use crate::mapping::{kind_name, Header, Mapper, MappingFile, Refusal, Row};

const MAX_ATTEMPTS: u32 = 10;

/// Where an import stands, saved after every answered batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub input: String,
    pub kind: String,
    pub client: String,
    /// Byte offset of the first row not yet acknowledged.
    pub offset: u64,
    /// Its line number (1-based; the line before it was the last one
    /// acknowledged).
    pub line: u64,
    /// Records before it (csv's record count, headers included).
    pub record: u64,
    /// The reject file's length at that point.
    pub rejects_len: u64,
    /// Totals over every run of this import so far.
    pub rows: u64,
    pub recorded: u64,
    pub duplicates: u64,
    pub errors: u64,
}

impl Checkpoint {
    fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                CliError::Usage(format!(
                    "{} is not a checkpoint ({e}): remove it or pass --restart",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::failed(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("checkpoint.tmp");
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| CliError::failed(format!("cannot write the checkpoint: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
    }
}

/// A row read: where it was and what it became.
struct ReadRow {
    line: u64,
    item: Result<Value, Refusal>,
    /// The row as it was, for the reject file.
    raw: Vec<String>,
}

/// Where the reader stands after a row.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    offset: u64,
    line: u64,
    record: u64,
}

// One source exists per import: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        header: Header,
        mapper: Mapper,
        record: csv::StringRecord,
    },
    Jsonl {
        reader: BufReader<File>,
        offset: u64,
        line: u64,
        buf: String,
        provider: Option<String>,
    },
}

impl Source {
    fn open(path: &Path, format: InputFormat, mapper: Mapper, from: Option<Mark>) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
        match format {
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(BufReader::with_capacity(1 << 16, file));
                let names: Vec<String> = reader
                    .headers()
                    .map_err(|e| {
                        CliError::Usage(format!("{}: no CSV header: {e}", path.display()))
                    })?
                    .iter()
                    .map(|h| h.trim_start_matches('\u{feff}').to_owned())
                    .collect();
                let header = Header::new(&names);
                mapper.check_header(&header)?;
                if let Some(mark) = from {
                    let mut pos = csv::Position::new();
                    pos.set_byte(mark.offset)
                        .set_line(mark.line)
                        .set_record(mark.record);
                    reader.seek(pos).map_err(|e| {
                        CliError::failed(format!("cannot resume at byte {}: {e}", mark.offset))
                    })?;
                }
                Ok(Self::Csv {
                    reader,
                    header,
                    mapper,
                    record: csv::StringRecord::new(),
                })
            }
            InputFormat::Jsonl => {
                let mut file = file;
                let (offset, line) = match from {
                    Some(mark) => {
                        file.seek(SeekFrom::Start(mark.offset)).map_err(|e| {
                            CliError::failed(format!("cannot resume at byte {}: {e}", mark.offset))
                        })?;
                        (mark.offset, mark.line.saturating_sub(1))
                    }
                    None => (0, 0),
                };
                Ok(Self::Jsonl {
                    reader: BufReader::with_capacity(1 << 16, file),
                    offset,
                    line,
                    buf: String::new(),
                    provider: mapper.provider().map(str::to_owned),
                })
            }
        }
    }

    fn header_names(&self) -> Vec<String> {
        match self {
            Self::Csv { header, .. } => header.names().to_vec(),
            Self::Jsonl { .. } => vec!["record".into()],
        }
    }

    /// The next row and where the reader then stands; None at the end.
    fn next(&mut self) -> Result<Option<(ReadRow, Mark)>> {
        match self {
            Self::Csv {
                reader,
                header,
                mapper,
                record,
            } => loop {
                let read = reader.read_record(record);
                let pos = reader.position().clone();
                let mark = Mark {
                    offset: pos.byte(),
                    line: pos.line(),
                    record: pos.record(),
                };
                match read {
                    Ok(false) => return Ok(None),
                    Ok(true) => {
                        let line = record.position().map(|p| p.line()).unwrap_or(mark.line);
                        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
                        if cells.iter().all(|c| c.trim().is_empty()) {
                            continue;
                        }
                        let item = if cells.len() != header.names().len() {
                            Err(Refusal::new(
                                ".",
                                format!(
                                    "the row has {} fields, the header {}",
                                    cells.len(),
                                    header.names().len()
                                ),
                            ))
                        } else {
                            mapper.map(&Row {
                                header,
                                cells: &cells,
                            })
                        };
                        return Ok(Some((
                            ReadRow {
                                line,
                                item,
                                raw: cells,
                            },
                            mark,
                        )));
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(mark.line);
                        match e.kind() {
                            csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. } => {
                                return Ok(Some((
                                    ReadRow {
                                        line,
                                        item: Err(Refusal::new(".", e.to_string())),
                                        raw: Vec::new(),
                                    },
                                    mark,
                                )))
                            }
                            _ => {
                                return Err(CliError::failed(format!(
                                    "reading the CSV failed: {e}"
                                )))
                            }
                        }
                    }
                }
            },
            Self::Jsonl {
                reader,
                offset,
                line,
                buf,
                provider,
            } => loop {
                buf.clear();
                let n = reader
                    .read_line(buf)
                    .map_err(|e| CliError::failed(format!("reading the file failed: {e}")))?;
                if n == 0 {
                    return Ok(None);
                }
                *offset += n as u64;
                *line += 1;
                let mark = Mark {
                    offset: *offset,
                    line: *line + 1,
                    record: *line,
                };
                let text = buf.trim();
                if text.is_empty() {
                    continue;
                }
                let item = match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(mut map)) => {
                        if let Some(p) = provider.as_ref() {
                            map.entry("provider")
                                .or_insert_with(|| Value::String(p.clone()));
                        }
                        Ok(Value::Object(map))
                    }
                    Ok(_) => Err(Refusal::new(".", "the line is not a JSON object")),
                    Err(e) => Err(Refusal::new(".", format!("the line is not JSON: {e}"))),
                };
                return Ok(Some((
                    ReadRow {
                        line: *line,
                        item,
                        raw: vec![text.to_owned()],
                    },
                    mark,
                )));
            },
        }
    }
}

/// One batch: its items with their lines, the rows refused before sending,
/// and where the reader stood after its last row.
struct Batch {
    items: Vec<Value>,
    lines: Vec<u64>,
    raws: Vec<Vec<String>>,
    refused: Vec<(u64, Refusal, Vec<String>)>,
    end: Mark,
}

/// What the API said about a batch.
struct Answered {
    batch: Batch,
    results: Vec<Value>,
    recorded: u64,
    duplicates: u64,
}

struct Poster {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    field: &'static str,
}

impl Poster {
    async fn post(&self, batch: Batch) -> Result<Answered> {
        if batch.items.is_empty() {
            return Ok(Answered {
                batch,
                results: Vec::new(),
                recorded: 0,
                duplicates: 0,
            });
        }
        let body = serde_json::to_vec(&json!({ self.field: batch.items }))
            .map_err(|e| CliError::failed(format!("cannot encode a batch: {e}")))?;
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(key) = &self.key {
                request = request.bearer_auth(key);
            }
            let retry_after;
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if !matches!(status, 429 | 502 | 503 | 504) || attempt >= MAX_ATTEMPTS {
                        let answer = crate::api::read(response).await?;
                        let b = answer.body;
                        return Ok(Answered {
                            results: b["results"].as_array().cloned().unwrap_or_default(),
                            recorded: b["recorded"].as_u64().unwrap_or(0),
                            duplicates: b["duplicates"].as_u64().unwrap_or(0),
                            batch,
                        });
                    }
                }
                Err(e) => {
                    if attempt >= MAX_ATTEMPTS
                        || !(e.is_connect() || e.is_timeout() || e.is_request())
                    {
                        return Err(crate::api::unreachable(Service::Command, &self.url, &e));
                    }
                    retry_after = None;
                }
            }
            tokio::time::sleep(retry_after.unwrap_or(delay).min(Duration::from_secs(30))).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rows: u64,
    recorded: u64,
    duplicates: u64,
    errors: u64,
}

fn default_format(path: &Path) -> InputFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => InputFormat::Jsonl,
        _ => InputFormat::Csv,
    }
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// `FILE.checkpoint` when its directory is writable, else under the state
/// directory, named after the input's absolute path.
fn checkpoint_path(input: &Path, absolute: &Path) -> PathBuf {
    let candidate = beside(input, ".checkpoint");
    let dir = candidate
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let probe = dir.join(format!(".sextant-probe-{}", std::process::id()));
    if File::create(&probe).is_ok() {
        let _ = std::fs::remove_file(&probe);
        return candidate;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(absolute.to_string_lossy().as_bytes());
    crate::config::state_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("imports")
        .join(format!("{}.checkpoint", &hex::encode(digest)[..16]))
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
    total_bytes: u64,
}

impl Progress {
    fn new(total_bytes: u64, from: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {percent}% {msg} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_position(from);
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_line: Instant::now() - Duration::from_secs(10),
            total_bytes,
        }
    }

    fn update(&mut self, counts: Counts, offset: u64, line: u64, force: bool) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = counts.rows as f64 / secs;
        match &self.bar {
            Some(bar) => {
                bar.set_position(offset);
                bar.set_message(format!(
                    "{} rows ({:.0}/s), {} recorded, {} duplicates, {} errors",
                    counts.rows, rate, counts.recorded, counts.duplicates, counts.errors
                ));
            }
            None => {
                if force || self.last_line.elapsed() >= Duration::from_secs(1) {
                    self.last_line = Instant::now();
                    let line = json!({
                        "progress": {
                            "rows": counts.rows, "recorded": counts.recorded,
                            "duplicates": counts.duplicates, "errors": counts.errors,
                            "line": line, "bytes": offset, "total_bytes": self.total_bytes,
                            "rows_per_second": rate.round(),
                        }
                    });
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(ctx: &Ctx<'_>, args: Import) -> Result<()> {
    if !(1..=1000).contains(&args.batch_size) {
        return Err(CliError::Usage("--batch-size must be 1 to 1000".into()));
    }
    if args.concurrency == 0 || args.concurrency > 16 {
        return Err(CliError::Usage("--concurrency must be 1 to 16".into()));
    }
    let client = ctx.settings.client()?.to_owned();
    let format = args.format.unwrap_or_else(|| default_format(&args.file));
    let mapping = args.mapping.as_deref().map(MappingFile::load).transpose()?;
    let mapper = Mapper::new(args.kind, args.provider.as_deref(), mapping)?;
    let absolute = std::fs::canonicalize(&args.file)
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let total_bytes = std::fs::metadata(&absolute).map(|m| m.len()).unwrap_or(0);
    let rejects_path = args
        .rejects
        .clone()
        .unwrap_or_else(|| beside(&args.file, ".rejects.csv"));
    let checkpoint_file = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| checkpoint_path(&args.file, &absolute));
    if let Some(dir) = checkpoint_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let kind = kind_name(args.kind);

    let saved = if args.restart {
        None
    } else {
        Checkpoint::load(&checkpoint_file)?
    };
    if let Some(saved) = &saved {
        if saved.kind != kind || saved.client != client {
            return Err(CliError::Usage(format!(
                "{} is a checkpoint of an import of {} for client {}: pass --restart to start over",
                checkpoint_file.display(),
                saved.kind,
                saved.client
            )));
        }
        if saved.offset > total_bytes {
            return Err(CliError::Usage(format!(
                "{} is shorter than its checkpoint says: pass --restart to start over",
                args.file.display()
            )));
        }
    }
    let from = saved.as_ref().map(|c| Mark {
        offset: c.offset,
        line: c.line,
        record: c.record,
    });
    let mut source = Source::open(&args.file, format, mapper, from)?;

    // The reject file, cut back to what the checkpoint knew: rows of
    // batches answered after it are about to be sent again.
    let mut rejects = open_rejects(
        &rejects_path,
        saved.as_ref().map(|c| c.rejects_len),
        &source,
    )?;
    let mut checkpoint = saved.clone().unwrap_or(Checkpoint {
        input: absolute.display().to_string(),
        kind: kind.to_owned(),
        client: client.clone(),
        offset: 0,
        line: 2,
        record: 1,
        rejects_len: 0,
        rows: 0,
        recorded: 0,
        duplicates: 0,
        errors: 0,
    });
    checkpoint.rejects_len = rejects.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
    if let Some(c) = &saved {
        ctx.out.note(&format!(
            "resuming {} at line {} ({} rows done before)",
            args.file.display(),
            c.line,
            c.rows
        ));
    }

    let poster = std::sync::Arc::new(Poster {
        http: ctx.api.http().clone(),
        url: ctx.api.url(
            Service::Command,
            &format!("/v1/clients/{}/{kind}", seg(&client)),
        ),
        key: ctx.api.key().map(|k| k.expose().to_owned()),
        field: kind,
    });

    let mut counts = Counts::default();
    let mut progress = Progress::new(total_bytes, checkpoint.offset);
    let mut inflight = FuturesOrdered::new();
    let mut at_end = false;
    let mut stopping = false;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut last_position = 0i64;
    let mut failure: Option<CliError> = None;

    loop {
        while !at_end && !stopping && failure.is_none() && inflight.len() < args.concurrency {
            let mut batch = Batch {
                items: Vec::with_capacity(args.batch_size),
                lines: Vec::with_capacity(args.batch_size),
                raws: Vec::with_capacity(args.batch_size),
                refused: Vec::new(),
                end: Mark::default(),
            };
            let mut any = false;
            while batch.items.len() < args.batch_size {
                match source.next()? {
                    None => {
                        at_end = true;
                        break;
                    }
                    Some((row, mark)) => {
                        any = true;
                        batch.end = mark;
                        match row.item {
                            Ok(item) => {
                                batch.items.push(item);
                                batch.lines.push(row.line);
                                batch.raws.push(row.raw);
                            }
                            Err(refusal) => batch.refused.push((row.line, refusal, row.raw)),
                        }
                    }
                }
            }
            if !any {
                break;
            }
            let poster = poster.clone();
            inflight.push_back(async move { poster.post(batch).await });
        }
        if inflight.is_empty() {
            break;
        }
        let answered = tokio::select! {
            answered = inflight.next() => answered,
            _ = &mut stop, if !stopping => {
                stopping = true;
                ctx.out.note("interrupted: finishing the batches in flight, then saving");
                continue;
            }
        };
        let Some(answered) = answered else { break };
        let answered = match answered {
            Ok(a) => a,
            Err(e) => {
                // Later batches may still be answered, but the checkpoint
                // only moves over contiguous answers: stop here.
                failure = Some(e);
                break;
            }
        };
        let mut refused: Vec<(u64, String, String, &Vec<String>)> = answered
            .batch
            .refused
            .iter()
            .map(|(line, r, raw)| (*line, r.field.clone(), r.reason.clone(), raw))
            .collect();
        for result in &answered.results {
            if result["status"] == "error" {
                let index = result["index"].as_u64().unwrap_or(0) as usize;
                if let (Some(line), Some(raw)) = (
                    answered.batch.lines.get(index),
                    answered.batch.raws.get(index),
                ) {
                    refused.push((
                        *line,
                        result["field"].as_str().unwrap_or(".").to_owned(),
                        result["message"].as_str().unwrap_or("refused").to_owned(),
                        raw,
                    ));
                }
            }
            if let Some(p) = result["position"].as_i64() {
                last_position = last_position.max(p);
            }
        }
        refused.sort_by_key(|r| r.0);
        for (line, field, reason, raw) in &refused {
            let mut record = vec![line.to_string(), field.clone(), reason.clone()];
            record.extend(raw.iter().cloned());
            rejects
                .write_record(&record)
                .map_err(|e| CliError::failed(format!("cannot write the reject file: {e}")))?;
        }
        rejects
            .flush()
            .map_err(|e| CliError::failed(format!("cannot write the reject file: {e}")))?;
        let batch_rows = (answered.batch.items.len() + answered.batch.refused.len()) as u64;
        counts.rows += batch_rows;
        counts.recorded += answered.recorded;
        counts.duplicates += answered.duplicates;
        counts.errors += refused.len() as u64;
        checkpoint.rows += batch_rows;
        checkpoint.recorded += answered.recorded;
        checkpoint.duplicates += answered.duplicates;
        checkpoint.errors += refused.len() as u64;
        checkpoint.offset = answered.batch.end.offset;
        checkpoint.line = answered.batch.end.line;
        checkpoint.record = answered.batch.end.record;
        checkpoint.rejects_len = rejects
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .unwrap_or(checkpoint.rejects_len);
        checkpoint.save(&checkpoint_file)?;
        progress.update(counts, checkpoint.offset, checkpoint.line, false);
    }
    progress.update(counts, checkpoint.offset, checkpoint.line, true);
    progress.finish();
    if last_position > 0 {
        ctx.api.saw(last_position);
    }

    let done = failure.is_none() && !stopping;
    if done {
        let _ = std::fs::remove_file(&checkpoint_file);
    }
    let rejects_len = checkpoint.rejects_len;
    drop(rejects);
    let header_only = rejects_len <= header_len(&source);
    if done && header_only && checkpoint.errors == 0 {
        let _ = std::fs::remove_file(&rejects_path);
    }
    let secs = progress.started.elapsed().as_secs_f64();
    let summary = json!({
        "kind": kind,
        "rows": counts.rows,
        "recorded": counts.recorded,
        "duplicates": counts.duplicates,
        "errors": counts.errors,
        "rejects": if counts.errors > 0 || !header_only { Value::String(rejects_path.display().to_string()) } else { Value::Null },
        "complete": done,
        "checkpoint": if done { Value::Null } else { Value::String(checkpoint_file.display().to_string()) },
        "seconds": (secs * 1000.0).round() / 1000.0,
        "rows_per_second": (counts.rows as f64 / secs.max(0.001)).round(),
        "position": ctx.api.position(),
    });
    ctx.out.record(
        &summary,
        vec![
            ("rows", counts.rows.to_string()),
            ("recorded", counts.recorded.to_string()),
            ("duplicates", counts.duplicates.to_string()),
            ("errors", counts.errors.to_string()),
            ("rejects", crate::output::cell(&summary["rejects"])),
            ("rows/s", crate::output::cell(&summary["rows_per_second"])),
            (
                "state",
                if done {
                    "complete".to_owned()
                } else {
                    format!("resumable from {}", checkpoint_file.display())
                },
            ),
        ],
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    if stopping {
        return Err(CliError::Interrupted(format!(
            "saved at line {}; run the same command again to resume",
            checkpoint.line
        )));
    }
    Ok(())
}

/// The reject file's header: `line,field,reason` and the input's columns.
fn rejects_header(source: &Source) -> Vec<String> {
    let mut header = vec!["line".to_owned(), "field".to_owned(), "reason".to_owned()];
    header.extend(source.header_names());
    header
}

fn header_len(source: &Source) -> u64 {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(rejects_header(source));
    w.into_inner().map(|v| v.len() as u64).unwrap_or(0)
}

fn open_rejects(path: &Path, keep: Option<u64>, source: &Source) -> Result<csv::Writer<File>> {
    let err = |e: std::io::Error| CliError::failed(format!("cannot write {}: {e}", path.display()));
    let existing = std::fs::metadata(path).map(|m| m.len()).ok();
    match (keep, existing) {
        (Some(keep), Some(len)) if keep > 0 && len >= keep => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(err)?;
            file.set_len(keep).map_err(err)?;
            let mut file = file;
            file.seek(SeekFrom::End(0)).map_err(err)?;
            Ok(csv::WriterBuilder::new().flexible(true).from_writer(file))
        }
        _ => {
            let file = File::create(path).map_err(err)?;
            let mut w = csv::WriterBuilder::new().flexible(true).from_writer(file);
            w.write_record(rejects_header(source))
                .and_then(|_| w.flush().map_err(csv::Error::from))
                .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
            Ok(w)
        }
    }
}
