//! The simulator's seeded data sets, one per provider.
//!
//! A call is generated from `(seed, index)` alone, so a million calls cost a few bytes each
//! (`CallMeta`: creation time, agent, flags) and their JSON is rendered only when served, by
//! the provider's own module (`sim::bluejay`, `sim::cartesia`, ...). The same seed gives the
//! same calls, relative to the anchor time the data set was made at. Calls are spread over
//! `SPAN_DAYS` before the anchor, optionally with a `BusyDay` packed with more, and numbered in
//! creation order (later calls are created now), so an index orders calls by time and a
//! cursor can be a call's index. Recent calls
//! may still be unfinished; `complete_pending` finishes them late. A deleted call keeps its
//! `CallMeta` and its deletion time, which is what tombstones are served from.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How far back the generated calls reach.
pub const SPAN_DAYS: i64 = 120;

const DELETED: u8 = 1;
const RECORDING_CLEARED: u8 = 2;
/// Finished (evaluated, completed) after it was first served.
const FINISHED_LATE: u8 = 4;
const REDACTED: u8 = 8;

const LABELS: [&str; 2] = ["production", "staging"];

/// How a data set's ids look: each provider's own shape, every call id decodable back to the
/// call's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdStyle {
    /// `xxxxxxxx-xxxx-4xxx-xxxx-<index in 12 hex digits>`; agents `agent-<12 hex>`.
    Uuid,
    /// `<prefix><12 hex><index in 8 hex>`; agents `agent_<12 hex>` (Cartesia: `ac_`).
    Prefixed(&'static str),
    /// Decimal integers above 2^32, agents too (Clarion).
    Integer,
    /// Calls as `Uuid`, and agents UUIDs too (Ultravox, whose agent ids are `format: uuid`).
    UuidOnly,
}

/// The first integer id: Clarion's ids do not fit in 32 bits.
const INTEGER_BASE: u64 = 1 << 32;
/// Integer ids advance by this much per call (or agent), with a hashed offset below it.
const INTEGER_STEP: u64 = 1_000;
/// The first integer agent id, far from the call ids.
const ASSISTANT_BASE: u64 = 1 << 36;

impl IdStyle {
    pub fn call_id(self, seed: u64, index: u32) -> String {
        let h = mix(seed ^ mix(index as u64 + 1) ^ 0x1D);
        match self {
            IdStyle::Uuid | IdStyle::UuidOnly => format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xFFFF,
                h & 0xFFF,
                0x8000 | ((h >> 4) & 0x3FFF),
                index
            ),
            IdStyle::Prefixed(prefix) => format!("{prefix}{:012x}{index:08x}", h >> 16),
            IdStyle::Integer => {
                (INTEGER_BASE + index as u64 * INTEGER_STEP + h % INTEGER_STEP).to_string()
            }
        }
    }

    /// The index `id` was made from, if it is one of this style's ids at all.
    fn index_of(self, id: &str) -> Option<u32> {
        let index = match self {
            IdStyle::Uuid | IdStyle::UuidOnly => {
                u64::from_str_radix(id.rsplit('-').next()?, 16).ok()?
            }
            IdStyle::Prefixed(prefix) => {
                let rest = id.strip_prefix(prefix)?;
                u64::from_str_radix(rest.get(12..)?, 16).ok()?
            }
            IdStyle::Integer => (id.parse::<u64>().ok()?.checked_sub(INTEGER_BASE))? / INTEGER_STEP,
        };
        u32::try_from(index).ok()
    }

    fn agent_id(self, seed: u64, k: u16) -> String {
        let h = mix(seed ^ mix(0xA6E7 + k as u64));
        match self {
            IdStyle::Uuid => format!("agent-{:012x}", h & 0xFFFF_FFFF_FFFF),
            IdStyle::Prefixed(_) => format!("agent_{:012x}", h & 0xFFFF_FFFF_FFFF),
            // Clarion documents `assistant_id` as an integer too.
            IdStyle::Integer => {
                (ASSISTANT_BASE + k as u64 * INTEGER_STEP + h % INTEGER_STEP).to_string()
            }
            IdStyle::UuidOnly => format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xFFFF,
                h & 0xFFF,
                (h >> 4) & 0xFFF,
                k
            ),
        }
    }
}

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
    /// When an unfinished call finished, if `complete_pending` finished it.
    pub late_ms: Option<i64>,
    /// When the call was redacted, if it was.
    pub redacted_ms: Option<i64>,
}

