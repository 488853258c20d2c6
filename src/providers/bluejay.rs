//! Bluejay (`https://api.getbluejay.ai`, header `X-API-Key`).
//!
//! A stream is one agent (optionally one label). Bluejay pages by number inside a `last`
//! window (`1day` .. `all`) and offers no "since" cursor, so a walk fetches page 1, learns
//! `total_pages` from it, and then fetches the rest concurrently. The window is the smallest
//! one that covers the time since the last complete walk started plus `WINDOW_OVERLAP`; a
//! stream's first walk takes `all`. Bluejay documents neither its sort order nor whether
//! `last` filters on `created_at` or `start_time_utc`; nothing here depends on either. Pages
//! carry `total_count`, which the sync engine watches to detect calls arriving mid-walk.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::http::{endpoint_url, secret_header};
use super::json::Fields;
use super::{
    CallEvent, CallRecord, CustomMetric, DeleteMode, DeleteOutcome, Evaluation, HttpClient, Page,
    PageCursor, Pagination, Participant, Provider, ProviderError, ProviderKind, Scope, StreamState,
    ToolCall, WalkOptions, WalkPlan, Window,
};
use crate::secret::ApiKey;
use crate::time::{format_timestamp, normalize_timestamp, parse_timestamp};

/// The most calls a Bluejay page holds.
pub const CALLS_PER_PAGE: u32 = 100;

/// Added to the time since the last complete walk when choosing a window, so calls logged
/// late or with skewed clocks are still covered.
pub const WINDOW_OVERLAP: chrono::Duration = chrono::Duration::hours(1);

/// Statuses after which Bluejay no longer changes a call.
const FINAL_STATUSES: [&str; 2] = ["COMPLETED", "INCOMPLETED"];

pub struct Bluejay {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
}

/// One page of one walk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BluejayCursor {
    page: u32,
    last: String,
}

impl Bluejay {
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey) -> Self {
        Bluejay {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        endpoint_url(ProviderKind::Bluejay, &self.base_url, segments)
    }

    fn key_header(&self) -> HeaderValue {
        secret_header(self.key.expose())
    }
}

/// The smallest window that covers everything since the last complete walk started.
pub fn choose_window(
    last_complete_started_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    options: &WalkOptions,
) -> Window {
    if options.full {
        return Window::All;
    }
    if let Some(window) = options.window {
        return window;
    }
    let Some(since) = last_complete_started_at else {
        return Window::All;
    };
    let needed = (now - since).max(chrono::Duration::zero()) + WINDOW_OVERLAP;
    Window::ALL
        .into_iter()
        .find(|w| w.span().is_none_or(|span| span >= needed))
        .unwrap_or(Window::All)
}

#[derive(Deserialize)]
struct ListResponse<'a> {
    total_count: Option<u64>,
    total_pages: Option<u32>,
    #[serde(borrow, default)]
    call_logs: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct OneResponse<'a> {
    #[serde(borrow)]
    call_log: Option<&'a RawValue>,
}

#[async_trait]
impl Provider for Bluejay {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bluejay
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn pagination(&self) -> Pagination {
        Pagination::NumberedPages
    }

    /// Bluejay lists calls per agent only, so a sync without `--agent` covers every agent of
    /// `GET /v1/all-agents`. Its shape is not in the OpenAPI file: a bare array or one under
    /// `agents`/`data`, each agent with `id` or `agent_id`, are all read.
    async fn discover_scopes(&self) -> Result<Vec<Scope>, ProviderError> {
        let url = self.url(&["v1", "all-agents"])?;
        let endpoint = "GET /v1/all-agents";
        let key = self.key_header();
        self.http
            .execute(
                ProviderKind::Bluejay,
                endpoint,
                |client| client.get(url.clone()).header("X-API-Key", key.clone()),
                |response| {
                    if !response.status.is_success() {
                        return Err(response.error(ProviderKind::Bluejay, endpoint));
                    }
                    let body: Value = serde_json::from_slice(&response.body)
                        .map_err(|e| response.malformed(ProviderKind::Bluejay, endpoint, e))?;
                    let list = match &body {
                        Value::Array(items) => items.as_slice(),
                        other => ["agents", "data"]
                            .iter()
                            .find_map(|k| other.get(k).and_then(Value::as_array))
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                    };
                    Ok(list
                        .iter()
                        .filter_map(|a| {
                            let f = Fields::of(a);
                            f.text("id").or_else(|| f.text("agent_id"))
                        })
                        .map(Scope::agent)
                        .collect())
                },
            )
            .await
    }

