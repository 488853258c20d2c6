//! Ultravox's API as the simulator serves it: list calls account-wide (filtered by creation
//! date and agent, sorted by `created` either way, cursor pages), read one call, its messages
//! (cursor pages, `mode=last_stage|in_call`), delete it (204, then 404), and list the calls
//! deleted at the provider (tombstones, `GET /api/deleted_calls`).
//!
//! What bites in the real API is here too: `next`/`previous` are absolute URLs built from the
//! request's `Host` (a client must keep their query, not their address); `agentIds` comes
//! repeated or comma-separated; `fromDate`/`toDate` are inclusive and may be dates alone;
//! calls created in the last hours may not have ended yet, and `complete_pending` ends them,
//! seen by list and by id alike; messages default to the last stage of a call, and some calls
//! have two; deleted calls, whoever deleted them, are served as tombstones filtered by their
//! creation date. This file owns the routes, queries and pages; `render` owns the JSON.
//!
//! Ultravox documents no error body for these endpoints; the simulator answers the way Django
//! REST Framework (which Ultravox's API evidently runs on) does: `{"detail": "..."}`, and
//! `{"<field>": ["..."]}` for a bad query parameter (a guess). Cursors are opaque to clients
//! but decodable: hex of `p=<position>`, with `r=1&` for a backward page, as DRF does in base64.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

mod render;

pub use render::{is_unfinished, render};

use super::data::{DeletedCall, KeysetQuery};
use super::{DeleteRecord, Simulator, SortOrder};
use crate::providers::ProviderKind;
use crate::time::parse_timestamp;
use render::{messages, tombstone};

const KIND: ProviderKind = ProviderKind::Ultravox;

/// Results a page holds unless `pageSize` says otherwise (undocumented: a guess).
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The largest `pageSize` honoured; larger asks get this many (undocumented: a guess).
pub const MAX_PAGE_SIZE: usize = 500;

pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{call_id}", get(get_call).delete(delete_call))
        .route("/api/calls/{call_id}/messages", get(list_messages))
        .route("/api/deleted_calls", get(list_deleted))
}

/// A DRF-style error: `{"detail": message}`.
fn error(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// Why a list request's query is refused.
enum BadQuery {
    /// A parameter's value, answered 400 `{"<field>": [message]}`.
    Parameter(&'static str, String),
    /// A cursor this server did not make, answered 404 as DRF does.
    Cursor,
}

impl IntoResponse for BadQuery {
    fn into_response(self) -> Response {
        match self {
            BadQuery::Parameter(field, message) => {
                let mut body = Map::new();
                body.insert(field.into(), json!([message]));
                (StatusCode::BAD_REQUEST, Json(Value::Object(body))).into_response()
            }
            BadQuery::Cursor => error(StatusCode::NOT_FOUND, "Invalid cursor"),
        }
    }
}

/// Refuses a request without the key in `X-API-Key`.
fn check(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    (!sim.authorized(headers, "x-api-key")).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided or are invalid.",
        )
    })
}

/// Where a page starts: past the item with this key in the walk's order, or before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    key: u32,
    backward: bool,
}

