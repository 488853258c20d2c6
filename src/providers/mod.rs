//! Providers: each platform's HTTP API behind one trait, turning its JSON into canonical records.
//!
//! A provider owns everything specific to its platform: authentication, how a stream is paged
//! (page numbers, cursors, time windows), what its checkpoint means, and how its JSON maps to
//! `CallRecord`. The sync engine sees only the `Provider` trait: it asks for a `WalkPlan`,
//! fetches `PageCursor`s, and follows the cursors each `Page` reveals. Cursors and checkpoints
//! are JSON values the engine stores without reading, so a new platform is one new file here
//! and touches neither `sync` nor `store`. Providers never touch the archive.

pub mod bluejay;
pub mod cartesia;
pub mod clarion;
pub mod http;
pub mod json;
pub mod ultravox;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use http::{HttpClient, RetryPolicy};

use crate::secret::ApiKey;

/// The platforms callvault mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Bluejay,
    Cartesia,
    Clarion,
    Ultravox,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Bluejay,
        ProviderKind::Cartesia,
        ProviderKind::Clarion,
        ProviderKind::Ultravox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Bluejay => "bluejay",
            ProviderKind::Cartesia => "cartesia",
            ProviderKind::Clarion => "clarion",
            ProviderKind::Ultravox => "ultravox",
        }
    }

    /// The environment variable that holds this provider's API key by default.
    pub fn key_env(self) -> &'static str {
        match self {
            ProviderKind::Bluejay => "BLUEJAY_API_KEY",
            ProviderKind::Cartesia => "CARTESIA_API_KEY",
            ProviderKind::Clarion => "CLARION_API_KEY",
            ProviderKind::Ultravox => "ULTRAVOX_API_KEY",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Bluejay => "https://api.getbluejay.ai",
            ProviderKind::Cartesia => "https://api.cartesia.ai",
            ProviderKind::Clarion => "https://api.clarionhealth.com/v1",
            ProviderKind::Ultravox => "https://api.ultravox.ai",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown provider '{s}' (expected bluejay, cartesia, clarion or ultravox)")
            })
    }
}

/// Builds the adapter for `kind`: the one place that names every platform's adapter.
pub fn connect(
    kind: ProviderKind,
    http: HttpClient,
    base_url: &str,
    key: ApiKey,
) -> Arc<dyn Provider> {
    match kind {
        ProviderKind::Bluejay => Arc::new(bluejay::Bluejay::new(http, base_url, key)),
        ProviderKind::Cartesia => Arc::new(cartesia::Cartesia::new(http, base_url, key)),
        ProviderKind::Clarion => Arc::new(clarion::Clarion::new(http, base_url, key)),
        ProviderKind::Ultravox => Arc::new(ultravox::Ultravox::new(http, base_url, key)),
    }
}

/// How far back a sync looks, as the user asks for it with `--window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    Day1,
    Days3,
    Days7,
    Days30,
    Days90,
    All,
}

impl Window {
    pub const ALL: [Window; 6] = [
        Window::Day1,
        Window::Days3,
        Window::Days7,
        Window::Days30,
        Window::Days90,
        Window::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day1 => "1day",
            Window::Days3 => "3days",
            Window::Days7 => "7days",
            Window::Days30 => "30days",
            Window::Days90 => "90days",
            Window::All => "all",
        }
    }

    /// The span this window covers; `None` for `all`.
    pub fn span(self) -> Option<chrono::Duration> {
        let days = match self {
            Window::Day1 => 1,
            Window::Days3 => 3,
            Window::Days7 => 7,
            Window::Days30 => 30,
            Window::Days90 => 90,
            Window::All => return None,
        };
        Some(chrono::Duration::days(days))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a window (expected 1day, 3days, 7days, 30days, 90days or all)"
                )
            })
    }
}

/// One stream of a source: the calls of one agent, or of the whole account, optionally
/// narrowed by a label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `None`: every call of the account (providers that list calls account-wide).
    pub agent_id: Option<String>,
    pub label: Option<String>,
}

impl Scope {
    /// The key an account-wide stream is stored under; no provider names an agent `*`.
    pub const ACCOUNT_KEY: &'static str = "*";

    pub fn agent(id: impl Into<String>) -> Scope {
        Scope {
            agent_id: Some(id.into()),
            label: None,
        }
    }

    pub fn account() -> Scope {
        Scope {
            agent_id: None,
            label: None,
        }
    }

