//! One read of the archive that every figure of `stats`, of the demo and of the report comes
//! from: `read` walks the calls once, then their evaluations and (when asked) their transcript
//! turns, and fills one `GroupFigures` per group of each grouping it was given.
//!
//! Three narrow reads, each answered from a covering index in one read transaction (one
//! snapshot): the calls' groups (`calls_agent_created`: provider, agent, created_at, seq),
//! the evaluations' figures in `call_seq` order (`evaluations_seq`), and the turns' time to
//! first byte in `call_seq` order (the turns' primary key). The evaluations are read on a second
//! connection in the same snapshot while the calls are read, one core each; up to
//! `CHUNKS_AHEAD` chunks of them (64 MB) wait for the calls, then the reader waits too, so
//! memory stays bounded. Evaluations and turns meet their
//! call's groups through an array indexed by seq, with no string compared, which is several
//! times faster than SQLite's join over a million evaluations.
//!
//! The figures are the ones `stats` printed when they were SQL, to the bit: counts and rates of
//! integers are exact either way, and the mean sentiment score's sum is SQLite's own `sum()`
//! (Kahan-Babuska-Neumaier, `SqlSum`) taken in the order SQLite's plan visits the calls (each
//! call's evaluations first, then the calls by seq without a grouping, or in
//! `calls_agent_created` order with one).

use polars::prelude::PlHashMap;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Statement};

use super::{CallFilter, Grouping, LATENCY_MEASURES};
use crate::query::export::snapshot::begin_in_one_snapshot;
use crate::query::QueryError;

/// What a read takes beyond the calls and their evaluations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// The transcript turns' time to first byte (`tts_ttfb_per_turn`).
    pub turns: bool,
    /// How many of the slowest calls of each measure to keep.
    pub slowest: usize,
}

/// A group: the call's provider and agent and/or the UTC date of its `created_at`, as its
/// grouping asks (the fields it does not ask for are `None`). Ordered like SQL's `ORDER BY`
/// of those columns: NULL first, text by its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub provider: Option<String>,
    pub agent_id: Option<String>,
    pub day: Option<String>,
}

/// SQLite's `sum()` over REAL values, step for step (`sumStep`, `sumFinalize` in SQLite's
/// `func.c`): a compensated sum whose result is the running sum plus its error term. Taken in
/// the same order, it gives the same bits as the SQL it replaces.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SqlSum {
    sum: f64,
    error: f64,
    count: u64,
}

impl SqlSum {
    pub fn add(&mut self, value: f64) {
        let s = self.sum;
        let t = s + value;
        if s.abs() > value.abs() {
            self.error += (s - t) + value;
        } else {
            self.error += (value - t) + s;
        }
        self.sum = t;
        self.count += 1;
    }

    /// The sum, or `None` (SQL NULL) when nothing was added.
    pub fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| {
            if self.error.is_finite() {
                self.sum + self.error
            } else {
                self.sum
            }
        })
    }
}

/// The figures of one group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupFigures {
    pub key: GroupKey,
    pub calls: i64,
    /// Calls with at least one evaluation.
    pub evaluated_calls: i64,
    /// The samples of each of `LATENCY_MEASURES`, ascending.
    pub latency: [Vec<f64>; LATENCY_MEASURES.len()],
    /// Evaluations with a hallucination verdict, and those flagged.
    pub verdicts: i64,
    pub flagged: i64,
    /// Evaluations whose goal succeeded, of those with a goal verdict.
    pub goal_ok: i64,
    pub goal_n: i64,
    /// Evaluations flagged redundant, of those with a redundancy verdict.
    pub redundant: i64,
    pub redundancy_n: i64,
    /// The sentiment scores: their sum (each call's first, then the calls') and count.
    pub sentiment: SqlSum,
    pub sentiment_n: i64,
}

/// One of the slowest calls of a measure: its latency is the mean of its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowCall {
    pub seq: i64,
    pub latency_ms: f64,
    pub samples: usize,
}

