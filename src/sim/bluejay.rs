//! Bluejay's API as the simulator serves it: list, get and delete call logs, list agents.
//!
//! Parameters are checked the way Bluejay's FastAPI service checks them, and refused with its
//! 422 body `{detail: [{type, loc, msg, input}]}`. A wrong or missing `X-API-Key` gets 401.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::json;

use rand::rngs::SmallRng;
use rand::Rng;
use serde::Serialize;

use super::data::{
    call_rng, iso, maybe, pick, round2, CallSlot, Renderer, EVENTS, NAMES, SUMMARIES, TAGS, TOOLS,
};
use super::{DeleteRecord, Simulator, SortOrder};
use crate::providers::ProviderKind;

const KEY_HEADER: &str = "x-api-key";

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/retrieve-call-logs/{agent_id}", get(list_call_logs))
        .route("/v1/retrieve-call-log/{call_id}", get(get_call_log))
        .route("/v1/call-log/{call_id}", delete(delete_call_log))
        .route("/v1/all-agents", get(all_agents))
}

/// A 401 that echoes the key it refused, as careless APIs do: callvault must not store or
/// print what comes back.
fn unauthorized(headers: &HeaderMap) -> Response {
    let sent = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"detail": format!("Invalid or missing API key '{sent}'")})),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": format!("{what} not found")})),
    )
        .into_response()
}

/// A FastAPI validation error for one query parameter.
fn invalid(field: &str, kind: &str, msg: String, input: &str) -> serde_json::Value {
    json!({"type": kind, "loc": ["query", field], "msg": msg, "input": input})
}

fn int_param(
    params: &HashMap<String, String>,
    field: &str,
    default: u64,
    min: u64,
    max: Option<u64>,
    errors: &mut Vec<serde_json::Value>,
) -> u64 {
    let Some(text) = params.get(field) else {
        return default;
    };
    match text.parse::<i64>() {
        Err(_) => {
            errors.push(invalid(
                field,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer".into(),
                text,
            ));
            default
        }
        Ok(v) if v < min as i64 => {
            errors.push(invalid(
                field,
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
                text,
            ));
            default
        }
        Ok(v) if max.is_some_and(|m| v as u64 > m) => {
            errors.push(invalid(
                field,
                "less_than_equal",
                format!(
                    "Input should be less than or equal to {}",
                    max.unwrap_or_default()
                ),
                text,
            ));
            default
        }
        Ok(v) => v as u64,
    }
}

async fn list_call_logs(
    State(sim): State<Simulator>,
    Path(agent_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if !sim.authorized(&headers, KEY_HEADER) {
        return unauthorized(&headers);
    }
    let mut errors = Vec::new();
    let page = int_param(&params, "page", 1, 1, None, &mut errors);
    let page_size = int_param(&params, "page_size", 20, 1, Some(100), &mut errors);
    let last = params.get("last").map(String::as_str).unwrap_or("1day");
    let days = match last {
        "1day" => Some(1),
        "3days" => Some(3),
        "7days" => Some(7),
        "30days" => Some(30),
        "90days" => Some(90),
        "all" => None,
        other => {
            errors.push(json!({
                "type": "enum",
                "loc": ["query", "last"],
                "msg": "Input should be '1day', '3days', '7days', '30days', '90days' or 'all'",
                "input": other,
                "ctx": {"expected": "'1day', '3days', '7days', '30days', '90days' or 'all'"}
            }));
            None
        }
    };
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": errors})),
        )
            .into_response();
    }
    let since_ms = days.map(|d: i64| chrono::Utc::now().timestamp_millis() - d * 86_400_000);
    let label = params.get("label").filter(|l| !l.is_empty());
    let Some(agent) = sim.lock().data.get(ProviderKind::Bluejay).agent(&agent_id) else {
        return not_found("Agent");
    };
    sim.churn(ProviderKind::Bluejay, Some(agent));
    let (total, slots, renderer) = {
        let mut state = sim.lock();
        let newest_first = state.order == SortOrder::NewestFirst;
        let data = state.data.get_mut(ProviderKind::Bluejay);
        let (total, slots) = data.list(
            agent,
            since_ms,
            label.map(String::as_str),
            newest_first,
            page,
            page_size,
        );
        (total, slots, data.renderer())
    };
    Json(CallLogPage {
        total_count: total,
        page,
        page_size,
        total_pages: total.div_ceil(page_size),
        call_logs: slots.into_iter().map(|s| render(&renderer, s)).collect(),
    })
    .into_response()
}

