//! The simulator's seeded data set.
//!
//! A call is generated from `(seed, index)` alone, so a million calls cost a few bytes each
//! (`CallMeta`: creation time, agent, flags) and their JSON is rendered only when served. The
//! same seed gives the same calls, relative to the anchor time the data set was made at.
//! Calls are spread over `SPAN_DAYS` before the anchor, 0-2 evaluations each, with every
//! field Bluejay documents (nested blocks, nulls, unicode) and an undocumented field now
//! and then. Recent calls may still be unfinished (no evaluation yet); `complete_pending`
//! gives them a late evaluation.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// How far back the generated calls reach.
pub const SPAN_DAYS: i64 = 120;

const DELETED: u8 = 1;
const RECORDING_CLEARED: u8 = 2;
const LATE_EVALUATED: u8 = 4;

const LABELS: [&str; 2] = ["production", "staging"];

/// Per-call facts the generator cannot re-derive from `(seed, index)`.
#[derive(Clone, Copy, Debug)]
pub struct CallMeta {
    pub created_ms: i64,
    pub agent: u16,
    flags: u8,
}

/// What rendering one call needs, copied out so the data set's lock is held briefly.
#[derive(Clone, Copy, Debug)]
pub struct CallSlot {
    pub index: u32,
    pub meta: CallMeta,
    pub late_eval_ms: Option<i64>,
}

pub struct Dataset {
    seed: u64,
    pub anchor: DateTime<Utc>,
    agents: Arc<Vec<String>>,
    agent_index: HashMap<String, u16>,
    calls: Vec<CallMeta>,
    /// Live calls of each agent, oldest first.
    by_agent: Vec<Vec<u32>>,
    /// Some call was deleted since `by_agent` was last compacted.
    dirty: bool,
    late_evals: HashMap<u32, i64>,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: spreads one seed into independent-looking streams.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn label_of(seed: u64, index: u32) -> &'static str {
    LABELS[(mix(seed ^ index as u64 ^ 0x1ABE1) % LABELS.len() as u64) as usize]
}

fn call_rng(seed: u64, index: u32) -> SmallRng {
    SmallRng::seed_from_u64(mix(seed ^ mix(index as u64 + 1)))
}

