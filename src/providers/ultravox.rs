//! Ultravox (`https://api.ultravox.ai`, header `X-API-Key`).
//!
//! Ultravox lists calls account-wide, so a sync without `--agent` has one stream, the whole
//! account; `--agent ID` narrows a stream with `agentIds`. A walk has two parts, one cursor
//! chain. First the calls: `GET /api/calls` with `pageSize` and `fromDate` (inclusive, by
//! creation), following `next`; a stream's first walk, `--full` and `--window all` send no
//! `fromDate` and read everything, later walks start at the stream's high-water mark (the
//! newest `created` a complete walk archived) minus `OVERLAP`, and `--window` starts at
//! `now - window`. The order calls come in does not matter, so no `sort` is sent. Then, from
//! the last page of calls, the tombstones: `GET /api/deleted_calls` with no date filter,
//! because a deletion can hit a call of any age and the archive's creation range is not known
//! here; the archive removes each listed call it holds, with an audit row, once, and ignores
//! the others. Reading tombstones after the last page of calls means a call deleted while the
//! calls were walked is gone from the archive when the sync ends, even if a page listed it.
//!
//! `next` is an absolute URL; only its query is kept, and it is sent to the configured base
//! URL's own path for that walk, never to the address `next` names. A cursor is the walk it
//! belongs to and the query to send, so a killed walk resumes along its chain.
//!
//! Messages are fetched with the listing, not in a separate pass: when a page (or a read by
//! id) holds a call that has ended, its messages are read (`GET /api/calls/{id}/messages`,
//! `mode=in_call`, since the default mode returns only the last stage of a multi-stage call;
//! `in_call` leaves out the stages' configured initial messages), `MESSAGE_FETCHES` calls at
//! a time through the one `HttpClient` and its rate limit, and a page is returned only once
//! every one of its calls has its messages. A re-walk reads again the messages of the calls
//! it lists (the overlap of an incremental sync; everything with `--full`). A call that never
//! joined has none and none are asked for; a call whose messages answer 404 was deleted while
//! it was read and is left out of its page (its tombstone follows). Messages become
//! `transcript_turns` (role without its `MESSAGE_ROLE_` prefix, lower case; start and end in
//! milliseconds from the `"0.480s"` timespans) and tool calls, paired with their results by
//! `invocationId`, `tool_calls` rows.
//!
//! Ultravox has no call status: `calls.status` is derived, `ended` once `ended` is set, else
//! `joined` once `joined` is, else `created`. A call is settled once it has ended and its
//! billing is no longer `BILLING_STATUS_PENDING` (billed duration and tokens are final then);
//! until then it is read again by id. `duration_ms` is `ended - joined`, or `billedDuration`
//! without both. DELETE removes the call with its messages and recordings (204); a repeat
//! answers 404 [guess], read as already gone, and any other answer, another 2xx included, is
//! an error. Error bodies are undocumented [guess]; `HttpResponse::error` reads any shape.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::HeaderValue;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::http::{endpoint_url, secret_header, HttpResponse};
use super::json::Fields;
use super::{
    CallRecord, DeleteMode, DeleteOutcome, HttpClient, Page, PageCursor, Pagination, Participant,
    Provider, ProviderError, ProviderKind, Scope, StreamState, ToolCall, TranscriptTurn,
    WalkOptions, WalkPlan,
};
use crate::secret::ApiKey;
use crate::time::{format_timestamp, normalize_timestamp, parse_timestamp};

const KIND: ProviderKind = ProviderKind::Ultravox;

/// Calls (and tombstones) asked for per page. `pageSize` has no documented default or
/// maximum [guess]: a server that serves fewer per page is followed just the same.
pub const CALLS_PER_PAGE: u32 = 100;

/// Messages asked for per page [guess, as above].
pub const MESSAGES_PER_PAGE: u32 = 200;

/// Calls of one page whose messages are read at once.
pub const MESSAGE_FETCHES: usize = 8;

