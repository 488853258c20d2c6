//! Cartesia's API as the simulator serves it (version 2026-03-01): list agents, list an
//! agent's calls newest first by start time with `starting_after` cursors, read and redact
//! (DELETE) a call.
//!
//! What bites in the real API is here too: every request needs `Cartesia-Version` (400
//! without it); the list omits transcripts unless `expand=transcript`; a call can stay
//! `started` for days and the list keeps showing it so after it completed, which only a read
//! by id shows; DELETE redacts (the record stays with `redacted_at`, the sensitive fields null
//! in its reply and absent from later reads) and answers 400 for a call that is not finished;
//! one agent has no calls. Errors are `{error_code, title, message, request_id}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::data::{iso, pick, round2, CallSlot, KeysetQuery, Renderer, NAMES, SUMMARIES, TOOLS};
use super::{DeleteRecord, Simulator};
use crate::providers::ProviderKind;

/// The API version the simulator speaks.
pub const API_VERSION: &str = "2026-03-01";

/// An agent the account has that never took a call.
pub const IDLE_AGENT: &str = "agent_idle00000000";

const KIND: ProviderKind = ProviderKind::Cartesia;

/// Salts this provider's random streams apart from the other providers'.
const SALT: u64 = 0xCA57_0001;

const END_REASONS: [&str; 5] = [
    "agent_hangup",
    "client_hangup",
    "max_duration",
    "inactivity",
    "client_disconnected",
];
const REGIONS: [&str; 3] = ["US", "EU", "APAC"];

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/calls", get(list_calls))
        .route("/agents/calls/{call_id}", get(get_call).delete(delete_call))
}

/// Cartesia's error body.
pub fn error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        Json(json!({
            "error_code": code,
            "title": title,
            "message": message,
            "request_id": format!("{:08x}-0000-4000-8000-000000000000", rand::rng().random::<u32>()),
        })),
    )
        .into_response()
}

/// Refuses a request without the key or the version header.
fn check(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    if !sim.authorized_bearer(headers) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            Some("invalid_api_key"),
            "Invalid or missing API key",
        ));
    }
    if headers.get("cartesia-version").is_none() {
        return Some(error(
            StatusCode::BAD_REQUEST,
            Some("missing_version"),
            "The Cartesia-Version header is required",
        ));
    }
    None
}

async fn list_agents(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let agents = sim.agents_of(KIND);
    let created = iso(Utc::now().timestamp_millis() - 200 * 86_400_000);
    let summaries: Vec<Value> = agents
        .iter()
        .map(String::as_str)
        .chain([IDLE_AGENT])
        .enumerate()
        .map(|(i, id)| {
            json!({
                "id": id,
                "name": format!("demo-agent-{}", i + 1),
                "description": null,
                "created_at": created,
                "updated_at": created,
                "tts_voice": "a0e99841-438c-4a64-b679-ae501e7d6091",
                "tts_language": "en",
                "has_text_to_agent_run": false,
                "deployment_count": 1,
            })
        })
        .collect();
    Json(json!({ "summaries": summaries })).into_response()
}

async fn list_calls(
    State(sim): State<Simulator>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let Some(agent_id) = params.get("agent_id") else {
        return error(StatusCode::BAD_REQUEST, None, "agent_id is required");
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "limit must be an integer between 1 and 100",
            )
        }
    };
    let expand = params.get("expand").is_some_and(|e| e == "transcript");
    if agent_id == IDLE_AGENT {
        return Json(json!({"data": [], "next_page": null})).into_response();
    }
    let Some(agent) = sim.lock().data.get(KIND).agent(agent_id) else {
        return error(StatusCode::NOT_FOUND, Some("not_found"), "Agent not found");
    };
    sim.churn(KIND, Some(agent));
    let (slots, more, renderer) = {
        let mut state = sim.lock();
        let data = state.data.get_mut(KIND);
        let after = match params.get("starting_after") {
            None => None,
            Some(id) => match data.find_any(id) {
                Some(index) => Some(index),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        Some("invalid_cursor"),
                        "starting_after does not name a call",
                    )
                }
            },
        };
        let (slots, more) = data.keyset(&KeysetQuery {
            agent: Some(agent),
            newest_first: true,
            after,
            limit,
            ..KeysetQuery::default()
        });
        (slots, more, data.renderer())
    };
    let next_page = match (more, slots.last()) {
        (true, Some(last)) => Value::String(renderer.call_id(last.index)),
        _ => Value::Null,
    };
    let data: Vec<Value> = slots
        .into_iter()
        .map(|slot| {
            let mut call = render(&renderer, slot, false);
            if !expand {
                if let Value::Object(map) = &mut call {
                    map.remove("transcript");
                }
            }
            call
        })
        .collect();
    Json(json!({ "data": data, "next_page": next_page })).into_response()
}

