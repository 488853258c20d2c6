//! Clarion (`https://api.clarionhealth.com/v1`, `Authorization: Bearer KEY`).
//!
//! Clarion lists calls account-wide (`GET /call`) with no cursor: a bare JSON array of at most
//! `limit` calls (at most 1,000) created in `createdAtGe..=createdAtLe`, in an undocumented
//! order, and nothing in an answer says whether more calls matched. So a walk is a set of
//! time windows, each asked with `limit=1000`: a window that comes back with 1,000 calls may
//! have been cut off, and reveals its two halves instead (its own calls are left to the
//! halves, which serve each of them again), until every piece comes back with fewer. A window that cannot be
//! halved any more (more than 1,000 calls created within a millisecond or two) fails the walk
//! rather than lose calls silently. Bounds are inclusive, so a call created on the bound two
//! halves share is served twice: the engine writes it once and calls that no drift
//! (`Pagination::TimeWindows`). Times are sent as RFC 3339 UTC with milliseconds through the
//! URL's query-pair encoder, which percent-encodes a `+` so it can never arrive as a space.
//!
//! Where a walk starts: a later walk takes calls created since the stream's high-water mark
//! (the newest `started_at` a complete walk archived) minus `OVERLAP`; `--window W` since
//! `now - W`. The first walk, `--full` and `--window all` ask for every call created up to
//! now with no lower bound; when that answer is cut off, the oldest call is found by a binary
//! search (`createdAtLe=T&limit=1` is empty exactly when no call was created by `T`), between
//! 2000-01-01 and now, to within `PROBE_PRECISION`, one request per step, and the window from
//! there to now is halved as above. No start date is assumed. Every window ends at the plan's
//! `now`, carried in the cursors, so a resumed walk asks the very same windows.
//!
//! Clarion returns no creation time: `created_at` is the start time, null until the call
//! starts (a call listed while `queued` or `ringing` has none, so it is not rechecked by id
//! but read again by the next walk, which reaches an hour behind the newest start archived).
//! A call is settled once `call_status` is `ended`; until then it is rechecked by id. Ids are
//! integers above 2^32: they are read as `u64` (never through a float) and stored as their
//! decimal text, and so is `assistant_id`, which is the call's agent.
//!
//! The list has no assistant filter: a stream is the whole account. `--agent ID` walks the
//! whole account too and keeps only that assistant's calls; windows, their halving and the
//! high-water mark all follow the unfiltered answers.
//!
//! `analysis` comes in two shapes: the documented `{repetition_count, interruption_count,
//! custom}` and `{summary, successEvaluation, structuredData}`. Either becomes one evaluation
//! row (its id is the call's): the counts and each custom or structured value become custom
//! metrics, `successEvaluation` the goal verdict (or `false` when `failure_reason` is set; no
//! verdict otherwise), `outcome` (else `failure_reason`) the goal reasoning, and the
//! analysis's summary stands in for a missing top-level `summary` [guess]. The raw call,
//! `analysis` included, is kept exactly as received. The shape of `messages[]` is not
//! documented: each becomes a transcript turn from `role`, `message` (or `text`/`content`),
//! `secondsFromStart` and `duration` (ms), where present [guess]; without messages, each
//! `Role: text` line of `transcript` becomes a turn without times.
//!
//! `DELETE /call/{id}` is documented as 204 "Call deleted" yet declares a Call body: a 204,
//! or a 200 with no body or with the deleted call, confirms; a 200 naming another call does
//! not. Only the `full` mode exists.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::http::{endpoint_url, secret_header, HttpResponse};
use super::json::Fields;
use super::{
    CallRecord, CustomMetric, DeleteMode, DeleteOutcome, Evaluation, HttpClient, Page, PageCursor,
    Pagination, Participant, Provider, ProviderError, ProviderKind, Scope, StreamState,
    TranscriptTurn, WalkOptions, WalkPlan,
};
use crate::secret::ApiKey;
use crate::time::{format_timestamp, normalize_timestamp, parse_timestamp};

/// The most calls one list answer holds (Clarion's largest `limit`); an answer this long may
/// have been cut off.
pub const LIST_LIMIT: usize = 1_000;

