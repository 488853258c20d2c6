//! Query, stats and export: typed output in every format, named queries and their
//! parameters, exact figures checked against a plain computation over the SQLite file,
//! partitioned Parquet and CSV exports, and DuckDB reading what callvault wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::{DataType, ParquetReader, SerReader, TimeUnit, TimeZone};
use serde_json::Value;

use crate::util::*;

fn run_err(fx: &Fixture, args: &[&str]) -> String {
    let out = fx.cmd().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout_of(&out));
    assert!(out.stdout.is_empty(), "errors never go to stdout");
    let err = stderr_of(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn json_rows(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .as_array()
        .unwrap()
        .clone()
}

/// Linear interpolation between the two nearest ranks (numpy's default), written out.
fn reference_percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = p * (values.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    values[below] + (rank - below as f64) * (values[above] - values[below])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn query_results_are_typed_in_every_format() {
    let fx = Fixture::synced(300, 3);
    let sql = "SELECT c.id, c.created_at, c.duration_ms, e.hallucination, e.avg_agent_latency
               FROM calls c JOIN evaluations e ON e.provider = c.provider AND e.call_id = c.id
               WHERE e.hallucination IS NOT NULL AND e.avg_agent_latency IS NOT NULL
               ORDER BY c.id LIMIT 5";
    let rows = json_rows(&run_ok(&fx, &["query", sql, "--format", "json"]));
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert!(row["hallucination"].is_boolean(), "{row}");
        assert!(row["duration_ms"].is_i64(), "{row}");
        assert!(row["avg_agent_latency"].is_f64(), "{row}");
        let created = row["created_at"].as_str().unwrap();
        assert!(
            created.len() == 24 && created.ends_with('Z'),
            "archive time form: {created}"
        );
    }
    let ndjson = run_ok(&fx, &["query", sql, "--format", "ndjson"]);
    assert_eq!(ndjson.lines().count(), 5);
    let csv = run_ok(&fx, &["query", sql, "--format", "csv"]);
    assert!(csv.starts_with("id,created_at,duration_ms,hallucination,avg_agent_latency\n"));
    assert_eq!(csv.lines().count(), 6);
    let table = run_ok(&fx, &["query", sql]);
    assert!(
        table.contains("created_at") && table.ends_with("(5 rows)\n"),
        "{table}"
    );

    // Parquet keeps the types, and only goes to a file.
    let err = run_err(&fx, &["query", sql, "--format", "parquet"]);
    assert!(err.contains("--out"), "{err}");
    let path = fx.dir.path().join("rows.parquet");
    run_ok(
        &fx,
        &[
            "query",
            sql,
            "--format",
            "parquet",
            "--out",
            path.to_str().unwrap(),
        ],
    );
    let df = ParquetReader::new(std::fs::File::open(&path).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 5);
    assert_eq!(
        df.column("created_at").unwrap().dtype(),
        &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
    );
    assert_eq!(
        df.column("hallucination").unwrap().dtype(),
        &DataType::Boolean
    );
    assert_eq!(df.column("duration_ms").unwrap().dtype(), &DataType::Int64);
    assert_eq!(
        df.column("avg_agent_latency").unwrap().dtype(),
        &DataType::Float64
    );
    // --out for text formats too.
    let csv_path = fx.dir.path().join("rows.csv");
    run_ok(
        &fx,
        &[
            "query",
            sql,
            "--format",
            "csv",
            "--out",
            csv_path.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), csv);
}

/// One evaluation of a served call, as the simulator's data set holds it.
struct ServedEvaluation {
    call_id: String,
    agent: String,
    created: String,
    latency: Option<f64>,
    hallucination: Option<bool>,
}

/// The served calls' evaluations, read from the simulator's JSON.
fn served_evaluations(calls: &[Value]) -> Vec<ServedEvaluation> {
    let mut out = Vec::new();
    for c in calls {
        for e in c["evaluations"].as_array().unwrap() {
            out.push(ServedEvaluation {
                call_id: c["id"].as_str().unwrap().into(),
                agent: c["agent_id"].as_str().unwrap().into(),
                created: archive_time(&c["created_at"]),
                latency: e["latency"]["avg_agent_latency"]
                    .as_f64()
                    .or(e["avg_agent_latency"].as_f64()),
                hallucination: e["hallucination"].as_bool(),
            });
        }
    }
    out
}

/// A served time in the archive's form (RFC 3339 UTC, milliseconds).
fn archive_time(v: &Value) -> String {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn column(rows: &[Value], name: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[name].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn named_queries_answer_what_the_simulators_data_set_holds() {
    let fx = Fixture::synced(400, 3);
    let calls = fx.server.sim.calls_json();
    let evals = served_evaluations(&calls);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        json_rows(&run_ok(&fx, &all))
    };
    let listing = run_ok(&fx, &["query", "--list"]);
    for name in [
        "agent_calls",
        "calls_older_than",
        "hallucinated_calls",
        "hallucination_by_agent_day",
        "latency_by_agent_day",
        "slowest_calls",
        "tool_usage",
        "unevaluated_calls",
    ] {
        let line = listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed: {listing}"));
        assert!(line.len() > name.len() + 10, "with a description: {line}");
    }

    // latency_by_agent_day: n, mean (1 decimal), min and max per agent and day.
    let mut latency: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for e in &evals {
        if let Some(v) = e.latency {
            let key = (e.agent.clone(), e.created[..10].to_string());
            latency.entry(key).or_default().push(v);
        }
    }
    let rows = run(&["query", "latency_by_agent_day"]);
    assert_eq!(rows.len(), latency.len(), "one row per agent and day");
    assert!(latency.len() > 100, "{}", latency.len());
    for (row, ((agent, day), values)) in rows.iter().zip(&latency) {
        assert_eq!(
            (
                row["provider"].as_str(),
                row["agent_id"].as_str(),
                row["day"].as_str()
            ),
            (Some("bluejay"), Some(agent.as_str()), Some(day.as_str())),
            "rows in (provider, agent, day) order"
        );
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(row["n"].as_u64(), Some(values.len() as u64), "{row}");
        assert!(
            (row["mean_ms"].as_f64().unwrap() - mean).abs() <= 0.05 + 1e-9,
            "{row} vs {mean}"
        );
        assert_eq!(row["min_ms"].as_f64(), Some(min), "{row}");
        assert_eq!(row["max_ms"].as_f64(), Some(max), "{row}");
    }

    // hallucination_by_agent_day: evaluations with a verdict, flagged, rate (4 decimals).
    let mut verdicts: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for e in &evals {
        if let Some(flagged) = e.hallucination {
            let entry = verdicts
                .entry((e.agent.clone(), e.created[..10].to_string()))
                .or_default();
            entry.0 += 1;
            entry.1 += u64::from(flagged);
        }
    }
    let rows = run(&["query", "hallucination_by_agent_day"]);
    assert_eq!(rows.len(), verdicts.len());
    for (row, ((agent, day), (n, flagged))) in rows.iter().zip(&verdicts) {
        assert_eq!(
            (row["agent_id"].as_str(), row["day"].as_str()),
            (Some(agent.as_str()), Some(day.as_str()))
        );
        assert_eq!(
            (row["n"].as_u64(), row["flagged"].as_u64()),
            (Some(*n), Some(*flagged))
        );
        let rate = *flagged as f64 / *n as f64;
        assert!(
            (row["rate"].as_f64().unwrap() - rate).abs() <= 0.00005 + 1e-12,
            "{row}"
        );
    }

    // slowest_calls: the 50 highest latencies, highest first, ties by id.
    let mut slowest: Vec<(f64, &str)> = evals
        .iter()
        .filter_map(|e| e.latency.map(|v| (v, e.call_id.as_str())))
        .collect();
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    slowest.truncate(50);
    let rows = run(&["query", "slowest_calls"]);
    let got: Vec<(f64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["avg_agent_latency"].as_f64().unwrap(),
                r["call_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(f64, String)> = slowest.iter().map(|(v, id)| (*v, id.to_string())).collect();
    assert_eq!(got, want);

    // hallucinated_calls: every flagged evaluation's call, newest first.
    let mut flagged: Vec<(&str, &str)> = evals
        .iter()
        .filter(|e| e.hallucination == Some(true))
        .map(|e| (e.created.as_str(), e.call_id.as_str()))
        .collect();
    flagged.sort_by(|a, b| b.0.cmp(a.0).then(a.1.cmp(b.1)));
    let rows = run(&["query", "hallucinated_calls"]);
    assert!(flagged.len() > 10, "{}", flagged.len());
    assert_eq!(
        column(&rows, "call_id"),
        flagged.iter().map(|f| f.1.to_string()).collect::<Vec<_>>()
    );

    // unevaluated_calls: calls without an evaluation, oldest first, with their status.
    let mut unevaluated: Vec<(String, String, String)> = calls
        .iter()
        .filter(|c| c["evaluations"].as_array().unwrap().is_empty())
        .map(|c| {
            (
                archive_time(&c["created_at"]),
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    unevaluated.sort();
    let rows = run(&["query", "unevaluated_calls"]);
    assert!(!unevaluated.is_empty());
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            (text("created_at"), text("call_id"), text("status"))
        })
        .collect();
    assert_eq!(got, unevaluated);

    // tool_usage: per tool, the calls that used it and its uses, most used first.
    let mut tools: BTreeMap<String, (BTreeSet<String>, u64)> = BTreeMap::new();
    for c in &calls {
        for t in c["tool_calls"].as_array().into_iter().flatten() {
            let entry = tools
                .entry(t["name"].as_str().unwrap().to_string())
                .or_default();
            entry.0.insert(c["id"].as_str().unwrap().to_string());
            entry.1 += 1;
        }
    }
    let mut usage: Vec<(u64, String, u64)> = tools
        .into_iter()
        .map(|(name, (used_by, uses))| (uses, name, used_by.len() as u64))
        .collect();
    usage.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let rows = run(&["query", "tool_usage"]);
    let got: Vec<(u64, String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["uses"].as_u64().unwrap(),
                r["tool"].as_str().unwrap().to_string(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(usage.len() >= 2, "{usage:?}");
    assert_eq!(got, usage);

    // agent_calls binds :agent as text: one row per call and evaluation, newest first.
    let agent = &fx.agents()[0];
    let mut mine: Vec<(String, String)> = Vec::new();
    for c in calls.iter().filter(|c| c["agent_id"] == agent.as_str()) {
        let n = c["evaluations"].as_array().unwrap().len().max(1);
        for _ in 0..n {
            mine.push((
                archive_time(&c["created_at"]),
                c["id"].as_str().unwrap().to_string(),
            ));
        }
    }
    mine.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let rows = run(&["query", "agent_calls", "--param", &format!("agent={agent}")]);
    assert_eq!(
        column(&rows, "call_id"),
        mine.iter().map(|m| m.1.clone()).collect::<Vec<_>>()
    );

    // calls_older_than binds days, never spliced: calls created before now - 60 days (a
    // call that crossed the line while the query ran may fall either way).
    let cutoff = |at: chrono::DateTime<chrono::Utc>| {
        (at - chrono::Duration::days(60))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    let before = cutoff(chrono::Utc::now());
    let rows = run(&["query", "calls_older_than", "--param", "days=60"]);
    let after = cutoff(chrono::Utc::now());
    let old: BTreeSet<String> = column(&rows, "call_id").into_iter().collect();
    let created = |c: &&Value| archive_time(&c["created_at"]);
    let surely: BTreeSet<String> = calls
        .iter()
        .filter(|c| created(c) < before)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let maybe: BTreeSet<String> = calls
        .iter()
        .filter(|c| created(c) < after)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        surely.is_subset(&old) && old.is_subset(&maybe),
        "{} old",
        old.len()
    );
    assert!(
        surely.len() > 100 && surely.len() < 300,
        "about half of 120 days"
    );
    assert!(rows.iter().all(|r| r["provider"] == "bluejay"));
    assert!(run(&["query", "calls_older_than", "--param", "days=100000"]).is_empty());
    let err = run_err(&fx, &["query", "calls_older_than"]);
    assert!(err.contains("--param days="), "{err}");
    let err = run_err(&fx, &["query", "slowest_calls", "--param", "days=3"]);
    assert!(err.contains("days"), "{err}");

    // A queries/ folder beside the archive adds queries; unknown names list them all.
    let dir = fx.dir.path().join("queries");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tagged.sql"),
        "-- Calls per tag.\nSELECT tag, count(*) AS n FROM call_tags GROUP BY tag ORDER BY tag",
    )
    .unwrap();
    assert!(run_ok(&fx, &["query", "--list"]).contains("tagged"));
    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for c in &calls {
        let mine: BTreeSet<&str> = c["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for tag in mine {
            *tags.entry(tag.to_string()).or_default() += 1;
        }
    }
    let mut want = String::from("tag,n\n");
    for (tag, n) in &tags {
        want.push_str(&format!("{tag},{n}\n"));
    }
    assert_eq!(run_ok(&fx, &["query", "tagged", "--format", "csv"]), want);
    let err = run_err(&fx, &["query", "no_such_query"]);
    assert!(
        err.contains("no_such_query") && err.contains("slowest_calls") && err.contains("tagged"),
        "{err}"
    );

    // @FILE reads the SQL from a file.
    let file = fx.dir.path().join("n.sql");
    std::fs::write(&file, "SELECT count(*) AS n FROM calls").unwrap();
    assert_eq!(
        run_ok(
            &fx,
            &["query", &format!("@{}", file.display()), "--format", "csv"]
        ),
        "n\n400\n"
    );
}

#[test]
fn query_errors_are_clear_and_leave_nothing_behind() {
    let fx = Fixture::synced(50, 3);
    let err = run_err(&fx, &["query", "SELECT * FROM nope"]);
    assert!(err.contains("no such table: nope"), "{err}");
    for write in [
        "DELETE FROM calls",
        "UPDATE calls SET summary = 'x'",
        "DROP TABLE calls",
    ] {
        let err = run_err(&fx, &["query", write]);
        assert!(err.contains("only statements that read"), "{write}: {err}");
    }
    assert_eq!(count(&open(&fx.db()), "SELECT count(*) FROM calls"), 50);

    // An --out that cannot be written: a clear error and no file, temporary or final.
    let blocker = fx.dir.path().join("afile");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("result.csv");
    let err = run_err(
        &fx,
        &[
            "query",
            "SELECT 1 AS one",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("cannot write") && err.contains("result.csv"),
        "{err}"
    );
    let missing = fx.dir.path().join("no/such/dir/result.parquet");
    let err = run_err(
        &fx,
        &[
            "stats",
            "latency",
            "--format",
            "parquet",
            "--out",
            missing.to_str().unwrap(),
        ],
    );
    assert!(err.contains("cannot write"), "{err}");
    // A failing query never creates its --out file.
    let target = fx.dir.path().join("result.json");
    run_err(
        &fx,
        &[
            "query",
            "SELECT nope FROM calls",
            "--format",
            "json",
            "--out",
            target.to_str().unwrap(),
        ],
    );
    let names: Vec<String> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("result")),
        "no result file or temporary: {names:?}"
    );
}

/// Latency samples by (provider, agent, day) straight from the SQLite file.
fn reference_latency(
    db: &Path,
    since: Option<&str>,
) -> BTreeMap<(String, String, String), Vec<f64>> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(
            "SELECT c.provider, c.agent_id, c.created_at, e.avg_agent_latency
             FROM evaluations e, calls c
             WHERE c.provider = e.provider AND c.id = e.call_id",
        )
        .unwrap();
    let mut groups: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<f64>>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (provider, agent, created, latency) = row.unwrap();
        if since.is_some_and(|s| created.as_str() < s) {
            continue;
        }
        if let Some(v) = latency {
            groups
                .entry((provider, agent, created[..10].to_string()))
                .or_default()
                .push(v);
        }
    }
    groups
}

fn check_latency_rows(rows: &[Value], want: BTreeMap<Vec<String>, Vec<f64>>, key: &[&str]) {
    assert_eq!(rows.len(), want.len(), "one row per group");
    for row in rows {
        let k: Vec<String> = key
            .iter()
            .map(|c| row[*c].as_str().unwrap().to_string())
            .collect();
        let mut values = want
            .get(&k)
            .unwrap_or_else(|| panic!("group {k:?}"))
            .clone();
        assert_eq!(row["n"].as_u64().unwrap() as usize, values.len(), "{k:?}");
        for (col, p) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
            let got = row[col].as_f64().unwrap();
            let expected = reference_percentile(&mut values, p);
            assert!(close(got, expected), "{k:?} {col}: {got} vs {expected}");
        }
    }
}

#[test]
fn stats_equal_a_reference_computation_for_every_group() {
    let fx = Fixture::synced(1_500, 3);
    let samples = reference_latency(&fx.db(), None);
    assert!(samples.len() > 100, "many agent-day groups");

    let by_agent_day: BTreeMap<Vec<String>, Vec<f64>> = samples
        .iter()
        .map(|((p, a, d), v)| (vec![p.clone(), a.clone(), d.clone()], v.clone()))
        .collect();
    let rows = json_rows(&run_ok(
        &fx,
        &["stats", "latency", "--by", "agent,day", "--format", "json"],
    ));
    check_latency_rows(&rows, by_agent_day, &["provider", "agent_id", "day"]);

    let mut by_agent: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    let mut by_day: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    let mut all: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    for ((p, a, d), v) in &samples {
        by_agent
            .entry(vec![p.clone(), a.clone()])
            .or_default()
            .extend(v);
        by_day.entry(vec![d.clone()]).or_default().extend(v);
        all.entry(vec![]).or_default().extend(v);
    }
    let rows = json_rows(&run_ok(
        &fx,
        &["stats", "latency", "--by", "agent", "--format", "json"],
    ));
    check_latency_rows(&rows, by_agent, &["provider", "agent_id"]);
    let rows = json_rows(&run_ok(
        &fx,
        &["stats", "latency", "--by", "day", "--format", "json"],
    ));
    check_latency_rows(&rows, by_day, &["day"]);
    let rows = json_rows(&run_ok(&fx, &["stats", "latency", "--format", "json"]));
    check_latency_rows(&rows, all, &[]);

    // --since keeps calls created on or after the date.
    let since_day = {
        let days: Vec<&String> = samples.keys().map(|(_, _, d)| d).collect();
        days[days.len() / 2].clone()
    };
    let since = reference_latency(&fx.db(), Some(&format!("{since_day}T00:00:00.000Z")));
    let mut by_agent_since: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    for ((p, a, _), v) in &since {
        by_agent_since
            .entry(vec![p.clone(), a.clone()])
            .or_default()
            .extend(v);
    }
    let rows = json_rows(&run_ok(
        &fx,
        &[
            "stats", "latency", "--by", "agent", "--since", &since_day, "--format", "json",
        ],
    ));
    check_latency_rows(&rows, by_agent_since, &["provider", "agent_id"]);

    // Hallucination: flagged / evaluations with a verdict, per agent and day.
    let conn = open(&fx.db());
    let mut verdicts: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT c.provider, c.agent_id, substr(c.created_at, 1, 10), e.hallucination
             FROM evaluations e, calls c WHERE c.provider = e.provider AND c.id = e.call_id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                vec![
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ],
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (key, verdict) = row.unwrap();
        if let Some(v) = verdict {
            let entry = verdicts.entry(key).or_default();
            entry.0 += 1;
            entry.1 += u64::from(v == 1);
        }
    }
    let rows = json_rows(&run_ok(
        &fx,
        &[
            "stats",
            "hallucination",
            "--by",
            "agent,day",
            "--format",
            "json",
        ],
    ));
    assert_eq!(rows.len(), verdicts.len());
    for row in &rows {
        let key: Vec<String> = ["provider", "agent_id", "day"]
            .iter()
            .map(|c| row[*c].as_str().unwrap().to_string())
            .collect();
        let (n, flagged) = verdicts[&key];
        assert_eq!(row["n"].as_u64(), Some(n), "{key:?}");
        assert_eq!(row["flagged"].as_u64(), Some(flagged), "{key:?}");
        assert!(close(
            row["rate"].as_f64().unwrap(),
            flagged as f64 / n as f64
        ));
    }

    // Summary per agent.
    let rows = json_rows(&run_ok(
        &fx,
        &["stats", "summary", "--by", "agent", "--format", "json"],
    ));
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let agent = row["agent_id"].as_str().unwrap();
        let calls = count(
            &conn,
            &format!("SELECT count(*) FROM calls WHERE agent_id = '{agent}'"),
        );
        let evaluated = count(
            &conn,
            &format!("SELECT count(*) FROM calls c WHERE agent_id = '{agent}' AND EXISTS (SELECT 1 FROM evaluations e WHERE e.provider = c.provider AND e.call_id = c.id)"),
        );
        assert_eq!(row["calls"].as_i64(), Some(calls));
        assert_eq!(row["evaluated_calls"].as_i64(), Some(evaluated));
        let mut evals = conn
            .prepare(&format!("SELECT e.goal_success, e.sentiment_score, e.redundancy FROM evaluations e JOIN calls c ON c.provider = e.provider AND c.id = e.call_id WHERE c.agent_id = '{agent}'"))
            .unwrap();
        let (mut goal, mut goal_n, mut sent, mut sent_n, mut red, mut red_n) = (0, 0, 0.0, 0, 0, 0);
        for r in evals
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<f64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .unwrap()
        {
            let (g, s, d) = r.unwrap();
            if let Some(g) = g {
                goal_n += 1;
                goal += i64::from(g == 1);
            }
            if let Some(s) = s {
                sent_n += 1;
                sent += s;
            }
            if let Some(d) = d {
                red_n += 1;
                red += i64::from(d == 1);
            }
        }
        assert!(close(
            row["goal_success_rate"].as_f64().unwrap(),
            goal as f64 / goal_n as f64
        ));
        assert!(close(
            row["mean_sentiment_score"].as_f64().unwrap(),
            sent / sent_n as f64
        ));
        assert!(close(
            row["redundancy_rate"].as_f64().unwrap(),
            red as f64 / red_n as f64
        ));
    }
}

