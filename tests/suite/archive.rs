//! The archive core: full and incremental sync, sort-order independence, labelled streams,
//! bad input (a call without an id), keys, config, status, query, the simulator and the demo.

use callvault::sim::{SimConfig, SimServer, SortOrder};
use serde_json::Value;

use crate::util::*;

#[test]
fn full_sync_archives_every_call_and_a_second_sync_changes_nothing() {
    let fx = Fixture::new(sim_config(1_000, 2));
    let first = fx.sync().output().unwrap();
    assert!(first.status.success(), "{}", stderr_of(&first));
    assert_eq!(summary_counts(&stderr_of(&first)), (1_000, 0, 0));
    let conn = open(&fx.db());
    let served = served_calls(&fx.server);
    assert_eq!(served.len(), 1_000);
    for agent in fx.agents() {
        let n = served
            .values()
            .filter(|c| c["agent_id"] == agent.as_str())
            .count();
        assert!(n >= 400, "each agent has hundreds of calls ({n})");
    }
    assert_archive_matches(&conn, &served);
    let before = content_dump(&conn);
    let synced_at = count(&conn, "SELECT count(DISTINCT synced_at) FROM calls");

    let second = fx.sync().output().unwrap();
    assert!(second.status.success(), "{}", stderr_of(&second));
    let (new, updated, unchanged) = summary_counts(&stderr_of(&second));
    assert_eq!((new, updated), (0, 0));
    assert!(
        unchanged > 0 && unchanged < 1_000,
        "the second walk covers only a small window"
    );
    assert_eq!(content_dump(&conn), before, "nothing rewritten");
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT synced_at) FROM calls"),
        synced_at
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE outcome = 'complete'"
        ),
        2
    );
}

#[test]
fn incremental_sync_picks_up_new_calls_and_late_evaluations_with_a_small_window() {
    let fx = Fixture::new(sim_config(600, 2));
    assert!(fx.sync().output().unwrap().status.success());
    // Fresh calls are mostly still being evaluated when first synced.
    fx.server.sim.add_calls(0, 12);
    assert!(fx.sync().output().unwrap().status.success());
    let now = chrono::Utc::now();
    let completed = fx
        .server
        .sim
        .complete_pending(3, now - chrono::Duration::hours(20)..now);
    assert_eq!(
        completed.len(),
        3,
        "the data set has unfinished recent calls"
    );
    let added = fx.server.sim.add_calls(1, 7);

    let out = fx.sync().output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    let (new, updated, _) = summary_counts(&stderr);
    assert_eq!((new, updated), (7, 3));
    let conn = open(&fx.db());
    assert_archive_matches(&conn, &served_calls(&fx.server));
    for id in completed {
        let evals = count(
            &conn,
            &format!("SELECT count(*) FROM evaluations WHERE call_id = '{id}'"),
        );
        assert_eq!(evals, 1, "late evaluation of {id} archived");
    }
    assert!(added
        .iter()
        .all(|id| archived_calls(&conn).contains_key(id)));
    let mut stmt = conn
        .prepare("SELECT checkpoint_json FROM sync_state")
        .unwrap();
    let windows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(windows.len(), 2);
    for w in windows {
        let w: Value = serde_json::from_str(&w).unwrap();
        assert_eq!(w["window"], "1day", "a window smaller than all");
    }
}

#[test]
fn the_archive_does_not_depend_on_the_providers_sort_order() {
    let anchor = chrono::Utc::now();
    let mut dumps = Vec::new();
    for order in [SortOrder::NewestFirst, SortOrder::OldestFirst] {
        let fx = Fixture::new(SimConfig {
            order,
            anchor: Some(anchor),
            ..sim_config(700, 2)
        });
        let out = fx.sync().output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let conn = open(&fx.db());
        assert_archive_matches(&conn, &served_calls(&fx.server));
        dumps.push(content_dump(&conn));
    }
    assert!(dumps[0].len() > 2_000);
    assert_eq!(dumps[0], dumps[1]);
}