    fn plan_walk(
        &self,
        scope: &Scope,
        state: &StreamState,
        now: DateTime<Utc>,
        options: &WalkOptions,
    ) -> WalkPlan {
        let window = choose_window(state.last_complete_started_at, now, options);
        let cursor = BluejayCursor {
            page: 1,
            last: window.as_str().to_string(),
        };
        WalkPlan {
            cursors: vec![to_cursor(&cursor)],
            checkpoint: serde_json::json!({ "window": window.as_str() }),
            description: match &scope.label {
                Some(label) => format!("window {window}, label {label}"),
                None => format!("window {window}"),
            },
            covers_everything: window == Window::All && scope.label.is_none(),
        }
    }

    async fn fetch_page(&self, scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError> {
        let cursor: BluejayCursor =
            serde_json::from_value(cursor.0.clone()).map_err(|e| ProviderError::Malformed {
                provider: ProviderKind::Bluejay,
                endpoint: "cursor".into(),
                message: e.to_string(),
            })?;
        let agent = scope
            .agent_id
            .as_deref()
            .ok_or(ProviderError::Unsupported {
                provider: ProviderKind::Bluejay,
                what: "account-wide streams (it lists calls per agent)".into(),
            })?;
        let mut url = self.url(&["v1", "retrieve-call-logs", agent])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("page", &cursor.page.to_string())
                .append_pair("page_size", &CALLS_PER_PAGE.to_string())
                .append_pair("last", &cursor.last);
            if let Some(label) = &scope.label {
                q.append_pair("label", label);
            }
        }
        let endpoint = format!(
            "GET /v1/retrieve-call-logs/{agent} page {} last {}",
            cursor.page, cursor.last
        );
        let key = self.key_header();
        self.http
            .execute(
                ProviderKind::Bluejay,
                &endpoint,
                |client| client.get(url.clone()).header("X-API-Key", key.clone()),
                |response| {
                    if !response.status.is_success() {
                        return Err(response.error(ProviderKind::Bluejay, &endpoint));
                    }
                    let list: ListResponse = serde_json::from_slice(&response.body)
                        .map_err(|e| response.malformed(ProviderKind::Bluejay, &endpoint, e))?;
                    let calls = list
                        .call_logs
                        .unwrap_or_default()
                        .into_iter()
                        .map(|raw| parse_call_log(raw.get()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| response.unusable(ProviderKind::Bluejay, &endpoint, e))?;
                    let next = if cursor.page == 1 {
                        let total_pages = list.total_pages.unwrap_or(1);
                        (2..=total_pages)
                            .map(|page| {
                                to_cursor(&BluejayCursor {
                                    page,
                                    last: cursor.last.clone(),
                                })
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Ok(Page {
                        walk_size: list.total_count,
                        ..Page::of_calls(calls, next)
                    })
                },
            )
            .await
    }

    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError> {
        let url = self.url(&["v1", "retrieve-call-log", call_id])?;
        let endpoint = format!("GET /v1/retrieve-call-log/{call_id}");
        let key = self.key_header();
        self.http
            .execute(
                ProviderKind::Bluejay,
                &endpoint,
                |client| client.get(url.clone()).header("X-API-Key", key.clone()),
                |response| {
                    response
                        .optional_record(ProviderKind::Bluejay, &endpoint, |body| {
                            let one: OneResponse =
                                serde_json::from_str(body).map_err(CallLogError::from)?;
                            one.call_log
                                .map(|raw| parse_call_log(raw.get()))
                                .transpose()
                        })
                        .map(Option::flatten)
                },
            )
            .await
    }

    fn delete_modes(&self) -> &'static [DeleteMode] {
        &[DeleteMode::Full, DeleteMode::RecordingOnly]
    }

    async fn delete_call(
        &self,
        call_id: &str,
        mode: DeleteMode,
    ) -> Result<DeleteOutcome, ProviderError> {
        let recording_only = match mode {
            DeleteMode::Full => false,
            DeleteMode::RecordingOnly => true,
            DeleteMode::Redact => {
                return Err(ProviderError::Unsupported {
                    provider: ProviderKind::Bluejay,
                    what: "the redact delete mode".into(),
                })
            }
        };
        let mut url = self.url(&["v1", "call-log", call_id])?;
        url.query_pairs_mut().append_pair(
            "recording_only",
            if recording_only { "true" } else { "false" },
        );
        let endpoint = format!("DELETE /v1/call-log/{call_id}");
        let key = self.key_header();
        self.http
            .execute(
                ProviderKind::Bluejay,
                &endpoint,
                |client| client.delete(url.clone()).header("X-API-Key", key.clone()),
                |response| match response.status.as_u16() {
                    // Bluejay documents `{message, status: "200"}`; any other 2xx is not a
                    // confirmed delete, and the item fails with what came back.
                    200 if confirms_delete(&response.body) => Ok(DeleteOutcome::Deleted),
                    200..=299 => Err(response.malformed(
                        ProviderKind::Bluejay,
                        &endpoint,
                        "not the documented delete confirmation {message, status: \"200\"}",
                    )),
                    404 => Ok(DeleteOutcome::Gone),
                    _ => Err(response.error(ProviderKind::Bluejay, &endpoint)),
                },
            )
            .await
    }
}

/// Whether a delete's 200 body is Bluejay's confirmation, `{message, status: "200"}`.
fn confirms_delete(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        let f = Fields::of(&v);
        f.text("status").as_deref() == Some("200") && f.text("message").is_some()
    })
}

fn to_cursor(cursor: &BluejayCursor) -> PageCursor {
    PageCursor(serde_json::json!({ "page": cursor.page, "last": cursor.last }))
}

/// Why one call log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CallLogError {
    #[error("a call log is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a call log has no id")]
    NoId,
}