pub(super) fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path, ext));
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub(super) fn parquet_rows(files: &[PathBuf]) -> usize {
    files
        .iter()
        .map(|f| {
            ParquetReader::new(std::fs::File::open(f).unwrap())
                .finish()
                .unwrap()
                .height()
        })
        .sum()
}

#[test]
fn export_writes_partitioned_parquet_and_csv() {
    let fx = Fixture::synced(600, 3);
    let conn = open(&fx.db());
    let out = fx.dir.path().join("export");
    let o = out.to_str().unwrap();
    run_ok(
        &fx,
        &["export", "--out", o, "--partition-by", "provider,day"],
    );
    for table in [
        "calls",
        "evaluations",
        "tool_calls",
        "call_tags",
        "transcript_turns",
    ] {
        let files = files_under(&out.join(table), "parquet");
        let want = count(&conn, &format!("SELECT count(*) FROM {table}")) as usize;
        assert_eq!(parquet_rows(&files), want, "{table}");
        if want > 0 {
            for f in &files {
                let rel = f
                    .strip_prefix(out.join(table))
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(
                    rel.starts_with("provider=bluejay/day=20") && rel.ends_with("/part-0.parquet"),
                    "{rel}"
                );
            }
        }
    }
    // One calls file holds one day's calls, without the partition columns or raw JSON.
    let calls = files_under(&out.join("calls"), "parquet");
    let day = calls[0]
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()[4..]
        .to_string();
    let df = ParquetReader::new(std::fs::File::open(&calls[0]).unwrap())
        .finish()
        .unwrap();
    assert_eq!(
        df.height() as i64,
        count(
            &conn,
            &format!("SELECT count(*) FROM calls WHERE substr(created_at, 1, 10) = '{day}'")
        )
    );
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(!names.contains(&"provider".to_string()) && !names.contains(&"raw_json".to_string()));
    assert!(
        !names.contains(&"seq".to_string()),
        "the archive's row order stays inside it"
    );
    let tags = files_under(&out.join("call_tags"), "parquet");
    let tag_names: Vec<String> = ParquetReader::new(std::fs::File::open(&tags[0]).unwrap())
        .finish()
        .unwrap()
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(tag_names, ["call_id", "tag"]);
    assert_eq!(
        df.column("created_at").unwrap().dtype(),
        &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
    );

    // Unpartitioned CSV of chosen tables, with the raw JSON.
    let csv_out = fx.dir.path().join("csv");
    run_ok(
        &fx,
        &[
            "export",
            "--out",
            csv_out.to_str().unwrap(),
            "--format",
            "csv",
            "--tables",
            "calls,evaluations",
            "--with-raw",
        ],
    );
    let text = std::fs::read_to_string(csv_out.join("calls/part-0.csv")).unwrap();
    assert!(text.lines().next().unwrap().contains("raw_json"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.records().count(), 600);
    assert!(!csv_out.join("tool_calls").exists());

    // A table that does not exist, and a table that cannot be partitioned by day.
    let err = run_err(&fx, &["export", "--out", o, "--tables", "nope"]);
    assert!(err.contains("no table 'nope'"), "{err}");
    let err = run_err(
        &fx,
        &[
            "export",
            "--out",
            o,
            "--tables",
            "sync_runs",
            "--partition-by",
            "day",
        ],
    );
    assert!(err.contains("cannot partition sync_runs"), "{err}");
    assert!(!out.join("sync_runs").exists() && !out.join(".sync_runs.partial").exists());
}

#[test]
fn export_mends_text_that_is_not_utf8_and_takes_other_codecs() {
    let fx = Fixture::synced(1_200, 3);
    let id: String = {
        let conn = rusqlite::Connection::open(fx.db()).unwrap();
        let id = conn
            .query_row(
                "SELECT id FROM calls ORDER BY id LIMIT 1 OFFSET 700",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // SQLite stores text without checking it; a bad byte must not cost the row.
        conn.execute(
            "UPDATE calls SET summary = CAST(x'61ff62' AS TEXT) WHERE id = ?1",
            [&id],
        )
        .unwrap();
        id
    };
    let out = fx.dir.path().join("lz4");
    let o = out.to_str().unwrap();
    run_ok(
        &fx,
        &[
            "export",
            "--out",
            o,
            "--tables",
            "calls",
            "--compression",
            "lz4",
        ],
    );
    let files = files_under(&out.join("calls"), "parquet");
    assert_eq!(parquet_rows(&files), 1_200);
    let df = ParquetReader::new(std::fs::File::open(&files[0]).unwrap())
        .finish()
        .unwrap();
    let ids = df.column("id").unwrap().str().unwrap();
    let summaries = df.column("summary").unwrap().str().unwrap();
    let mended: Vec<&str> = ids
        .iter()
        .zip(summaries.iter())
        .filter(|(i, _)| *i == Some(id.as_str()))
        .filter_map(|(_, s)| s)
        .collect();
    assert_eq!(mended, ["a\u{fffd}b"]);
    let others = summaries
        .iter()
        .filter(|s| s.is_some_and(|s| s.contains('\u{fffd}')))
        .count();
    assert_eq!(others, 1, "only the damaged summary changes");

    let csv = fx.dir.path().join("csv");
    let err = run_err(
        &fx,
        &[
            "export",
            "--out",
            csv.to_str().unwrap(),
            "--format",
            "csv",
            "--compression",
            "lz4",
        ],
    );
    assert!(err.contains("--compression applies to Parquet"), "{err}");
    assert!(!csv.exists());
}

/// `target/pydeps`, where the test installs DuckDB's Python package.
fn pydeps() -> PathBuf {
    let bin = assert_cmd::cargo::cargo_bin("callvault");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.parent().unwrap().parent().unwrap().to_path_buf());
    target.join("pydeps")
}

fn python_with_duckdb() -> std::process::Command {
    let deps = pydeps();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let importable = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .env("PYTHONPATH", &deps)
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        let out = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&deps)
            .arg("-r")
            .arg(root.join("tests/requirements.txt"))
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "installing DuckDB failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut cmd = std::process::Command::new("python3");
    cmd.env("PYTHONPATH", &deps);
    cmd
}