impl Dataset {
    pub fn new(seed: u64, calls: u64, agents: u32, anchor: DateTime<Utc>) -> Dataset {
        let agents = agents.clamp(1, u16::MAX as u32) as u16;
        let agent_ids: Vec<String> = (0..agents)
            .map(|k| {
                let h = mix(seed ^ mix(0xA6E7 + k as u64));
                format!("agent-{:012x}", h & 0xFFFF_FFFF_FFFF)
            })
            .collect();
        let agent_index = agent_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u16))
            .collect();
        let span_ms = SPAN_DAYS * 86_400_000;
        let start_ms = anchor.timestamp_millis() - span_ms;
        let n = calls.min(u32::MAX as u64 - 1) as u32;
        let slot = if n == 0 { span_ms } else { span_ms / n as i64 };
        let mut metas = Vec::with_capacity(n as usize);
        let mut by_agent = vec![Vec::new(); agents as usize];
        for i in 0..n {
            let h = mix(seed ^ mix(i as u64 + 1) ^ 0x5EED);
            let created_ms = start_ms + i as i64 * slot + (h % slot.max(1) as u64) as i64;
            let agent = ((h >> 32) % agents as u64) as u16;
            metas.push(CallMeta {
                created_ms,
                agent,
                flags: 0,
            });
            by_agent[agent as usize].push(i);
        }
        Dataset {
            seed,
            anchor,
            agents: Arc::new(agent_ids),
            agent_index,
            calls: metas,
            by_agent,
            dirty: false,
            late_evals: HashMap::new(),
        }
    }

    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    pub fn agent(&self, id: &str) -> Option<u16> {
        self.agent_index.get(id).copied()
    }

    fn slot(&self, index: u32) -> CallSlot {
        CallSlot {
            index,
            meta: self.calls[index as usize],
            late_eval_ms: self.late_evals.get(&index).copied(),
        }
    }

    fn compact(&mut self) {
        if self.dirty {
            let calls = &self.calls;
            for list in &mut self.by_agent {
                list.retain(|&i| calls[i as usize].flags & DELETED == 0);
            }
            self.dirty = false;
        }
    }

    /// The call ids of one agent created at or after `since_ms`, oldest first, narrowed to
    /// `label`; returns the total and the slots of the page asked for.
    pub fn list(
        &mut self,
        agent: u16,
        since_ms: Option<i64>,
        label: Option<&str>,
        newest_first: bool,
        page: u64,
        page_size: u64,
    ) -> (u64, Vec<CallSlot>) {
        self.compact();
        let list = &self.by_agent[agent as usize];
        let from = since_ms.map_or(0, |s| {
            list.partition_point(|&i| self.calls[i as usize].created_ms < s)
        });
        let window = &list[from..];
        let filtered: Vec<u32>;
        let window: &[u32] = match label {
            Some(label) => {
                filtered = window
                    .iter()
                    .copied()
                    .filter(|&i| label_of(self.seed, i) == label)
                    .collect();
                &filtered
            }
            None => window,
        };
        let total = window.len() as u64;
        let offset = (page.saturating_sub(1)).saturating_mul(page_size);
        let end = offset.saturating_add(page_size).min(total);
        let picked: Vec<CallSlot> = (offset..end)
            .map(|k| {
                let pos = if newest_first { total - 1 - k } else { k };
                self.slot(window[pos as usize])
            })
            .collect();
        (total, picked)
    }

    /// The index of a live call with this id.
    pub fn find(&self, id: &str) -> Option<u32> {
        let tail = id.rsplit('-').next()?;
        let index = u32::try_from(u64::from_str_radix(tail, 16).ok()?).ok()?;
        let meta = self.calls.get(index as usize)?;
        (meta.flags & DELETED == 0 && call_id(self.seed, index) == id).then_some(index)
    }

    pub fn slot_of(&self, id: &str) -> Option<CallSlot> {
        self.find(id).map(|i| self.slot(i))
    }

    /// Deletes a call (or only its recording); false when there is no such live call.
    pub fn delete(&mut self, id: &str, recording_only: bool) -> bool {
        let Some(index) = self.find(id) else {
            return false;
        };
        let meta = &mut self.calls[index as usize];
        if recording_only {
            meta.flags |= RECORDING_CLEARED;
        } else {
            meta.flags |= DELETED;
            self.dirty = true;
        }
        true
    }

    /// Deletes the live call of `agent` that `pick` points at; returns its id.
    pub fn delete_any(&mut self, agent: u16, pick: u64) -> Option<String> {
        self.compact();
        let list = self.by_agent.get(agent as usize)?;
        if list.is_empty() {
            return None;
        }
        let index = list[(pick % list.len() as u64) as usize];
        let id = call_id(self.seed, index);
        self.delete(&id, false).then_some(id)
    }

    /// Adds `n` new calls for agent `agent`, created now; returns their ids.
    pub fn add_calls(&mut self, agent: u16, n: u32, now: DateTime<Utc>) -> Vec<String> {
        let agent = agent.min(self.agents.len() as u16 - 1);
        let mut ids = Vec::new();
        for _ in 0..n {
            let index = self.calls.len() as u32;
            let newest = self.by_agent[agent as usize]
                .last()
                .map_or(i64::MIN, |&i| self.calls[i as usize].created_ms);
            self.calls.push(CallMeta {
                created_ms: now.timestamp_millis().max(newest),
                agent,
                flags: 0,
            });
            self.by_agent[agent as usize].push(index);
            ids.push(call_id(self.seed, index));
        }
        ids
    }

    /// Gives up to `n` unfinished calls (no evaluation yet) created in `created_ms`, newest
    /// first, a late evaluation. Returns their ids.
    pub fn complete_pending(
        &mut self,
        n: usize,
        created_ms: std::ops::Range<i64>,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut done = Vec::new();
        for index in (0..self.calls.len() as u32).rev() {
            if done.len() >= n {
                break;
            }
            let meta = self.calls[index as usize];
            if meta.flags & (DELETED | LATE_EVALUATED) != 0
                || !created_ms.contains(&meta.created_ms)
            {
                continue;
            }
            if self.render(self.slot(index)).evaluations.is_empty() {
                self.calls[index as usize].flags |= LATE_EVALUATED;
                self.late_evals.insert(index, now.timestamp_millis());
                done.push(call_id(self.seed, index));
            }
        }
        done
    }

    /// Every live call, oldest first, as served.
    pub fn all_live(&mut self) -> Vec<CallSlot> {
        self.compact();
        let mut all: Vec<CallSlot> = self
            .by_agent
            .iter()
            .flatten()
            .map(|&i| self.slot(i))
            .collect();
        all.sort_by_key(|s| (s.meta.created_ms, s.index));
        all
    }

    /// Renders one call as Bluejay's CallLog.
    pub fn render(&self, slot: CallSlot) -> CallLog {
        self.renderer().render(slot)
    }

    /// What rendering needs, detached from the data set so it can run outside its lock.
    pub fn renderer(&self) -> Renderer {
        Renderer {
            seed: self.seed,
            anchor_ms: self.anchor.timestamp_millis(),
            agents: self.agents.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Renderer {
    seed: u64,
    anchor_ms: i64,
    agents: Arc<Vec<String>>,
}

impl Renderer {
    pub fn render(&self, slot: CallSlot) -> CallLog {
        render_call(
            self.seed,
            self.anchor_ms,
            &self.agents,
            slot,
            label_of(self.seed, slot.index),
        )
    }
}

pub fn call_id(seed: u64, index: u32) -> String {
    let h = mix(seed ^ mix(index as u64 + 1) ^ 0x1D);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xFFFF,
        h & 0xFFF,
        0x8000 | ((h >> 4) & 0x3FFF),
        index
    )
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
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

const NAMES: [&str; 10] = [
    "José Álvarez",
    "Zoë Müller",
    "李雷",
    "Ana-María Ionescu",
    "Søren Kierkegård",
    "Priya Ramanathan",
    "Олег Петров",
    "Nguyễn Thị Hoa",
    "Aoife Ní Bhriain",
    "Tomás O'Connor 📞",
];
const TAGS: [&str; 8] = [
    "vip",
    "billing",
    "refund",
    "escalated",
    "spanish",
    "après-vente",
    "callback",
    "outage",
];
const TOOLS: [(&str, &str); 5] = [
    (
        "lookup_account",
        "Finds the caller's account by phone number",
    ),
    ("check_balance", "Reads the current balance and due date"),
    (
        "schedule_callback",
        "Books a callback slot with a human agent",
    ),
    ("issue_refund", "Starts a refund for the last charge"),
    (
        "transfer_call",
        "Transfers the caller to the escalation queue",
    ),
];
const EVENTS: [(&str, &str); 4] = [
    (
        "greeting",
        "Agent greeted the caller and stated the purpose of the line",
    ),
    (
        "identity_verified",
        "Caller confirmed date of birth and postcode",
    ),
    (
        "hold",
        "Caller was placed on hold while the agent checked records",
    ),
    (
        "silence",
        "No speech from either side for more than four seconds",
    ),
];
const SUMMARIES: [&str; 5] = [
    "The caller asked why their invoice doubled this month. The agent found a duplicate charge, explained it and opened a refund; the caller was satisfied.",
    "Caller wanted to move a delivery to next Tuesday. The agent checked availability, rescheduled and sent a confirmation by SMS. Überraschend kurz.",
    "A customer reported an outage in their area. The agent confirmed the incident, gave the expected restore time and offered a callback.",
    "El cliente pidió información sobre su saldo. The agent verified identity and read out the balance and the next due date.",
    "The caller was upset about a missed appointment. The agent apologised, rebooked for the earliest slot and flagged the case for follow-up. 🙏",
];
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

fn pick<T: Copy>(rng: &mut SmallRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// `Some(value)` with probability `p`; the value is drawn either way, so what follows in the
/// random stream does not depend on the coin.
macro_rules! maybe {
    ($rng:ident, $p:expr, $value:expr $(,)?) => {{
        let keep = $rng.random_bool($p);
        let value = $value;
        keep.then_some(value)
    }};
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn render_call(
    seed: u64,
    anchor_ms: i64,
    agents: &[String],
    slot: CallSlot,
    label: &str,
) -> CallLog {
    let mut rng = call_rng(seed, slot.index);
    let id = call_id(seed, slot.index);
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
    let late = slot.late_eval_ms.is_some() && n_evals == 0;
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
            let created = match slot.late_eval_ms {
                Some(at) if late => at,
                _ => meta.created_ms + 30_000 + k as i64 * 3_600_000,
            };
            render_evaluation(&mut eval_rng, &id, k, created, summary)
        })
        .collect();
    let recording = meta.flags & RECORDING_CLEARED == 0;
    CallLog {
        agent_id: agents[meta.agent as usize].clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_calls_and_ids_round_trip() {
        let anchor = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut a = Dataset::new(7, 500, 3, anchor);
        let mut b = Dataset::new(7, 500, 3, anchor);
        let ja: Vec<String> = a
            .all_live()
            .into_iter()
            .map(|s| serde_json::to_string(&a.render(s)).unwrap())
            .collect();
        let jb: Vec<String> = b
            .all_live()
            .into_iter()
            .map(|s| serde_json::to_string(&b.render(s)).unwrap())
            .collect();
        assert_eq!(ja, jb);
        assert_eq!(ja.len(), 500);
        let id = call_id(7, 42);
        assert_eq!(a.find(&id), Some(42));
        assert_eq!(a.find(&call_id(8, 42)), None);
        assert!(a.delete(&id, false));
        assert_eq!(a.find(&id), None);
        assert_eq!(a.all_live().len(), 499);
    }

    #[test]
    fn pages_cover_a_window_exactly_in_either_order() {
        let anchor = Utc::now();
        let mut d = Dataset::new(1, 1000, 2, anchor);
        for newest_first in [true, false] {
            let (total, _) = d.list(0, None, None, newest_first, 1, 100);
            let mut seen = std::collections::HashSet::new();
            for page in 1..=total.div_ceil(30) {
                for s in d.list(0, None, None, newest_first, page, 30).1 {
                    assert!(seen.insert(s.index));
                }
            }
            assert_eq!(seen.len() as u64, total);
        }
        let since = anchor.timestamp_millis() - 86_400_000;
        let (recent, slots) = d.list(0, Some(since), None, true, 1, 100);
        assert!(recent < 20, "{recent}");
        assert!(slots.iter().all(|s| s.meta.created_ms >= since));
    }
}
