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

use super::{DeleteRecord, Simulator, SortOrder};

const KEY_HEADER: &str = "x-api-key";

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/retrieve-call-logs/{agent_id}", get(list_call_logs))
        .route("/v1/retrieve-call-log/{call_id}", get(get_call_log))
        .route("/v1/call-log/{call_id}", delete(delete_call_log))
        .route("/v1/all-agents", get(all_agents))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"detail": "Invalid or missing API key"})),
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
        return unauthorized();
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
    let Some(agent) = sim.lock().data.agent(&agent_id) else {
        return not_found("Agent");
    };
    sim.churn(agent);
    let (total, slots, renderer) = {
        let mut state = sim.lock();
        let newest_first = state.order == SortOrder::NewestFirst;
        let (total, slots) = state.data.list(
            agent,
            since_ms,
            label.map(String::as_str),
            newest_first,
            page,
            page_size,
        );
        (total, slots, state.data.renderer())
    };
    let calls: Vec<_> = slots.into_iter().map(|s| renderer.render(s)).collect();
    Json(json!({
        "total_count": total,
        "page": page,
        "page_size": page_size,
        "total_pages": total.div_ceil(page_size),
        "call_logs": calls,
    }))
    .into_response()
}

async fn get_call_log(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if !sim.authorized(&headers, KEY_HEADER) {
        return unauthorized();
    }
    let state = sim.lock();
    match state.data.slot_of(&call_id) {
        Some(slot) => {
            Json(json!({"call_log": state.data.render(slot), "status": "200"})).into_response()
        }
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
    } else if state.data.delete(&call_id, recording_only) {
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
        StatusCode::UNAUTHORIZED => unauthorized(),
        _ => not_found("Call log"),
    }
}

async fn all_agents(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    sim.begin_request().await;
    if !sim.authorized(&headers, KEY_HEADER) {
        return unauthorized();
    }
    let agents: Vec<_> = sim
        .agents()
        .into_iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "name": format!("Demo agent {}", i + 1)}))
        .collect();
    Json(json!(agents)).into_response()
}
