//! Cartesia (`https://api.cartesia.ai`, `Authorization: Bearer KEY`, `Cartesia-Version`).
//!
//! A stream is one agent. `GET /agents/calls` lists an agent's calls newest first by start
//! time, 100 a page, each page naming the next by the id to start after (`next_page`); there
//! is no date filter. So a walk starts at the newest call and follows the cursors until a
//! page reaches past its stop time: the stream's high-water mark (the newest start time a
//! complete walk archived) minus `OVERLAP`, or `now - window` with `--window`. A stream's
//! first walk, and `--full`, read everything. The list omits transcripts unless asked
//! (`expand=transcript`), which every request does.
//!
//! Calls can stay `started` for days and the list may keep showing them so; only a read by id
//! shows their completion, so a call is settled once `completed` or `failed` and rechecked by
//! id until then. `calls.status` keeps Cartesia's own value and `created_at` is the start
//! time (Cartesia returns no creation time). Each transcript turn becomes a
//! `transcript_turns` row, with `stt_ttfb`/`tts_ttfb` converted from seconds to
//! milliseconds; tool calls, log events and log metrics of the turns become `tool_calls` and
//! `call_events` rows.
//!
//! Cartesia's DELETE redacts: the record stays, with `redacted_at` set and its sensitive
//! fields null or absent, and the reply is the redacted call, which replaces the archived
//! one. It answers 400 for a call that is not finished, which is not retried.

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
    CallEvent, CallRecord, DeleteMode, DeleteOutcome, HttpClient, Page, PageCursor, Pagination,
    Participant, Provider, ProviderError, ProviderKind, Scope, StreamState, ToolCall,
    TranscriptTurn, WalkOptions, WalkPlan,
};
use crate::secret::ApiKey;
use crate::time::{format_timestamp, normalize_timestamp, parse_timestamp};

/// The API version every request names (`Cartesia-Version`); requests without one get 400.
pub const API_VERSION: &str = "2026-03-01";

/// The most calls a page holds.
pub const CALLS_PER_PAGE: u32 = 100;

/// Subtracted from the high-water mark when choosing where a walk stops, so calls listed
/// late or with skewed clocks are still read.
pub const OVERLAP: chrono::Duration = chrono::Duration::hours(1);

/// Statuses after which Cartesia no longer changes a call.
const FINAL_STATUSES: [&str; 2] = ["completed", "failed"];

pub struct Cartesia {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
}

/// One page of a walk: the call to start after (none for the newest), and where the walk
/// stops (none: the oldest call).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CartesiaCursor {
    starting_after: Option<String>,
    stop_before: Option<String>,
}

impl CartesiaCursor {
    fn to_cursor(&self) -> PageCursor {
        PageCursor(serde_json::json!({
            "starting_after": self.starting_after,
            "stop_before": self.stop_before,
        }))
    }
}

#[derive(Deserialize)]
struct ListResponse<'a> {
    #[serde(borrow, default)]
    data: Option<Vec<&'a RawValue>>,
    next_page: Option<String>,
}

impl Cartesia {
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey) -> Self {
        Cartesia {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        endpoint_url(ProviderKind::Cartesia, &self.base_url, segments)
    }

    fn auth(&self) -> HeaderValue {
        secret_header(&format!("Bearer {}", self.key.expose()))
    }

    /// Sends a request with the key and API version, decoding the answer with `decode`.
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
                ProviderKind::Cartesia,
                endpoint,
                |client| {
                    client
                        .request(method.clone(), url.clone())
                        .header(reqwest::header::AUTHORIZATION, auth.clone())
                        .header("Cartesia-Version", API_VERSION)
                },
                decode,
            )
            .await
    }
}

/// Where a walk stops: nowhere for `--full`, a stream's first walk and `--window all`;
/// `now - window` for another `--window`; the high-water mark minus `OVERLAP` otherwise.
pub fn stop_before(
    state: &StreamState,
    now: DateTime<Utc>,
    options: &WalkOptions,
) -> Option<DateTime<Utc>> {
    options.walk_start(state, now, OVERLAP)
}

#[async_trait]
impl Provider for Cartesia {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Cartesia
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn pagination(&self) -> Pagination {
        Pagination::KeysetCursors
    }

    /// The list keeps showing a finished call as `started`; only a read by id shows it done.
    fn list_may_lag(&self) -> bool {
        true
    }