    /// The key the archive stores the stream under.
    pub fn key(&self) -> String {
        let agent = self.agent_id.as_deref().unwrap_or(Self::ACCOUNT_KEY);
        match &self.label {
            None => agent.to_string(),
            Some(label) => format!("{agent}#label={label}"),
        }
    }
}

/// How a provider pages a stream. The sync engine's drift rules follow from it, never from
/// the provider's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pagination {
    /// Numbered pages with a count of the whole walk (Bluejay). Calls arriving or leaving
    /// shift every later page, so a count that changes mid-walk, a call served on two pages,
    /// or calls that do not add up to the count mean the walk must be repeated.
    NumberedPages,
    /// Keyset cursors, each page naming the next by a key (Cartesia, Ultravox). Calls arriving
    /// or leaving do not move later pages; a count that changes means nothing, and a call
    /// seen twice is simply written once.
    KeysetCursors,
    /// Time windows with inclusive bounds (Clarion): a call on a bound is served by both
    /// windows that share it, by design.
    TimeWindows,
}

/// What the archive remembers of a stream, handed to `Provider::plan_walk`.
#[derive(Clone, Debug, Default)]
pub struct StreamState {
    /// When the last walk that ended without drift started.
    pub last_complete_started_at: Option<DateTime<Utc>>,
    /// The provider's own checkpoint, as it returned it in its last `WalkPlan`.
    pub checkpoint: Option<serde_json::Value>,
    /// The largest `Page::high_water` of every complete walk so far: how far the provider's
    /// own ordering (a start or creation time) has been mirrored.
    pub high_water: Option<String>,
}

/// What the user asked of this sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkOptions {
    pub window: Option<Window>,
    /// Walk everything the provider holds, whatever the checkpoint says.
    pub full: bool,
}

impl WalkOptions {
    /// Where a walk from a high-water mark starts (providers that walk by time or newest
    /// first): nowhere, i.e. everything, for `--full`, a stream's first walk and `--window
    /// all`; `now - window` for another `--window`; the high-water mark minus `overlap`
    /// otherwise, so calls that appear late or with skewed clocks are still read.
    pub fn walk_start(
        &self,
        state: &StreamState,
        now: DateTime<Utc>,
        overlap: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        if self.full {
            return None;
        }
        if let Some(window) = self.window {
            return window.span().map(|span| now - span);
        }
        state
            .high_water
            .as_deref()
            .and_then(crate::time::parse_timestamp)
            .map(|t| t - overlap)
    }
}

/// A request for one page, in the provider's own terms (a page number, a cursor, a range).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageCursor(pub serde_json::Value);

/// How one walk of a stream starts.
#[derive(Clone, Debug)]
pub struct WalkPlan {
    /// The first pages to fetch; each fetched page may reveal more.
    pub cursors: Vec<PageCursor>,
    /// Stored as the stream's checkpoint when the walk starts.
    pub checkpoint: serde_json::Value,
    /// A few words for logs and `status` ("window 7days").
    pub description: String,
    /// True when the walk covers everything the provider holds for the scope, so a call
    /// it does not serve is gone at the provider (what `--prune` relies on).
    pub covers_everything: bool,
}

/// One fetched page.
#[derive(Debug)]
pub struct Page {
    pub calls: Vec<CallRecord>,
    /// Pages this one revealed (page 1 reveals pages 2..=total_pages).
    pub next: Vec<PageCursor>,
    /// How many calls the provider says the whole walk holds, where it says so. With
    /// `Pagination::NumberedPages`, a change between pages of one walk means calls arrived or
    /// vanished while walking.
    pub walk_size: Option<u64>,
    /// Ids of calls the provider says it deleted (tombstones); the archive drops those it holds.
    pub deleted: Vec<String>,
    /// The largest value of the provider's ordering key (e.g. start time, RFC 3339 UTC) among
    /// the page's calls, where the provider's incremental rule needs one.
    pub high_water: Option<String>,
}

impl Page {
    /// A page of calls that reveals `next`, with no count, tombstones or high-water mark.
    pub fn of_calls(calls: Vec<CallRecord>, next: Vec<PageCursor>) -> Page {
        Page {
            calls,
            next,
            walk_size: None,
            deleted: Vec::new(),
            high_water: None,
        }
    }
}

/// How a delete treats a call at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    Full,
    RecordingOnly,
    Redact,
}