impl CallSlot {
    pub fn recording_cleared(&self) -> bool {
        self.meta.flags & RECORDING_CLEARED != 0
    }
}

/// A call deleted at the provider: what a tombstone says of it.
#[derive(Clone, Copy, Debug)]
pub struct DeletedCall {
    pub slot: CallSlot,
    pub deleted_ms: i64,
}

/// One page of a keyset walk: which end to start from and where the last page ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeysetQuery {
    /// `None`: every agent.
    pub agent: Option<u16>,
    pub newest_first: bool,
    /// Only calls past this one in the walk's order (the index of the cursor's call).
    pub after: Option<u32>,
    /// Only calls created at or after this time.
    pub from_ms: Option<i64>,
    /// Only calls created at or before this time.
    pub to_ms: Option<i64>,
    pub limit: usize,
}

pub struct Dataset {
    seed: u64,
    pub anchor: DateTime<Utc>,
    ids: IdStyle,
    agents: Arc<Vec<String>>,
    agent_index: HashMap<String, u16>,
    calls: Vec<CallMeta>,
    /// Live calls of each agent, oldest first.
    by_agent: Vec<Vec<u32>>,
    /// Every live call, oldest first.
    live: Vec<u32>,
    /// Some call was deleted since `by_agent` and `live` were last compacted.
    dirty: bool,
    late: HashMap<u32, i64>,
    redacted: HashMap<u32, i64>,
    deleted: HashMap<u32, i64>,
}

pub(super) fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: spreads one seed into independent-looking streams.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn label_of(seed: u64, index: u32) -> &'static str {
    LABELS[(mix(seed ^ index as u64 ^ 0x1ABE1) % LABELS.len() as u64) as usize]
}

pub(super) fn call_rng(seed: u64, index: u32) -> SmallRng {
    SmallRng::seed_from_u64(mix(seed ^ mix(index as u64 + 1)))
}

/// Extra calls packed into one UTC day of a data set, on top of its evenly spread calls: the
/// busy day a list capped at a fixed number of calls cannot answer whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyDay {
    /// Which day: the UTC day this many days before the anchor.
    pub days_before_anchor: i64,
    pub calls: u32,
}

impl BusyDay {
    /// The first millisecond of the busy day.
    pub fn start_ms(&self, anchor: DateTime<Utc>) -> i64 {
        let at = anchor.timestamp_millis() - self.days_before_anchor * DAY_MS;
        at - at.rem_euclid(DAY_MS)
    }
}

const DAY_MS: i64 = 86_400_000;

/// The calls of `list` (indices oldest first) that one page of a keyset walk serves, whether
/// more follow, and how many the walk's creation range holds.
fn keyset_in(
    list: &[u32],
    created: impl Fn(u32) -> i64,
    query: &KeysetQuery,
) -> (Vec<u32>, bool, usize) {
    let lo = query
        .from_ms
        .map_or(0, |from| list.partition_point(|&i| created(i) < from));
    let hi = query
        .to_ms
        .map_or(list.len(), |to| list.partition_point(|&i| created(i) <= to));
    let mut range = &list[lo..hi.max(lo)];
    let total = range.len();
    if let Some(after) = query.after {
        // Indices follow creation order, so the cursor's place is found by its index even
        // when its call is gone.
        range = if query.newest_first {
            &range[..range.partition_point(|&i| i < after)]
        } else {
            &range[range.partition_point(|&i| i <= after)..]
        };
    }
    let limit = query.limit.max(1);
    let picked: Vec<u32> = if query.newest_first {
        range.iter().rev().take(limit).copied().collect()
    } else {
        range.iter().take(limit).copied().collect()
    };
    let more = range.len() > picked.len();
    (picked, more, total)
}

impl Dataset {
    pub fn new(seed: u64, calls: u64, agents: u32, anchor: DateTime<Utc>, ids: IdStyle) -> Dataset {
        Dataset::with_busy_day(seed, calls, agents, anchor, ids, None)
    }