/// What `read` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// One list per grouping asked for, in the same order, each in key order.
    pub groupings: Vec<Vec<GroupFigures>>,
    /// Per measure, the slowest calls, slowest first.
    pub slowest: [Vec<SlowCall>; LATENCY_MEASURES.len()],
}

/// Each call's index (the order `read` met it in) by its seq. Evaluations arrive in call_seq
/// order, so the lookups walk a dense array front to back where a hash map of a million calls
/// would miss the cache.
enum CallsBySeq {
    Dense(Vec<u32>),
    /// Seqs far beyond the number of calls (a hand-edited archive) would make the array huge.
    Sparse(PlHashMap<i64, u32>),
}

impl CallsBySeq {
    const NONE: u32 = u32::MAX;

    /// Chosen once every call is met: calls arrive in group order, not by seq, so an early
    /// large seq says nothing about how sparse the seqs are (an archive past a million calls
    /// whose first agent was synced last had fallen back to the hash map, 11% of `stats`).
    fn of(pairs: Vec<(i64, u32)>) -> Self {
        let min = pairs.iter().map(|p| p.0).min().unwrap_or(0);
        let max = pairs.iter().map(|p| p.0).max().unwrap_or(0);
        let dense = usize::try_from(max)
            .ok()
            .filter(|m| min >= 0 && *m <= 8 * pairs.len() + 1_000_000);
        match dense {
            Some(max) => {
                let mut slots = vec![Self::NONE; max + 1];
                for (seq, call) in pairs {
                    // Every seq is within 0..=max.
                    if let Ok(slot) = usize::try_from(seq) {
                        slots[slot] = call;
                    }
                }
                CallsBySeq::Dense(slots)
            }
            None => CallsBySeq::Sparse(pairs.into_iter().collect()),
        }
    }

    fn get(&self, seq: i64) -> Option<u32> {
        match self {
            CallsBySeq::Dense(slots) => usize::try_from(seq)
                .ok()
                .and_then(|i| slots.get(i))
                .copied()
                .filter(|c| *c != Self::NONE),
            CallsBySeq::Sparse(calls) => calls.get(&seq).copied(),
        }
    }

    /// Every call's index, by ascending seq.
    fn in_seq_order(&self) -> Vec<u32> {
        match self {
            CallsBySeq::Dense(slots) => {
                slots.iter().copied().filter(|c| *c != Self::NONE).collect()
            }
            CallsBySeq::Sparse(calls) => {
                let mut pairs: Vec<(i64, u32)> = calls.iter().map(|(s, c)| (*s, *c)).collect();
                pairs.sort_unstable();
                pairs.into_iter().map(|(_, c)| c).collect()
            }
        }
    }
}

/// The groups of one grouping as calls are met.
struct Grouper {
    by: Grouping,
    index: PlHashMap<String, u32>,
    groups: Vec<GroupFigures>,
    /// Each call's group, by call index.
    call_group: Vec<u32>,
    key: String,
    last_key: String,
    last_group: Option<u32>,
}

impl Grouper {
    fn new(by: Grouping) -> Self {
        let mut grouper = Grouper {
            by,
            index: PlHashMap::default(),
            groups: Vec::new(),
            call_group: Vec::new(),
            key: String::new(),
            last_key: String::new(),
            last_group: None,
        };
        // Without a grouping there is one group, calls or none (as SQL's aggregate row).
        if by == Grouping::default() {
            grouper.groups.push(GroupFigures::default());
            grouper.index.insert(String::new(), 0);
        }
        grouper
    }