#[test]
fn a_wrong_key_fails_naming_the_401_and_loses_nothing() {
    let fx = Fixture::new(sim_config(200, 2));
    assert!(fx.sync().output().unwrap().status.success());
    let before = content_dump(&open(&fx.db()));
    let out = fx
        .sync()
        .env("BLUEJAY_API_KEY", "sk-wrong-key-77")
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("sk-wrong-key-77"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(content_dump(&open(&fx.db())), before);
    assert_eq!(
        count(
            &open(&fx.db()),
            "SELECT count(*) FROM sync_runs WHERE outcome = 'failed'"
        ),
        1
    );
}

#[test]
fn a_missing_key_is_a_clear_error() {
    let fx = Fixture::new(sim_config(10, 1));
    let out = fx.sync().env_remove("BLUEJAY_API_KEY").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("BLUEJAY_API_KEY is not set"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::new(sim_config(10, 1));
    for args in [
        vec!["sync", "bluejay", "--agent", "a", "--window", "5days"],
        vec!["sync", "bluejay", "--agent", "a", "--concurrency", "0"],
        vec!["sync", "nosuchprovider", "--agent", "a"],
        vec!["query"],
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(!stderr_of(&out).contains("panicked"));
    }
    let out = fx
        .cmd()
        .args(["sync", "bluejay", "--agent", "a", "--window", "5days"])
        .output()
        .unwrap();
    assert!(stderr_of(&out).contains("5days"), "{}", stderr_of(&out));
}

#[test]
fn an_unreachable_host_fails_cleanly() {
    let fx = Fixture::new(sim_config(10, 1));
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = fx
        .cmd()
        .args(["sync", "bluejay", "--agent", "a1"])
        .args(["--base-url", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not reach"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn an_unknown_agent_fails_with_the_providers_message() {
    let fx = Fixture::new(sim_config(10, 1));
    let out = fx
        .cmd()
        .args([
            "sync",
            "bluejay",
            "--agent",
            "no-such-agent",
            "--base-url",
            &fx.server.base_url(),
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("404") && stderr.contains("Agent not found"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_an_archive_is_refused_and_left_untouched() {
    let fx = Fixture::new(sim_config(10, 1));
    let bytes = b"name,calls\nalice,3\n".repeat(50);
    std::fs::write(fx.db(), &bytes).unwrap();
    for args in [vec!["status"], vec!["query", "SELECT 1"]] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr_of(&out).contains("not a SQLite database"),
            "{}",
            stderr_of(&out)
        );
    }
    let out = fx.sync().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("not a SQLite database"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(fx.db()).unwrap(), bytes);
    assert!(!fx.dir.path().join("archive.db-wal").exists());
}

#[test]
fn the_api_key_never_reaches_logs_errors_or_the_archive() {
    let fx = Fixture::new(sim_config(150, 1));
    let out = fx
        .sync()
        .arg("-vvv")
        .env("CALLVAULT_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    assert!(stderr.len() > 1_000, "trace logging produced output");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    for part in ["", "-wal", "-shm"] {
        let path = fx.dir.path().join(format!("archive.db{part}"));
        if let Ok(bytes) = std::fs::read(&path) {
            let key = KEY.as_bytes();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key),
                "key found in {}",
                path.display()
            );
        }
    }
    let status = fx.cmd().args(["status"]).output().unwrap();
    assert!(!stdout_of(&status).contains(KEY));
}

#[test]
fn config_file_sources_sync_with_a_plain_sync() {
    let fx = Fixture::new(sim_config(300, 2));
    let agents = fx.agents();
    std::fs::write(
        fx.dir.path().join("callvault.toml"),
        format!(
            "[[source]]\nprovider = \"bluejay\"\nagents = [\"{}\", \"{}\"]\nbase_url = \"{}\"\nkey_env = \"MY_BLUEJAY_KEY\"\n",
            agents[0],
            agents[1],
            fx.server.base_url()
        ),
    )
    .unwrap();
    let out = fx
        .cmd()
        .env_remove("BLUEJAY_API_KEY")
        .env("MY_BLUEJAY_KEY", KEY)
        .arg("sync")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_archive_matches(&open(&fx.db()), &served_calls(&fx.server));

    std::fs::write(
        fx.dir.path().join("callvault.toml"),
        "[[source]]\nprovider = \"bluejay\"\nagents = [\"a\"]\napi_key = \"sk-in-file\"\n",
    )
    .unwrap();
    let out = fx.cmd().arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("never go in the config file"), "{stderr}");
    assert!(!stderr.contains("sk-in-file"));
}

#[test]
fn status_and_query_read_the_archive() {
    let fx = Fixture::new(sim_config(250, 2));
    assert!(fx.sync().output().unwrap().status.success());
    let status = fx.cmd().arg("status").output().unwrap();
    let text = stdout_of(&status);
    for agent in fx.agents() {
        assert!(text.contains(&agent), "{text}");
    }
    assert!(text.contains("window"), "{text}");

    let out = fx
        .cmd()
        .args([
            "query",
            "SELECT count(*) AS n FROM calls",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), "n\n250\n");
    let out = fx
        .cmd()
        .args([
            "query",
            "SELECT id, duration_ms FROM calls ORDER BY id LIMIT 2",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let out = fx
        .cmd()
        .args(["query", "DELETE FROM calls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("only statements that read"),
        "{}",
        stderr_of(&out)
    );
    let out = fx
        .cmd()
        .args(["query", "SELECT nope FROM calls"])
        .output()
        .unwrap();
    assert!(stderr_of(&out).contains("no such column: nope"));
    assert_eq!(count(&open(&fx.db()), "SELECT count(*) FROM calls"), 250);
}

#[test]
fn the_simulator_validates_parameters_like_bluejay() {
    let server = SimServer::start(sim_config(120, 1)).unwrap();
    let agent = &server.sim.agents()[0];
    let base = format!("{}/v1/retrieve-call-logs/{agent}", server.base_url());
    let (status, body) = http(
        "GET",
        &format!("{base}?page_size=500&page=0&last=5days"),
        Some(KEY),
    );
    assert_eq!(status, 422);
    let locs: Vec<String> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"][1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(locs, vec!["page", "page_size", "last"]);
    assert_eq!(
        http("GET", &format!("{base}?last=all"), Some("nope")).0,
        401
    );
    let (status, body) = http(
        "GET",
        &format!("{base}?last=all&page_size=50&page=3"),
        Some(KEY),
    );
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 120);
    assert_eq!(body["total_pages"], 3);
    assert_eq!(body["call_logs"].as_array().unwrap().len(), 20);
    let id = body["call_logs"][0]["id"].as_str().unwrap().to_string();
    let (status, one) = http(
        "GET",
        &format!("{}/v1/retrieve-call-log/{id}", server.base_url()),
        Some(KEY),
    );
    assert_eq!(
        (status, one["call_log"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let del = format!("{}/v1/call-log/{id}?recording_only=true", server.base_url());
    assert_eq!(http("DELETE", &del, Some(KEY)).0, 200);
    let (_, one) = http(
        "GET",
        &format!("{}/v1/retrieve-call-log/{id}", server.base_url()),
        Some(KEY),
    );
    assert_eq!(one["call_log"]["recording_url"], Value::Null);
    let del = format!("{}/v1/call-log/{id}", server.base_url());
    assert_eq!(http("DELETE", &del, Some(KEY)).0, 200);
    assert_eq!(http("DELETE", &del, Some(KEY)).0, 404);
    assert_eq!(server.sim.deletes().len(), 3);
}

#[test]
fn the_sim_command_serves_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("callvault"))
        .args([
            "sim",
            "--addr",
            "127.0.0.1:0",
            "--calls",
            "150",
            "--agents",
            "1",
            "--api-key",
            KEY,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = lines.next().unwrap().unwrap().replace("listening on ", "");
    let agents = lines.next().unwrap().unwrap().replace("agents: ", "");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = callvault()
        .arg("--db")
        .arg(dir.path().join("a.db"))
        .env("BLUEJAY_API_KEY", KEY)
        .args([
            "sync",
            "bluejay",
            "--agent",
            agents.trim(),
            "--base-url",
            &url,
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        count(
            &open(&dir.path().join("a.db")),
            "SELECT count(*) FROM calls"
        ),
        150
    );
}

#[test]
fn demo_syncs_every_platform_and_prints_figures_that_hold() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = callvault()
        .arg("--db")
        .arg(&db)
        .args(["demo", "--calls", "1500", "--agents", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(stdout.contains("latency p50"), "{stdout}");
    assert!(stdout.contains("archive: "), "{stdout}");
    // It ends with the archive's report, beside the archive, and prints where.
    let page = dir.path().join("callvault-demo.html");
    let shown = std::fs::canonicalize(&page).expect("the demo writes its report");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == format!("report: {}", shown.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("default-src 'none'") && html.contains("<svg"));
    // The archive is left whole in its one file: no WAL or shared-memory file beside it.
    for leftover in ["demo.db-wal", "demo.db-shm"] {
        assert!(
            !dir.path().join(leftover).exists(),
            "{leftover} left behind"
        );
    }
    let conn = open(&db);
    // 1,500 calls a platform; Clarion's data set adds its busy day of 1,500 more.
    let per_provider = strings(
        &conn,
        "SELECT provider || '=' || count(*) FROM calls GROUP BY provider ORDER BY provider",
    );
    assert_eq!(
        per_provider,
        [
            "bluejay=1500",
            "cartesia=1500",
            "clarion=3000",
            "ultravox=1500"
        ]
    );
    // Each printed row: provider, agent, calls, measure, p50, p95, n, rate.
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .filter(|l| {
            ["bluejay", "cartesia", "clarion", "ultravox"]
                .iter()
                .any(|p| l.starts_with(&format!("│ {p} ")))
        })
        .map(|l| {
            l.trim_matches(|c: char| c == '│' || c.is_whitespace())
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 12, "three agents on each platform: {stdout}");
    for row in &rows {
        let (provider, agent) = (&row[0], &row[1]);
        let calls = count(
            &conn,
            &format!(
                "SELECT count(*) FROM calls WHERE provider = '{provider}' AND agent_id = '{agent}'"
            ),
        );
        assert_eq!(row[2], calls.to_string(), "{row:?}");
        let samples_sql = match row[3].as_str() {
            "agent_latency_per_evaluation" => format!(
                "SELECT e.avg_agent_latency FROM evaluations e JOIN calls c ON c.seq = e.call_seq
                 WHERE c.provider = '{provider}' AND c.agent_id = '{agent}' AND e.avg_agent_latency IS NOT NULL"
            ),
            "tts_ttfb_per_turn" => format!(
                "SELECT t.tts_ttfb_ms FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
                 WHERE c.provider = '{provider}' AND c.agent_id = '{agent}' AND t.tts_ttfb_ms IS NOT NULL"
            ),
            _ => {
                assert_eq!(row[4..7], ["-", "-", "0"], "{row:?}");
                continue;
            }
        };
        let mut samples: Vec<f64> = conn
            .prepare(&samples_sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = p * (samples.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            samples[lo] + (samples[hi] - samples[lo]) * (rank - lo as f64)
        };
        assert_eq!(row[4], format!("{:.1}", at(0.5)), "{row:?}");
        assert_eq!(row[5], format!("{:.1}", at(0.95)), "{row:?}");
        assert_eq!(row[6], samples.len().to_string(), "{row:?}");
    }
    assert!(rows
        .iter()
        .any(|r| r[0] == "bluejay" && r[3] == "agent_latency_per_evaluation"));
    assert!(rows
        .iter()
        .any(|r| r[0] == "cartesia" && r[3] == "tts_ttfb_per_turn"));
}

#[test]
fn an_archive_from_schema_1_is_upgraded_by_the_next_sync_and_keeps_what_it_held() {
    let fx = Fixture::new(sim_config(300, 2));
    rusqlite::Connection::open(fx.db())
        .unwrap()
        .execute_batch(&format!(
            "{}; PRAGMA user_version = 1;
             INSERT INTO calls (provider, id, agent_id, created_at, raw_json, raw_hash, synced_at)
             VALUES ('bluejay', 'kept-call', 'retired-agent', '2025-01-02T03:04:05.000Z',
                     '{{\"id\":\"kept-call\"}}', 7, '2025-01-02T04:00:00.000Z');
             INSERT INTO call_tags (provider, call_id, tag) VALUES ('bluejay', 'kept-call', 'vip');",
            callvault::store::SCHEMA
        ))
        .unwrap();
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("upgrading the archive's schema to version"),
        "{}",
        stderr_of(&out)
    );
    let conn = open(&fx.db());
    let version = count(&conn, "PRAGMA user_version");
    assert_eq!(version, callvault::store::SCHEMA_VERSION);
    assert_eq!(
        strings(
            &conn,
            "SELECT t.tag FROM calls c JOIN call_tags t ON t.call_seq = c.seq
             WHERE c.id = 'kept-call'"
        ),
        ["vip"]
    );
    assert_no_orphans(&conn);
    let served = served_calls(&fx.server);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls") as usize,
        served.len() + 1
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls WHERE seq IS NULL"),
        0,
        "every call has its seq"
    );
    // A second sync of the upgraded archive changes nothing.
    let again = fx.sync().output().unwrap();
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert_eq!(summary_counts(&stderr_of(&again)).0, 0);
}

#[test]
fn an_archive_from_schema_5_reads_each_evaluations_json_from_its_call_after_the_upgrade() {
    let fx = Fixture::synced(200, 2);
    let conn = rusqlite::Connection::open(fx.db()).unwrap();
    let paths = strings(
        &conn,
        "SELECT id || ' ' || json_path FROM evaluations ORDER BY id",
    );
    assert!(paths.len() >= 100, "{}", paths.len());
    back_to_schema_5(&conn);
    // Evaluations without ids, an id listed twice (the last one is kept, as the writer does)
    // and one whose JSON its call does not hold, as an older archive could have.
    conn.execute_batch(
        r#"INSERT INTO calls (provider, id, raw_json, raw_hash, synced_at, seq)
           VALUES ('bluejay', 'by-hand', '{"id":"by-hand","evaluations":[{"hallucination":true},
                   {"id":"twice","n":1},{"id":"twice","n":2}]}', 0, '2026-11-02T00:00:00.000Z',
                   1000000);
           INSERT INTO evaluations (provider, id, call_id, hallucination, raw_json, call_seq)
           VALUES ('bluejay', 'by-hand#evaluation-0', 'by-hand', 1, '{"hallucination":true}', 1000000),
                  ('bluejay', 'twice', 'by-hand', NULL, '{"id":"twice","n":2}', 1000000),
                  ('bluejay', 'elsewhere', 'by-hand', NULL, '{"id":"elsewhere"}', 1000000);
           INSERT INTO calls (provider, id, raw_json, raw_hash, synced_at, seq)
           VALUES ('clarion', '7', '{"id":7,"analysis":{"summary":"ok"}}', 0,
                   '2026-11-02T00:00:00.000Z', 1000001),
                  ('clarion', '8', '{"id":8,"analysis":"{\"successEvaluation\":\"true\"}"}', 0,
                   '2026-11-02T00:00:00.000Z', 1000002);
           INSERT INTO evaluations (provider, id, call_id, raw_json, call_seq)
           VALUES ('clarion', '7', '7', '{"summary":"ok"}', 1000001),
                  ('clarion', '8', '8', '{"successEvaluation":"true"}', 1000002);"#,
    )
    .unwrap();
    drop(conn);

    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(summary_counts(&stderr_of(&out)).0, 0, "nothing new to sync");
    let conn = rusqlite::Connection::open(fx.db()).unwrap();
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        callvault::store::SCHEMA_VERSION
    );
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_eq!(
        strings(
            &conn,
            "SELECT id || ' ' || json_path FROM evaluations
             WHERE call_id <> 'by-hand' AND provider = 'bluejay' ORDER BY id"
        ),
        paths,
        "the upgrade finds each evaluation where a sync puts it"
    );
    let by_hand = strings(
        &conn,
        "SELECT e.id || ' ' || coalesce(e.json_path, '-') || ' ' || coalesce(e.unplaced_json, '-')
                || ' ' || j.raw_json
         FROM evaluations e JOIN evaluation_json j ON j.provider = e.provider AND j.id = e.id
         WHERE e.call_id = 'by-hand' OR e.provider = 'clarion' ORDER BY e.provider, e.id",
    );
    assert_eq!(
        by_hand,
        [
            r#"by-hand#evaluation-0 $.evaluations[0] - {"hallucination":true}"#,
            r#"elsewhere - {"id":"elsewhere"} {"id":"elsewhere"}"#,
            r#"twice $.evaluations[2] - {"id":"twice","n":2}"#,
            // Clarion's analysis, an object or a string of JSON.
            r#"7 $.analysis - {"summary":"ok"}"#,
            r#"8 $.analysis - {"successEvaluation":"true"}"#,
        ]
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name = 'evaluations_call'
                OR name LIKE 'sqlite_autoindex_evaluations%'"
        ),
        0,
        "schema 7: no key on evaluations' random ids"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM evaluations") as usize,
        paths.len() + 5
    );
    // Unique within their call now, not across calls.
    assert_eq!(
        strings(
            &conn,
            "SELECT id FROM evaluations INDEXED BY evaluations_call_id
             WHERE call_seq = 1000000 ORDER BY id"
        ),
        ["by-hand#evaluation-0", "elsewhere", "twice"]
    );
    conn.execute_batch(
        "DELETE FROM evaluations WHERE call_id = 'by-hand' OR provider = 'clarion';
         DELETE FROM calls WHERE id = 'by-hand' OR provider = 'clarion';",
    )
    .unwrap();
    assert_archive_matches(&conn, &served_calls(&fx.server));
}

#[test]
fn the_simulators_bluejay_answers_match_bluejays_openapi() {
    use crate::util::openapi::{validate_response, validate_with, Mode, Target};
    let fx = Fixture::new(sim_config(300, 2));
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi/bluejay-call-logs.yml");
    let agent = fx.agents()[0].clone();
    let base = fx.server.base_url();
    let check = |path: &str, method: &str, body: &serde_json::Value| {
        let errors = validate_response(&spec, path, method, "200", body);
        assert!(errors.is_empty(), "{method} {path}: {errors:#?}");
    };
    let mut pages = 0;
    for page in 1..=3 {
        let (status, list) = http(
            "GET",
            &format!("{base}/v1/retrieve-call-logs/{agent}?page={page}&page_size=50&last=all"),
            Some(KEY),
        );
        assert_eq!(status, 200);
        check("/v1/retrieve-call-logs/{agent_id}", "get", &list);
        pages += 1;
        let id = list["call_logs"][0]["id"].as_str().unwrap().to_string();
        let (_, one) = http(
            "GET",
            &format!("{base}/v1/retrieve-call-log/{id}"),
            Some(KEY),
        );
        check("/v1/retrieve-call-log/{call_id}", "get", &one);
        if page == 3 {
            let (status, deleted) = http("DELETE", &format!("{base}/v1/call-log/{id}"), Some(KEY));
            assert_eq!(status, 200);
            check("/v1/call-log/{call_id}", "delete", &deleted);
            // A wrong value fails the schema: the check has teeth.
            let mut bogus = one["call_log"].clone();
            bogus["status"] = serde_json::Value::from("bogus");
            assert!(
                !validate_with(&spec, Target::Component("CallLog"), Mode::RESPONSE, &bogus)
                    .is_empty()
            );
        }
    }
    assert_eq!(pages, 3);
}

#[test]
fn a_labelled_stream_keeps_its_own_state_and_is_never_pruned() {
    let fx = Fixture::new(sim_config(300, 1));
    let agent = fx.agents()[0].clone();
    let labelled = |extra: &[&str]| {
        let out = fx
            .sync_of("bluejay", &["--agent", &agent, "--label", "production"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        stderr_of(&out)
    };
    labelled(&[]);
    let served = served_calls(&fx.server);
    let production: std::collections::BTreeSet<&String> = served
        .iter()
        .filter(|(_, c)| c["metadata"]["label"] == "production")
        .map(|(id, _)| id)
        .collect();
    assert!(
        production.len() > 50 && production.len() < 250,
        "{}",
        production.len()
    );
    let conn = open(&fx.db());
    let archived = strings(&conn, "SELECT id FROM calls");
    assert_eq!(
        archived.iter().collect::<std::collections::BTreeSet<_>>(),
        production,
        "only the label's calls"
    );
    assert_eq!(
        strings(&conn, "SELECT scope FROM sync_state"),
        [format!("{agent}#label=production")]
    );

    // A call of the label deleted at the provider: a full walk of the label does not see it,
    // and still does not prune it (the label's walk is not everything the agent has).
    let victim = archived[0].clone();
    let base = fx.server.base_url();
    let (status, _) = http("DELETE", &format!("{base}/v1/call-log/{victim}"), Some(KEY));
    assert_eq!(status, 200);
    let stderr = labelled(&["--full", "--prune"]);
    assert!(
        stderr.contains("not pruned: this walk (window all, label production) does not cover"),
        "{stderr}"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls") as usize,
        production.len()
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM deleted_calls"), 0);

    // The agent's own stream is another stream, with its own state; its full walk prunes.
    let out = fx
        .sync_of("bluejay", &["--agent", &agent, "--full", "--prune"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        strings(&conn, "SELECT scope FROM sync_state ORDER BY scope"),
        [agent.clone(), format!("{agent}#label=production")]
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT call_id FROM deleted_calls WHERE mode = 'upstream'"
        ),
        [victim]
    );
    assert_archive_matches(&conn, &served_calls(&fx.server));
}

/// Every archived call of `provider`: id and raw JSON.
fn raw_calls(db: &std::path::Path, provider: &str) -> std::collections::BTreeMap<String, String> {
    let conn = open(db);
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM calls WHERE provider = ?1")
        .unwrap();
    stmt.query_map([provider], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_page_holding_a_call_without_an_id_fails_its_stream_clearly_and_loses_nothing() {
    use callvault::providers::ProviderKind;
    // Each platform against its own simulator, at once: the bad page is retried (it may have
    // been a cut-off answer) before the stream gives up, and those waits overlap.
    let runs: Vec<_> = ProviderKind::ALL
        .into_iter()
        .map(|kind| {
            std::thread::spawn(move || {
                let fx = Fixture::new(sim_config(300, 2));
                let name = kind.as_str();
                let out = fx.sync_of(name, &[]).output().unwrap();
                assert!(out.status.success(), "{name}: {}", stderr_of(&out));
                let before = raw_calls(&fx.db(), name);
                assert!(before.len() >= 300, "{name}: {}", before.len());

                let added = fx.server.sim.add_calls_of(kind, 0, 3);
                let bad = added[1].clone();
                fx.server.sim.serve_without_id(&bad);
                let out = fx.sync_of(name, &[]).output().unwrap();
                let stderr = stderr_of(&out);
                // Bluejay and Cartesia list per agent (the other agent's stream completes);
                // Clarion and Ultravox list the whole account in one stream.
                let expected = match kind {
                    ProviderKind::Bluejay | ProviderKind::Cartesia => 3,
                    ProviderKind::Clarion | ProviderKind::Ultravox => 1,
                };
                assert_eq!(out.status.code(), Some(expected), "{name}: {stderr}");
                assert!(
                    stderr.contains("has no id") || stderr.contains("has no callId"),
                    "{name}: {stderr}"
                );
                assert!(!stderr.contains("panicked"), "{name}: {stderr}");
                let after = raw_calls(&fx.db(), name);
                assert!(
                    !after.contains_key(&bad),
                    "{name}: the bad call was archived"
                );
                for (id, raw) in &before {
                    assert_eq!(after.get(id), Some(raw), "{name}: {id} kept as it was");
                }
                assert_no_orphans(&open(&fx.db()));
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}