impl Position {
    fn encode(self) -> String {
        let text = if self.backward {
            format!("r=1&p={}", self.key)
        } else {
            format!("p={}", self.key)
        };
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(cursor: &str) -> Option<Position> {
        let bytes = (0..cursor.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let text = String::from_utf8(bytes).ok()?;
        let (backward, rest) = match text.strip_prefix("r=1&") {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let key = rest.strip_prefix("p=")?.parse().ok()?;
        Some(Position { key, backward })
    }
}

/// The query of a list request, read and checked.
struct ListQuery {
    /// The request's parameters as sent, for building `next`/`previous`.
    params: Vec<(String, String)>,
    /// `None`: every agent; otherwise the agents asked for that exist.
    agents: Option<Vec<u16>>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    page_size: usize,
    position: Option<Position>,
    newest_first: bool,
}

/// A date-time, or a date alone: the start of that day, or its end for `end_of_day`.
fn parse_date(text: &str, end_of_day: bool) -> Option<i64> {
    if let Some(t) = parse_timestamp(text) {
        return Some(t.timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let start = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(if end_of_day {
        start + 86_400_000 - 1
    } else {
        start
    })
}

/// Whether `text` is a UUID in its hyphenated form.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn read_query(
    sim: &Simulator,
    params: Vec<(String, String)>,
    sortable: bool,
) -> Result<ListQuery, BadQuery> {
    let mut query = ListQuery {
        params: Vec::new(),
        agents: None,
        from_ms: None,
        to_ms: None,
        page_size: DEFAULT_PAGE_SIZE,
        position: None,
        newest_first: sim.lock().order == SortOrder::NewestFirst,
    };
    for (name, value) in &params {
        match name.as_str() {
            "agentIds" => {
                // Repeated (`agentIds=a&agentIds=b`) or comma-separated: both are accepted.
                let data = sim.lock();
                let known = query.agents.get_or_insert_with(Vec::new);
                for id in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !is_uuid(id) {
                        return Err(BadQuery::Parameter(
                            "agentIds",
                            format!("“{id}” is not a valid UUID."),
                        ));
                    }
                    known.extend(data.data.get(KIND).agent(id));
                }
            }
            field @ ("fromDate" | "toDate") => {
                let to = field == "toDate";
                let Some(ms) = parse_date(value, to) else {
                    let field = if to { "toDate" } else { "fromDate" };
                    return Err(BadQuery::Parameter(
                        field,
                        "Enter a valid date/time.".into(),
                    ));
                };
                if to {
                    query.to_ms = Some(ms);
                } else {
                    query.from_ms = Some(ms);
                }
            }
            "pageSize" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => query.page_size = n.min(MAX_PAGE_SIZE),
                _ => {
                    return Err(BadQuery::Parameter(
                        "pageSize",
                        "A valid integer is required.".into(),
                    ))
                }
            },
            "cursor" => match Position::decode(value) {
                Some(p) => query.position = Some(p),
                None => return Err(BadQuery::Cursor),
            },
            "sort" if sortable => match value.as_str() {
                "created" => query.newest_first = false,
                "-created" => query.newest_first = true,
                other => {
                    return Err(BadQuery::Parameter(
                        "sort",
                        format!("“{other}” is not a field calls can be sorted by."),
                    ))
                }
            },
            _ => {}
        }
    }
    query.params = params;
    Ok(query)
}

/// An absolute link to the same endpoint and query, at another cursor.
fn link(headers: &HeaderMap, path: &str, params: &[(String, String)], at: Position) -> Value {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let Ok(mut url) = reqwest::Url::parse(&format!("http://{host}{path}")) else {
        return Value::Null;
    };
    {
        let mut q = url.query_pairs_mut();
        for (name, value) in params.iter().filter(|(name, _)| name != "cursor") {
            q.append_pair(name, value);
        }
        q.append_pair("cursor", &at.encode());
    }
    Value::String(url.into())
}

/// The `next` and `previous` links of a page whose keys run from `first` to `last`;
/// `more` says whether items lie beyond the page in the direction it was read.
fn links(
    headers: &HeaderMap,
    path: &str,
    query: &ListQuery,
    ends: Option<(u32, u32)>,
    more: bool,
) -> (Value, Value) {
    let backward = query.position.is_some_and(|p| p.backward);
    let at = |key, backward| link(headers, path, &query.params, Position { key, backward });
    match ends {
        None => (Value::Null, Value::Null),
        Some((first, last)) if backward => (
            at(last, false),
            if more { at(first, true) } else { Value::Null },
        ),
        Some((first, last)) => (
            if more { at(last, false) } else { Value::Null },
            if query.position.is_some() {
                at(first, true)
            } else {
                Value::Null
            },
        ),
    }
}

/// One page of `items` (in the walk's order, keys rising or falling with it) from `at`;
/// and whether more lie beyond it in the direction read.
fn page_of<T: Clone>(
    items: &[(u32, T)],
    falling: bool,
    at: Option<Position>,
    limit: usize,
) -> (Vec<(u32, T)>, bool) {
    let beyond = |key: u32, mark: u32| if falling { key < mark } else { key > mark };
    match at {
        Some(Position {
            key: mark,
            backward: true,
        }) => {
            let before: Vec<&(u32, T)> = items.iter().filter(|(k, _)| beyond(mark, *k)).collect();
            let from = before.len().saturating_sub(limit);
            let page = before[from..].iter().map(|&item| item.clone()).collect();
            (page, from > 0)
        }
        at => {
            let mut rest = items
                .iter()
                .filter(|(k, _)| at.is_none_or(|p| beyond(*k, p.key)));
            let page: Vec<(u32, T)> = rest.by_ref().take(limit).cloned().collect();
            (page, rest.next().is_some())
        }
    }
}

fn envelope(results: Vec<Value>, next: Value, previous: Value, total: usize) -> Response {
    Json(json!({ "results": results, "next": next, "previous": previous, "total": total }))
        .into_response()
}

async fn list_calls(
    State(sim): State<Simulator>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let query = match read_query(&sim, params, true) {
        Ok(q) => q,
        Err(refused) => return refused.into_response(),
    };
    // Churn strikes the first agent asked for, or the whole account.
    sim.churn(KIND, query.agents.as_ref().and_then(|a| a.first().copied()));
    let backward = query.position.is_some_and(|p| p.backward);
    let (slots, more, total, renderer) = {
        let mut state = sim.lock();
        let data = state.data.get_mut(KIND);
        // A backward page is a forward page read the other way, turned round.
        let (mut slots, more, total) = data.keyset_counted(
            query.agents.as_deref(),
            &KeysetQuery {
                agent: None,
                newest_first: query.newest_first != backward,
                after: query.position.map(|p| p.key),
                from_ms: query.from_ms,
                to_ms: query.to_ms,
                limit: query.page_size,
            },
        );
        if backward {
            slots.reverse();
        }
        (slots, more, total, data.renderer())
    };
    let ends = slots
        .first()
        .zip(slots.last())
        .map(|(f, l)| (f.index, l.index));
    let (next, previous) = links(&headers, "/api/calls", &query, ends, more);
    let results = slots.into_iter().map(|s| render(&renderer, s)).collect();
    envelope(results, next, previous, total)
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
        Some((slot, renderer)) => Json(render(&renderer, slot)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not found."),
    }
}

async fn list_messages(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let mut all_stages = false;
    for (name, value) in &params {
        if name == "mode" {
            match value.as_str() {
                "last_stage" => all_stages = false,
                "in_call" => all_stages = true,
                other => {
                    return BadQuery::Parameter("mode", format!("“{other}” is not a valid choice."))
                        .into_response()
                }
            }
        }
    }
    let query = match read_query(&sim, params, false) {
        Ok(q) => q,
        Err(refused) => return refused.into_response(),
    };
    let found = sim.find_call(KIND, &call_id);
    let Some((slot, renderer)) = found else {
        return error(StatusCode::NOT_FOUND, "Not found.");
    };
    let (stages, last_stage) = messages(&renderer, slot);
    let items: Vec<(u32, Value)> = stages
        .into_iter()
        .filter(|(stage, _)| all_stages || *stage == last_stage)
        .map(|(_, m)| m)
        .enumerate()
        .map(|(i, m)| (i as u32, m))
        .collect();
    let total = items.len();
    let (page, more) = page_of(&items, false, query.position, query.page_size);
    let ends = page.first().zip(page.last()).map(|(f, l)| (f.0, l.0));
    let path = format!("/api/calls/{call_id}/messages");
    let (next, previous) = links(&headers, &path, &query, ends, more);
    envelope(
        page.into_iter().map(|(_, m)| m).collect(),
        next,
        previous,
        total,
    )
}

async fn delete_call(
    State(sim): State<Simulator>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    let refused = check(&sim, &headers);
    let mut state = sim.lock();
    let response = match refused {
        Some(refused) => refused,
        None if state.data.get_mut(KIND).delete(&call_id, false) => {
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Not found."),
    };
    state.deletes.push(DeleteRecord {
        provider: "ultravox",
        call_id,
        recording_only: false,
        status: response.status().as_u16(),
    });
    response
}

async fn list_deleted(
    State(sim): State<Simulator>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    sim.begin_request().await;
    if let Some(refused) = check(&sim, &headers) {
        return refused;
    }
    let query = match read_query(&sim, params, false) {
        Ok(q) => q,
        Err(refused) => return refused.into_response(),
    };
    let (deleted, renderer) = {
        let state = sim.lock();
        let data = state.data.get(KIND);
        let created = query.from_ms.unwrap_or(i64::MIN)
            ..query.to_ms.map_or(i64::MAX, |t| t.saturating_add(1));
        (data.deleted(created), data.renderer())
    };
    // Oldest first by creation; the walk's order decides which end a page starts from.
    let mut items: Vec<(u32, DeletedCall)> = deleted
        .into_iter()
        .filter(|d| {
            query
                .agents
                .as_ref()
                .is_none_or(|agents| agents.contains(&d.slot.meta.agent))
        })
        .map(|d| (d.slot.index, d))
        .collect();
    if query.newest_first {
        items.reverse();
    }
    let total = items.len();
    let (page, more) = page_of(&items, query.newest_first, query.position, query.page_size);
    let ends = page.first().zip(page.last()).map(|(f, l)| (f.0, l.0));
    let (next, previous) = links(&headers, "/api/deleted_calls", &query, ends, more);
    let results = page
        .into_iter()
        .map(|(_, d)| tombstone(&renderer, d))
        .collect();
    envelope(results, next, previous, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_decode_to_what_they_encode_and_nothing_else() {
        for at in [
            Position {
                key: 0,
                backward: false,
            },
            Position {
                key: 48_611,
                backward: true,
            },
        ] {
            assert_eq!(Position::decode(&at.encode()), Some(at));
        }
        for bogus in ["", "zz", "703d", "703d2d31", "abc"] {
            assert_eq!(Position::decode(bogus), None, "{bogus}");
        }
    }

    #[test]
    fn pages_walk_both_ways_over_the_same_items() {
        let items: Vec<(u32, u32)> = (0..10u32).rev().map(|k| (k * 3, k)).collect();
        let (first, more) = page_of(&items, true, None, 4);
        assert_eq!(
            first.iter().map(|i| i.0).collect::<Vec<_>>(),
            [27, 24, 21, 18]
        );
        assert!(more);
        let at = |key, backward| Some(Position { key, backward });
        let (second, _) = page_of(&items, true, at(18, false), 4);
        assert_eq!(
            second.iter().map(|i| i.0).collect::<Vec<_>>(),
            [15, 12, 9, 6]
        );
        let (back, more) = page_of(&items, true, at(15, true), 2);
        assert_eq!(back.iter().map(|i| i.0).collect::<Vec<_>>(), [21, 18]);
        assert!(more);
        let (last, more) = page_of(&items, true, at(6, false), 4);
        assert_eq!(last.iter().map(|i| i.0).collect::<Vec<_>>(), [3, 0]);
        assert!(!more);
    }

    #[test]
    fn dates_may_leave_out_the_time() {
        assert_eq!(parse_date("2026-03-01", false), Some(1_772_323_200_000));
        assert_eq!(parse_date("2026-03-01", true), Some(1_772_409_599_999));
        assert_eq!(
            parse_date("2026-03-01T00:00:01Z", true),
            Some(1_772_323_201_000)
        );
        assert_eq!(parse_date("March", false), None);
        assert!(is_uuid("3c90c3cc-0d44-4b50-8888-8dd25736052a"));
        assert!(!is_uuid("agent-3c90c3cc0d44"));
    }
}
