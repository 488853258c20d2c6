//! Faults the simulator can inject, each switchable, to prove the client survives them.
//!
//! With probability `rate`, a request meets the next of the enabled `FaultKind`s (they take
//! turns): a 429 or 503 with `Retry-After`, a plain 500, a connection dropped halfway through
//! the body, a body truncated into invalid JSON, or a slow answer. Faults that strike before the handler
//! (429, 503, 500) leave the data untouched; faults that mangle the answer (drop, truncate,
//! slow) strike after the handler ran, as a real server that acted but failed to answer.
//! `Churn` inserts and deletes calls while a walk is under way. Every request is logged with
//! the fault it met (`RequestRecord`), so a test can prove each kind struck and what the
//! client did next (waited out `Retry-After`, sent again). Answers can also be made to serve a
//! call without its id (`Simulator::serve_without_id`): a bad record rather than a bad answer.

use std::str::FromStr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;

use super::Simulator;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    TooManyRequests,
    Unavailable,
    ServerError,
    DropConnection,
    TruncateBody,
    Slow,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::TooManyRequests,
        FaultKind::Unavailable,
        FaultKind::ServerError,
        FaultKind::DropConnection,
        FaultKind::TruncateBody,
        FaultKind::Slow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "429",
            FaultKind::Unavailable => "503",
            FaultKind::ServerError => "500",
            FaultKind::DropConnection => "drop",
            FaultKind::TruncateBody => "truncate",
            FaultKind::Slow => "slow",
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("'{s}' is not a fault (expected 429, 503, 500, drop, truncate or slow)")
            })
    }
}

/// Which faults strike, how often, and their parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// The share of requests that meet a fault, 0..=1.
    pub rate: f64,
    pub kinds: Vec<FaultKind>,
    /// `Retry-After` sent with 429 and 503, in seconds.
    pub retry_after_secs: u64,
    /// How long a slow answer takes.
    pub slow: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
            retry_after_secs: 1,
            slow: Duration::from_millis(1500),
        }
    }
}

/// Calls inserted and deleted at the provider while clients walk its pages: on each list
/// request, with these probabilities, one call of the agent it lists (of any agent, for an
/// account-wide list) is added and one, of any age, deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Churn {
    pub insert_chance: f64,
    pub delete_chance: f64,
}

/// A request as the simulator received it, and the fault it met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub at: std::time::Instant,
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    pub fault: Option<FaultKind>,
}

/// The fault a request meets, if any; logs the request either way.
fn draw(sim: &Simulator, request: &Request) -> Option<(FaultKind, FaultConfig)> {
    let mut state = sim.lock();
    let config = state.faults.clone();
    let struck = config.rate > 0.0
        && !config.kinds.is_empty()
        && state.rng.random_bool(config.rate.clamp(0.0, 1.0));
    // The enabled kinds take turns, so a handful of faults already shows every kind.
    let kind = struck.then(|| config.kinds[state.faults_served as usize % config.kinds.len()]);
    state.request_log.push(RequestRecord {
        at: std::time::Instant::now(),
        method: request.method().to_string(),
        target: request
            .uri()
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        fault: kind,
    });
    let kind = kind?;
    state.faults_served += 1;
    Some((kind, config))
}

/// Removes, anywhere in `value`, every object member whose value is one of `ids`; says
/// whether it removed any.
fn strip_ids(value: &mut serde_json::Value, ids: &[String]) -> bool {
    use serde_json::Value;
    let is_hidden = |v: &Value| match v {
        Value::String(s) => ids.contains(s),
        Value::Number(n) => ids.contains(&n.to_string()),
        _ => false,
    };
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|_, v| !is_hidden(v));
            let mut removed = map.len() != before;
            for v in map.values_mut() {
                removed |= strip_ids(v, ids);
            }
            removed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |removed, v| strip_ids(v, ids) | removed),
        _ => false,
    }
}

/// `response` with the hidden ids taken out of its JSON body, if it holds any.
async fn without_hidden_ids(sim: &Simulator, response: Response) -> Response {
    let ids = sim.lock().hidden_ids.clone();
    if ids.is_empty() || !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if !ids.iter().any(|id| text.contains(id.as_str())) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let stripped = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|mut v| strip_ids(&mut v, &ids).then(|| v.to_string()));
    match stripped {
        Some(text) => {
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

fn retry_later(path: &str, status: StatusCode, secs: u64) -> Response {
    let mut response = super::error_response(path, status, "Please slow down and retry later");
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// The middleware that injects faults.
pub async fn inject(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let Some((kind, config)) = draw(&sim, &request) else {
        let response = next.run(request).await;
        return without_hidden_ids(&sim, response).await;
    };
    let path = request.uri().path().to_string();
    match kind {
        FaultKind::TooManyRequests => retry_later(
            &path,
            StatusCode::TOO_MANY_REQUESTS,
            config.retry_after_secs,
        ),
        FaultKind::Unavailable => retry_later(
            &path,
            StatusCode::SERVICE_UNAVAILABLE,
            config.retry_after_secs,
        ),
        FaultKind::ServerError => super::error_response(
            &path,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ),
        FaultKind::Slow => {
            tokio::time::sleep(config.slow).await;
            let response = next.run(request).await;
            without_hidden_ids(&sim, response).await
        }
        FaultKind::DropConnection | FaultKind::TruncateBody => {
            let response = without_hidden_ids(&sim, next.run(request).await).await;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            if kind == FaultKind::TruncateBody {
                let mut parts = parts;
                parts.headers.remove(axum::http::header::CONTENT_LENGTH);
                return Response::from_parts(parts, Body::from(half));
            }
            // Half the body, then an error: the server aborts the connection mid-body.
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault: dropped",
                )),
            ];
            let mut parts = parts;
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)))
        }
    }
}
