//! Clarion's API as the simulator serves it (`/v1`, `Authorization: Bearer KEY`): list calls
//! by creation time, read one, delete one.
//!
//! What bites in the real API is here too. `GET /v1/call` answers a bare JSON array of at
//! most `limit` calls (default 100, at most 1,000; 400 beyond), filtered by `createdAtGe` /
//! `createdAtLe` (inclusive), with no cursor and no sign of truncation: a range holding more
//! than `limit` calls answers an arbitrary `limit` of them. The order is not documented, so
//! the simulator serves no order at all (a deterministic shuffle). The query string is
//! form-decoded, so a `+` sent unencoded in a time offset arrives as a space and the time is
//! refused. Calls carry no creation time, only `started_at` (a few seconds after creation,
//! null until the call starts); ids and `assistant_id` are integers above 2^32. `analysis`
//! comes in two shapes: the documented one (`repetition_count`, `interruption_count`,
//! `custom`) and one with `summary`, `successEvaluation` and `structuredData`, whose call
//! has its summary there instead of at the top. Young calls may still be `queued`, `ringing`,
//! `in-progress` or `forwarding`; `complete_pending` ends them, which lists and reads by id
//! both show. The data set has a busy day (`BUSY_DAY_BEFORE_ANCHOR`) holding more calls than
//! one answer can. `DELETE /v1/call/{id}` answers 204 with no body, or 200 with the deleted
//! call (`Simulator::set_clarion_delete_body`), and 404 for a call it does not have.
//!
//! Clarion documents no error body; the simulator answers `{statusCode, error, message}`, the
//! shape of the framework its camelCase parameters suggest [guess].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::data::{iso, mix, pick, CallSlot, Renderer, NAMES, SUMMARIES};
use super::{DeleteRecord, ListAnswer, Simulator};
use crate::providers::ProviderKind;
use crate::time::parse_timestamp;

/// Calls a list answers when it names no `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// The largest `limit` Clarion takes.
pub const MAX_LIMIT: usize = 1_000;

/// Calls packed into the busy day unless the configuration says otherwise: more than one
/// answer of `MAX_LIMIT` can hold.
pub const DEFAULT_BUSY_DAY_CALLS: u32 = 1_500;

/// The busy day is the UTC day this many days before the anchor: inside the data set's span,
/// outside the last week's windows.
pub const BUSY_DAY_BEFORE_ANCHOR: i64 = 10;

const KIND: ProviderKind = ProviderKind::Clarion;

/// Salts this provider's random streams apart from the other providers'.
const SALT: u64 = 0xC1A1_0001;

const ENDED_REASONS: [&str; 5] = [
    "customer-ended-call",
    "assistant-ended-call",
    "silence-timed-out",
    "exceeded-max-duration",
    "assistant-forwarded-call",
];
const FAILURE_REASONS: [&str; 6] = [
    "declined",
    "escalated",
    "requested-callback",
    "customer-dropped",
    "assistant-ended",
    "opt-out",
];
const OUTCOMES: [&str; 4] = [
    "appointment-booked",
    "question-answered",
    "payment-taken",
    "transferred",
];
const INTENTS: [&str; 4] = [
    "billing",
    "scheduling",
    "prescription-refill",
    "test-results",
];

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/call", get(list_calls))
        .route("/v1/call/{call_id}", get(get_call).delete(delete_call))
}

/// Whether `path` is one of Clarion's, so its errors take Clarion's shape.
pub fn owns(path: &str) -> bool {
    path == "/v1/call" || path.starts_with("/v1/call/")
}

/// Clarion's error body.
pub fn error(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    (
        status,
        Json(json!({ "statusCode": status.as_u16(), "error": reason, "message": message })),
    )
        .into_response()
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Invalid or missing API key")
}

/// A time filter, if the query names one; `Err` with the reason when it is not a time.
fn time_filter(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, String> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => parse_timestamp(text)
            .map(|t| Some(t.timestamp_millis()))
            .ok_or_else(|| format!("{name} must be an ISO 8601 date-time, got '{text}'")),
    }
}

