//! Runs killed (SIGKILL) in the middle of their work other than a sync's (see
//! `reliability` for those): a schema upgrade, an export, a `query --out`. Each must leave
//! the archive and the output folder as a whole earlier state, and the next run must end
//! clean: nothing half written, nothing temporary left behind.

use std::path::Path;

use super::query::{files_under, parquet_rows};
use crate::util::*;

/// An archive at schema version 1 holding `n` calls of an agent the simulator does not know,
/// each with a tag, a participant, an evaluation and a transcript turn.
fn schema_1_archive(path: &std::path::Path, n: u32) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             {}; PRAGMA user_version = 1;
             BEGIN;
             WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n})
             INSERT INTO calls (provider, id, agent_id, created_at, raw_json, raw_hash, synced_at)
             SELECT 'bluejay', 'old-' || i, 'retired-agent', '2025-01-02T03:04:05.000Z',
                    '{{\"id\":\"old-' || i || '\"}}', i, '2025-01-02T04:00:00.000Z' FROM k;
             INSERT INTO call_tags (provider, call_id, tag) SELECT provider, id, 'vip' FROM calls;
             INSERT INTO participants (provider, call_id, idx, role)
             SELECT provider, id, 0, 'AGENT' FROM calls;
             INSERT INTO evaluations (provider, id, call_id, raw_json)
             SELECT provider, 'e-' || id, id, '{{}}' FROM calls;
             INSERT INTO transcript_turns (provider, call_id, idx, text)
             SELECT provider, id, 0, 'hello' FROM calls;
             COMMIT;",
            callvault::store::SCHEMA
        ))
        .unwrap();
}

/// The archive's schema version, read beside a writer (0 while it cannot be read).
fn schema_version(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn a_schema_upgrade_killed_mid_step_leaves_a_whole_version_and_the_next_run_finishes_it() {
    const OLD_CALLS: u32 = 40_000;
    let fx = Fixture::new(sim_config(100, 1));
    schema_1_archive(&fx.db(), OLD_CALLS);
    let mut child = fx
        .std_cmd()
        .args(fx.sync_args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Step 2 (an index) is quick; step 3 rebuilds every table of call parts. Kill in it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while schema_version(&fx.db()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upgrade never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let version = schema_version(&fx.db());
    assert!(
        (2..callvault::store::SCHEMA_VERSION).contains(&version),
        "killed mid-upgrade: version {version}"
    );
    {
        let conn = open(&fx.db());
        assert_eq!(
            conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
                .unwrap(),
            "ok"
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM calls"), OLD_CALLS as i64);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM call_tags"),
            OLD_CALLS as i64
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM sync_runs"),
            0,
            "the sync never began"
        );
    }

    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&fx.db());
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        callvault::store::SCHEMA_VERSION
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls"),
        OLD_CALLS as i64 + 100
    );
    for table in [
        "call_tags",
        "participants",
        "evaluations",
        "transcript_turns",
    ] {
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT count(*) FROM {table} t JOIN calls c ON c.seq = t.call_seq
                     WHERE c.agent_id = 'retired-agent'"
                )
            ),
            OLD_CALLS as i64,
            "{table} of the old calls, each under its call"
        );
    }
    assert_no_orphans(&conn);
}

/// Names in `dir` that start with `.` (staging folders, temporary files).
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `args` in the background and kills it (SIGKILL) as soon as `dir` shows a hidden
/// entry (work in progress); tries again, up to 20 times, when the run ended first.
fn kill_mid_write(fx: &Fixture, args: &[&str], dir: &Path) -> Vec<String> {
    for _ in 0..20 {
        let mut child = fx
            .std_cmd()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if !hidden_entries(dir).is_empty() || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let _ = child.kill();
        child.wait().unwrap();
        let left = hidden_entries(dir);
        if !left.is_empty() {
            return left;
        }
    }
    panic!("{args:?} always finished before it could be killed");
}

#[test]
fn an_export_killed_mid_table_is_redone_whole_by_the_next_run() {
    let fx = Fixture::synced(2_000, 3);
    let out = fx.dir.path().join("export");
    let o = out.to_str().unwrap();
    let args = ["export", "--out", o, "--with-raw"];
    let left = kill_mid_write(&fx, &args, &out);
    assert!(
        left.iter().all(|n| n.ends_with(".partial")),
        "a killed export leaves only staging folders: {left:?}"
    );
    run_ok(&fx, &args);
    assert_eq!(
        hidden_entries(&out),
        Vec::<String>::new(),
        "no staging left"
    );
    let conn = open(&fx.db());
    for table in [
        "calls",
        "evaluations",
        "tool_calls",
        "call_tags",
        "transcript_turns",
    ] {
        let want = count(&conn, &format!("SELECT count(*) FROM {table}")) as usize;
        let files = files_under(&out.join(table), "parquet");
        assert_eq!(parquet_rows(&files), want, "{table} whole, once");
    }
}

#[test]
fn a_query_out_killed_mid_write_keeps_the_old_file_and_the_next_run_ends_clean() {
    let fx = Fixture::synced(1_000, 3);
    let target = fx.dir.path().join("result.csv");
    let t = target.to_str().unwrap();
    let small = [
        "query",
        "SELECT id FROM calls ORDER BY id LIMIT 3",
        "--format",
        "csv",
        "--out",
        t,
    ];
    run_ok(&fx, &small);
    let before = std::fs::read(&target).unwrap();
    // Every column, raw JSON included, of every call, several times over: megabytes to write.
    let big_sql =
        "SELECT c.*, k.n FROM calls c, (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) k";
    let big = ["query", big_sql, "--format", "csv", "--out", t];
    let left = kill_mid_write(&fx, &big, fx.dir.path());
    assert!(
        left.iter().any(|n| n.starts_with(".result.csv.")),
        "killed while writing: {left:?}"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "the old file is intact"
    );

    run_ok(&fx, &big);
    let written = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        csv::Reader::from_reader(written.as_bytes())
            .records()
            .count(),
        3_000
    );
    assert_eq!(
        hidden_entries(fx.dir.path()),
        Vec::<String>::new(),
        "the killed run's temporary file is gone"
    );
}