    async fn discover_scopes(&self) -> Result<Vec<Scope>, ProviderError> {
        let url = self.url(&["agents"])?;
        let endpoint = "GET /agents";
        self.send(reqwest::Method::GET, url, endpoint, |response| {
            if !response.status.is_success() {
                return Err(response.error(ProviderKind::Cartesia, endpoint));
            }
            let body: Value = serde_json::from_slice(&response.body)
                .map_err(|e| response.malformed(ProviderKind::Cartesia, endpoint, e))?;
            Ok(Fields::of(&body)
                .array("summaries")
                .iter()
                .filter_map(|a| Fields::of(a).text("id"))
                .map(Scope::agent)
                .collect())
        })
        .await
    }

    fn plan_walk(
        &self,
        scope: &Scope,
        state: &StreamState,
        now: DateTime<Utc>,
        options: &WalkOptions,
    ) -> WalkPlan {
        let stop = stop_before(state, now, options).map(format_timestamp);
        let cursor = CartesiaCursor {
            starting_after: None,
            stop_before: stop.clone(),
        };
        WalkPlan {
            cursors: vec![cursor.to_cursor()],
            checkpoint: serde_json::json!({ "stop_before": stop }),
            description: match &stop {
                Some(t) => format!("newest first, down to {t}"),
                None => "newest first, every call".into(),
            },
            covers_everything: stop.is_none() && scope.label.is_none(),
        }
    }

    async fn fetch_page(&self, scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError> {
        let cursor: CartesiaCursor =
            serde_json::from_value(cursor.0.clone()).map_err(|e| ProviderError::Malformed {
                provider: ProviderKind::Cartesia,
                endpoint: "cursor".into(),
                message: e.to_string(),
            })?;
        let agent = scope
            .agent_id
            .as_deref()
            .ok_or(ProviderError::Unsupported {
                provider: ProviderKind::Cartesia,
                what: "account-wide streams (it lists calls per agent)".into(),
            })?;
        let mut url = self.url(&["agents", "calls"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("agent_id", agent)
                .append_pair("limit", &CALLS_PER_PAGE.to_string())
                .append_pair("expand", "transcript");
            if let Some(after) = &cursor.starting_after {
                q.append_pair("starting_after", after);
            }
        }
        let endpoint = match &cursor.starting_after {
            Some(after) => format!("GET /agents/calls agent {agent} after {after}"),
            None => format!("GET /agents/calls agent {agent}"),
        };
        let stop = cursor.stop_before.as_deref().and_then(parse_timestamp);
        self.send(reqwest::Method::GET, url, &endpoint, |response| {
            if !response.status.is_success() {
                return Err(response.error(ProviderKind::Cartesia, &endpoint));
            }
            let list: ListResponse = serde_json::from_slice(&response.body)
                .map_err(|e| response.malformed(ProviderKind::Cartesia, &endpoint, e))?;
            let calls = list
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|raw| parse_agent_call(raw.get()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| response.unusable(ProviderKind::Cartesia, &endpoint, e))?;
            let starts: Vec<DateTime<Utc>> = calls
                .iter()
                .filter_map(|c| c.start_time.as_deref().and_then(parse_timestamp))
                .collect();
            // Newest first: once the page's oldest start is before the stop, so is the rest.
            let past_stop = stop.is_some_and(|s| starts.iter().min().is_some_and(|t| *t < s));
            let next = match list.next_page {
                Some(after) if !past_stop && !calls.is_empty() => vec![CartesiaCursor {
                    starting_after: Some(after),
                    stop_before: cursor.stop_before.clone(),
                }
                .to_cursor()],
                _ => Vec::new(),
            };
            Ok(Page {
                high_water: starts.iter().max().copied().map(format_timestamp),
                ..Page::of_calls(calls, next)
            })
        })
        .await
    }

    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError> {
        let url = self.url(&["agents", "calls", call_id])?;
        let endpoint = format!("GET /agents/calls/{call_id}");
        self.send(reqwest::Method::GET, url, &endpoint, |response| {
            response.optional_record(ProviderKind::Cartesia, &endpoint, parse_agent_call)
        })
        .await
    }

    fn delete_modes(&self) -> &'static [DeleteMode] {
        &[DeleteMode::Redact]
    }

    async fn delete_call(
        &self,
        call_id: &str,
        mode: DeleteMode,
    ) -> Result<DeleteOutcome, ProviderError> {
        if mode != DeleteMode::Redact {
            return Err(ProviderError::Unsupported {
                provider: ProviderKind::Cartesia,
                what: format!("the {mode} delete mode (its DELETE redacts)"),
            });
        }
        let url = self.url(&["agents", "calls", call_id])?;
        let endpoint = format!("DELETE /agents/calls/{call_id}");
        self.send(reqwest::Method::DELETE, url, &endpoint, |response| {
            match response.status.as_u16() {
                // The reply is the redacted call: it must be this call, and redacted.
                200 => match parse_agent_call(&String::from_utf8_lossy(&response.body)) {
                    Ok(call) if call.id == call_id && call.redacted_at.is_some() => {
                        Ok(DeleteOutcome::Redacted(Box::new(call)))
                    }
                    Ok(call) => Err(response.malformed(
                        ProviderKind::Cartesia,
                        &endpoint,
                        format!(
                            "the reply is call {} with redacted_at {:?}, not call {call_id} redacted",
                            call.id, call.redacted_at
                        ),
                    )),
                    Err(e) => Err(response.malformed(ProviderKind::Cartesia, &endpoint, e)),
                },
                404 => Ok(DeleteOutcome::Gone),
                _ => Err(response.error(ProviderKind::Cartesia, &endpoint)),
            }
        })
        .await
    }
}

/// Why one AgentCall could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AgentCallError {
    #[error("a call is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a call has no id")]
    NoId,
}