async fn list_calls(State(sim): State<Simulator>, uri: Uri, headers: HeaderMap) -> Response {
    sim.begin_request().await;
    if !sim.authorized_bearer(&headers) {
        return unauthorized();
    }
    let Ok(Query(params)) = Query::<HashMap<String, String>>::try_from_uri(&uri) else {
        return error(StatusCode::BAD_REQUEST, "the query string is malformed");
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("limit must be an integer from 1 to {MAX_LIMIT}"),
            )
        }
    };
    let (from, to) = match (
        time_filter(&params, "createdAtGe"),
        time_filter(&params, "createdAtLe"),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(why), _) | (_, Err(why)) => return error(StatusCode::BAD_REQUEST, &why),
    };
    sim.churn(KIND, None);
    let salt =
        mix(from.unwrap_or(i64::MIN) as u64) ^ mix(!to.unwrap_or(i64::MAX) as u64) ^ limit as u64;
    let (slots, renderer) = {
        let mut state = sim.lock();
        let data = state.data.get_mut(KIND);
        let (slots, matched) = data.sample_created_between(from, to, limit, salt);
        let renderer = data.renderer();
        state.lists.push(ListAnswer {
            provider: KIND.as_str(),
            query: uri.query().unwrap_or_default().to_string(),
            limit,
            matched,
            served: slots.len(),
        });
        (slots, renderer)
    };
    let calls: Vec<Value> = slots.into_iter().map(|s| render(&renderer, s)).collect();
    Json(Value::Array(calls)).into_response()
}