/// Subtracted from the high-water mark when choosing `fromDate`, so calls created late or with
/// skewed clocks are still read.
pub const OVERLAP: chrono::Duration = chrono::Duration::hours(1);

/// Every stage's messages; the default (`last_stage`) returns the last stage's only.
const MESSAGES_MODE: &str = "in_call";

/// Billing not done yet: the call may still change (billed duration, tokens).
const BILLING_PENDING: &str = "BILLING_STATUS_PENDING";

pub struct Ultravox {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
}

/// Which part of a walk a cursor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Part {
    /// `GET /api/calls`.
    Calls,
    /// `GET /api/deleted_calls`.
    Deleted,
}

impl Part {
    fn path(self) -> &'static [&'static str] {
        match self {
            Part::Calls => &["api", "calls"],
            Part::Deleted => &["api", "deleted_calls"],
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Part::Calls => "GET /api/calls",
            Part::Deleted => "GET /api/deleted_calls",
        }
    }
}

/// One page of a walk: its part and the query string to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UltravoxCursor {
    walk: Part,
    query: String,
}

impl UltravoxCursor {
    fn to_cursor(&self) -> PageCursor {
        PageCursor(serde_json::json!({ "walk": self.walk, "query": self.query }))
    }
}

/// What one page of a walk listed.
enum Listed {
    Calls(Vec<CallRecord>),
    /// The ids of the tombstones.
    Deleted(Vec<String>),
}

/// A list answer: `{results, next, previous, total}`, of which only `results` is required.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    next: Option<String>,
}

/// The query a walk's first page sends: a page size, and the scope's agent and the walk's
/// start where they apply.
fn first_query(scope: &Scope, from_date: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("pageSize", &CALLS_PER_PAGE.to_string());
    if let Some(agent) = &scope.agent_id {
        query.append_pair("agentIds", agent);
    }
    if let Some(from) = from_date {
        query.append_pair("fromDate", from);
    }
    query.finish()
}

/// The query of a `next` link, to send to our own address; `None` for a link without one.
/// A relative link is read against the base URL.
fn next_query(base: &str, next: &str) -> Option<String> {
    let url = match Url::parse(next) {
        Ok(url) => url,
        Err(_) => Url::parse(base).ok()?.join(next).ok()?,
    };
    url.query().filter(|q| !q.is_empty()).map(str::to_string)
}

/// Where the calls part of a walk starts: everywhere for `--full`, a stream's first walk and
/// `--window all`; `now - window` for another `--window`; the high-water mark minus `OVERLAP`
/// otherwise.
pub fn from_date(
    state: &StreamState,
    now: DateTime<Utc>,
    options: &WalkOptions,
) -> Option<DateTime<Utc>> {
    options.walk_start(state, now, OVERLAP)
}

