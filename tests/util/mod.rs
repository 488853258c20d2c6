//! Shared helpers: a simulator on port 0, the compiled binary, and archive readers.

pub mod openapi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use callvault::sim::{SimConfig, SimServer, SortOrder};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

pub const KEY: &str = "sk-test-Zq9-uniqueSECRET-4417";

/// A test's own simulator and archive folder.
pub struct Fixture {
    pub server: SimServer,
    pub dir: tempfile::TempDir,
}

pub fn sim_config(calls: u64, agents: u32) -> SimConfig {
    SimConfig {
        calls,
        agents,
        seed: 11,
        api_key: KEY.into(),
        order: SortOrder::NewestFirst,
        ..SimConfig::default()
    }
}

impl Fixture {
    pub fn new(config: SimConfig) -> Fixture {
        Fixture {
            server: SimServer::start(config).expect("simulator starts"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A simulator of `calls` calls over `agents` agents, already synced into the archive.
    pub fn synced(calls: u64, agents: u32) -> Fixture {
        let fx = Fixture::new(sim_config(calls, agents));
        let out = fx.sync().output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        fx
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("archive.db")
    }

    pub fn agents(&self) -> Vec<String> {
        self.server.sim.agents()
    }

    /// `callvault --db <archive>` with the key in the environment and nothing inherited
    /// that could change its behaviour.
    pub fn cmd(&self) -> Command {
        let mut cmd = callvault();
        cmd.arg("--db").arg(self.db());
        for var in KEY_VARS {
            cmd.env(var, KEY);
        }
        cmd
    }

    /// `callvault sync <provider> --base-url <simulator>` with `extra` arguments.
    pub fn sync_of(&self, provider: &str, extra: &[&str]) -> Command {
        let mut cmd = self.cmd();
        cmd.args(["sync", provider, "--base-url", &self.server.base_url()])
            .args(extra);
        cmd
    }

    /// The arguments of `sync()`: `sync bluejay --base-url <simulator> --agent ..` for every
    /// agent.
    pub fn sync_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["sync", "bluejay", "--base-url", &self.server.base_url()]
            .map(String::from)
            .to_vec();
        for agent in self.agents() {
            args.push("--agent".into());
            args.push(agent);
        }
        args
    }

    /// `cmd()` as a `std::process::Command`, for runs a test kills or waits on itself.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("callvault"));
        cmd.env_remove("CALLVAULT_DB").env_remove("CALLVAULT_LOG");
        for var in KEY_VARS {
            cmd.env(var, KEY);
        }
        cmd.arg("--db").arg(self.db());
        cmd
    }

    /// `callvault sync bluejay` for every agent of the simulator.
    pub fn sync(&self) -> Command {
        let mut cmd = self.cmd();
        cmd.args(self.sync_args());
        cmd
    }

    /// The same sync as a child process running in the background, output discarded.
    pub fn spawn_sync(&self, extra: &[&str]) -> std::process::Child {
        self.std_cmd()
            .args(self.sync_args())
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("callvault starts")
    }
}

/// Every provider's key variable; the simulator takes `KEY` for all of them.
pub const KEY_VARS: [&str; 4] = [
    "BLUEJAY_API_KEY",
    "CARTESIA_API_KEY",
    "CLARION_API_KEY",
    "ULTRAVOX_API_KEY",
];

pub fn callvault() -> Command {
    let mut cmd = Command::cargo_bin("callvault").expect("binary built");
    cmd.env_remove("CALLVAULT_DB")
        .env_remove("CALLVAULT_LOG")
        .timeout(std::time::Duration::from_secs(300));
    for var in KEY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

pub fn open(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("archive opens")
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Every archived call's raw JSON by id.
pub fn archived_calls(conn: &Connection) -> std::collections::BTreeMap<String, Value> {
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM calls WHERE provider = 'bluejay'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, raw) = row.unwrap();
            (id, serde_json::from_str(&raw).unwrap())
        })
        .collect()
}