    /// Files the next call (provider, agent, day) under its group.
    fn add_call(&mut self, provider: &str, agent: Option<&str>, day: Option<&str>) {
        let by = self.by;
        self.key.clear();
        let mut push = |part: Option<&str>| {
            match part {
                Some(p) => self.key.push_str(p),
                None => self.key.push('\u{1}'),
            }
            self.key.push('\0');
        };
        if by.agent {
            push(Some(provider));
            push(agent);
        }
        if by.day {
            push(day);
        }
        // Calls come in (provider, agent, time) order, so a call mostly falls in the group of
        // the one before it: only a new key is looked up.
        let group = match self.last_group {
            Some(g) if self.key == self.last_key => g,
            _ => {
                let g = match self.index.get(self.key.as_str()) {
                    Some(g) => *g,
                    None => {
                        let g = self.groups.len() as u32;
                        self.groups.push(GroupFigures {
                            key: GroupKey {
                                provider: by.agent.then(|| provider.to_string()),
                                agent_id: if by.agent {
                                    agent.map(str::to_string)
                                } else {
                                    None
                                },
                                day: if by.day {
                                    day.map(str::to_string)
                                } else {
                                    None
                                },
                            },
                            ..GroupFigures::default()
                        });
                        self.index.insert(self.key.clone(), g);
                        g
                    }
                };
                self.last_key.clone_from(&self.key);
                self.last_group = Some(g);
                g
            }
        };
        self.groups[group as usize].calls += 1;
        self.call_group.push(group);
    }

    fn group_of(&mut self, call: u32) -> &mut GroupFigures {
        &mut self.groups[self.call_group[call as usize] as usize]
    }
}

/// The text in column `i` of `row`, if it is text.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, QueryError> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

/// A latency value as the archive holds it: a finite number, or nothing.
fn latency_at(row: &rusqlite::Row<'_>, i: usize) -> Result<Option<f64>, QueryError> {
    Ok(match row.get_ref(i)? {
        ValueRef::Real(f) if f.is_finite() => Some(f),
        ValueRef::Integer(n) => Some(n as f64),
        _ => None,
    })
}

/// A 0/1 verdict: whether there is one, and whether it is 1 (SQL's `count(x)`, `x = 1`).
fn verdict_at(row: &rusqlite::Row<'_>, i: usize) -> Result<(bool, bool), QueryError> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => (false, false),
        ValueRef::Integer(n) => (true, n == 1),
        ValueRef::Real(f) => (true, f == 1.0),
        ValueRef::Text(_) | ValueRef::Blob(_) => (true, false),
    })
}

/// The slowest calls of one measure, and the call whose samples are being read.
struct SlowestCalls {
    keep: usize,
    calls: Vec<SlowCall>,
    current: Option<(i64, f64, usize)>,
}

impl SlowestCalls {
    fn new(keep: usize) -> Self {
        SlowestCalls {
            keep,
            calls: Vec::new(),
            current: None,
        }
    }

    /// A sample of call `seq`; samples come in seq order.
    fn sample(&mut self, seq: i64, value: f64) {
        if self.keep == 0 {
            return;
        }
        match &mut self.current {
            Some((s, sum, n)) if *s == seq => {
                *sum += value;
                *n += 1;
            }
            _ => {
                self.finish_call();
                self.current = Some((seq, value, 1));
            }
        }
    }

    fn finish_call(&mut self) {
        let Some((seq, sum, n)) = self.current.take() else {
            return;
        };
        let latency_ms = sum / n as f64;
        // Slowest first; among equals the call archived first.
        let at = self
            .calls
            .partition_point(|c| c.latency_ms.total_cmp(&latency_ms).is_ge());
        if at < self.keep {
            self.calls.insert(
                at,
                SlowCall {
                    seq,
                    latency_ms,
                    samples: n,
                },
            );
            self.calls.truncate(self.keep);
        }
    }

    fn finish(mut self) -> Vec<SlowCall> {
        self.finish_call();
        self.calls
    }
}

/// The evaluations of the call being read, until its last one.
#[derive(Default)]
struct CallEvaluations {
    call: Option<(i64, u32)>,
    sentiment: SqlSum,
}

/// One evaluation's figures as `evaluations_seq` holds them, in 32 bytes. NaN stands for a
/// missing number: SQLite stores no NaN (it reads back as NULL), and a latency is kept only
/// when finite. `verdicts` holds the (has a verdict, is 1) pairs of hallucination, goal and
/// redundancy as bits.
#[derive(Clone, Copy)]
struct EvaluationRow {
    seq: i64,
    latency: f64,
    sentiment: f64,
    verdicts: u8,
}