    /// A data set whose `calls` are spread evenly over `SPAN_DAYS`, plus `busy`'s calls
    /// spread over its one day. Calls are numbered in creation order either way.
    pub fn with_busy_day(
        seed: u64,
        calls: u64,
        agents: u32,
        anchor: DateTime<Utc>,
        ids: IdStyle,
        busy: Option<BusyDay>,
    ) -> Dataset {
        let agents = agents.clamp(1, u16::MAX as u32) as u16;
        let agent_ids: Vec<String> = (0..agents).map(|k| ids.agent_id(seed, k)).collect();
        let agent_index = agent_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u16))
            .collect();
        let span_ms = SPAN_DAYS * DAY_MS;
        let start_ms = anchor.timestamp_millis() - span_ms;
        let n = calls.min(u32::MAX as u64 / 2) as u32;
        let slot = if n == 0 { span_ms } else { span_ms / n as i64 };
        let spread = |i: u32| mix(seed ^ mix(i as u64 + 1) ^ 0x5EED);
        let mut created: Vec<i64> = (0..n)
            .map(|i| start_ms + i as i64 * slot + (spread(i) % slot.max(1) as u64) as i64)
            .collect();
        if let Some(busy) = busy {
            let day = busy.start_ms(anchor);
            let extra = busy.calls.min(u32::MAX / 2);
            created.extend(
                (0..extra)
                    .map(|j| day + (mix(seed ^ mix(j as u64 + 1) ^ 0xB05) % DAY_MS as u64) as i64),
            );
            // Indices follow creation order.
            created.sort_unstable();
        }
        let mut metas = Vec::with_capacity(created.len());
        let mut by_agent = vec![Vec::new(); agents as usize];
        for (i, created_ms) in created.into_iter().enumerate() {
            let i = i as u32;
            let agent = ((spread(i) >> 32) % agents as u64) as u16;
            metas.push(CallMeta {
                created_ms,
                agent,
                flags: 0,
            });
            by_agent[agent as usize].push(i);
        }
        let live = (0..metas.len() as u32).collect();
        Dataset {
            seed,
            anchor,
            ids,
            agents: Arc::new(agent_ids),
            agent_index,
            calls: metas,
            by_agent,
            live,
            dirty: false,
            late: HashMap::new(),
            redacted: HashMap::new(),
            deleted: HashMap::new(),
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
            late_ms: self.late.get(&index).copied(),
            redacted_ms: self.redacted.get(&index).copied(),
        }
    }

    fn compact(&mut self) {
        if self.dirty {
            let calls = &self.calls;
            let alive = |i: &u32| calls[*i as usize].flags & DELETED == 0;
            for list in &mut self.by_agent {
                list.retain(alive);
            }
            self.live.retain(alive);
            self.dirty = false;
        }
    }

    /// The call ids of one agent created at or after `since_ms`, oldest first, narrowed to
    /// `label`; returns the total and the slots of the numbered page asked for.
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

    /// One page of a keyset walk, and whether more calls follow it.
    pub fn keyset(&mut self, query: &KeysetQuery) -> (Vec<CallSlot>, bool) {
        self.compact();
        let list: &[u32] = match query.agent {
            Some(agent) => &self.by_agent[agent as usize],
            None => &self.live,
        };
        let (picked, more, _) = keyset_in(list, |i| self.calls[i as usize].created_ms, query);
        (picked.into_iter().map(|i| self.slot(i)).collect(), more)
    }

    /// At most `limit` live calls created in `from_ms..=to_ms` (either end open), in no
    /// particular order, and how many the range holds. When it holds more than `limit`, which
    /// ones are served is arbitrary, as an API that truncates without saying so would choose;
    /// the choice and the order follow from `salt`, so one question always gets one answer.
    pub fn sample_created_between(
        &mut self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        limit: usize,
        salt: u64,
    ) -> (Vec<CallSlot>, usize) {
        self.compact();
        let created = |i: &u32| self.calls[*i as usize].created_ms;
        let lo = from_ms.map_or(0, |from| self.live.partition_point(|i| created(i) < from));
        let hi = to_ms.map_or(self.live.len(), |to| {
            self.live.partition_point(|i| created(i) <= to)
        });
        let range = &self.live[lo..hi.max(lo)];
        let mut rng = SmallRng::seed_from_u64(mix(self.seed ^ mix(salt)));
        // A run of `limit` calls from a random place in the range, wrapping at its end.
        let first = if range.len() > limit {
            rng.random_range(0..range.len())
        } else {
            0
        };
        let mut picked: Vec<u32> = (0..range.len().min(limit))
            .map(|k| range[(first + k) % range.len()])
            .collect();
        for k in (1..picked.len()).rev() {
            picked.swap(k, rng.random_range(0..=k));
        }
        let matched = range.len();
        (picked.into_iter().map(|i| self.slot(i)).collect(), matched)
    }

    /// One page of a keyset walk over the calls of some agents (`None`: every agent;
    /// `query.agent` is not read): the page, whether more calls follow it, and how many calls
    /// the walk's creation range holds.
    pub fn keyset_counted(
        &mut self,
        agents: Option<&[u16]>,
        query: &KeysetQuery,
    ) -> (Vec<CallSlot>, bool, usize) {
        self.compact();
        let created = |i: u32| self.calls[i as usize].created_ms;
        let (picked, more, total) = match agents {
            None => keyset_in(&self.live, created, query),
            Some(&[agent]) => match self.by_agent.get(agent as usize) {
                Some(list) => keyset_in(list, created, query),
                None => (Vec::new(), false, 0),
            },
            Some(agents) => {
                let list: Vec<u32> = self
                    .live
                    .iter()
                    .copied()
                    .filter(|&i| agents.contains(&self.calls[i as usize].agent))
                    .collect();
                keyset_in(&list, created, query)
            }
        };
        let slots = picked.into_iter().map(|i| self.slot(i)).collect();
        (slots, more, total)
    }

    /// The index of a live call with this id.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.find_any(id)
            .filter(|&index| self.calls[index as usize].flags & DELETED == 0)
    }

    /// The index of a call with this id, live or deleted.
    pub fn find_any(&self, id: &str) -> Option<u32> {
        let index = self.ids.index_of(id)?;
        self.calls.get(index as usize)?;
        (self.ids.call_id(self.seed, index) == id).then_some(index)
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
            self.deleted.insert(index, Utc::now().timestamp_millis());
        }
        true
    }

    /// Marks a live call redacted (once: the first time is kept); its slot after.
    pub fn redact(&mut self, index: u32, now: DateTime<Utc>) -> CallSlot {
        if let Some(meta) = self.calls.get_mut(index as usize) {
            meta.flags |= REDACTED;
            self.redacted.entry(index).or_insert(now.timestamp_millis());
        }
        self.slot(index)
    }

    /// Deletes the live call that `pick` points at, of `agent` or of any agent; returns its id.
    pub fn delete_any(&mut self, agent: Option<u16>, pick: u64) -> Option<String> {
        self.compact();
        let list = match agent {
            Some(agent) => self.by_agent.get(agent as usize)?,
            None => &self.live,
        };
        if list.is_empty() {
            return None;
        }
        let index = list[(pick % list.len() as u64) as usize];
        let id = self.ids.call_id(self.seed, index);
        self.delete(&id, false).then_some(id)
    }

    /// Calls deleted at the provider, oldest first by creation, created in `created_ms`.
    pub fn deleted(&self, created_ms: std::ops::Range<i64>) -> Vec<DeletedCall> {
        let mut out: Vec<DeletedCall> = self
            .deleted
            .iter()
            .map(|(&index, &deleted_ms)| DeletedCall {
                slot: self.slot(index),
                deleted_ms,
            })
            .filter(|d| created_ms.contains(&d.slot.meta.created_ms))
            .collect();
        out.sort_by_key(|d| d.slot.index);
        out
    }

    /// Adds `n` new calls for agent `agent`, created now; returns their ids.
    pub fn add_calls(&mut self, agent: u16, n: u32, now: DateTime<Utc>) -> Vec<String> {
        let agent = agent.min(self.agents.len() as u16 - 1);
        let mut ids = Vec::new();
        for _ in 0..n {
            let index = self.calls.len() as u32;
            // Creation order follows the index: never before the newest call.
            let newest = self.calls.last().map_or(i64::MIN, |m| m.created_ms);
            self.calls.push(CallMeta {
                created_ms: now.timestamp_millis().max(newest),
                agent,
                flags: 0,
            });
            self.by_agent[agent as usize].push(index);
            self.live.push(index);
            ids.push(self.ids.call_id(self.seed, index));
        }
        ids
    }

    /// Finishes up to `n` calls that `pending` says are unfinished, created in `created_ms`,
    /// newest first. Returns their ids.
    pub fn complete_pending(
        &mut self,
        n: usize,
        created_ms: std::ops::Range<i64>,
        now: DateTime<Utc>,
        pending: impl Fn(&Renderer, CallSlot) -> bool,
    ) -> Vec<String> {
        let renderer = self.renderer();
        let mut done = Vec::new();
        for index in (0..self.calls.len() as u32).rev() {
            if done.len() >= n {
                break;
            }
            let meta = self.calls[index as usize];
            if meta.flags & (DELETED | FINISHED_LATE) != 0 || !created_ms.contains(&meta.created_ms)
            {
                continue;
            }
            if pending(&renderer, self.slot(index)) {
                self.calls[index as usize].flags |= FINISHED_LATE;
                self.late.insert(index, now.timestamp_millis());
                done.push(self.ids.call_id(self.seed, index));
            }
        }
        done
    }

    /// Every live call, oldest first, as served.
    pub fn all_live(&mut self) -> Vec<CallSlot> {
        self.compact();
        self.live.iter().map(|&i| self.slot(i)).collect()
    }

    /// What rendering needs, detached from the data set so it can run outside its lock.
    pub fn renderer(&self) -> Renderer {
        Renderer {
            seed: self.seed,
            anchor_ms: self.anchor.timestamp_millis(),
            ids: self.ids,
            agents: self.agents.clone(),
        }
    }
}