impl DeleteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Full => "full",
            DeleteMode::RecordingOnly => "recording-only",
            DeleteMode::Redact => "redact",
        }
    }
}

impl fmt::Display for DeleteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeleteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(DeleteMode::Full),
            "recording-only" => Ok(DeleteMode::RecordingOnly),
            "redact" => Ok(DeleteMode::Redact),
            _ => Err(format!(
                "'{s}' is not a delete mode (expected full, recording-only or redact)"
            )),
        }
    }
}

/// What the provider said to a delete.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome {
    Deleted,
    /// The provider redacted the call and sent back what it keeps of it.
    Redacted(Box<CallRecord>),
    /// 404: the call was already gone.
    Gone,
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The address requests go to, as the adapter normalised it; a source is known by it.
    fn base_url(&self) -> &str;

    /// How this provider pages a stream.
    fn pagination(&self) -> Pagination;

    /// True when a list may show a call in an older state than a read by id does (a call
    /// listed as in progress after it finished): unfinished calls are then read by id even
    /// when the walk just listed them.
    fn list_may_lag(&self) -> bool {
        false
    }

    /// The streams a sync covers when the user names no agent: every agent the account has,
    /// or the whole account where the provider lists calls account-wide.
    async fn discover_scopes(&self) -> Result<Vec<Scope>, ProviderError>;

    /// Decides how to walk a stream from what the archive remembers of it. Pure: no I/O.
    fn plan_walk(
        &self,
        scope: &Scope,
        state: &StreamState,
        now: DateTime<Utc>,
        options: &WalkOptions,
    ) -> WalkPlan;

    async fn fetch_page(&self, scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError>;

    /// Fetches one call by id; `None` when the provider no longer has it.
    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError>;

    /// The delete modes this platform offers.
    fn delete_modes(&self) -> &'static [DeleteMode];

    async fn delete_call(
        &self,
        call_id: &str,
        mode: DeleteMode,
    ) -> Result<DeleteOutcome, ProviderError>;
}