/// Runs `python3 ARGS` with DuckDB importable; what it prints, read as JSON.
pub(super) fn duckdb_script_json<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> Value {
    let run = python_with_duckdb().args(args).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn duckdb_reads_the_export_and_agrees_with_stats() {
    let fx = Fixture::synced(900, 3);
    let out = fx.dir.path().join("export");
    run_ok(
        &fx,
        &[
            "export",
            "--out",
            out.to_str().unwrap(),
            "--partition-by",
            "provider,day",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop_duckdb.py");
    let got = duckdb_script_json([script.as_os_str(), out.as_os_str(), fx.db().as_os_str()]);
    assert_eq!(got["sqlite_counts"], got["parquet_counts"]);
    assert_eq!(got["sqlite_counts"]["calls"], 900);
    assert_eq!(got["created_at_type"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(got["kv"]["callvault.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(got["kv"]["callvault.source"], "table calls");
    assert_eq!(got["codecs"], serde_json::json!(["ZSTD"]));
    assert!(got["kv"]["callvault.snapshot_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let ours = json_rows(&run_ok(
        &fx,
        &["stats", "latency", "--by", "agent", "--format", "json"],
    ));
    assert_eq!(ours.len(), 3);
    for row in &ours {
        let key = format!(
            "{}/{}",
            row["provider"].as_str().unwrap(),
            row["agent_id"].as_str().unwrap()
        );
        let duck = got["p95"][&key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {got}"));
        assert!(
            close(row["p95"].as_f64().unwrap(), duck),
            "{key}: {} vs {duck}",
            row["p95"]
        );
    }
}

#[test]
fn duckdb_reads_each_evaluations_json_from_its_call_in_a_raw_export() {
    let fx = Fixture::synced(60, 2);
    let out = fx.dir.path().join("export");
    let dir = out.to_str().unwrap();
    run_ok(
        &fx,
        &[
            "export",
            "--out",
            dir,
            "--tables",
            "calls,evaluations",
            "--with-raw",
        ],
    );
    let script = r#"
import json, sys, duckdb
d = sys.argv[1]
rows = duckdb.connect().execute(f"""
    SELECT e.id, CAST(json_extract(c.raw_json, e.json_path) AS VARCHAR)
    FROM read_parquet('{d}/evaluations/*.parquet') e
    JOIN read_parquet('{d}/calls/*.parquet') c ON c.provider = e.provider AND c.id = e.call_id
""").fetchall()
print(json.dumps({id: json.loads(text) for id, text in rows}))
"#;
    let duck: BTreeMap<String, Value> = serde_json::from_value(duckdb_script_json(
        ["-c", script, dir].map(std::ffi::OsStr::new),
    ))
    .unwrap();
    let conn = open(&fx.db());
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM evaluation_json")
        .unwrap();
    let archived: BTreeMap<String, Value> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, text) = row.unwrap();
            (id, serde_json::from_str(&text).unwrap())
        })
        .collect();
    assert!(archived.len() >= 30, "{}", archived.len());
    assert_eq!(duck, archived);
    assert!(archived.iter().all(|(id, json)| json["id"] == *id));
}

#[test]
fn large_and_endless_results_stream_instead_of_filling_memory() {
    let fx = Fixture::synced(50, 3);
    let many = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 150000)
                SELECT n, 'row ' || n AS label FROM r";
    let csv = run_ok(&fx, &["query", many, "--format", "csv"]);
    assert_eq!(csv.lines().count(), 150_001);
    assert!(csv.ends_with("150000,row 150000\n"));
    let json: Vec<Value> =
        serde_json::from_str(&run_ok(&fx, &["query", many, "--format", "json"])).unwrap();
    assert_eq!(json.len(), 150_000);
    assert_eq!(json[149_999]["n"], 150_000);
    assert_eq!(
        run_ok(&fx, &["query", many, "--format", "ndjson"])
            .lines()
            .count(),
        150_000
    );
    let parquet = fx.dir.path().join("many.parquet");
    run_ok(
        &fx,
        &[
            "query",
            many,
            "--format",
            "parquet",
            "--out",
            parquet.to_str().unwrap(),
        ],
    );
    let file = std::fs::File::open(&parquet).unwrap();
    let df = polars::prelude::ParquetReader::new(file).finish().unwrap();
    assert_eq!(df.height(), 150_000);
    // The table format is for a terminal: it stops and says so.
    let table = run_ok(&fx, &["query", many]);
    assert!(
        table.contains("only the first 10000 rows are shown"),
        "{}",
        &table[table.len() - 200..]
    );
    // A column that changes type after the first chunk is refused with what to do.
    let mixed = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 70000)
                 SELECT CASE WHEN n < 70000 THEN n ELSE 'late text' END AS v FROM r";
    let out = fx
        .cmd()
        .args(["query", mixed, "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("CAST the column"),
        "{}",
        stderr_of(&out)
    );
    // An endless result ends quietly when its reader has had enough.
    let mut child = fx
        .std_cmd()
        .args([
            "query",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
            "--format",
            "csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: Vec<String> = lines.by_ref().take(5).map(Result::unwrap).collect();
    assert_eq!(first, ["n", "1", "2", "3", "4"]);
    drop(lines);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}