/// Subtracted from the high-water mark when choosing where a walk starts, so calls listed
/// late or started with skewed clocks are still read.
pub const OVERLAP: chrono::Duration = chrono::Duration::hours(1);

/// How closely the search for the oldest call pins it down: the walk's first window starts
/// at most this long before it, so finer precision only costs requests.
pub const PROBE_PRECISION: chrono::Duration = chrono::Duration::hours(1);

/// Where the search for the oldest call starts: no Clarion call is older (ms since 1970).
const PROBE_FLOOR_MS: i64 = 946_684_800_000;

/// The API version segment Clarion's paths sit under.
const VERSION_SEGMENT: &str = "v1";

/// The state Clarion no longer changes a call after.
const FINAL_STATUS: &str = "ended";

pub struct Clarion {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
}

/// One request of a walk. Times are RFC 3339 UTC text with milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ClarionCursor {
    /// Calls created in `from..=to`; without `from`, every call created up to `to`.
    Window { from: Option<String>, to: String },
    /// One step of the search for the oldest call: no call was created by `none_by`, the
    /// oldest may be as late as `some_by`; the walk then covers `none_by..=until`.
    Probe {
        none_by: String,
        some_by: String,
        until: String,
    },
}

impl ClarionCursor {
    fn to_cursor(&self) -> PageCursor {
        PageCursor(serde_json::to_value(self).unwrap_or_default())
    }
}