async fn get_call(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if !sim.authorized_bearer(&headers) {
        return unauthorized();
    }
    let found = sim.find_call(KIND, &call_id);
    match found {
        Some((slot, renderer)) => Json(render(&renderer, slot)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Call not found"),
    }
}

async fn delete_call(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    let authorized = sim.authorized_bearer(&headers);
    let mut state = sim.lock();
    let with_body = state.clarion_delete_body;
    let data = state.data.get_mut(KIND);
    let response = match (authorized, data.slot_of(&call_id)) {
        (false, _) => unauthorized(),
        (true, None) => error(StatusCode::NOT_FOUND, "Call not found"),
        (true, Some(slot)) => {
            let call = render(&data.renderer(), slot);
            data.delete(&call_id, false);
            if with_body {
                Json(call).into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
    };
    state.deletes.push(DeleteRecord {
        provider: KIND.as_str(),
        call_id,
        recording_only: false,
        status: response.status().as_u16(),
    });
    response
}

/// The state a young call was listed in before it ended, if it had not ended yet. Calls only
/// minutes old may not have started (`queued`, `ringing`: no `started_at` yet).
fn unfinished_state(renderer: &Renderer, slot: CallSlot) -> Option<&'static str> {
    let age_ms = renderer.anchor_ms - slot.meta.created_ms;
    let chance = match age_ms {
        a if a < 6 * 3_600_000 => 0.6,
        a if a < 3 * 86_400_000 => 0.1,
        _ => 0.0,
    };
    let mut rng = renderer.rng(slot.index, SALT ^ 0x0E4D);
    let roll: f64 = rng.random();
    let state = if age_ms < 15 * 60_000 {
        pick(
            &mut rng,
            &["queued", "ringing", "in-progress", "forwarding"],
        )
    } else {
        pick(&mut rng, &["in-progress", "forwarding"])
    };
    (roll < chance).then_some(state)
}

/// Whether the call had not ended when the data set was made (`complete_pending` ends it).
pub fn is_unfinished(renderer: &Renderer, slot: CallSlot) -> bool {
    unfinished_state(renderer, slot).is_some()
}

/// A decimal id as the JSON integer Clarion sends.
fn integer(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// Renders one call as Clarion's Call; lists and reads by id show the same.
pub fn render(renderer: &Renderer, slot: CallSlot) -> Value {
    let mut rng = renderer.rng(slot.index, SALT);
    let state = match slot.late_ms {
        Some(_) => "ended",
        None => unfinished_state(renderer, slot).unwrap_or("ended"),
    };
    let started = !matches!(state, "queued" | "ringing");
    let ended = state == "ended";
    let start_ms = slot.meta.created_ms + rng.random_range(500..20_000i64);
    let duration_ms = rng.random_range(15_000..900_000i64);
    let call_type = match rng.random_range(0..20) {
        0..10 => "inboundPhoneCall",
        10..17 => "outboundPhoneCall",
        _ => "webCall",
    };
    let caller = format!("+1415555{:04}", rng.random_range(0..10_000));
    let line = format!("+1628555{:04}", rng.random_range(0..10_000));
    let (source, destination) = match call_type {
        "inboundPhoneCall" => (json!(caller), json!(line)),
        "outboundPhoneCall" => (json!(line), json!(caller)),
        _ => (Value::Null, Value::Null),
    };
    let messages = messages(renderer, slot, start_ms, duration_ms);
    let shown = match (ended, started) {
        (true, _) => messages.len(),
        (false, true) => messages.len() / 2,
        (false, false) => 0,
    };
    let messages = &messages[..shown];
    let failure = rng
        .random_bool(0.2)
        .then(|| pick(&mut rng, &FAILURE_REASONS));
    let outcome = pick(&mut rng, &OUTCOMES);
    let summary = pick(&mut rng, &SUMMARIES);
    let documented_shape = rng.random_bool(0.5);
    let analysis = if documented_shape {
        json!({
            "repetition_count": rng.random_range(0..4),
            "interruption_count": rng.random_range(0..6),
            "custom": {
                "csat": rng.random_range(1..=5),
                "intent": pick(&mut rng, &INTENTS),
                "follow_up_needed": rng.random_bool(0.3),
            },
        })
    } else {
        json!({
            "summary": summary,
            "successEvaluation": if failure.is_none() { "true" } else { "false" },
            "structuredData": {
                "intent": pick(&mut rng, &INTENTS),
                "appointment_booked": rng.random_bool(0.4),
            },
        })
    };
    let ended_reason = pick(&mut rng, &ENDED_REASONS);
    let transcript: Vec<String> = messages
        .iter()
        .map(|m| {
            let who = if m["role"] == "bot" { "AI" } else { "User" };
            format!("{who}: {}", m["message"].as_str().unwrap_or_default())
        })
        .collect();
    let when_ended = |value: Value| if ended { value } else { Value::Null };
    let mut call = Map::new();
    call.insert("id".into(), integer(&renderer.call_id(slot.index)));
    call.insert("assistant_id".into(), integer(renderer.agent_id(slot)));
    call.insert(
        "started_at".into(),
        if started {
            json!(iso(start_ms))
        } else {
            Value::Null
        },
    );
    call.insert(
        "ended_at".into(),
        when_ended(json!(iso(start_ms + duration_ms))),
    );
    call.insert("call_status".into(), json!(state));
    call.insert("ended_reason".into(), when_ended(json!(ended_reason)));
    call.insert(
        "transcript".into(),
        if started {
            json!(transcript.join("\n"))
        } else {
            Value::Null
        },
    );
    call.insert("messages".into(), Value::Array(messages.to_vec()));
    call.insert("source_number".into(), source);
    call.insert("destination_number".into(), destination);
    call.insert("call_type".into(), json!(call_type));
    call.insert("duration_ms".into(), when_ended(json!(duration_ms)));
    if ended {
        call.insert("analysis".into(), analysis);
    }
    call.insert(
        "summary".into(),
        when_ended(if documented_shape {
            json!(summary)
        } else {
            Value::Null
        }),
    );
    call.insert(
        "outcome".into(),
        when_ended(if failure.is_none() {
            json!(outcome)
        } else {
            json!("unresolved")
        }),
    );
    call.insert("failure_reason".into(), when_ended(json!(failure)));
    Value::Object(call)
}

/// The call's messages, as the assistant (`bot`) and the caller (`user`) take turns: each
/// with its text, epoch times in milliseconds, seconds from the start and length in
/// milliseconds.
fn messages(renderer: &Renderer, slot: CallSlot, start_ms: i64, duration_ms: i64) -> Vec<Value> {
    let mut rng = renderer.rng(slot.index, SALT ^ 0x3E55);
    let n = rng.random_range(4..12i64);
    let step = duration_ms / (n + 1);
    (0..n)
        .map(|k| {
            let from_start = step * k + rng.random_range(0..400);
            let length = step * rng.random_range(40..90) / 100;
            let bot = k % 2 == 0;
            let text = if bot {
                pick(&mut rng, &SUMMARIES).to_string()
            } else {
                format!("Hi, this is {}.", pick(&mut rng, &NAMES))
            };
            json!({
                "role": if bot { "bot" } else { "user" },
                "message": text,
                "time": start_ms + from_start,
                "endTime": start_ms + from_start + length,
                "secondsFromStart": from_start as f64 / 1000.0,
                "duration": length,
            })
        })
        .collect()
}