impl Ultravox {
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey) -> Self {
        Ultravox {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn url(&self, segments: &[&str], query: Option<&str>) -> Result<Url, ProviderError> {
        let mut url = endpoint_url(KIND, &self.base_url, segments)?;
        url.set_query(query);
        Ok(url)
    }

    fn auth(&self) -> HeaderValue {
        secret_header(self.key.expose())
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
                KIND,
                endpoint,
                |client| {
                    client
                        .request(method.clone(), url.clone())
                        .header("X-API-Key", auth.clone())
                },
                decode,
            )
            .await
    }

    /// The query of the page after the one `query` asked for, from its `next`; `None` at
    /// the end. A `next` without a query, or naming the same page again, is malformed.
    fn follow(
        &self,
        query: &str,
        next: Option<&str>,
        endpoint: &str,
    ) -> Result<Option<String>, ProviderError> {
        let Some(next) = next else { return Ok(None) };
        let malformed = |message: String| ProviderError::Malformed {
            provider: KIND,
            endpoint: endpoint.to_string(),
            message,
        };
        let next_query = next_query(&self.base_url, next)
            .ok_or_else(|| malformed(format!("`next` has no query to follow: {next}")))?;
        if next_query == query {
            return Err(malformed(format!("`next` names the page it is on: {next}")));
        }
        Ok(Some(next_query))
    }

    /// Every message of a call, all stages, following its pages; `None` when the call is gone.
    async fn fetch_messages(&self, call_id: &str) -> Result<Option<Vec<Value>>, ProviderError> {
        let path = ["api", "calls", call_id, "messages"];
        let endpoint = format!("GET /api/calls/{call_id}/messages");
        let mut query = form_urlencoded::Serializer::new(String::new())
            .append_pair("mode", MESSAGES_MODE)
            .append_pair("pageSize", &MESSAGES_PER_PAGE.to_string())
            .finish();
        let mut messages = Vec::new();
        loop {
            let url = self.url(&path, Some(&query))?;
            let page = self
                .send(reqwest::Method::GET, url, &endpoint, |response| {
                    if response.status == reqwest::StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    if !response.status.is_success() {
                        return Err(response.error(KIND, &endpoint));
                    }
                    let envelope: Envelope = serde_json::from_slice(&response.body)
                        .map_err(|e| response.malformed(KIND, &endpoint, e))?;
                    let results = envelope
                        .results
                        .unwrap_or_default()
                        .into_iter()
                        .map(|raw| serde_json::from_str::<Value>(raw.get()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| response.malformed(KIND, &endpoint, e))?;
                    Ok(Some((results, envelope.next)))
                })
                .await?;
            let Some((results, next)) = page else {
                return Ok(None);
            };
            messages.extend(results);
            match self.follow(&query, next.as_deref(), &endpoint)? {
                Some(following) => query = following,
                None => return Ok(Some(messages)),
            }
        }
    }

    /// The call with its messages when it has ended; `None` when it is gone.
    async fn with_messages(
        &self,
        mut call: CallRecord,
    ) -> Result<Option<CallRecord>, ProviderError> {
        if call.end_time.is_none() || call.start_time.is_none() {
            // Still running (messages may follow), or never joined (nobody spoke).
            return Ok(Some(call));
        }
        let Some(messages) = self.fetch_messages(&call.id).await? else {
            tracing::info!(
                "{KIND} call {} vanished while its messages were read",
                call.id
            );
            return Ok(None);
        };
        let (turns, tools) = transcript_of(&messages);
        call.transcript = turns;
        call.tool_calls = tools;
        Ok(Some(call))
    }
}

#[async_trait]
impl Provider for Ultravox {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn pagination(&self) -> Pagination {
        Pagination::KeysetCursors
    }

    /// Ultravox lists calls account-wide: one stream, the account.
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
        let from = from_date(state, now, options).map(format_timestamp);
        let calls = UltravoxCursor {
            walk: Part::Calls,
            query: first_query(scope, from.as_deref()),
        };
        WalkPlan {
            cursors: vec![calls.to_cursor()],
            checkpoint: serde_json::json!({ "fromDate": from }),
            description: match &from {
                Some(t) => format!("calls created since {t}, then every deleted call"),
                None => "every call, then every deleted call".into(),
            },
            covers_everything: from.is_none() && scope.agent_id.is_none() && scope.label.is_none(),
        }
    }

    async fn fetch_page(&self, scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError> {
        if scope.label.is_some() {
            return Err(ProviderError::Unsupported {
                provider: KIND,
                what: "labels (--label)".into(),
            });
        }
        let cursor: UltravoxCursor =
            serde_json::from_value(cursor.0.clone()).map_err(|e| ProviderError::Malformed {
                provider: KIND,
                endpoint: "cursor".into(),
                message: e.to_string(),
            })?;
        let walk = cursor.walk;
        let endpoint = walk.endpoint();
        let url = self.url(walk.path(), Some(&cursor.query))?;
        let (listed, next) = self
            .send(reqwest::Method::GET, url, endpoint, |response| {
                if !response.status.is_success() {
                    return Err(response.error(KIND, endpoint));
                }
                let envelope: Envelope = serde_json::from_slice(&response.body)
                    .map_err(|e| response.malformed(KIND, endpoint, e))?;
                let results = envelope.results.unwrap_or_default().into_iter();
                let listed = match walk {
                    Part::Calls => results
                        .map(|raw| parse_call(raw.get()))
                        .collect::<Result<_, _>>()
                        .map(Listed::Calls),
                    Part::Deleted => results
                        .map(|raw| tombstone_id(raw.get()))
                        .collect::<Result<_, _>>()
                        .map(Listed::Deleted),
                };
                let listed = listed.map_err(|e| response.unusable(KIND, endpoint, e))?;
                Ok((listed, envelope.next))
            })
            .await?;
        let following = self
            .follow(&cursor.query, next.as_deref(), endpoint)?
            .map(|query| UltravoxCursor { walk, query });
        match listed {
            Listed::Deleted(deleted) => Ok(Page {
                deleted,
                ..Page::of_calls(
                    Vec::new(),
                    following.iter().map(UltravoxCursor::to_cursor).collect(),
                )
            }),
            Listed::Calls(calls) => {
                let high_water = calls
                    .iter()
                    .filter_map(|c| c.created_at.as_deref().and_then(parse_timestamp))
                    .max()
                    .map(format_timestamp);
                // The tombstones are read once the last page of calls is in.
                let next = following.unwrap_or_else(|| UltravoxCursor {
                    walk: Part::Deleted,
                    query: first_query(scope, None),
                });
                let calls: Vec<CallRecord> = futures::stream::iter(calls)
                    .map(|call| self.with_messages(call))
                    .buffered(MESSAGE_FETCHES)
                    .try_filter_map(|call| async move { Ok(call) })
                    .try_collect()
                    .await?;
                Ok(Page {
                    high_water,
                    ..Page::of_calls(calls, vec![next.to_cursor()])
                })
            }
        }
    }

    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError> {
        let url = self.url(&["api", "calls", call_id], None)?;
        let endpoint = format!("GET /api/calls/{call_id}");
        let call = self
            .send(reqwest::Method::GET, url, &endpoint, |response| {
                response.optional_record(KIND, &endpoint, parse_call)
            })
            .await?;
        match call {
            Some(call) => self.with_messages(call).await,
            None => Ok(None),
        }
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
                provider: KIND,
                what: format!("the {mode} delete mode (its DELETE removes the whole call)"),
            });
        }
        let url = self.url(&["api", "calls", call_id], None)?;
        let endpoint = format!("DELETE /api/calls/{call_id}");
        self.send(reqwest::Method::DELETE, url, &endpoint, |response| {
            match response.status.as_u16() {
                204 => Ok(DeleteOutcome::Deleted),
                404 => Ok(DeleteOutcome::Gone),
                // Anything else, a 200 included, is not what Ultravox documents.
                _ => Err(response.error(KIND, &endpoint)),
            }
        })
        .await
    }
}