/// What a provider module renders a call from.
#[derive(Clone)]
pub struct Renderer {
    pub seed: u64,
    pub anchor_ms: i64,
    ids: IdStyle,
    agents: Arc<Vec<String>>,
}

impl Renderer {
    pub fn call_id(&self, index: u32) -> String {
        self.ids.call_id(self.seed, index)
    }

    pub fn agent_id(&self, slot: CallSlot) -> &str {
        &self.agents[slot.meta.agent as usize]
    }

    pub fn label(&self, index: u32) -> &'static str {
        label_of(self.seed, index)
    }

    /// The call's own random stream; `salt` gives a provider or a part of a call its own.
    pub fn rng(&self, index: u32, salt: u64) -> SmallRng {
        call_rng(self.seed ^ salt, index)
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn pick<T: Copy>(rng: &mut SmallRng, items: &[T]) -> T {
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
pub(super) use maybe;

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(super) const NAMES: [&str; 10] = [
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
pub(super) const TAGS: [&str; 8] = [
    "vip",
    "billing",
    "refund",
    "escalated",
    "spanish",
    "après-vente",
    "callback",
    "outage",
];
pub(super) const TOOLS: [(&str, &str); 5] = [
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
pub(super) const EVENTS: [(&str, &str); 4] = [
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
pub(super) const SUMMARIES: [&str; 5] = [
    "The caller asked why their invoice doubled this month. The agent found a duplicate charge, explained it and opened a refund; the caller was satisfied.",
    "Caller wanted to move a delivery to next Tuesday. The agent checked availability, rescheduled and sent a confirmation by SMS. Überraschend kurz.",
    "A customer reported an outage in their area. The agent confirmed the incident, gave the expected restore time and offered a callback.",
    "El cliente pidió información sobre su saldo. The agent verified identity and read out the balance and the next due date.",
    "The caller was upset about a missed appointment. The agent apologised, rebooked for the earliest slot and flagged the case for follow-up. 🙏",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_calls_and_ids_round_trip() {
        let anchor = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut a = Dataset::new(7, 500, 3, anchor, IdStyle::Uuid);
        let mut b = Dataset::new(7, 500, 3, anchor, IdStyle::Uuid);
        let render = |d: &mut Dataset| -> Vec<String> {
            let renderer = d.renderer();
            d.all_live()
                .into_iter()
                .map(|s| {
                    serde_json::to_string(&super::super::bluejay::render(&renderer, s)).unwrap()
                })
                .collect()
        };
        let (ja, jb) = (render(&mut a), render(&mut b));
        assert_eq!(ja, jb);
        assert_eq!(ja.len(), 500);
        for style in [
            IdStyle::Uuid,
            IdStyle::Prefixed("ac_"),
            IdStyle::Integer,
            IdStyle::UuidOnly,
        ] {
            let d = Dataset::new(7, 500, 3, anchor, style);
            let id = style.call_id(7, 42);
            assert_eq!(d.find(&id), Some(42), "{id}");
            assert_eq!(d.find(&style.call_id(8, 42)), None);
        }
        assert!(IdStyle::Integer.call_id(7, 0).parse::<u64>().unwrap() > u32::MAX as u64);
        let id = IdStyle::Uuid.call_id(7, 42);
        assert!(a.delete(&id, false));
        assert_eq!(a.find(&id), None);
        assert_eq!(a.find_any(&id), Some(42));
        assert_eq!(a.all_live().len(), 499);
        assert_eq!(a.deleted(i64::MIN..i64::MAX).len(), 1);
    }

    #[test]
    fn a_busy_day_keeps_creation_order_and_truncated_answers_pick_arbitrarily() {
        let anchor = Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap();
        let busy = BusyDay {
            days_before_anchor: 10,
            calls: 1_500,
        };
        let mut d = Dataset::with_busy_day(3, 500, 2, anchor, IdStyle::Integer, Some(busy));
        let created: Vec<i64> = d.calls.iter().map(|m| m.created_ms).collect();
        assert_eq!(created.len(), 2_000);
        assert!(
            created.windows(2).all(|w| w[0] <= w[1]),
            "indices follow creation"
        );
        let day = busy.start_ms(anchor);
        assert_eq!(
            day,
            Utc.with_ymd_and_hms(2026, 10, 22, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        let last = day + DAY_MS - 1;
        let in_day = created.iter().filter(|c| (day..=last).contains(c)).count();
        assert!((1_500..1_510).contains(&in_day), "{in_day}");
        let indices = |slots: &[CallSlot]| slots.iter().map(|s| s.index).collect::<Vec<_>>();
        let (picked, matched) = d.sample_created_between(Some(day), Some(last), 1_000, 1);
        assert_eq!((picked.len(), matched), (1_000, in_day));
        assert!(picked
            .iter()
            .all(|s| (day..=last).contains(&s.meta.created_ms)));
        let order = indices(&picked);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "served in no order");
        let again = d.sample_created_between(Some(day), Some(last), 1_000, 1).0;
        assert_eq!(indices(&again), order, "one question, one answer");
        let mut other = indices(&d.sample_created_between(Some(day), Some(last), 1_000, 2).0);
        let mut first = order.clone();
        first.sort_unstable();
        other.sort_unstable();
        assert_ne!(first, other, "which calls are left out is arbitrary");
        // A range that fits is served whole, and bounds are inclusive.
        let at = created[700];
        let (whole, matched) = d.sample_created_between(Some(at), Some(at), 1_000, 3);
        assert_eq!(whole.len(), matched);
        assert!(whole.iter().any(|s| s.index == 700));
        let (everything, matched) = d.sample_created_between(None, None, 5_000, 4);
        assert_eq!((everything.len(), matched), (2_000, 2_000));
    }

    #[test]
    fn pages_cover_a_window_exactly_in_either_order() {
        let anchor = Utc::now();
        let mut d = Dataset::new(1, 1000, 2, anchor, IdStyle::Uuid);
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
        // A keyset walk from either end, past a deleted cursor call, sees every call once.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = d.keyset(&KeysetQuery {
                agent: Some(0),
                newest_first: true,
                after,
                limit: 30,
                ..KeysetQuery::default()
            });
            let first = after.is_none();
            seen.extend(page.iter().map(|s| s.index));
            after = page.last().map(|s| s.index);
            if let (true, Some(cursor)) = (first, after) {
                assert!(d.delete(&IdStyle::Uuid.call_id(1, cursor), false));
            }
            if !more {
                break;
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen.len(),
            d.by_agent[0].len() + 1,
            "the deleted call was served once"
        );
        let since = anchor.timestamp_millis() - 86_400_000;
        let (recent, slots) = d.list(0, Some(since), None, true, 1, 100);
        assert!(recent < 20, "{recent}");
        assert!(slots.iter().all(|s| s.meta.created_ms >= since));
    }
}