/// Turns one CallLog, as Bluejay sent it, into a canonical record. Every documented field
/// lands in a typed column or a child record; the text is kept whole as `raw_json`.
pub fn parse_call_log(raw: &str) -> Result<CallRecord, CallLogError> {
    let value: Value = serde_json::from_str(raw)?;
    let f = Fields::of(&value);
    let id = f.text("id").ok_or(CallLogError::NoId)?;
    let start = f.text("start_time_utc");
    let duration_ms = f.int("duration_ms");
    let end_time = start
        .as_deref()
        .and_then(parse_timestamp)
        .zip(duration_ms)
        .map(|(t, ms)| format_timestamp(t + chrono::Duration::milliseconds(ms)));
    let evaluations: Vec<Evaluation> = f
        .array("evaluations")
        .iter()
        .enumerate()
        .map(|(i, e)| parse_evaluation(&id, i, e))
        .collect();
    let status = f.text("status");
    let settled = status
        .as_deref()
        .is_some_and(|s| FINAL_STATUSES.contains(&s))
        && !evaluations.is_empty();
    Ok(CallRecord {
        agent_id: f.text("agent_id"),
        external_agent_id: f.text("external_agent_id"),
        status,
        created_at: f.text("created_at").and_then(|t| normalize_timestamp(&t)),
        start_time: start.and_then(|t| normalize_timestamp(&t)),
        end_time,
        duration_ms,
        call_direction: f.text("call_direction"),
        interface: f.text("interface"),
        recording_url: f.text("recording_url"),
        transcript_url: f.text("transcript_url"),
        // Bluejay summarises a call in its evaluations; the first one that does is the call's.
        summary: evaluations.iter().find_map(|e| e.call_summary.clone()),
        end_reason: None,
        ended_by: f.text("conversation_ended_by"),
        redacted_at: None,
        metadata_json: f.json("metadata"),
        annotations_json: f.json("annotations"),
        extra_metrics_json: f.json("custom_metrics"),
        settled,
        participants: f
            .array("participants")
            .iter()
            .map(|p| {
                let p = Fields::of(p);
                Participant {
                    role: p.text("role"),
                    spoke_first: p.boolean("spoke_first"),
                    name: p.text("name"),
                    phone_number: p.text("phone_number"),
                }
            })
            .collect(),
        tool_calls: f
            .array("tool_calls")
            .iter()
            .map(|t| {
                let t = Fields::of(t);
                ToolCall {
                    name: t.text("name"),
                    start_offset_ms: t.int("start_offset_ms"),
                    description: t.text("description"),
                    parameters_json: t.json("parameters"),
                    output_json: t.json("output"),
                }
            })
            .collect(),
        events: f
            .array("events")
            .iter()
            .map(|e| {
                let e = Fields::of(e);
                CallEvent {
                    title: e.text("title"),
                    description: e.text("description"),
                    start_offset_ms: e.int("start_offset_ms"),
                    end_offset_ms: e.int("end_offset_ms"),
                    tags_json: e.json("tags"),
                    metadata_json: e.json("metadata"),
                }
            })
            .collect(),
        tags: {
            let mut tags: Vec<String> = f
                .array("tags")
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            tags.sort();
            tags.dedup();
            tags
        },
        evaluations,
        transcript: Vec::new(),
        raw_json: raw.to_string(),
        id,
    })
}