async fn get_call(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let found = sim.find_call(KIND, &call_id);
    match found {
        Some((slot, renderer)) => Json(render(&renderer, slot, true)).into_response(),
        None => error(StatusCode::NOT_FOUND, Some("not_found"), "Call not found"),
    }
}

async fn delete_call(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    let refused = check(&sim, &headers);
    let mut state = sim.lock();
    let data = state.data.get_mut(KIND);
    let renderer = data.renderer();
    let (status, response) = match (refused, data.slot_of(&call_id)) {
        (Some(refused), _) => (refused.status(), refused),
        (None, None) => (
            StatusCode::NOT_FOUND,
            error(StatusCode::NOT_FOUND, Some("not_found"), "Call not found"),
        ),
        (None, Some(slot)) if is_started(&renderer, slot) && slot.late_ms.is_none() => (
            StatusCode::BAD_REQUEST,
            error(
                StatusCode::BAD_REQUEST,
                Some("call_not_terminal"),
                "Call is not in a terminal state. Only completed or failed calls can be deleted; cancel an active call first via POST /agents/calls/{call_id}/cancel.",
            ),
        ),
        (None, Some(slot)) => {
            let slot = data.redact(slot.index, Utc::now());
            let mut call = render(&renderer, slot, true);
            // The reply names the redacted fields with null; later reads leave them out.
            if let Value::Object(map) = &mut call {
                for field in REDACTED_FIELDS {
                    map.insert(field.to_string(), Value::Null);
                }
            }
            (StatusCode::OK, Json(call).into_response())
        }
    };
    state.deletes.push(DeleteRecord {
        provider: "cartesia",
        call_id,
        recording_only: false,
        status: status.as_u16(),
    });
    response
}

/// What a redaction removes from a call.
const REDACTED_FIELDS: [&str; 5] = [
    "transcript",
    "summary",
    "metadata",
    "error_message",
    "telephony_account_type",
];

/// Whether the call was still in progress when it was listed: young calls may be. A call
/// `complete_pending` finished is still listed so; only a read by id shows it completed.
pub fn is_started(renderer: &Renderer, slot: CallSlot) -> bool {
    let age_ms = renderer.anchor_ms - slot.meta.created_ms;
    let chance = match age_ms {
        a if a < 6 * 3_600_000 => 0.6,
        a if a < 3 * 86_400_000 => 0.1,
        _ => 0.0,
    };
    renderer.rng(slot.index, SALT ^ 0x5747).random::<f64>() < chance
}

/// Renders one call as Cartesia's AgentCall, with its transcript. `by_id`: as a read by id
/// shows it (a call completed late shows as completed; the list still shows it started).
pub fn render(renderer: &Renderer, slot: CallSlot, by_id: bool) -> Value {
    let mut rng = renderer.rng(slot.index, SALT);
    let id = renderer.call_id(slot.index);
    let start_ms = slot.meta.created_ms;
    let duration_ms = rng.random_range(20_000..600_000i64);
    let failed = rng.random_bool(0.04);
    let in_progress = is_started(renderer, slot) && !(by_id && slot.late_ms.is_some());
    let status = match (in_progress, failed) {
        (true, _) => "started",
        (false, true) => "failed",
        (false, false) => "completed",
    };
    let phone = rng.random_bool(0.7);
    let caller = format!("+1415555{:04}", rng.random_range(0..10_000));
    let agent_line = format!("+1628555{:04}", rng.random_range(0..10_000));
    let direction = pick(&mut rng, &["inbound", "outbound"]);
    let telephony = if phone {
        json!({"to": caller, "from": agent_line, "call_sid": format!("CA{:032x}", rng.random::<u128>()),
               "direction": direction, "connection_type": "phone"})
    } else {
        json!({"call_sid": format!("ws_{:016x}", rng.random::<u64>()), "connection_type": "websocket"})
    };
    let turns = transcript(renderer, slot, duration_ms, in_progress);
    let mut call = Map::new();
    call.insert("id".into(), json!(id));
    call.insert("agent_id".into(), json!(renderer.agent_id(slot)));
    call.insert(
        "agent_name".into(),
        json!(format!("demo-agent-{}", slot.meta.agent + 1)),
    );
    call.insert("zdr_enabled".into(), json!(false));
    call.insert("start_time".into(), json!(iso(start_ms)));
    call.insert(
        "end_time".into(),
        if in_progress {
            Value::Null
        } else {
            json!(iso(start_ms + duration_ms))
        },
    );
    call.insert("redacted_at".into(), json!(slot.redacted_ms.map(iso)));
    call.insert("status".into(), json!(status));
    call.insert(
        "end_reason".into(),
        match (in_progress, failed) {
            (true, _) => Value::Null,
            (false, true) => json!("error"),
            (false, false) => json!(pick(&mut rng, &END_REASONS)),
        },
    );
    call.insert(
        "deployment_id".into(),
        json!(format!("ad_{:08x}", slot.meta.agent)),
    );
    call.insert(
        "deployment_version_id".into(),
        json!(format!("av_{:08x}", rng.random_range(1..5u32))),
    );
    call.insert("deployment_region".into(), json!(pick(&mut rng, &REGIONS)));
    if slot.redacted_ms.is_some() {
        // Redacted: the phone numbers and every sensitive field are gone.
        call.insert(
            "telephony_params".into(),
            json!({"call_sid": telephony["call_sid"], "connection_type": telephony["connection_type"]}),
        );
        return Value::Object(call);
    }
    call.insert("telephony_params".into(), telephony);
    call.insert("telephony_account_type".into(), json!("cartesia"));
    call.insert("transcript".into(), Value::Array(turns));
    call.insert(
        "summary".into(),
        if in_progress {
            Value::Null
        } else {
            json!(pick(&mut rng, &SUMMARIES))
        },
    );
    call.insert(
        "error_message".into(),
        if failed && !in_progress {
            json!("The LLM provider timed out twice; the call was ended.")
        } else {
            Value::Null
        },
    );
    call.insert(
        "metadata".into(),
        json!({"campaign": pick(&mut rng, &["spring", "renewals", "support"]), "label": renderer.label(slot.index), "attempt": rng.random_range(1..4)}),
    );
    Value::Object(call)
}

