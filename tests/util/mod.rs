//! Shared helpers: a simulator on port 0, the compiled binary, and archive readers.
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

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
        cmd.arg("--db").arg(self.db()).env("BLUEJAY_API_KEY", KEY);
        cmd
    }

    /// `cmd()` as a `std::process::Command`, for runs a test kills or waits on itself.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("callvault"));
        cmd.env_remove("CALLVAULT_DB")
            .env_remove("CALLVAULT_LOG")
            .env("BLUEJAY_API_KEY", KEY)
            .arg("--db")
            .arg(self.db());
        cmd
    }

    /// `callvault sync bluejay` for every agent of the simulator.
    pub fn sync(&self) -> Command {
        let mut cmd = self.cmd();
        cmd.args(["sync", "bluejay", "--base-url", &self.server.base_url()]);
        for agent in self.agents() {
            cmd.args(["--agent", &agent]);
        }
        cmd
    }
}

pub fn callvault() -> Command {
    let mut cmd = Command::cargo_bin("callvault").expect("binary built");
    cmd.env_remove("CALLVAULT_DB")
        .env_remove("CALLVAULT_LOG")
        .env_remove("BLUEJAY_API_KEY")
        .timeout(std::time::Duration::from_secs(300));
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
pub fn content_dump(conn: &Connection) -> Vec<String> {
    let tables = [
        ("calls", "id", "synced_at"),
        ("evaluations", "id", ""),
        ("participants", "call_id, idx", ""),
        ("tool_calls", "call_id, idx", ""),
        ("call_events", "call_id, idx", ""),
        ("call_tags", "call_id, tag", ""),
        ("custom_metrics", "evaluation_id, idx", ""),
    ];
    let mut out = Vec::new();
    for (table, order, skip) in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let rows = stmt
            .query_map([], |r| {
                let mut line = format!("{table}:");
                for (i, name) in names.iter().enumerate() {
                    if name != skip {
                        let v: rusqlite::types::Value = r.get(i)?;
                        line.push_str(&format!("{v:?}|"));
                    }
                }
                Ok(line)
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A GET or DELETE straight at the simulator, for checking what it serves.
pub fn http(method: &str, url: &str, key: Option<&str>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    })
}

/// The first column of every row `sql` returns, as text.
pub fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).expect(sql);
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect(sql)
        .map(|r| r.expect(sql))
        .collect()
}