/// What the simulator serves now, by id.
pub fn served_calls(server: &SimServer) -> std::collections::BTreeMap<String, Value> {
    server
        .sim
        .calls_json()
        .into_iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c))
        .collect()
}

/// A dump of every table that holds call content, in a stable order, for comparing archives.
/// The time of the sync and the archive's own row order (`seq`, `call_seq`) are left out.
/// One row as comparable text: the table's name, then every column but `skip`'s values.
pub fn row_line(
    table: &str,
    names: &[String],
    skip: &[&str],
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<String> {
    let mut line = format!("{table}:");
    for (i, name) in names.iter().enumerate() {
        if !skip.contains(&name.as_str()) {
            let v: rusqlite::types::Value = r.get(i)?;
            line.push_str(&format!("{v:?}|"));
        }
    }
    Ok(line)
}

pub fn content_dump(conn: &Connection) -> Vec<String> {
    let tables = [
        ("calls", "id"),
        ("evaluations", "id"),
        ("participants", "call_id, idx"),
        ("tool_calls", "call_id, idx"),
        ("call_events", "call_id, idx"),
        ("call_tags", "call_id, tag"),
        ("custom_metrics", "evaluation_id, idx"),
    ];
    let skip = ["synced_at", "seq", "call_seq"];
    let mut out = Vec::new();
    for (table, order) in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let rows = stmt
            .query_map([], |r| row_line(table, &names, &skip, r))
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

/// Runs callvault with `args` on the fixture's archive, asserts it succeeded, returns stdout.
pub fn run_ok(fx: &Fixture, args: &[&str]) -> String {
    let out = fx.cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    stdout_of(&out)
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A GET or DELETE straight at the simulator, for checking what it serves.
pub fn http(method: &str, url: &str, key: Option<&str>) -> (u16, Value) {
    match key {
        Some(key) => http_with(method, url, &[("X-API-Key", key)]),
        None => http_with(method, url, &[]),
    }
}

/// A request straight at the simulator with these headers; the body as JSON (null if none).
pub fn http_with(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    })
}

fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Turns an archive written by this build back to schema 5, for upgrade tests over synced
/// data: each evaluation keeps a copy of its JSON in `raw_json` and `evaluations_call` is back.
pub fn back_to_schema_5(conn: &Connection) {
    conn.execute_batch(
        "ALTER TABLE evaluations ADD COLUMN raw_json TEXT;
         UPDATE evaluations SET raw_json = (
             SELECT j.raw_json FROM evaluation_json j
             WHERE j.provider = evaluations.provider AND j.id = evaluations.id);
         DROP VIEW evaluation_json;
         ALTER TABLE evaluations DROP COLUMN json_path;
         ALTER TABLE evaluations DROP COLUMN unplaced_json;
         CREATE INDEX evaluations_call ON evaluations (provider, call_id, avg_agent_latency);
         PRAGMA user_version = 5;",
    )
    .unwrap();
}

/// No row of a child table outlives its call (callvault's writer removes children itself).
pub fn assert_no_orphans(conn: &Connection) {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check").unwrap();
    let orphans: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(orphans.is_empty(), "rows without their call in {orphans:?}");
}

/// Checks every archived value against what the simulator served, field by field.
pub fn assert_archive_matches(conn: &Connection, served: &BTreeMap<String, Value>) {
    assert_no_orphans(conn);
    let archived = archived_calls(conn);
    assert_eq!(
        archived.keys().collect::<Vec<_>>(),
        served.keys().collect::<Vec<_>>(),
        "the archive holds exactly the served calls"
    );
    for (id, call) in served {
        assert_eq!(&archived[id], call, "raw JSON of {id} kept as served");
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, agent_id, status, created_at, duration_ms, recording_url, call_direction,
                    interface, transcript_url, ended_by, external_agent_id,
                    (SELECT count(*) FROM participants p WHERE p.call_id = c.id),
                    (SELECT count(*) FROM tool_calls t WHERE t.call_id = c.id),
                    (SELECT count(*) FROM call_events e WHERE e.call_id = c.id),
                    (SELECT count(*) FROM call_tags g WHERE g.call_id = c.id),
                    (SELECT count(*) FROM evaluations v WHERE v.call_id = c.id)
             FROM calls c",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ),
                [
                    r.get::<_, i64>(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                    r.get(15)?,
                ],
            ))
        })
        .unwrap();
    let s = |v: &Value| v.as_str().map(str::to_string);
    let len = |v: &Value| v.as_array().map_or(0, |a| a.len() as i64);
    for row in rows {
        let (id, typed, children) = row.unwrap();
        let c = &served[&id];
        let mut tags: Vec<&str> = c["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        tags.sort();
        tags.dedup();
        assert_eq!(
            typed,
            (
                s(&c["agent_id"]),
                s(&c["status"]),
                s(&c["created_at"]),
                c["duration_ms"].as_i64(),
                s(&c["recording_url"]),
                s(&c["call_direction"]),
                s(&c["interface"]),
                s(&c["transcript_url"]),
                s(&c["conversation_ended_by"]),
                s(&c["external_agent_id"]),
            ),
            "typed columns of {id}"
        );
        assert_eq!(
            children,
            [
                len(&c["participants"]),
                len(&c["tool_calls"]),
                len(&c["events"]),
                tags.len() as i64,
                len(&c["evaluations"]),
            ],
            "child rows of {id}"
        );
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, call_id, hallucination, avg_agent_latency, p95_agent_latency,
                    max_agent_latency, p99_filler_ignored_latency, goal_success, sentiment_label,
                    num_turns, custom_evals_json,
                    (SELECT count(*) FROM custom_metrics m WHERE m.evaluation_id = e.id),
                    (SELECT j.raw_json FROM evaluation_json j
                     WHERE j.provider = e.provider AND j.id = e.id)
             FROM evaluations e",
        )
        .unwrap();
    let mut evals = BTreeMap::new();
    for row in stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, Option<f64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, i64>(11)?,
                    // The evaluation's JSON, read from its call's through `evaluation_json`.
                    serde_json::from_str::<Value>(&r.get::<_, String>(12)?).ok(),
                ),
            ))
        })
        .unwrap()
    {
        let (id, values) = row.unwrap();
        evals.insert(id, values);
    }
    let mut served_evals = 0;
    for (id, c) in served {
        for e in c["evaluations"].as_array().unwrap() {
            served_evals += 1;
            let eid = e["id"].as_str().unwrap();
            let latency = &e["latency"];
            let expected = (
                id.clone(),
                e["hallucination"].as_bool().map(i64::from),
                opt_f64(&latency["avg_agent_latency"]).or(opt_f64(&e["avg_agent_latency"])),
                opt_f64(&latency["p95_agent_latency"]),
                opt_f64(&latency["max_agent_latency"]),
                opt_f64(&e["filler_ignored_latency"]["p99_filler_ignored_latency"]),
                e["goal_success"].as_bool().map(i64::from),
                s(&e["sentiment_label"]),
                e["num_turns"].as_i64(),
                (!e["custom_evals"].is_null()).then(|| e["custom_evals"].to_string()),
                len(&e["custom_metrics"]),
                Some(e.clone()),
            );
            assert_eq!(evals.get(eid), Some(&expected), "evaluation {eid}");
        }
    }
    assert_eq!(evals.len(), served_evals, "no extra evaluations");
}

pub fn summary_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("synced "))
        .unwrap_or_else(|| panic!("no summary line in: {stderr}"));
    let num = |word: &str| -> u64 {
        let before = &line[..line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"))];
        before.split_whitespace().last().unwrap().parse().unwrap()
    };
    (num(" new"), num(" updated"), num(" unchanged"))
}

/// The first column of every row `sql` returns, as text.
pub fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).expect(sql);
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect(sql)
        .map(|r| r.expect(sql))
        .collect()
}