/// The call's turns: user and assistant alternate, the assistant's with `tts_ttfb` (seconds,
/// a skewed distribution with a long tail) and now and then a tool call, the user's with
/// `stt_ttfb`; system turns carry log events and metrics.
fn transcript(
    renderer: &Renderer,
    slot: CallSlot,
    duration_ms: i64,
    in_progress: bool,
) -> Vec<Value> {
    let mut rng = renderer.rng(slot.index, SALT ^ 0x7E47);
    let n = rng.random_range(4..14usize);
    let span_s = duration_ms as f64 / 1000.0;
    let step = span_s / (n as f64 + 1.0);
    let shown = if in_progress { n / 2 } else { n };
    let mut turns = Vec::with_capacity(shown + 1);
    for k in 0..shown {
        let start = round2(step * k as f64 + rng.random_range(0.0..0.5));
        let end = round2(start + step * rng.random_range(0.4..0.9));
        let assistant = k % 2 == 1;
        let mut turn = Map::new();
        turn.insert(
            "role".into(),
            json!(if assistant { "assistant" } else { "user" }),
        );
        turn.insert(
            "text".into(),
            json!(if assistant {
                pick(&mut rng, &SUMMARIES).to_string()
            } else {
                format!("Hi, this is {}.", pick(&mut rng, &NAMES))
            }),
        );
        turn.insert("start_timestamp".into(), json!(start));
        turn.insert("end_timestamp".into(), json!(end));
        if assistant {
            let ttfb = 0.25 + rng.random_range(0.0..0.45) + rng.random::<f64>().powi(8) * 2.5;
            turn.insert("tts_ttfb".into(), json!((ttfb * 1000.0).round() / 1000.0));
            if rng.random_bool(0.25) {
                let (name, _) = pick(&mut rng, &TOOLS);
                turn.insert(
                    "tool_calls".into(),
                    json!([{"id": format!("tc_{:08x}", rng.random::<u32>()), "name": name,
                            "arguments": {"account": format!("AC-{}", rng.random_range(1000..9999))},
                            "result": "ok"}]),
                );
            }
        } else {
            let ttfb: f64 = 0.1 + rng.random_range(0.0..0.3);
            turn.insert("stt_ttfb".into(), json!((ttfb * 1000.0).round() / 1000.0));
        }
        turns.push(Value::Object(turn));
    }
    if !in_progress && rng.random_bool(0.5) {
        let at = round2(span_s * 0.9);
        turns.push(if rng.random_bool(0.5) {
            json!({"role": "system", "start_timestamp": at, "end_timestamp": at,
                   "log_event": {"event": "crm_updated", "metadata": {"crm": "hubspot"}, "timestamp": at}})
        } else {
            json!({"role": "system", "start_timestamp": at, "end_timestamp": at,
                   "log_metric": {"name": "csat_prediction", "value": rng.random_range(1..6), "timestamp": at}})
        });
    }
    turns
}