/// A page of `retrieve-call-logs`, serialized straight from the calls: through `json!` every
/// call became a tree of maps first, half of the simulator's time serving a sync. A call is
/// written the same way here and in `OneCallLog`, as Bluejay serves the same text for both.
#[derive(Serialize)]
struct CallLogPage {
    total_count: u64,
    page: u64,
    page_size: u64,
    total_pages: u64,
    call_logs: Vec<CallLog>,
}

#[derive(Serialize)]
struct OneCallLog {
    call_log: CallLog,
    status: &'static str,
}

async fn get_call_log(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if !sim.authorized(&headers, KEY_HEADER) {
        return unauthorized(&headers);
    }
    let state = sim.lock();
    let data = state.data.get(ProviderKind::Bluejay);
    match data.slot_of(&call_id) {
        Some(slot) => Json(OneCallLog {
            call_log: render(&data.renderer(), slot),
            status: "200",
        })
        .into_response(),
        None => {
            drop(state);
            not_found("Call log")
        }
    }
}

async fn delete_call_log(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    let recording_only = params
        .get("recording_only")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    let authorized = sim.authorized(&headers, KEY_HEADER);
    let mut state = sim.lock();
    let status = if !authorized {
        StatusCode::UNAUTHORIZED
    } else if state
        .data
        .get_mut(ProviderKind::Bluejay)
        .delete(&call_id, recording_only)
    {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    state.deletes.push(DeleteRecord {
        provider: "bluejay",
        call_id,
        recording_only,
        status: status.as_u16(),
    });
    drop(state);
    match status {
        StatusCode::OK => Json(json!({
            "message": if recording_only { "Recording deleted successfully" } else { "Call log deleted successfully" },
            "status": "200"
        }))
        .into_response(),
        StatusCode::UNAUTHORIZED => unauthorized(&headers),
        _ => not_found("Call log"),
    }
}

async fn all_agents(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    sim.begin_request().await;
    if !sim.authorized(&headers, KEY_HEADER) {
        return unauthorized(&headers);
    }
    let agents: Vec<_> = sim
        .agents()
        .into_iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "name": format!("Demo agent {}", i + 1)}))
        .collect();
    Json(json!(agents)).into_response()
}

#[derive(Serialize, Clone, Debug)]
pub struct CallLog {
    pub id: String,
    pub agent_id: String,
    pub external_agent_id: Option<String>,
    pub recording_url: Option<String>,
    pub start_time_utc: String,
    pub participants: Vec<ParticipantOut>,
    pub status: &'static str,
    pub call_direction: &'static str,
    pub interface: &'static str,
    pub created_at: String,
    pub transcript_url: Option<String>,
    pub tool_calls: Option<Vec<ToolCallOut>>,
    pub events: Option<Vec<EventOut>>,
    pub tags: Option<Vec<&'static str>>,
    pub duration_ms: Option<i64>,
    pub evaluations: Vec<EvaluationOut>,
    pub annotations: Option<Vec<serde_json::Value>>,
    pub metadata: Option<serde_json::Value>,
    pub custom_metrics: Option<Vec<serde_json::Value>>,
    pub conversation_ended_by: Option<&'static str>,
    /// Not in Bluejay's documentation: a field the client must carry without breaking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_routing: Option<serde_json::Value>,
}