impl EvaluationRow {
    const HALLUCINATION: u8 = 0;
    const GOAL: u8 = 2;
    const REDUNDANCY: u8 = 4;

    fn latency(&self) -> Option<f64> {
        (!self.latency.is_nan()).then_some(self.latency)
    }

    fn sentiment(&self) -> Option<f64> {
        (!self.sentiment.is_nan()).then_some(self.sentiment)
    }

    fn verdict(&self, at: u8) -> (bool, bool) {
        (
            self.verdicts >> at & 1 == 1,
            self.verdicts >> (at + 1) & 1 == 1,
        )
    }
}

/// Rows in a chunk of `read_evaluations`.
const EVALUATION_CHUNK: usize = 65_536;

/// Chunks read ahead on the second connection while the calls are still being read: 64 MB
/// (about two million evaluations). Past that the reader waits, so memory stays bounded
/// whatever the archive's size.
const CHUNKS_AHEAD: usize = 32;

/// Reads every evaluation's figures in `call_seq` order and hands them to `each` a chunk at a
/// time, until `each` answers false.
fn read_evaluations(
    conn: &Connection,
    mut each: impl FnMut(Vec<EvaluationRow>) -> bool,
) -> Result<(), QueryError> {
    let mut stmt = conn.prepare(
        "SELECT call_seq, avg_agent_latency, hallucination, goal_success, redundancy,
                sentiment_score
         FROM evaluations WHERE call_seq IS NOT NULL ORDER BY call_seq",
    )?;
    let mut rows = stmt.raw_query();
    let mut chunk = Vec::with_capacity(EVALUATION_CHUNK);
    while let Some(row) = rows.next()? {
        let sentiment = match row.get_ref(5)? {
            ValueRef::Null => f64::NAN,
            ValueRef::Real(f) => f,
            ValueRef::Integer(n) => n as f64,
            // SQLite sums text that is no number as 0.
            ValueRef::Text(_) | ValueRef::Blob(_) => 0.0,
        };
        let mut verdicts = 0;
        for (i, at) in [
            (2, EvaluationRow::HALLUCINATION),
            (3, EvaluationRow::GOAL),
            (4, EvaluationRow::REDUNDANCY),
        ] {
            let (has, is_one) = verdict_at(row, i)?;
            verdicts |= u8::from(has) << at | u8::from(is_one) << (at + 1);
        }
        chunk.push(EvaluationRow {
            seq: row.get(0)?,
            latency: latency_at(row, 1)?.unwrap_or(f64::NAN),
            sentiment,
            verdicts,
        });
        if chunk.len() == EVALUATION_CHUNK
            && !each(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(EVALUATION_CHUNK),
            ))
        {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        each(chunk);
    }
    Ok(())
}