/// Milliseconds since the epoch, as cursors and windows reckon.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at_ms(ms: i64) -> String {
    format_timestamp(DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

/// The two halves of the window `from..=to`, sharing their middle millisecond; `None` when the
/// window is too narrow to halve.
fn halves(from: i64, to: i64) -> Option<[ClarionCursor; 2]> {
    if to - from < 2 {
        return None;
    }
    let middle = from + (to - from) / 2;
    Some([
        ClarionCursor::Window {
            from: Some(at_ms(from)),
            to: at_ms(middle),
        },
        ClarionCursor::Window {
            from: Some(at_ms(middle)),
            to: at_ms(to),
        },
    ])
}

/// The base URL with its version segment: Clarion's is `https://api.clarionhealth.com/v1`, and
/// users give it with or without `/v1`.
pub fn normalize_base_url(base_url: &str) -> String {
    let trimmed = base_url.trim_end_matches('/');
    if trimmed
        .rsplit('/')
        .next()
        .is_some_and(|last| last == VERSION_SEGMENT)
    {
        trimmed.to_string()
    } else {
        format!("{trimmed}/{VERSION_SEGMENT}")
    }
}

/// `GET /call` for calls created in `from..=to` (each bound optional), at most `limit`.
fn list_url(
    base_url: &str,
    from: Option<&str>,
    to: Option<&str>,
    limit: usize,
) -> Result<Url, ProviderError> {
    let mut url = endpoint_url(ProviderKind::Clarion, base_url, &["call"])?;
    {
        // Form-encodes each value: a `+` in an offset goes out as `%2B`, never as a space.
        let mut q = url.query_pairs_mut();
        q.append_pair("limit", &limit.to_string());
        if let Some(from) = from {
            q.append_pair("createdAtGe", from);
        }
        if let Some(to) = to {
            q.append_pair("createdAtLe", to);
        }
    }
    Ok(url)
}

impl Clarion {
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey) -> Self {
        Clarion {
            http,
            base_url: normalize_base_url(base_url),
            key,
        }
    }

    fn auth(&self) -> HeaderValue {
        secret_header(&format!("Bearer {}", self.key.expose()))
    }

    /// Sends a request with the key, decoding the answer with `decode`.
    async fn send<T>(
        &self,
        method: reqwest::Method,
        url: Url,
        endpoint: &str,
        decode: impl Fn(&HttpResponse) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let auth = self.auth();
        self.http
            .execute(
                ProviderKind::Clarion,
                endpoint,
                |client| {
                    client
                        .request(method.clone(), url.clone())
                        .header(reqwest::header::AUTHORIZATION, auth.clone())
                },
                decode,
            )
            .await
    }

    /// The calls created in `from..=to`, at most `limit`, every one parsed.
    async fn list(
        &self,
        from: Option<&str>,
        to: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, ProviderError> {
        let url = list_url(&self.base_url, from, Some(to), limit)?;
        let endpoint = match from {
            Some(from) => format!("GET /call created {from}..={to} limit {limit}"),
            None => format!("GET /call created ..={to} limit {limit}"),
        };
        self.send(reqwest::Method::GET, url, &endpoint, |response| {
            if !response.status.is_success() {
                return Err(response.error(ProviderKind::Clarion, &endpoint));
            }
            let calls: Vec<&RawValue> = serde_json::from_slice(&response.body).map_err(|e| {
                response.malformed(
                    ProviderKind::Clarion,
                    &endpoint,
                    format!("not the documented bare array of calls: {e}"),
                )
            })?;
            calls
                .into_iter()
                .map(|raw| parse_call(raw.get()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| response.unusable(ProviderKind::Clarion, &endpoint, e))
        })
        .await
    }
}

/// Where a walk starts: nowhere (every call) for `--full`, `--window all` and a stream's
/// first walk; `now - window` for another `--window`; the high-water mark minus `OVERLAP`
/// otherwise.
pub fn walk_from(
    state: &StreamState,
    now: DateTime<Utc>,
    options: &WalkOptions,
) -> Option<DateTime<Utc>> {
    options.walk_start(state, now, OVERLAP)
}

fn bad_cursor(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed {
        provider: ProviderKind::Clarion,
        endpoint: "cursor".into(),
        message: message.to_string(),
    }
}

fn cursor_time(text: &str) -> Result<i64, ProviderError> {
    parse_timestamp(text)
        .map(ms)
        .ok_or_else(|| bad_cursor(format!("'{text}' is not a time")))
}

#[async_trait]
impl Provider for Clarion {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Clarion
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn pagination(&self) -> Pagination {
        Pagination::TimeWindows
    }

    /// The list is account-wide and takes no assistant: one stream, the whole account.
    async fn discover_scopes(&self) -> Result<Vec<Scope>, ProviderError> {
        Ok(vec![Scope::account()])
    }

    fn plan_walk(
        &self,
        scope: &Scope,
        state: &StreamState,
        now: DateTime<Utc>,
        options: &WalkOptions,
    ) -> WalkPlan {
        let from = walk_from(state, now, options).map(format_timestamp);
        let to = format_timestamp(now);
        let cursor = ClarionCursor::Window {
            from: from.clone(),
            to: to.clone(),
        };
        WalkPlan {
            cursors: vec![cursor.to_cursor()],
            checkpoint: serde_json::json!({ "from": from, "to": to }),
            description: match &from {
                Some(from) => {
                    format!("calls created {from} to {to}, windows halved at {LIST_LIMIT}")
                }
                None => format!("every call created up to {to}, windows halved at {LIST_LIMIT}"),
            },
            covers_everything: from.is_none() && scope.label.is_none(),
        }
    }

    async fn fetch_page(&self, scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError> {
        if scope.label.is_some() {
            return Err(ProviderError::Unsupported {
                provider: ProviderKind::Clarion,
                what: "labels (its calls carry none)".into(),
            });
        }
        let cursor: ClarionCursor = serde_json::from_value(cursor.0.clone()).map_err(bad_cursor)?;
        let (mut calls, next) = match &cursor {
            ClarionCursor::Window { from, to } => {
                let calls = self.list(from.as_deref(), to, LIST_LIMIT).await?;
                let next = if calls.len() < LIST_LIMIT {
                    Vec::new()
                } else {
                    let end = cursor_time(to)?;
                    match from {
                        // Every call up to `to` did not fit: find the oldest, then halve.
                        None => vec![ClarionCursor::Probe {
                            none_by: at_ms(PROBE_FLOOR_MS.min(end)),
                            some_by: to.clone(),
                            until: to.clone(),
                        }],
                        Some(from) => {
                            let start = cursor_time(from)?;
                            let halves = halves(start, end).ok_or_else(|| ProviderError::Truncated {
                                provider: ProviderKind::Clarion,
                                endpoint: format!("GET /call created {from}..={to}"),
                                message: format!(
                                    "{LIST_LIMIT} calls or more were created within {} ms, and no narrower window can be asked for",
                                    end - start + 1
                                ),
                            })?;
                            halves.to_vec()
                        }
                    }
                };
                // A cut-off answer's calls come again with its halves: written once, there.
                let calls = if next.is_empty() { calls } else { Vec::new() };
                (calls, next)
            }
            ClarionCursor::Probe {
                none_by,
                some_by,
                until,
            } => {
                let (low, high, end) = (
                    cursor_time(none_by)?,
                    cursor_time(some_by)?,
                    cursor_time(until)?,
                );
                let middle = low + (high - low) / 2;
                let calls = self.list(None, &at_ms(middle), 1).await?;
                let (low, high) = if calls.is_empty() {
                    (middle, high)
                } else {
                    (low, middle)
                };
                let next = if high - low > PROBE_PRECISION.num_milliseconds() {
                    vec![ClarionCursor::Probe {
                        none_by: at_ms(low),
                        some_by: at_ms(high),
                        until: until.clone(),
                    }]
                } else {
                    // More than a list's worth was created up to `until` and none by `low`.
                    match halves(low, end) {
                        Some(halves) => halves.to_vec(),
                        None => vec![ClarionCursor::Window {
                            from: Some(at_ms(low)),
                            to: until.clone(),
                        }],
                    }
                };
                // A probe only asks whether a call exists; the windows fetch it.
                (Vec::new(), next)
            }
        };
        let high_water = calls
            .iter()
            .filter_map(|c| c.start_time.as_deref().and_then(parse_timestamp))
            .max()
            .map(format_timestamp);
        if let Some(agent) = &scope.agent_id {
            calls.retain(|c| c.agent_id.as_deref() == Some(agent));
        }
        Ok(Page {
            high_water,
            ..Page::of_calls(calls, next.iter().map(ClarionCursor::to_cursor).collect())
        })
    }

    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError> {
        let url = endpoint_url(ProviderKind::Clarion, &self.base_url, &["call", call_id])?;
        let endpoint = format!("GET /call/{call_id}");
        self.send(reqwest::Method::GET, url, &endpoint, |response| {
            response.optional_record(ProviderKind::Clarion, &endpoint, parse_call)
        })
        .await
    }

    fn delete_modes(&self) -> &'static [DeleteMode] {
        &[DeleteMode::Full]
    }

    async fn delete_call(
        &self,
        call_id: &str,
        mode: DeleteMode,
    ) -> Result<DeleteOutcome, ProviderError> {
        if mode != DeleteMode::Full {
            return Err(ProviderError::Unsupported {
                provider: ProviderKind::Clarion,
                what: format!("the {mode} delete mode (its DELETE removes the whole call)"),
            });
        }
        let url = endpoint_url(ProviderKind::Clarion, &self.base_url, &["call", call_id])?;
        let endpoint = format!("DELETE /call/{call_id}");
        self.send(
            reqwest::Method::DELETE,
            url,
            &endpoint,
            |response| match response.status.as_u16() {
                204 => Ok(DeleteOutcome::Deleted),
                200 => match deleted_call_named(&response.body) {
                    Ok(None) => Ok(DeleteOutcome::Deleted),
                    Ok(Some(id)) if id == call_id => Ok(DeleteOutcome::Deleted),
                    Ok(Some(id)) => Err(response.malformed(
                        ProviderKind::Clarion,
                        &endpoint,
                        format!("the reply names call {id}, not call {call_id}"),
                    )),
                    Err(e) => Err(response.malformed(ProviderKind::Clarion, &endpoint, e)),
                },
                404 => Ok(DeleteOutcome::Gone),
                _ if response.status.is_success() => Err(response.malformed(
                    ProviderKind::Clarion,
                    &endpoint,
                    "not a delete confirmation (204, or 200 with the deleted call)",
                )),
                _ => Err(response.error(ProviderKind::Clarion, &endpoint)),
            },
        )
        .await
    }
}

/// The id of the call a delete's 200 body names: `None` for an empty body or one without an
/// id; an error for a body that is not JSON.
fn deleted_call_named(body: &[u8]) -> Result<Option<String>, CallError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)?;
    match value.get("id").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(id) => integer_text(id)
            .map(Some)
            .ok_or(CallError::BadId(id.to_string())),
    }
}