/// Why one record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("a record is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a record has no callId")]
    NoId,
}

/// The id of one tombstone (`CallTombstone`).
fn tombstone_id(raw: &str) -> Result<String, RecordError> {
    let value: Value = serde_json::from_str(raw)?;
    Fields::of(&value).text("callId").ok_or(RecordError::NoId)
}

/// A protobuf duration (`"0.480s"`, `"295s"`, `"-1.5s"`) in milliseconds.
pub fn duration_ms(text: &str) -> Option<i64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    seconds
        .is_finite()
        .then(|| (seconds * 1000.0).round() as i64)
}

/// Turns one `Call`, as Ultravox sent it, into a canonical record without its messages; the
/// text is kept whole as `raw_json`.
pub fn parse_call(raw: &str) -> Result<CallRecord, RecordError> {
    let value: Value = serde_json::from_str(raw)?;
    let f = Fields::of(&value);
    let id = f.text("callId").ok_or(RecordError::NoId)?;
    let time = |key: &str| f.text(key).and_then(|t| normalize_timestamp(&t));
    let (created, joined, ended) = (time("created"), time("joined"), time("ended"));
    let duration_ms = joined
        .as_deref()
        .and_then(parse_timestamp)
        .zip(ended.as_deref().and_then(parse_timestamp))
        .map(|(j, e)| (e - j).num_milliseconds())
        .or_else(|| f.text("billedDuration").as_deref().and_then(duration_ms));
    let status = if ended.is_some() {
        "ended"
    } else if joined.is_some() {
        "joined"
    } else {
        "created"
    };
    let billing_pending = f.text("billingStatus").as_deref() == Some(BILLING_PENDING);
    let end_reason = f.text("endReason");
    let ended_by = match end_reason.as_deref() {
        Some("hangup") => Some("user".to_string()),
        Some("agent_hangup") => Some("agent".to_string()),
        _ => None,
    };
    // `medium` holds one key, the transport (`webRtc`, `twilio`, `sip`, ...).
    let medium = f.get("medium").and_then(Value::as_object);
    let (interface, transport) = medium
        .and_then(|m| m.iter().next())
        .map_or((None, Fields::of(&Value::Null)), |(name, details)| {
            (Some(name.clone()), Fields::of(details))
        });
    let outgoing = transport.object("outgoing");
    let call_direction = if transport.get("outgoing").is_some() {
        Some("outbound".to_string())
    } else if transport.get("incoming").is_some() {
        Some("inbound".to_string())
    } else {
        None
    };
    let mut participants = Vec::new();
    for (role, key) in [("user", "to"), ("agent", "from")] {
        if let Some(number) = outgoing.text(key) {
            participants.push(Participant {
                role: Some(role.into()),
                phone_number: Some(number),
                ..Participant::default()
            });
        }
    }
    Ok(CallRecord {
        agent_id: f
            .text("agentId")
            .or_else(|| f.object("agent").text("agentId")),
        external_agent_id: None,
        status: Some(status.into()),
        settled: ended.is_some() && !billing_pending,
        created_at: created,
        start_time: joined,
        end_time: ended,
        duration_ms,
        call_direction,
        interface,
        recording_url: None,
        transcript_url: None,
        summary: f.text("summary").or_else(|| f.text("shortSummary")),
        end_reason,
        ended_by,
        redacted_at: None,
        metadata_json: f.json("metadata"),
        annotations_json: None,
        extra_metrics_json: None,
        participants,
        tool_calls: Vec::new(),
        events: Vec::new(),
        tags: Vec::new(),
        evaluations: Vec::new(),
        transcript: Vec::new(),
        raw_json: raw.to_string(),
        id,
    })
}