/// The read transaction `begin_in_one_snapshot` began on a connection, ended when dropped.
struct ReadTransaction<'c>(&'c Connection);

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        // A read transaction has nothing to undo; ending it cannot lose anything.
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// Reads the figures of the calls `filter` keeps, grouped by each of `groupings`.
pub fn read(
    conn: &Connection,
    filter: &CallFilter,
    groupings: &[Grouping],
    reads: Reads,
) -> Result<Figures, QueryError> {
    // Several statements: one read transaction gives them one snapshot, so a sync writing
    // meanwhile cannot leave a call counted by one and missed by another (a caller already in
    // a transaction, such as the report's, has its own snapshot). A second connection in the
    // same snapshot reads the evaluations on the other core while this one reads the calls.
    let (helper, _snapshot) = match conn.is_autocommit() {
        true => (begin_in_one_snapshot(conn)?, Some(ReadTransaction(conn))),
        false => (None, None),
    };
    let evaluations_ahead = helper.map(|h| {
        let (chunks_out, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        // Stops early when the receiver is gone (this read failed).
        let reader = std::thread::spawn(move || {
            read_evaluations(&h, |chunk| chunks_out.send(chunk).is_ok())
        });
        (reader, chunks)
    });
    let mut groupers: Vec<Grouper> = groupings.iter().map(|g| Grouper::new(*g)).collect();
    let mut seqs: Vec<(i64, u32)> = Vec::new();
    let mut calls: u32 = 0;
    {
        let sql = format!(
            "SELECT c.seq, c.provider, c.agent_id, substr(c.created_at, 1, 10) FROM calls c
             WHERE 1 {}",
            filter.sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        filter.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let provider = text_at(row, 1)?.unwrap_or("");
            let agent = text_at(row, 2)?;
            let day = text_at(row, 3)?;
            for grouper in &mut groupers {
                grouper.add_call(provider, agent, day);
            }
            // A call without a seq has no evaluations or turns to meet, but still counts.
            if let Some(seq) = row.get::<_, Option<i64>>(0)? {
                seqs.push((seq, calls));
            }
            calls += 1;
        }
    }

    let calls_by_seq = CallsBySeq::of(seqs);

    // Each call's summed sentiment scores, by call index (SQL NULL: none).
    let mut call_sentiment: Vec<Option<f64>> = vec![None; calls as usize];
    let mut slowest_evaluated = SlowestCalls::new(reads.slowest);
    let mut open = CallEvaluations::default();
    let mut close = |open: &mut CallEvaluations, groupers: &mut [Grouper]| {
        if let Some((_, call)) = open.call.take() {
            call_sentiment[call as usize] = open.sentiment.value();
            for grouper in groupers.iter_mut() {
                grouper.group_of(call).evaluated_calls += 1;
            }
        }
        open.sentiment = SqlSum::default();
    };
    let mut add = |row: &EvaluationRow| {
        let seq = row.seq;
        if open.call.is_none_or(|(s, _)| s != seq) {
            close(&mut open, &mut groupers);
            // No such call, or one the filter leaves out: no group.
            match calls_by_seq.get(seq) {
                Some(call) => open.call = Some((seq, call)),
                None => return,
            }
        }
        let Some((_, call)) = open.call else {
            return;
        };
        let (latency, sentiment) = (row.latency(), row.sentiment());
        let hallucination = row.verdict(EvaluationRow::HALLUCINATION);
        let goal = row.verdict(EvaluationRow::GOAL);
        let redundancy = row.verdict(EvaluationRow::REDUNDANCY);
        if let Some(value) = sentiment {
            open.sentiment.add(value);
        }
        if let Some(value) = latency {
            slowest_evaluated.sample(seq, value);
        }
        for grouper in &mut groupers {
            let group = grouper.group_of(call);
            if let Some(value) = latency {
                group.latency[0].push(value);
            }
            group.verdicts += i64::from(hallucination.0);
            group.flagged += i64::from(hallucination.1);
            group.goal_n += i64::from(goal.0);
            group.goal_ok += i64::from(goal.1);
            group.redundancy_n += i64::from(redundancy.0);
            group.redundant += i64::from(redundancy.1);
            group.sentiment_n += i64::from(sentiment.is_some());
        }
    };
    match evaluations_ahead {
        Some((reader, chunks)) => {
            for chunk in chunks {
                chunk.iter().for_each(&mut add);
            }
            reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        None => read_evaluations(conn, |chunk| {
            chunk.iter().for_each(&mut add);
            true
        })?,
    }
    close(&mut open, &mut groupers);

    let mut slowest_turns = SlowestCalls::new(reads.slowest);
    if reads.turns {
        let mut stmt = conn.prepare(
            "SELECT call_seq, tts_ttfb_ms FROM transcript_turns
             WHERE tts_ttfb_ms IS NOT NULL ORDER BY call_seq",
        )?;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let Some(call) = calls_by_seq.get(seq) else {
                continue;
            };
            let Some(value) = latency_at(row, 1)? else {
                continue;
            };
            slowest_turns.sample(seq, value);
            for grouper in &mut groupers {
                grouper.group_of(call).latency[1].push(value);
            }
        }
    }

    // The calls' sentiment sums, summed per group in the order SQLite's plan visits them.
    let in_seq_order = groupers
        .iter()
        .any(|g| g.by == Grouping::default())
        .then(|| calls_by_seq.in_seq_order());
    for grouper in &mut groupers {
        let overall = grouper.by == Grouping::default();
        let mut add = |call: u32| {
            if let Some(value) = call_sentiment[call as usize] {
                grouper.group_of(call).sentiment.add(value);
            }
        };
        match (&in_seq_order, overall) {
            (Some(order), true) => order.iter().for_each(|c| add(*c)),
            _ => (0..calls).for_each(add),
        }
    }

    let groupings = groupers
        .into_iter()
        .map(|grouper| {
            let mut groups = grouper.groups;
            for group in &mut groups {
                for samples in &mut group.latency {
                    samples.sort_unstable_by(f64::total_cmp);
                }
            }
            groups.sort_by(|a, b| a.key.cmp(&b.key));
            groups
        })
        .collect();
    Ok(Figures {
        groupings,
        slowest: [slowest_evaluated.finish(), slowest_turns.finish()],
    })
}

/// Binds `filter`'s parameters on a statement built with `CallFilter::sql`.
impl CallFilter {
    pub(crate) fn bind(&self, stmt: &mut Statement<'_>) -> Result<(), QueryError> {
        if let Some(since) = self.since_text() {
            stmt.raw_bind_parameter(":since", since)?;
        }
        if let Some(until) = self.until_text() {
            stmt.raw_bind_parameter(":until", until)?;
        }
        for (i, provider) in self.providers.iter().enumerate() {
            stmt.raw_bind_parameter(format!(":provider{i}").as_str(), provider)?;
        }
        for (i, agent) in self.agents.iter().enumerate() {
            stmt.raw_bind_parameter(format!(":agent{i}").as_str(), agent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_sum_is_sqlites_compensated_sum() {
        // Plain summation loses the small terms; SQLite's sum keeps them.
        let mut sum = SqlSum::default();
        for v in [1e16, 1.0, -1e16, 1.0] {
            sum.add(v);
        }
        assert_eq!(sum.value(), Some(2.0));
        assert_eq!(SqlSum::default().value(), None);
        let mut one = SqlSum::default();
        one.add(-0.25);
        assert_eq!(one.value(), Some(-0.25));
    }

    #[test]
    fn seqs_are_looked_up_in_an_array_unless_far_sparser_than_the_calls() {
        // A large seq met first (its agent sorts first) does not make the map sparse.
        let late_agent_first = vec![(1_000_020, 0), (1, 1), (2, 2), (0, 3)];
        let map = CallsBySeq::of(late_agent_first);
        assert!(matches!(map, CallsBySeq::Dense(_)));
        assert_eq!(map.get(1_000_020), Some(0));
        assert_eq!(map.get(2), Some(2));
        assert_eq!(map.get(3), None);
        assert_eq!(map.get(-1), None);
        assert_eq!(map.in_seq_order(), vec![3, 1, 2, 0]);
        for sparse in [vec![(1, 0), (5_000_000, 1)], vec![(-5, 0), (2, 1)]] {
            let map = CallsBySeq::of(sparse.clone());
            assert!(matches!(map, CallsBySeq::Sparse(_)), "{sparse:?}");
            for (seq, call) in sparse {
                assert_eq!(map.get(seq), Some(call));
            }
        }
    }

    #[test]
    fn slowest_calls_keep_the_slowest_by_mean() {
        let mut slowest = SlowestCalls::new(2);
        for (seq, v) in [(1, 10.0), (1, 30.0), (2, 5.0), (3, 40.0), (4, 20.0)] {
            slowest.sample(seq, v);
        }
        let calls = slowest.finish();
        let got: Vec<(i64, f64, usize)> = calls
            .iter()
            .map(|c| (c.seq, c.latency_ms, c.samples))
            .collect();
        assert_eq!(got, vec![(3, 40.0, 1), (1, 20.0, 2)]);
    }
}