/// Why one Call could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("a call is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a call has no id")]
    NoId,
    #[error("a call's id {0} is not a whole number")]
    BadId(String),
}

/// An integer id as decimal text: a JSON integer read as `u64` (never through a float, which
/// would round ids above 2^53), or a string of digits.
fn integer_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// `analysis` as an object: Clarion may send it as one, or as JSON text holding one.
fn analysis_of(value: &Value) -> Option<Value> {
    match value.get("analysis")? {
        Value::Object(map) if !map.is_empty() => Some(Value::Object(map.clone())),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) if !map.is_empty() => Some(Value::Object(map)),
            _ => None,
        },
        _ => None,
    }
}

/// One custom metric from a named value of the analysis.
fn metric(name: &str, value: &Value) -> CustomMetric {
    let (response_type, response_value) = match value {
        Value::Bool(b) => ("boolean", b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("integer", n.to_string()),
        Value::Number(n) => ("number", n.to_string()),
        Value::String(s) => ("string", s.clone()),
        other => ("json", other.to_string()),
    };
    CustomMetric {
        name: Some(name.to_string()),
        response_type: Some(response_type.into()),
        response_value: Some(response_value),
        ..CustomMetric::default()
    }
}

/// The evaluation an analysis makes, in either of its shapes.
fn evaluation(
    call_id: &str,
    analysis: &Value,
    call: Fields<'_>,
    end_time: Option<String>,
    turns: usize,
) -> Evaluation {
    let a = Fields::of(analysis);
    let mut metrics = Vec::new();
    for name in ["repetition_count", "interruption_count"] {
        if let Some(value) = a.get(name) {
            metrics.push(metric(name, value));
        }
    }
    let custom = a.get("custom").or_else(|| a.get("structuredData"));
    if let Some(Value::Object(values)) = custom {
        metrics.extend(
            values
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| metric(k, v)),
        );
    }
    let failure = call.text("failure_reason");
    Evaluation {
        id: call_id.to_string(),
        created_at: end_time,
        goal_success: a
            .boolean("successEvaluation")
            .or(failure.as_ref().map(|_| false)),
        goal_reasoning: call.text("outcome").or(failure),
        num_turns: (turns > 0).then_some(turns as i64),
        call_summary: a.text("summary"),
        custom_evals_json: custom.map(Value::to_string),
        json_path: "$.analysis".into(),
        custom_metrics: metrics,
        ..Evaluation::default()
    }
}