/// Seconds (Cartesia's unit for offsets and time to first byte) as milliseconds.
fn millis(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| (s * 1000.0 * 1000.0).round() / 1000.0)
}

/// Turns one AgentCall, as Cartesia sent it, into a canonical record; the text is kept whole
/// as `raw_json`. Redacted fields may be null or absent: both read as missing.
pub fn parse_agent_call(raw: &str) -> Result<CallRecord, AgentCallError> {
    let value: Value = serde_json::from_str(raw)?;
    let f = Fields::of(&value);
    let id = f.text("id").ok_or(AgentCallError::NoId)?;
    let start = f.text("start_time").and_then(|t| normalize_timestamp(&t));
    let end = f.text("end_time").and_then(|t| normalize_timestamp(&t));
    let duration_ms = start
        .as_deref()
        .and_then(parse_timestamp)
        .zip(end.as_deref().and_then(parse_timestamp))
        .map(|(s, e)| (e - s).num_milliseconds());
    let status = f.text("status");
    let telephony = f.object("telephony_params");
    let mut participants = Vec::new();
    // Cartesia names the agent's number `from` and the caller's `to`.
    if let Some(number) = telephony.text("from") {
        participants.push(Participant {
            role: Some("agent".into()),
            phone_number: Some(number),
            ..Participant::default()
        });
    }
    if let Some(number) = telephony.text("to") {
        participants.push(Participant {
            role: Some("user".into()),
            phone_number: Some(number),
            ..Participant::default()
        });
    }
    let mut transcript = Vec::new();
    let mut tool_calls = Vec::new();
    let mut events = Vec::new();
    for turn in f.array("transcript") {
        let t = Fields::of(turn);
        let start_ms = millis(t.float("start_timestamp")).map(|ms| ms.round() as i64);
        for call in t.array("tool_calls") {
            let c = Fields::of(call);
            tool_calls.push(ToolCall {
                name: c.text("name"),
                start_offset_ms: start_ms,
                description: None,
                parameters_json: c.json("arguments"),
                output_json: c.json("result"),
            });
        }
        let log_event = t.object("log_event");
        if let Some(event) = log_event.text("event") {
            events.push(CallEvent {
                title: Some(event),
                start_offset_ms: millis(log_event.float("timestamp")).map(|ms| ms.round() as i64),
                metadata_json: log_event.json("metadata"),
                ..CallEvent::default()
            });
        }
        let log_metric = t.object("log_metric");
        if let Some(name) = log_metric.text("name") {
            events.push(CallEvent {
                title: Some(name),
                description: Some("metric".into()),
                start_offset_ms: millis(log_metric.float("timestamp")).map(|ms| ms.round() as i64),
                metadata_json: log_metric
                    .get("value")
                    .map(|v| serde_json::json!({ "value": v }).to_string()),
                ..CallEvent::default()
            });
        }
        transcript.push(TranscriptTurn {
            role: t.text("role"),
            text: t.text("text"),
            start_ms,
            end_ms: millis(t.float("end_timestamp")).map(|ms| ms.round() as i64),
            stt_ttfb_ms: millis(t.float("stt_ttfb")),
            tts_ttfb_ms: millis(t.float("tts_ttfb")),
        });
    }
    Ok(CallRecord {
        agent_id: f.text("agent_id"),
        external_agent_id: f.text("deployment_id"),
        settled: status
            .as_deref()
            .is_some_and(|s| FINAL_STATUSES.contains(&s)),
        status,
        created_at: start.clone(),
        start_time: start,
        end_time: end,
        duration_ms,
        call_direction: telephony.text("direction"),
        interface: telephony.text("connection_type"),
        recording_url: None,
        transcript_url: None,
        summary: f.text("summary"),
        end_reason: f.text("end_reason"),
        ended_by: None,
        redacted_at: f.text("redacted_at").and_then(|t| normalize_timestamp(&t)),
        metadata_json: f.json("metadata"),
        annotations_json: None,
        extra_metrics_json: None,
        participants,
        tool_calls,
        events,
        tags: Vec::new(),
        evaluations: Vec::new(),
        transcript,
        raw_json: raw.to_string(),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn reads_turns_in_milliseconds_and_redacted_calls_either_way() {
        let raw = r#"{"id":"ac_1","agent_id":"agent_1","status":"completed",
            "start_time":"2026-03-01T12:00:00Z","end_time":"2026-03-01T12:05:00.5Z",
            "telephony_params":{"to":"+14155550100","from":"+14155550199","direction":"inbound"},
            "transcript":[{"role":"assistant","text":"Hi","start_timestamp":0.5,"end_timestamp":1.25,
                "tts_ttfb":0.4123,"stt_ttfb":null,"tool_calls":[{"id":"t1","name":"lookup","arguments":{"a":"1"},"result":"ok"}]},
                {"role":"system","start_timestamp":2,"end_timestamp":2,"log_metric":{"name":"csat","value":4,"timestamp":2}}]}"#;
        let call = parse_agent_call(raw).unwrap();
        assert_eq!(call.duration_ms, Some(300_500));
        assert_eq!(call.created_at.as_deref(), Some("2026-03-01T12:00:00.000Z"));
        assert!(call.settled);
        assert_eq!(call.transcript.len(), 2);
        assert_eq!(call.transcript[0].tts_ttfb_ms, Some(412.3));
        assert_eq!(call.transcript[0].start_ms, Some(500));
        assert_eq!(call.transcript[0].stt_ttfb_ms, None);
        assert_eq!(call.tool_calls[0].output_json.as_deref(), Some(r#""ok""#));
        assert_eq!(
            call.events[0].metadata_json.as_deref(),
            Some(r#"{"value":4}"#)
        );
        assert_eq!(call.participants.len(), 2);
        let absent = parse_agent_call(
            r#"{"id":"ac_1","agent_id":"agent_1","status":"completed","redacted_at":"2026-03-02T00:00:00Z"}"#,
        )
        .unwrap();
        let nulls = parse_agent_call(
            r#"{"id":"ac_1","agent_id":"agent_1","status":"completed","redacted_at":"2026-03-02T00:00:00Z",
                "transcript":null,"summary":null,"telephony_params":null,"metadata":null}"#,
        )
        .unwrap();
        for call in [absent, nulls] {
            assert!(call.transcript.is_empty() && call.summary.is_none());
            assert_eq!(
                call.redacted_at.as_deref(),
                Some("2026-03-02T00:00:00.000Z")
            );
        }
        let started = parse_agent_call(r#"{"id":"ac_2","agent_id":"a","status":"started"}"#);
        assert!(!started.unwrap().settled);
        assert!(matches!(
            parse_agent_call(r#"{"agent_id":"a"}"#),
            Err(AgentCallError::NoId)
        ));
    }

    #[test]
    fn a_walk_stops_at_the_high_water_mark_less_the_overlap() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let none = WalkOptions::default();
        assert_eq!(stop_before(&StreamState::default(), now, &none), None);
        let state = StreamState {
            high_water: Some("2026-10-31T12:00:00.000Z".into()),
            ..StreamState::default()
        };
        assert_eq!(
            stop_before(&state, now, &none),
            Some(Utc.with_ymd_and_hms(2026, 10, 31, 11, 0, 0).unwrap())
        );
        let full = WalkOptions {
            full: true,
            window: None,
        };
        assert_eq!(stop_before(&state, now, &full), None);
        let week = WalkOptions {
            full: false,
            window: Some(super::super::Window::Days7),
        };
        assert_eq!(
            stop_before(&state, now, &week),
            Some(now - chrono::Duration::days(7))
        );
    }
}