/// Text that may hold JSON, as JSON: itself when it parses, else a JSON string.
fn as_json(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => value.to_string(),
        Err(_) => Value::String(text.to_string()).to_string(),
    }
}

/// A call's messages as transcript turns, and its tool calls with their results. Fields a
/// message leaves out (proto3 defaults) read as missing.
pub fn transcript_of(messages: &[Value]) -> (Vec<TranscriptTurn>, Vec<ToolCall>) {
    let mut turns = Vec::with_capacity(messages.len());
    let mut tools = Vec::new();
    for message in messages {
        let m = Fields::of(message);
        let role = m.text("role");
        let span = match m.get("timespan") {
            Some(_) => m.object("timespan"),
            None => m.object("wallClockTimespan"),
        };
        let start_ms = span.text("start").as_deref().and_then(duration_ms);
        let text = m.text("text");
        if role.as_deref() == Some("MESSAGE_ROLE_TOOL_CALL") {
            let invocation = m.text("invocationId");
            let result = messages.iter().map(Fields::of).find(|r| {
                r.text("role").as_deref() == Some("MESSAGE_ROLE_TOOL_RESULT")
                    && invocation.is_some()
                    && r.text("invocationId") == invocation
            });
            tools.push(ToolCall {
                name: m.text("toolName"),
                start_offset_ms: start_ms,
                description: None,
                parameters_json: text.as_deref().map(as_json),
                output_json: result.and_then(|r| r.text("text")).as_deref().map(as_json),
            });
        }
        turns.push(TranscriptTurn {
            role: Some(
                role.as_deref()
                    .map(|r| r.strip_prefix("MESSAGE_ROLE_").unwrap_or(r))
                    .unwrap_or("UNSPECIFIED")
                    .to_ascii_lowercase(),
            ),
            text,
            start_ms,
            end_ms: span.text("end").as_deref().and_then(duration_ms),
            stt_ttfb_ms: None,
            tts_ttfb_ms: None,
        });
    }
    (turns, tools)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn adapter() -> Ultravox {
        let http = HttpClient::new(super::super::RetryPolicy::default(), None).unwrap();
        Ultravox::new(http, "http://127.0.0.1:9/proxy/", ApiKey::new("k"))
    }

    #[test]
    fn reads_a_call_with_its_nullable_and_derived_fields() {
        let raw = r#"{"callId":"3c90c3cc-0d44-4b50-8888-8dd25736052a","created":"2026-03-01T12:00:00.123456Z",
            "joined":"2026-03-01T12:00:05Z","ended":"2026-03-01T12:05:00.5Z","endReason":"agent_hangup",
            "billedDuration":"295.500s","billingStatus":"BILLING_STATUS_BILLED","shortSummary":"Short.",
            "summary":null,"agent":{"agentId":"9a1e8f5e-1111-4b50-8888-8dd25736052a","name":"a"},
            "agentId":null,"metadata":{"k":"v"},
            "medium":{"twilio":{"outgoing":{"to":"+14155550100","from":"+16285550199"}}},"sipDetails":null}"#;
        let call = parse_call(raw).unwrap();
        assert_eq!(call.created_at.as_deref(), Some("2026-03-01T12:00:00.123Z"));
        assert_eq!(call.status.as_deref(), Some("ended"));
        assert_eq!(call.duration_ms, Some(295_500));
        assert_eq!(call.summary.as_deref(), Some("Short."));
        assert_eq!(
            call.agent_id.as_deref(),
            Some("9a1e8f5e-1111-4b50-8888-8dd25736052a")
        );
        assert_eq!(call.ended_by.as_deref(), Some("agent"));
        assert_eq!(call.interface.as_deref(), Some("twilio"));
        assert_eq!(call.call_direction.as_deref(), Some("outbound"));
        assert_eq!(call.participants.len(), 2);
        assert_eq!(call.metadata_json.as_deref(), Some(r#"{"k":"v"}"#));
        assert!(call.settled);
        assert_eq!(call.raw_json, raw);

        let running = parse_call(
            r#"{"callId":"c","created":"2026-03-01T12:00:00Z","joined":"2026-03-01T12:00:05Z",
                "ended":null,"endReason":null,"billedDuration":null,"billingStatus":"BILLING_STATUS_PENDING"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                running.status.as_deref(),
                running.settled,
                running.duration_ms
            ),
            (Some("joined"), false, None)
        );
        let unbilled = parse_call(
            r#"{"callId":"c","created":"2026-03-01T12:00:00Z","ended":"2026-03-01T12:00:30Z",
                "endReason":"unjoined","billedDuration":"0s","billingStatus":"BILLING_STATUS_PENDING"}"#,
        )
        .unwrap();
        assert_eq!(unbilled.status.as_deref(), Some("ended"));
        assert_eq!(
            unbilled.duration_ms,
            Some(0),
            "billedDuration without joined"
        );
        assert!(!unbilled.settled, "billing still pending");
        assert!(matches!(
            parse_call(r#"{"created":"x"}"#),
            Err(RecordError::NoId)
        ));
    }

    #[test]
    fn messages_become_turns_in_milliseconds_and_tool_calls_with_results() {
        let messages = vec![
            json!({"role":"MESSAGE_ROLE_AGENT","text":"Hello","timespan":{"start":"0.480s","end":"2s"}}),
            json!({"role":"MESSAGE_ROLE_TOOL_CALL","text":"{\"a\":1}","toolName":"lookup","invocationId":"i1",
                   "wallClockTimespan":{"start":"2.5s","end":"2.5s"}}),
            json!({"role":"MESSAGE_ROLE_TOOL_RESULT","text":"not json","invocationId":"i1"}),
            json!({}),
        ];
        let (turns, tools) = transcript_of(&messages);
        assert_eq!(turns.len(), 4);
        assert_eq!(turns[0].role.as_deref(), Some("agent"));
        assert_eq!(
            (turns[0].start_ms, turns[0].end_ms),
            (Some(480), Some(2000))
        );
        assert_eq!(turns[1].start_ms, Some(2500), "wall clock when no timespan");
        assert_eq!(turns[3].role.as_deref(), Some("unspecified"));
        assert_eq!(turns[3].text, None);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].parameters_json.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(tools[0].output_json.as_deref(), Some(r#""not json""#));
        assert_eq!(duration_ms("12.300s"), Some(12_300));
        assert_eq!(duration_ms("-1.5s"), Some(-1_500));
        assert_eq!(duration_ms("0.48"), None);
    }

    #[test]
    fn a_walk_starts_at_the_high_water_mark_less_the_overlap_and_ends_with_tombstones() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let none = WalkOptions::default();
        let state = StreamState {
            high_water: Some("2026-10-31T12:00:00.000Z".into()),
            ..StreamState::default()
        };
        assert_eq!(from_date(&StreamState::default(), now, &none), None);
        assert_eq!(
            from_date(&state, now, &none),
            Some(Utc.with_ymd_and_hms(2026, 10, 31, 11, 0, 0).unwrap())
        );
        let full = WalkOptions {
            full: true,
            window: None,
        };
        assert_eq!(from_date(&state, now, &full), None);
        let week = WalkOptions {
            full: false,
            window: Some(super::super::Window::Days7),
        };
        assert_eq!(
            from_date(&state, now, &week),
            Some(now - chrono::Duration::days(7))
        );
        let all = WalkOptions {
            full: false,
            window: Some(super::super::Window::All),
        };
        assert_eq!(from_date(&state, now, &all), None);

        let ux = adapter();
        let plan = ux.plan_walk(&Scope::agent("a b"), &state, now, &none);
        assert_eq!(
            plan.cursors,
            vec![PageCursor(json!({"walk": "calls",
                "query": "pageSize=100&agentIds=a+b&fromDate=2026-10-31T11%3A00%3A00.000Z"}))]
        );
        assert_eq!(
            plan.checkpoint,
            json!({"fromDate": "2026-10-31T11:00:00.000Z"})
        );
        assert!(!plan.covers_everything);
        let first = ux.plan_walk(&Scope::account(), &StreamState::default(), now, &none);
        assert!(first.covers_everything);
        assert_eq!(
            first.cursors,
            vec![PageCursor(
                json!({"walk": "calls", "query": "pageSize=100"})
            )]
        );
    }

    #[test]
    fn next_links_keep_only_their_query() {
        let ux = adapter();
        let follow = |next: &str| ux.follow("pageSize=100", Some(next), "e");
        let query = follow("https://evil.example/other/path?cursor=abc&pageSize=100")
            .unwrap()
            .unwrap();
        assert_eq!(query, "cursor=abc&pageSize=100");
        assert_eq!(
            ux.url(Part::Calls.path(), Some(&query)).unwrap().as_str(),
            "http://127.0.0.1:9/proxy/api/calls?cursor=abc&pageSize=100"
        );
        let relative = follow("/api/calls?cursor=def").unwrap().unwrap();
        assert_eq!(relative, "cursor=def");
        assert!(
            follow("https://api.ultravox.ai/api/calls").is_err(),
            "no query"
        );
        assert!(
            follow("https://api.ultravox.ai/api/calls?pageSize=100").is_err(),
            "a loop"
        );
        assert!(ux.follow("q", None, "e").unwrap().is_none());
    }
}