/// Transcript turns from `messages[]`, or from the `Role: text` lines of `transcript`.
fn turns(call: Fields<'_>) -> Vec<TranscriptTurn> {
    let messages = call.array("messages");
    if !messages.is_empty() {
        return messages
            .iter()
            .map(|m| {
                let m = Fields::of(m);
                let start_ms = m
                    .float("secondsFromStart")
                    .map(|s| (s * 1000.0).round() as i64);
                TranscriptTurn {
                    role: m.text("role"),
                    text: m
                        .text("message")
                        .or_else(|| m.text("text"))
                        .or_else(|| m.text("content")),
                    start_ms,
                    end_ms: start_ms.zip(m.int("duration")).map(|(s, d)| s + d),
                    stt_ttfb_ms: None,
                    tts_ttfb_ms: None,
                }
            })
            .collect();
    }
    call.text("transcript")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(": ") {
            Some((role, text)) if !role.is_empty() && role.len() <= 16 && !role.contains(' ') => {
                TranscriptTurn {
                    role: Some(role.to_string()),
                    text: Some(text.to_string()),
                    ..TranscriptTurn::default()
                }
            }
            _ => TranscriptTurn {
                text: Some(line.to_string()),
                ..TranscriptTurn::default()
            },
        })
        .collect()
}