fn parse_evaluation(call_id: &str, index: usize, value: &Value) -> Evaluation {
    let f = Fields::of(value);
    let latency = f.object("latency");
    let filler = f.object("filler_ignored_latency");
    let id = f
        .text("id")
        .unwrap_or_else(|| format!("{call_id}#evaluation-{index}"));
    Evaluation {
        created_at: f.text("created_at").and_then(|t| normalize_timestamp(&t)),
        hallucination: f.boolean("hallucination"),
        hallucination_reasoning: f.text("hallucination_reasoning"),
        redundancy: f.boolean("redundancy"),
        redundancy_reasoning: f.text("redundancy_reasoning"),
        goal_success: f.boolean("goal_success"),
        goal_reasoning: f.text("goal_reasoning"),
        agent_speak_percentage: f.float("agent_speak_percentage"),
        // The top-level figure is documented beside the latency block; prefer the block.
        avg_agent_latency: latency
            .float("avg_agent_latency")
            .or_else(|| f.float("avg_agent_latency")),
        p50_agent_latency: latency.float("p50_agent_latency"),
        p90_agent_latency: latency.float("p90_agent_latency"),
        p95_agent_latency: latency.float("p95_agent_latency"),
        p99_agent_latency: latency.float("p99_agent_latency"),
        max_agent_latency: latency.float("max_agent_latency"),
        avg_filler_ignored_latency: filler.float("avg_filler_ignored_latency"),
        p50_filler_ignored_latency: filler.float("p50_filler_ignored_latency"),
        p90_filler_ignored_latency: filler.float("p90_filler_ignored_latency"),
        p95_filler_ignored_latency: filler.float("p95_filler_ignored_latency"),
        p99_filler_ignored_latency: filler.float("p99_filler_ignored_latency"),
        num_turns: f.int("num_turns"),
        call_summary: f.text("call_summary"),
        custom_evals_json: f.json("custom_evals"),
        custom_evals_success_rate: f.float("custom_evals_success_rate"),
        pronunciation_score: f.float("pronunciation_score"),
        pronunciation_reasoning: f.text("pronunciation_reasoning"),
        sentiment_label: f.text("sentiment_label"),
        sentiment_score: f.float("sentiment_score"),
        sentiment_scores_json: f.json("sentiment_scores"),
        json_path: format!("$.evaluations[{index}]"),
        custom_metrics: f
            .array("custom_metrics")
            .iter()
            .map(|m| {
                let m = Fields::of(m);
                CustomMetric {
                    name: m.text("name"),
                    description: m.text("description"),
                    response_type: m.text("response_type"),
                    response_value: m.text("response_value"),
                    reasoning: m.text("reasoning"),
                    min_value: m.float("min_value"),
                    max_value: m.float("max_value"),
                    category: m.text("category"),
                    tags_json: m.json("tags"),
                    scoring_guidance: m.text("scoring_guidance"),
                    enum_options_json: m.json("enum_options"),
                }
            })
            .collect(),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn window_is_the_smallest_that_covers_the_gap_plus_overlap() {
        let none = WalkOptions::default();
        assert_eq!(choose_window(None, at(0), &none), Window::All);
        assert_eq!(choose_window(Some(at(0)), at(1), &none), Window::Day1);
        assert_eq!(choose_window(Some(at(0)), at(23), &none), Window::Day1);
        assert_eq!(choose_window(Some(at(0)), at(24), &none), Window::Days3);
        assert_eq!(choose_window(Some(at(0)), at(6 * 24), &none), Window::Days7);
        assert_eq!(
            choose_window(Some(at(0)), at(29 * 24 + 23), &none),
            Window::Days30
        );
        assert_eq!(
            choose_window(Some(at(0)), at(89 * 24), &none),
            Window::Days90
        );
        assert_eq!(choose_window(Some(at(0)), at(90 * 24), &none), Window::All);
        // A clock that went backwards still gets the overlap.
        assert_eq!(choose_window(Some(at(5)), at(0), &none), Window::Day1);
    }

    #[test]
    fn flags_override_the_checkpoint() {
        let full = WalkOptions {
            full: true,
            window: Some(Window::Day1),
        };
        assert_eq!(choose_window(Some(at(0)), at(1), &full), Window::All);
        let window = WalkOptions {
            full: false,
            window: Some(Window::Days7),
        };
        assert_eq!(choose_window(None, at(1), &window), Window::Days7);
    }

    #[test]
    fn parses_nulls_unknown_fields_and_odd_shapes() {
        let raw = r#"{"id":"c1","agent_id":"a","recording_url":null,"start_time_utc":"2026-01-02 03:04:05",
            "participants":null,"status":"EVALUATING","duration_ms":1500.0,"brand_new_field":{"x":[1]},
            "evaluations":[{"latency":null,"custom_evals":{"k":"v"},"hallucination":null,
            "custom_metrics":[{"name":"csat","min_value":"1"}]}],"tags":["b","a","b"]}"#;
        let call = parse_call_log(raw).unwrap();
        assert_eq!(call.id, "c1");
        assert_eq!(call.start_time.as_deref(), Some("2026-01-02T03:04:05.000Z"));
        assert_eq!(call.end_time.as_deref(), Some("2026-01-02T03:04:06.500Z"));
        assert_eq!(call.duration_ms, Some(1500));
        assert!(!call.settled);
        assert_eq!(call.tags, vec!["a", "b"]);
        let eval = &call.evaluations[0];
        assert_eq!(eval.id, "c1#evaluation-0");
        assert_eq!(eval.custom_evals_json.as_deref(), Some(r#"{"k":"v"}"#));
        assert_eq!(eval.custom_metrics[0].min_value, Some(1.0));
        assert_eq!(call.raw_json, raw);
        assert!(matches!(
            parse_call_log(r#"{"agent_id":"a"}"#),
            Err(CallLogError::NoId)
        ));
    }
}