/// A call in callvault's canonical form, with every child record it carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub agent_id: Option<String>,
    pub external_agent_id: Option<String>,
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration_ms: Option<i64>,
    pub call_direction: Option<String>,
    pub interface: Option<String>,
    pub recording_url: Option<String>,
    pub transcript_url: Option<String>,
    pub summary: Option<String>,
    pub end_reason: Option<String>,
    pub ended_by: Option<String>,
    pub redacted_at: Option<String>,
    pub metadata_json: Option<String>,
    pub annotations_json: Option<String>,
    pub extra_metrics_json: Option<String>,
    /// The record exactly as the provider sent it.
    pub raw_json: String,
    /// True once the provider will not change the call any more (final status, evaluated).
    pub settled: bool,
    pub participants: Vec<Participant>,
    pub tool_calls: Vec<ToolCall>,
    pub events: Vec<CallEvent>,
    pub tags: Vec<String>,
    pub evaluations: Vec<Evaluation>,
    pub transcript: Vec<TranscriptTurn>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Participant {
    pub role: Option<String>,
    pub spoke_first: Option<bool>,
    pub name: Option<String>,
    pub phone_number: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCall {
    pub name: Option<String>,
    pub start_offset_ms: Option<i64>,
    pub description: Option<String>,
    pub parameters_json: Option<String>,
    pub output_json: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallEvent {
    pub title: Option<String>,
    pub description: Option<String>,
    pub start_offset_ms: Option<i64>,
    pub end_offset_ms: Option<i64>,
    pub tags_json: Option<String>,
    pub metadata_json: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub id: String,
    pub created_at: Option<String>,
    pub hallucination: Option<bool>,
    pub hallucination_reasoning: Option<String>,
    pub redundancy: Option<bool>,
    pub redundancy_reasoning: Option<String>,
    pub goal_success: Option<bool>,
    pub goal_reasoning: Option<String>,
    pub agent_speak_percentage: Option<f64>,
    pub avg_agent_latency: Option<f64>,
    pub p50_agent_latency: Option<f64>,
    pub p90_agent_latency: Option<f64>,
    pub p95_agent_latency: Option<f64>,
    pub p99_agent_latency: Option<f64>,
    pub max_agent_latency: Option<f64>,
    pub avg_filler_ignored_latency: Option<f64>,
    pub p50_filler_ignored_latency: Option<f64>,
    pub p90_filler_ignored_latency: Option<f64>,
    pub p95_filler_ignored_latency: Option<f64>,
    pub p99_filler_ignored_latency: Option<f64>,
    pub num_turns: Option<i64>,
    pub call_summary: Option<String>,
    pub custom_evals_json: Option<String>,
    pub custom_evals_success_rate: Option<f64>,
    pub pronunciation_score: Option<f64>,
    pub pronunciation_reasoning: Option<String>,
    pub sentiment_label: Option<String>,
    pub sentiment_score: Option<f64>,
    pub sentiment_scores_json: Option<String>,
    /// Where the evaluation is in its call's `raw_json`, as a JSON path (`$.evaluations[0]`):
    /// an evaluation is part of its call's JSON and is not kept a second time.
    pub json_path: String,
    pub custom_metrics: Vec<CustomMetric>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomMetric {
    pub name: Option<String>,
    pub description: Option<String>,
    pub response_type: Option<String>,
    pub response_value: Option<String>,
    pub reasoning: Option<String>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub category: Option<String>,
    pub tags_json: Option<String>,
    pub scoring_guidance: Option<String>,
    pub enum_options_json: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TranscriptTurn {
    pub role: Option<String>,
    pub text: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub stt_ttfb_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
}

/// One field of a 422 body, `{loc, msg, type}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub location: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} rejected the API key (HTTP {status} at {endpoint}): {message}")]
    Unauthorized {
        provider: ProviderKind,
        status: u16,
        endpoint: String,
        message: String,
    },
    #[error("{provider} refused the request (HTTP 422 at {endpoint}): {}", render_fields(.fields))]
    Invalid {
        provider: ProviderKind,
        endpoint: String,
        fields: Vec<FieldError>,
    },
    #[error("{provider} answered HTTP {status} at {endpoint}: {message}")]
    Status {
        provider: ProviderKind,
        status: u16,
        endpoint: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("could not reach {provider} at {endpoint}: {source}")]
    Transport {
        provider: ProviderKind,
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// A well-formed answer holding a record callvault cannot archive (a call without an
    /// id): asking again gets the same record, so it is not retried.
    #[error("{provider} sent a record callvault cannot archive at {endpoint}: {message}")]
    Unusable {
        provider: ProviderKind,
        endpoint: String,
        message: String,
    },
    #[error("{provider} sent a malformed body at {endpoint}: {message}")]
    Malformed {
        provider: ProviderKind,
        endpoint: String,
        message: String,
    },
    #[error("{provider} asked to wait {asked:?} at {endpoint}, longer than the {cap:?} limit; run the same sync again later to resume")]
    WaitTooLong {
        provider: ProviderKind,
        endpoint: String,
        asked: Duration,
        cap: Duration,
    },
    #[error("{provider} does not support {what} yet")]
    Unsupported {
        provider: ProviderKind,
        what: String,
    },
    /// An answer may have left calls out, and no narrower question can be asked: the walk
    /// cannot prove it saw everything, and says so rather than lose calls silently.
    #[error("{provider} may have left calls out at {endpoint}: {message}")]
    Truncated {
        provider: ProviderKind,
        endpoint: String,
        message: String,
    },
}

fn render_fields(fields: &[FieldError]) -> String {
    if fields.is_empty() {
        return "no details".into();
    }
    fields
        .iter()
        .map(|f| format!("{}: {}", f.location, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ProviderError {
    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            // 409 too, as Cartesia's own SDK retries it.
            ProviderError::Status { status, .. } => {
                matches!(*status, 408 | 409 | 429) || *status >= 500
            }
            ProviderError::Transport { .. } | ProviderError::Malformed { .. } => true,
            ProviderError::Unauthorized { .. }
            | ProviderError::Invalid { .. }
            | ProviderError::WaitTooLong { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::Truncated { .. }
            | ProviderError::Unusable { .. } => false,
        }
    }

    /// How long the provider asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the provider answered at all.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProviderError::Unauthorized { status, .. } | ProviderError::Status { status, .. } => {
                Some(*status)
            }
            ProviderError::Invalid { .. } => Some(422),
            _ => None,
        }
    }

    /// True for errors that will fail every request of a run the same way (a bad key).
    pub fn is_fatal_for_run(&self) -> bool {
        matches!(
            self,
            ProviderError::Unauthorized { .. } | ProviderError::WaitTooLong { .. }
        )
    }
}