/// Turns one Call, as Clarion sent it, into a canonical record; the text is kept whole as
/// `raw_json`.
pub fn parse_call(raw: &str) -> Result<CallRecord, CallError> {
    let value: Value = serde_json::from_str(raw)?;
    let f = Fields::of(&value);
    let id = match f.get("id") {
        None => return Err(CallError::NoId),
        Some(id) => integer_text(id).ok_or_else(|| CallError::BadId(id.to_string()))?,
    };
    let start = f.text("started_at").and_then(|t| normalize_timestamp(&t));
    let end = f.text("ended_at").and_then(|t| normalize_timestamp(&t));
    let duration_ms = f.int("duration_ms").or_else(|| {
        start
            .as_deref()
            .and_then(parse_timestamp)
            .zip(end.as_deref().and_then(parse_timestamp))
            .map(|(s, e)| (e - s).num_milliseconds())
    });
    let status = f.text("call_status");
    let call_type = f.text("call_type").map(|t| t.to_ascii_lowercase());
    let direction = call_type.as_deref().and_then(|t| {
        if t.contains("inbound") {
            Some("inbound")
        } else if t.contains("outbound") {
            Some("outbound")
        } else {
            None
        }
    });
    let interface = call_type.as_deref().and_then(|t| {
        if t.contains("web") {
            Some("web")
        } else if t.contains("phone") || direction.is_some() {
            Some("phone")
        } else {
            None
        }
    });
    // The number that placed the call and the one that took it: the caller's and the
    // assistant's line inbound, the other way round outbound.
    let (source_role, destination_role) = match direction {
        Some("inbound") => ("user", "agent"),
        Some("outbound") => ("agent", "user"),
        _ => ("source", "destination"),
    };
    let participants = [
        (source_role, f.text("source_number")),
        (destination_role, f.text("destination_number")),
    ]
    .into_iter()
    .filter_map(|(role, number)| {
        number.map(|n| Participant {
            role: Some(role.into()),
            phone_number: Some(n),
            ..Participant::default()
        })
    })
    .collect();
    let transcript = turns(f);
    let analysis = analysis_of(&value);
    let summary = f.text("summary").or_else(|| {
        analysis
            .as_ref()
            .and_then(|a| Fields::of(a).text("summary"))
    });
    let evaluations = analysis
        .iter()
        .map(|a| evaluation(&id, a, f, end.clone(), transcript.len()))
        .collect();
    Ok(CallRecord {
        agent_id: f
            .get("assistant_id")
            .and_then(|a| integer_text(a).or_else(|| a.as_str().map(str::to_string))),
        settled: status.as_deref() == Some(FINAL_STATUS),
        status,
        created_at: start.clone(),
        start_time: start,
        end_time: end,
        duration_ms,
        call_direction: direction.map(str::to_string),
        interface: interface.map(str::to_string),
        summary,
        end_reason: f.text("ended_reason"),
        participants,
        evaluations,
        transcript,
        raw_json: raw.to_string(),
        id,
        ..CallRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn clarion(base: &str) -> Clarion {
        let http = HttpClient::new(super::super::RetryPolicy::default(), None).unwrap();
        Clarion::new(http, base, ApiKey::new("k"))
    }

    #[test]
    fn ids_above_2_to_the_53_keep_every_digit() {
        let call = parse_call(r#"{"id": 9007199254740993, "assistant_id": 18446744073709551615}"#)
            .unwrap();
        assert_eq!(call.id, "9007199254740993");
        assert_eq!(call.agent_id.as_deref(), Some("18446744073709551615"));
        assert_eq!(
            parse_call(r#"{"id": "4294967297"}"#).unwrap().id,
            "4294967297"
        );
        for bad in [
            r#"{"id": 1.5}"#,
            r#"{"id": -3}"#,
            r#"{"id": "12a"}"#,
            r#"{"id": 1e20}"#,
        ] {
            assert!(matches!(parse_call(bad), Err(CallError::BadId(_))), "{bad}");
        }
        assert!(matches!(
            parse_call(r#"{"id": null}"#),
            Err(CallError::NoId)
        ));
    }

    #[test]
    fn both_analysis_shapes_become_one_evaluation() {
        let documented = parse_call(
            r#"{"id": 4294967296001, "assistant_id": 68719476736, "call_status": "ended",
                "started_at": "2026-03-01T12:00:00+01:00", "ended_at": "2026-03-01T11:05:00Z",
                "call_type": "inboundPhoneCall", "source_number": "+14155550100",
                "destination_number": "+16285550199", "summary": "Booked.", "outcome": "booked",
                "analysis": {"repetition_count": 2, "interruption_count": 0,
                             "custom": {"csat": 4, "intent": "billing", "note": null}},
                "messages": [{"role": "bot", "message": "Hello", "secondsFromStart": 0.5, "duration": 1200},
                             {"role": "user", "message": "Hi", "secondsFromStart": 2.25, "duration": 800}]}"#,
        )
        .unwrap();
        assert!(documented.settled);
        assert_eq!(
            documented.start_time.as_deref(),
            Some("2026-03-01T11:00:00.000Z")
        );
        assert_eq!(documented.created_at, documented.start_time);
        assert_eq!(documented.duration_ms, Some(300_000));
        assert_eq!(documented.call_direction.as_deref(), Some("inbound"));
        assert_eq!(documented.interface.as_deref(), Some("phone"));
        assert_eq!(documented.participants[0].role.as_deref(), Some("user"));
        assert_eq!(
            documented.participants[1].phone_number.as_deref(),
            Some("+16285550199")
        );
        assert_eq!(documented.transcript[1].start_ms, Some(2_250));
        assert_eq!(documented.transcript[1].end_ms, Some(3_050));
        let e = &documented.evaluations[0];
        assert_eq!(e.id, "4294967296001");
        assert_eq!(
            (e.goal_success, e.goal_reasoning.as_deref()),
            (None, Some("booked"))
        );
        assert_eq!(e.num_turns, Some(2));
        let names: Vec<_> = e
            .custom_metrics
            .iter()
            .filter_map(|m| m.name.as_deref())
            .collect();
        assert_eq!(
            names,
            ["repetition_count", "interruption_count", "csat", "intent"]
        );
        assert_eq!(e.custom_metrics[0].response_value.as_deref(), Some("2"));

        let other = parse_call(
            r#"{"id": 4294967296002, "call_status": "ended", "summary": null,
                "failure_reason": "declined", "call_type": "webCall",
                "transcript": "AI: Hello there\nUser: No thanks: bye\n\nstatic",
                "analysis": {"summary": "Caller declined.", "successEvaluation": "false",
                             "structuredData": {"booked": false}}}"#,
        )
        .unwrap();
        assert_eq!(other.summary.as_deref(), Some("Caller declined."));
        assert_eq!(other.interface.as_deref(), Some("web"));
        assert_eq!(other.call_direction, None);
        let e = &other.evaluations[0];
        assert_eq!(e.goal_success, Some(false));
        assert_eq!(e.goal_reasoning.as_deref(), Some("declined"));
        assert_eq!(e.call_summary.as_deref(), Some("Caller declined."));
        assert_eq!(e.custom_evals_json.as_deref(), Some(r#"{"booked":false}"#));
        let turns: Vec<_> = other
            .transcript
            .iter()
            .map(|t| (t.role.as_deref(), t.text.as_deref()))
            .collect();
        assert_eq!(
            turns,
            [
                (Some("AI"), Some("Hello there")),
                (Some("User"), Some("No thanks: bye")),
                (None, Some("static"))
            ]
        );

        let stringified = parse_call(
            r#"{"id": 3, "call_status": "in-progress", "analysis": "{\"successEvaluation\": true}"}"#,
        )
        .unwrap();
        assert!(!stringified.settled);
        assert_eq!(stringified.evaluations[0].goal_success, Some(true));
        let none = parse_call(r#"{"id": 4, "call_status": "queued", "analysis": {}}"#).unwrap();
        assert!(none.evaluations.is_empty() && none.created_at.is_none());
    }

    #[test]
    fn a_walk_starts_at_the_high_water_mark_less_the_overlap_or_at_the_oldest_call() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let c = clarion("https://api.clarionhealth.com");
        let first = c.plan_walk(
            &Scope::account(),
            &StreamState::default(),
            now,
            &WalkOptions::default(),
        );
        assert_eq!(
            first.cursors,
            [PageCursor(
                serde_json::json!({"kind": "window", "from": null, "to": "2026-11-01T00:00:00.000Z"})
            )]
        );
        assert!(first.covers_everything);
        let state = StreamState {
            high_water: Some("2026-10-31T12:00:00.000Z".into()),
            ..StreamState::default()
        };
        let later = c.plan_walk(&Scope::agent("7"), &state, now, &WalkOptions::default());
        assert_eq!(
            later.checkpoint,
            serde_json::json!({"from": "2026-10-31T11:00:00.000Z", "to": "2026-11-01T00:00:00.000Z"})
        );
        assert!(!later.covers_everything);
        let week = WalkOptions {
            full: false,
            window: Some(super::super::Window::Days7),
        };
        assert_eq!(
            walk_from(&state, now, &week),
            Some(now - chrono::Duration::days(7))
        );
        let all = WalkOptions {
            full: false,
            window: Some(super::super::Window::All),
        };
        assert_eq!(walk_from(&state, now, &all), None);
        let full = WalkOptions {
            full: true,
            window: None,
        };
        assert_eq!(walk_from(&state, now, &full), None);
        // Planned again at the same time, a walk is the same walk: a killed one resumes.
        assert_eq!(
            c.plan_walk(&Scope::account(), &state, now, &WalkOptions::default())
                .cursors,
            later.cursors
        );
    }

    #[test]
    fn windows_halve_on_a_shared_millisecond_until_they_cannot() {
        let [a, b] = halves(1_000, 2_001).unwrap();
        assert_eq!(
            (a, b),
            (
                ClarionCursor::Window {
                    from: Some(at_ms(1_000)),
                    to: at_ms(1_500)
                },
                ClarionCursor::Window {
                    from: Some(at_ms(1_500)),
                    to: at_ms(2_001)
                },
            )
        );
        assert!(halves(1_000, 1_002).is_some());
        assert!(halves(1_000, 1_001).is_none());
        assert!(halves(1_000, 1_000).is_none());
    }

    #[test]
    fn times_go_out_percent_encoded_and_the_base_url_takes_v1_once() {
        let url = list_url(
            "https://api.clarionhealth.com/v1",
            Some("2026-03-01T12:00:00.000+01:00"),
            Some("2026-03-02T00:00:00.000Z"),
            1000,
        )
        .unwrap();
        assert_eq!(url.path(), "/v1/call");
        let query = url.query().unwrap();
        assert!(
            query.contains("createdAtGe=2026-03-01T12%3A00%3A00.000%2B01%3A00"),
            "{query}"
        );
        assert!(!query.contains('+'), "{query}");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs[1].1, "2026-03-01T12:00:00.000+01:00",
            "decodes back whole"
        );
        for base in [
            "https://api.clarionhealth.com",
            "https://api.clarionhealth.com/",
            "https://api.clarionhealth.com/v1",
            "https://api.clarionhealth.com/v1/",
        ] {
            assert_eq!(
                clarion(base).base_url(),
                "https://api.clarionhealth.com/v1",
                "{base}"
            );
        }
        assert_eq!(
            normalize_base_url("http://127.0.0.1:9/proxy/"),
            "http://127.0.0.1:9/proxy/v1"
        );
    }

    #[test]
    fn a_delete_reply_confirms_when_empty_or_naming_the_call() {
        assert_eq!(deleted_call_named(b"").unwrap(), None);
        assert_eq!(deleted_call_named(b" \n").unwrap(), None);
        assert_eq!(
            deleted_call_named(br#"{"id": 4294967296001, "call_status": "ended"}"#).unwrap(),
            Some("4294967296001".into())
        );
        assert_eq!(
            deleted_call_named(br#"{"message": "Call deleted"}"#).unwrap(),
            None
        );
        assert!(deleted_call_named(b"<html>").is_err());
    }
}