#[derive(Serialize, Clone, Debug)]
pub struct ParticipantOut {
    pub role: &'static str,
    pub spoke_first: Option<bool>,
    pub name: Option<&'static str>,
    pub phone_number: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct ToolCallOut {
    pub name: &'static str,
    pub start_offset_ms: i64,
    pub description: Option<&'static str>,
    pub parameters: Option<serde_json::Value>,
    pub output: serde_json::Value,
}

#[derive(Serialize, Clone, Debug)]
pub struct EventOut {
    pub title: &'static str,
    pub start_offset_ms: i64,
    pub description: Option<&'static str>,
    pub end_offset_ms: Option<i64>,
    pub tags: Option<Vec<&'static str>>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Serialize, Clone, Debug)]
pub struct LatencyOut {
    pub avg_agent_latency: Option<f64>,
    pub max_agent_latency: Option<f64>,
    pub p50_agent_latency: Option<f64>,
    pub p90_agent_latency: Option<f64>,
    pub p95_agent_latency: Option<f64>,
    pub p99_agent_latency: Option<f64>,
}

#[derive(Serialize, Clone, Debug)]
pub struct FillerLatencyOut {
    pub avg_filler_ignored_latency: Option<f64>,
    pub p50_filler_ignored_latency: Option<f64>,
    pub p90_filler_ignored_latency: Option<f64>,
    pub p95_filler_ignored_latency: Option<f64>,
    pub p99_filler_ignored_latency: Option<f64>,
}

#[derive(Serialize, Clone, Debug)]
pub struct CustomMetricOut {
    pub name: &'static str,
    pub description: &'static str,
    pub response_type: &'static str,
    pub response_value: String,
    pub reasoning: Option<&'static str>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub category: Option<&'static str>,
    pub tags: Option<Vec<&'static str>>,
    pub scoring_guidance: Option<&'static str>,
    pub enum_options: Option<Vec<&'static str>>,
}

#[derive(Serialize, Clone, Debug)]
pub struct EvaluationOut {
    pub id: String,
    pub created_at: String,
    pub agent_speak_percentage: Option<f64>,
    pub avg_agent_latency: Option<f64>,
    pub hallucination: Option<bool>,
    pub hallucination_reasoning: Option<&'static str>,
    pub redundancy: Option<bool>,
    pub redundancy_reasoning: Option<&'static str>,
    pub latency: Option<LatencyOut>,
    pub filler_ignored_latency: Option<FillerLatencyOut>,
    pub num_turns: Option<i64>,
    pub call_summary: Option<String>,
    pub custom_evals: Option<serde_json::Value>,
    pub custom_evals_success_rate: Option<f64>,
    pub goal_success: Option<bool>,
    pub goal_reasoning: Option<&'static str>,
    pub pronunciation_score: Option<f64>,
    pub pronunciation_reasoning: Option<&'static str>,
    pub sentiment_label: Option<&'static str>,
    pub sentiment_score: Option<f64>,
    pub sentiment_scores: Option<serde_json::Value>,
    pub custom_metrics: Option<Vec<CustomMetricOut>>,
}

const HALLUCINATION_REASONS: [&str; 3] = [
    "The agent stated a refund would arrive in 24 hours; policy says 5-7 business days, and no tool output supported the claim.",
    "The agent quoted an account balance that does not match the check_balance tool output.",
    "The agent invented an appointment slot that the scheduling tool never returned.",
];
const CLEAN_REASONS: [&str; 2] = [
    "Every factual statement by the agent is supported by tool outputs or the knowledge base.",
    "The agent only repeated information the caller or the tools provided.",
];
const REDUNDANCY_REASONS: [&str; 2] = [
    "The agent asked for the account number twice after the caller had already given it.",
    "No repeated questions or restated answers were found.",
];
const GOAL_REASONS: [&str; 2] = [
    "The caller's request was completed and confirmed before the call ended.",
    "The call ended before the agent could complete the request; the caller hung up on hold.",
];
const PRONUNCIATION_REASONS: [&str; 2] = [
    "Names and numbers were pronounced clearly; one street name was stressed incorrectly.",
    "Clear pronunciation throughout, including non-English names.",
];
const SENTIMENTS: [&str; 3] = ["positive", "neutral", "negative"];
const METRICS: [(&str, &str, &str); 3] = [
    (
        "csat_prediction",
        "Predicted customer satisfaction from 1 to 5",
        "number",
    ),
    (
        "policy_adherence",
        "Whether the agent followed the refund policy",
        "boolean",
    ),
    ("resolution_type", "How the call was resolved", "enum"),
];

/// Renders one call as Bluejay's CallLog.
pub fn render(renderer: &Renderer, slot: CallSlot) -> CallLog {
    let (seed, anchor_ms) = (renderer.seed, renderer.anchor_ms);
    let label = renderer.label(slot.index);
    let mut rng = call_rng(seed, slot.index);
    let id = renderer.call_id(slot.index);
    let meta = slot.meta;
    let duration_ms = rng.random_range(15_000..900_000i64);
    let start_ms = meta.created_ms - duration_ms - rng.random_range(500..5_000i64);
    // Recent calls may still be in flight; older ones are final. Every draw is made whatever
    // the outcome, so a late evaluation changes nothing else about the call.
    // The younger a call, the likelier it is still being evaluated.
    let age_ms = anchor_ms - meta.created_ms;
    let pending_chance = match age_ms {
        a if a < 3_600_000 => 0.9,
        a if a < 6 * 3_600_000 => 0.5,
        a if a < 2 * 86_400_000 => 0.15,
        _ => 0.0,
    };
    let pending_draw = rng.random::<f64>() < pending_chance;
    let pending_status = pick(&mut rng, &["INITIALIZING", "QUEUED", "EVALUATING"]);
    let incomplete_draw = rng.random_bool(0.06);
    let incomplete_evals = rng.random_range(0..2u32);
    let no_eval_draw = rng.random_bool(0.04);
    let evals_draw = rng.random_range(1..3u32);
    let (mut status, mut n_evals) = if pending_draw {
        (pending_status, 0)
    } else if incomplete_draw {
        ("INCOMPLETED", incomplete_evals)
    } else {
        ("COMPLETED", if no_eval_draw { 0 } else { evals_draw })
    };
    let late = slot.late_ms.is_some() && n_evals == 0;
    if late {
        status = "COMPLETED";
        n_evals = 1;
    }
    let participants = vec![
        ParticipantOut {
            role: "AGENT",
            spoke_first: Some(true),
            name: Some("Callvault Demo Agent"),
            phone_number: None,
        },
        ParticipantOut {
            role: "USER",
            spoke_first: maybe!(rng, 0.8, false),
            name: maybe!(rng, 0.85, pick(&mut rng, &NAMES)),
            phone_number: maybe!(
                rng,
                0.7,
                format!("+1415555{:04}", rng.random_range(0..10_000)),
            ),
        },
    ];
    let tool_calls = (0..rng.random_range(0..4))
        .map(|k| {
            let (name, description) = pick(&mut rng, &TOOLS);
            ToolCallOut {
                name,
                start_offset_ms: 5_000 + k * 20_000 + rng.random_range(0..10_000),
                description: maybe!(rng, 0.9, description),
                parameters: maybe!(
                    rng,
                    0.9,
                    serde_json::json!({"account": format!("AC-{}", rng.random_range(1000..9999)), "locale": "en-US"}),
                ),
                output: match rng.random_range(0..3) {
                    0 => serde_json::json!({"ok": true, "balance": round2(rng.random_range(0.0..900.0))}),
                    1 => serde_json::Value::String("slot booked for Tuesday 10:00 — confirmé".into()),
                    _ => serde_json::Value::Null,
                },
            }
        })
        .collect();
    let events = (0..rng.random_range(0..5))
        .map(|k| {
            let (title, description) = pick(&mut rng, &EVENTS);
            let start = k * 30_000 + rng.random_range(0..20_000);
            EventOut {
                title,
                start_offset_ms: start,
                description: maybe!(rng, 0.9, description),
                end_offset_ms: maybe!(rng, 0.8, start + rng.random_range(500..8_000)),
                tags: maybe!(rng, 0.5, vec![pick(&mut rng, &TAGS)]),
                metadata: maybe!(
                    rng,
                    0.4,
                    serde_json::json!({"confidence": round2(rng.random_range(0.5..1.0))})
                ),
            }
        })
        .collect();
    let mut tags: Vec<&'static str> = (0..rng.random_range(0..4))
        .map(|_| pick(&mut rng, &TAGS))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let summary = pick(&mut rng, &SUMMARIES);
    let mut eval_rng = call_rng(seed ^ 0xE7A1, slot.index);
    let evaluations = (0..n_evals)
        .map(|k| {
            let created = match slot.late_ms {
                Some(at) if late => at,
                _ => meta.created_ms + 30_000 + k as i64 * 3_600_000,
            };
            render_evaluation(&mut eval_rng, &id, k, created, summary)
        })
        .collect();
    let recording = !slot.recording_cleared();
    CallLog {
        agent_id: renderer.agent_id(slot).to_string(),
        external_agent_id: maybe!(rng, 0.7, format!("ext-{}", meta.agent)),
        recording_url: (recording && rng.random_bool(0.9))
            .then(|| format!("https://recordings.example.com/{id}.wav")),
        start_time_utc: iso(start_ms),
        participants,
        status,
        call_direction: pick(&mut rng, &["INBOUND", "OUTBOUND"]),
        interface: pick(&mut rng, &["PHONE", "WEB"]),
        created_at: iso(meta.created_ms),
        transcript_url: maybe!(
            rng,
            0.9,
            format!("https://transcripts.example.com/{id}.json")
        ),
        tool_calls: maybe!(rng, 0.95, tool_calls),
        events: maybe!(rng, 0.95, events),
        tags: maybe!(rng, 0.9, tags),
        duration_ms: maybe!(rng, 0.97, duration_ms),
        evaluations,
        annotations: match rng.random_range(0..3) {
            0 => None,
            1 => Some(vec![]),
            _ => Some(vec![
                serde_json::json!({"author": "qa@example.com", "note": "Good de-escalation ✔"}),
            ]),
        },
        metadata: Some(
            serde_json::json!({"label": label, "campaign": pick(&mut rng, &["spring", "renewals", "support"])}),
        ),
        custom_metrics: maybe!(rng, 0.5, vec![]),
        conversation_ended_by: match rng.random_range(0..3) {
            0 => None,
            1 => Some("AGENT"),
            _ => Some("USER"),
        },
        x_routing: maybe!(
            rng,
            0.2,
            serde_json::json!({"region": "eu-west-1", "trunk": rng.random_range(1..9)})
        ),
        id,
    }
}

fn render_evaluation(
    rng: &mut SmallRng,
    call_id: &str,
    k: u32,
    created_ms: i64,
    summary: &str,
) -> EvaluationOut {
    // Agent latency in ms: a skewed distribution around 700-900 ms with a long tail.
    let base =
        450.0 + rng.random_range(0.0..600.0) + rng.random_range(0.0..1.0f64).powi(6) * 2500.0;
    let p50 = round2(base * 0.92);
    let latency = LatencyOut {
        avg_agent_latency: Some(round2(base)),
        p50_agent_latency: Some(p50),
        p90_agent_latency: Some(round2(base * 1.35)),
        p95_agent_latency: Some(round2(base * 1.6)),
        p99_agent_latency: Some(round2(base * 2.1)),
        max_agent_latency: maybe!(rng, 0.9, round2(base * 2.6)),
    };
    let hallucination = if rng.random_bool(0.05) {
        None
    } else {
        Some(rng.random_bool(0.08))
    };
    let metrics = (0..rng.random_range(0..4usize))
        .map(|m| {
            let (name, description, kind) = METRICS[m % METRICS.len()];
            CustomMetricOut {
                name,
                description,
                response_type: kind,
                response_value: match kind {
                    "number" => rng.random_range(1..6).to_string(),
                    "boolean" => rng.random_bool(0.9).to_string(),
                    _ => pick(rng, &["resolved", "escalated", "callback"]).to_string(),
                },
                reasoning: maybe!(
                    rng,
                    0.8,
                    "Derived from the closing turns of the conversation."
                ),
                min_value: (kind == "number").then_some(1.0),
                max_value: (kind == "number").then_some(5.0),
                category: maybe!(rng, 0.7, "quality"),
                tags: maybe!(rng, 0.5, vec!["auto", "v2"]),
                scoring_guidance: maybe!(
                    rng,
                    0.5,
                    "Score 5 only when the caller explicitly thanks the agent."
                ),
                enum_options: (kind == "enum").then(|| vec!["resolved", "escalated", "callback"]),
            }
        })
        .collect();
    let goal = rng.random_bool(0.82);
    EvaluationOut {
        id: format!("{call_id}-ev{k}"),
        created_at: iso(created_ms),
        agent_speak_percentage: Some(round2(rng.random_range(25.0..75.0))),
        avg_agent_latency: Some(round2(base)),
        hallucination,
        hallucination_reasoning: match hallucination {
            Some(true) => Some(pick(rng, &HALLUCINATION_REASONS)),
            Some(false) => maybe!(rng, 0.7, pick(rng, &CLEAN_REASONS)),
            None => None,
        },
        redundancy: maybe!(rng, 0.95, rng.random_bool(0.12)),
        redundancy_reasoning: maybe!(rng, 0.8, pick(rng, &REDUNDANCY_REASONS)),
        latency: maybe!(rng, 0.95, latency),
        filler_ignored_latency: maybe!(
            rng,
            0.8,
            FillerLatencyOut {
                avg_filler_ignored_latency: Some(round2(base * 0.8)),
                p50_filler_ignored_latency: Some(round2(p50 * 0.8)),
                p90_filler_ignored_latency: Some(round2(base * 1.1)),
                p95_filler_ignored_latency: None,
                p99_filler_ignored_latency: Some(round2(base * 1.7)),
            },
        ),
        num_turns: maybe!(rng, 0.95, rng.random_range(4..60)),
        call_summary: maybe!(rng, 0.9, summary.to_string()),
        custom_evals: match rng.random_range(0..3) {
            0 => None,
            1 => {
                Some(serde_json::json!([{"name": "greeting_used", "passed": rng.random_bool(0.9)}]))
            }
            _ => Some(
                serde_json::json!({"greeting_used": true, "closing_used": rng.random_bool(0.7)}),
            ),
        },
        custom_evals_success_rate: maybe!(rng, 0.7, round2(rng.random_range(0.0..1.0))),
        goal_success: maybe!(rng, 0.95, goal),
        goal_reasoning: Some(GOAL_REASONS[usize::from(!goal)]),
        pronunciation_score: maybe!(rng, 0.8, round2(rng.random_range(60.0..100.0))),
        pronunciation_reasoning: maybe!(rng, 0.8, pick(rng, &PRONUNCIATION_REASONS)),
        sentiment_label: maybe!(rng, 0.95, pick(rng, &SENTIMENTS)),
        sentiment_score: maybe!(rng, 0.95, round2(rng.random_range(-1.0..1.0))),
        sentiment_scores: maybe!(
            rng,
            0.6,
            serde_json::json!({"positive": round2(rng.random_range(0.0..1.0)), "negative": round2(rng.random_range(0.0..1.0))}),
        ),
        custom_metrics: maybe!(rng, 0.9, metrics),
    }
}
