//! Integration tests of `callvault delete` and `callvault jobs`: the compiled binary against
//! the simulator over real HTTP, checked against what the simulator received and the real
//! SQLite archive.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;
use callvault::sim::{DeleteRecord, FaultConfig, FaultKind, SimConfig, SimServer};
use rand::Rng;
use rusqlite::Connection;

fn set(conn: &Connection, sql: &str) -> BTreeSet<String> {
    strings(conn, sql).into_iter().collect()
}

/// The archive's content minus every row that belongs to one of `ids`.
fn dump_without(conn: &Connection, ids: &BTreeSet<String>) -> Vec<String> {
    let quoted: BTreeSet<String> = ids.iter().map(|id| format!("Text(\"{id}\")")).collect();
    content_dump(conn)
        .into_iter()
        .filter(|line| {
            let fields = line.split_once(':').map_or("", |(_, rest)| rest);
            !fields.split('|').any(|field| quoted.contains(field))
        })
        .collect()
}

fn deletes_by_call(deletes: &[DeleteRecord]) -> BTreeMap<String, Vec<u16>> {
    let mut by_call: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for d in deletes {
        by_call.entry(d.call_id.clone()).or_default().push(d.status);
    }
    by_call
}

fn synced(calls: u64, agents: u32) -> Fixture {
    let fx = Fixture::new(sim_config(calls, agents));
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    fx
}

#[test]
fn a_dry_run_prints_the_plan_and_sends_nothing() {
    let fx = synced(300, 2);
    let agent = fx.agents()[0].clone();
    let before = content_dump(&open(&fx.db()));
    let expected = count(
        &open(&fx.db()),
        &format!("SELECT count(*) FROM calls WHERE agent_id = '{agent}'"),
    );
    let out = fx
        .cmd()
        // A dry run needs no key: it sends nothing.
        .env_remove("BLUEJAY_API_KEY")
        .args([
            "delete",
            "--select",
            &format!("SELECT provider, id AS call_id FROM calls WHERE agent_id = '{agent}'"),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("dry run: {expected} call(s) would be deleted")),
        "{stdout}"
    );
    assert!(
        stdout.contains("bluejay") && stdout.contains("full"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("agents: {agent} ({expected})")),
        "{stdout}"
    );
    assert!(stdout.contains("created: 20"), "{stdout}");
    assert!(
        stdout.contains(&format!("sample (10 of {expected})")),
        "{stdout}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(fx.server.sim.deletes().is_empty());
    let conn = open(&fx.db());
    assert_eq!(content_dump(&conn), before);
    assert_eq!(count(&conn, "SELECT count(*) FROM delete_jobs"), 0);
}

#[test]
fn exactly_the_selected_calls_are_deleted_at_the_provider_and_in_the_archive() {
    let fx = synced(400, 3);
    let agent = fx.agents()[0].clone();
    let conn = open(&fx.db());
    let cut = strings(&conn, "SELECT created_at FROM calls ORDER BY created_at")[200].clone();
    let filter = format!("FROM calls WHERE agent_id = '{agent}' AND created_at < '{cut}'");
    let selected = set(&conn, &format!("SELECT id {filter}"));
    assert!(selected.len() > 20, "{}", selected.len());
    let untouched_before = dump_without(&conn, &selected);
    let evaluations_of_selected = count(
        &conn,
        &format!("SELECT count(*) FROM evaluations WHERE call_id IN (SELECT id {filter})"),
    );
    assert!(evaluations_of_selected > 0);
    drop(conn);

    // Duplicates in the selection fold into one item each.
    let sql =
        format!("SELECT provider, id AS call_id {filter} UNION ALL SELECT provider, id {filter}");
    let out = fx
        .cmd()
        .args(["delete", "--select", &sql, "--yes"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} done, 0 gone, 0 skipped, 0 failed, 0 pending",
            selected.len()
        )),
        "{stderr}"
    );

    let deletes = fx.server.sim.deletes();
    assert_eq!(
        deletes.len(),
        selected.len(),
        "one request per selected call"
    );
    assert!(deletes.iter().all(|d| d.status == 200 && !d.recording_only));
    let sent: BTreeSet<String> = deletes.iter().map(|d| d.call_id.clone()).collect();
    assert_eq!(sent, selected);
    assert!(served_calls(&fx.server)
        .keys()
        .all(|id| !selected.contains(id)));

    let conn = open(&fx.db());
    assert_eq!(
        dump_without(&conn, &selected),
        untouched_before,
        "nothing else changed"
    );
    assert_eq!(
        content_dump(&conn),
        untouched_before,
        "no row of a deleted call is left, children included"
    );
    assert_eq!(
        set(
            &conn,
            &format!("SELECT call_id FROM deleted_calls WHERE mode = 'full' AND job_id = 1 AND agent_id = '{agent}'")
        ),
        selected
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM deleted_calls"),
        selected.len() as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM delete_items WHERE job_id = 1 AND state = 'done'"
        ),
        selected.len() as i64
    );

    let jobs = fx.cmd().arg("jobs").output().unwrap();
    let table = stdout_of(&jobs);
    assert!(jobs.status.success());
    assert!(table.contains("complete"), "{table}");
    assert!(table.contains(&selected.len().to_string()), "{table}");
}

#[test]
fn a_later_sync_never_brings_a_deleted_call_back() {
    // Two simulators with the same data: the twin still serves what the first one deleted,
    // like a provider that deletes lazily.
    let config = SimConfig {
        anchor: Some(chrono::Utc::now()),
        ..sim_config(200, 1)
    };
    let fx = Fixture::new(config.clone());
    let twin = SimServer::start(config).unwrap();
    assert!(fx.sync().output().unwrap().status.success());
    let conn = open(&fx.db());
    let selected = set(&conn, "SELECT id FROM calls ORDER BY id LIMIT 25");
    drop(conn);
    let out = fx
        .cmd()
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls ORDER BY id LIMIT 25",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    let agent = fx.agents()[0].clone();
    let out = fx
        .cmd()
        .args([
            "sync",
            "bluejay",
            "--full",
            "--agent",
            &agent,
            "--base-url",
            &twin.base_url(),
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("25 deleted call(s) are still served by the provider"),
        "{stderr}"
    );
    assert!(stderr.contains("not re-archived"), "{stderr}");
    let conn = open(&fx.db());
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 175);
    let archived = set(&conn, "SELECT id FROM calls");
    assert!(selected.is_disjoint(&archived));
    // Nothing of them came back, children included.
    let ids: Vec<String> = selected.iter().map(|id| format!("'{id}'")).collect();
    for table in [
        "evaluations",
        "participants",
        "tool_calls",
        "call_events",
        "call_tags",
        "custom_metrics",
    ] {
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE call_id IN ({})",
            ids.join(", ")
        );
        assert_eq!(count(&conn, &sql), 0, "{table}");
    }
    assert_no_orphans(&conn);
}

#[test]
fn a_sync_after_a_recording_only_delete_keeps_the_recording_cleared() {
    let config = SimConfig {
        anchor: Some(chrono::Utc::now()),
        ..sim_config(150, 1)
    };
    let fx = Fixture::new(config.clone());
    // The twin still serves the recording URLs the first one cleared, like a provider whose
    // lists lag behind its deletes.
    let twin = SimServer::start(config).unwrap();
    assert!(fx.sync().output().unwrap().status.success());
    let sql = "SELECT provider, id AS call_id FROM calls WHERE recording_url IS NOT NULL ORDER BY id LIMIT 12";
    let selected = set(
        &open(&fx.db()),
        "SELECT id FROM calls WHERE recording_url IS NOT NULL ORDER BY id LIMIT 12",
    );
    let out = fx
        .cmd()
        .args([
            "delete",
            "--select",
            sql,
            "--mode",
            "recording-only",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let cleared = "SELECT id FROM calls WHERE recording_url IS NULL
                     AND json_type(raw_json, '$.recording_url') = 'null'";
    let agent = fx.agents()[0].clone();
    for (server, serves) in [(&twin, "the old URL"), (&fx.server, "no URL")] {
        let out = fx
            .cmd()
            .args(["sync", "bluejay", "--full", "--agent", &agent])
            .args(["--base-url", &server.base_url()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let conn = open(&fx.db());
        assert!(
            selected.is_subset(&set(&conn, cleared)),
            "a sync from a provider serving {serves} kept the recordings cleared"
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 150);
    }
    // The provider itself cleared them.
    let served_here = served_calls(&fx.server);
    assert!(selected
        .iter()
        .all(|id| served_here[id]["recording_url"].is_null()));
}

#[test]
fn recording_only_clears_the_recording_and_keeps_the_call() {
    let fx = synced(200, 2);
    let conn = open(&fx.db());
    let selection = "SELECT provider, id AS call_id FROM calls WHERE recording_url IS NOT NULL ORDER BY id LIMIT 15";
    let selected = set(
        &conn,
        "SELECT id FROM calls WHERE recording_url IS NOT NULL ORDER BY id LIMIT 15",
    );
    let evaluations = count(&conn, "SELECT count(*) FROM evaluations");
    drop(conn);
    let out = fx
        .cmd()
        .args([
            "delete",
            "--select",
            selection,
            "--mode",
            "recording-only",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let deletes = fx.server.sim.deletes();
    assert_eq!(deletes.len(), 15);
    assert!(deletes.iter().all(|d| d.recording_only && d.status == 200));

    let conn = open(&fx.db());
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 200);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM evaluations"),
        evaluations
    );
    assert_eq!(
        set(
            &conn,
            "SELECT id FROM calls WHERE recording_url IS NULL
               AND json_type(raw_json, '$.recording_url') = 'null'
               AND id IN (SELECT call_id FROM deleted_calls WHERE mode = 'recording-only')"
        ),
        selected
    );
    assert!(served_calls(&fx.server)
        .iter()
        .filter(|(id, _)| selected.contains(*id))
        .all(|(_, c)| c["recording_url"].is_null()));
}

#[test]
fn named_queries_bind_their_parameters() {
    let fx = synced(300, 2);
    let expected = count(
        &open(&fx.db()),
        "SELECT count(*) FROM calls WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 days')",
    );
    assert!(expected > 50, "{expected}");
    // No queries/ folder in this directory: the built-in query answers.
    let out = fx
        .cmd()
        .current_dir(fx.dir.path())
        .args([
            "delete",
            "--query",
            "calls_older_than",
            "--param",
            "days=60",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("dry run: {expected} call(s)")),
        "{}",
        stdout_of(&out)
    );

    let agent = fx.agents()[1].clone();
    std::fs::create_dir(fx.dir.path().join("queries")).unwrap();
    std::fs::write(
        fx.dir.path().join("queries/of_agent.sql"),
        "-- Which calls did one agent take?\nSELECT provider, id AS call_id FROM calls WHERE agent_id = :agent",
    )
    .unwrap();
    let of_agent = count(
        &open(&fx.db()),
        &format!("SELECT count(*) FROM calls WHERE agent_id = '{agent}'"),
    );
    let out = fx
        .cmd()
        .current_dir(fx.dir.path())
        .args(["delete", "--query", "of_agent", "--param"])
        .arg(format!("agent={agent}"))
        .output()
        .unwrap();
    assert!(
        stdout_of(&out).contains(&format!("dry run: {of_agent} call(s)")),
        "{}",
        stderr_of(&out)
    );

    let out = fx
        .cmd()
        .args(["delete", "--query", "calls_older_than", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("--param days=VALUE"),
        "{}",
        stderr_of(&out)
    );
    assert!(fx.server.sim.deletes().is_empty());
}

#[test]
fn bad_selections_fail_with_one_clear_line_and_send_nothing() {
    let fx = synced(120, 2);
    let before = content_dump(&open(&fx.db()));
    let all = "SELECT provider, id AS call_id FROM calls";
    let cases: Vec<(Vec<&str>, &str)> =
        vec![
        (
            vec!["--select", "SELECT id FROM calls"],
            "must return the columns provider and call_id; it returns id",
        ),
        (vec!["--select", "DELETE FROM calls"], "must only read"),
        (
            vec!["--select", "UPDATE calls SET summary = 'x'"],
            "must only read",
        ),
        (
            vec!["--select", "SELECT 'acme' AS provider, id AS call_id FROM calls"],
            "unknown provider 'acme'",
        ),
        (
            vec!["--select", all, "--max", "10"],
            "more than 10 calls; raise --max",
        ),
        (
            vec![
                "--select",
                "SELECT 'bluejay' AS provider, 'no-such-call' AS call_id",
            ],
            "1 selected call(s) are not in the archive (bluejay/no-such-call)",
        ),
        (
            vec!["--select", all, "--mode", "redact"],
            "bluejay offers no redact delete (it offers full, recording-only); 120 selected row(s)",
        ),
        (
            vec!["--select", "SELECT provider, id AS call_id FROM nowhere"],
            "no such table: nowhere",
        ),
        (vec!["--query", "no_such_query"], "no named query 'no_such_query'"),
        (vec!["--resume", "42"], "there is no delete job 42"),
    ];
    for (args, expected) in cases {
        let mut cmd = fx.cmd();
        cmd.arg("delete").args(&args);
        if !args.contains(&"--resume") {
            cmd.arg("--yes");
        }
        let out = cmd.output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(fx.server.sim.deletes().is_empty());
    let conn = open(&fx.db());
    assert_eq!(content_dump(&conn), before);
    assert_eq!(count(&conn, "SELECT count(*) FROM delete_jobs"), 0);
}

#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::new(sim_config(10, 1));
    for args in [
        vec!["delete"],
        vec!["delete", "--select", "SELECT 1", "--query", "q"],
        vec!["delete", "--select", "SELECT 1", "--mode", "shred"],
        vec!["delete", "--select", "SELECT 1", "--max", "0"],
        vec!["delete", "--select", "SELECT 1", "--param", "novalue"],
        vec!["delete", "--select", "SELECT 1", "--concurrency", "0"],
        vec!["delete", "--resume", "1", "--yes"],
        vec!["delete", "--resume", "one"],
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(!stderr_of(&out).contains("panicked"));
    }
}

#[test]
fn a_wrong_key_stops_the_job_at_once_and_resume_finishes_it() {
    let fx = synced(200, 2);
    let out = fx
        .cmd()
        .env("BLUEJAY_API_KEY", "sk-wrong-key-77")
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls",
            "--yes",
            "--concurrency",
            "4",
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("200 item(s) stay pending"), "{stderr}");
    assert!(stderr.contains("--resume 1"), "{stderr}");
    assert!(!stderr.contains("sk-wrong-key-77"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 2, "{stderr}");
    let deletes = fx.server.sim.deletes();
    assert!(
        !deletes.is_empty() && deletes.len() <= 4,
        "stops after the first 401s, not 200 times: {}",
        deletes.len()
    );
    assert!(deletes.iter().all(|d| d.status == 401));
    let conn = open(&fx.db());
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM delete_items WHERE state = 'pending'"
        ),
        200
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 200);
    drop(conn);
    let jobs = stdout_of(&fx.cmd().arg("jobs").output().unwrap());
    assert!(jobs.contains("stopped"), "{jobs}");

    let out = fx.cmd().args(["delete", "--resume", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&fx.db());
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 0);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM delete_items WHERE state = 'done'"
        ),
        200
    );
    let ok = fx
        .server
        .sim
        .deletes()
        .iter()
        .filter(|d| d.status == 200)
        .count();
    assert_eq!(ok, 200);
}

#[test]
fn kill_9_at_random_moments_then_resume_deletes_exactly_the_plan() {
    const PLANNED: usize = 2000;
    const KILLS: usize = 12;
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(4),
        ..sim_config(2500, 4)
    });
    let out = fx.sync().arg("--concurrency").arg("8").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let selection =
        format!("SELECT provider, id AS call_id FROM calls ORDER BY created_at LIMIT {PLANNED}");
    let conn = open(&fx.db());
    let planned = set(
        &conn,
        &format!("SELECT id FROM calls ORDER BY created_at LIMIT {PLANNED}"),
    );
    let untouched_before = dump_without(&conn, &planned);
    drop(conn);

    let mut rng = rand::rng();
    // Kills of a running job; kills before the plan was frozen come on top.
    let mut kills = Vec::new();
    let mut kills_before_freeze = 0;
    let started = Instant::now();
    while kills.len() < KILLS && kills_before_freeze < 20 {
        let frozen = count(&open(&fx.db()), "SELECT count(*) FROM delete_jobs") > 0;
        let mut cmd = fx.std_cmd();
        if frozen {
            cmd.args(["delete", "--resume", "1", "--concurrency", "4"]);
        } else {
            cmd.args(["delete", "--select", &selection, "--max", "2000", "--yes"])
                .args(["--concurrency", "4"]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A loaded machine starts slowly: wait longer after each kill that came too early.
        // A fast one deletes quickly: kill as soon as this run has done its random share, so
        // that every kill lands mid-job wherever the test runs.
        let delay = Duration::from_millis(rng.random_range(20..220) + 150 * kills_before_freeze);
        let share = rng.random_range(1..=(PLANNED / (2 * KILLS)) as i64);
        let done_before = settled_items(&fx.db());
        let spawned = Instant::now();
        while spawned.elapsed() < delay && settled_items(&fx.db()) - done_before < share {
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_some() {
            break; // the job ran to its end before this kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if frozen {
            kills.push((spawned.elapsed(), settled_items(&fx.db()) - done_before));
        } else {
            kills_before_freeze += 1;
        }
        let conn = open(&fx.db());
        let jobs = count(&conn, "SELECT count(*) FROM delete_jobs");
        if jobs == 0 {
            assert!(
                fx.server.sim.deletes().is_empty(),
                "nothing is sent before the plan is frozen"
            );
        } else {
            assert_eq!(
                count(&conn, "SELECT count(*) FROM delete_items"),
                PLANNED as i64,
                "a frozen job holds its whole plan"
            );
        }
    }
    let pending_after_kills = count(
        &open(&fx.db()),
        "SELECT count(*) FROM delete_items WHERE state = 'pending'",
    );
    assert!(
        kills.len() >= 10 && pending_after_kills > 0,
        "the job must be killed mid-way 10 times or more: (time, items settled) {kills:?}, {pending_after_kills} pending"
    );

    let out = fx.cmd().args(["delete", "--resume", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    eprintln!(
        "{kills_before_freeze} kill(s) before the freeze, then {} kills of the job at (time, items settled) {kills:?}; {} s in all",
        kills.len(),
        started.elapsed().as_secs_f64()
    );

    let conn = open(&fx.db());
    let states: BTreeMap<String, String> = {
        let mut stmt = conn
            .prepare("SELECT call_id, state FROM delete_items WHERE job_id = 1")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(states.keys().cloned().collect::<BTreeSet<_>>(), planned);
    let sim = deletes_by_call(&fx.server.sim.deletes());
    for id in sim.keys() {
        assert!(planned.contains(id), "{id} was sent but never planned");
    }
    for (id, state) in &states {
        let seen = sim.get(id).map(Vec::as_slice).unwrap_or(&[]);
        match state.as_str() {
            "done" => assert_eq!(seen, [200], "{id} is done: the simulator deleted it once"),
            "gone" => {
                assert!(
                    seen.len() >= 2 && seen[0] == 200 && seen[1..].iter().all(|s| *s == 404),
                    "{id} is gone: deleted by a killed run, 404 on resume: {seen:?}"
                )
            }
            other => panic!("{id} ended {other}"),
        }
    }
    assert_eq!(content_dump(&conn), untouched_before);
    assert_no_orphans(&conn);
    assert_eq!(
        set(
            &conn,
            "SELECT call_id FROM deleted_calls WHERE mode = 'full' AND job_id = 1"
        ),
        planned
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM deleted_calls"),
        PLANNED as i64,
        "one audit row per call"
    );
    let jobs = stdout_of(&fx.cmd().arg("jobs").output().unwrap());
    assert!(jobs.contains("complete"), "{jobs}");
}

/// Items of any job whose delete is settled, or 0 before a plan is frozen.
fn settled_items(db: &std::path::Path) -> i64 {
    count(
        &open(db),
        "SELECT count(*) FROM delete_items WHERE state <> 'pending'",
    )
}

/// A Bluejay stand-in that refuses some deletes with 400 and counts every request.
struct RefusingServer {
    url: String,
    requests: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

fn refusing_server(refused: BTreeSet<String>) -> RefusingServer {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::delete;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let state = (Arc::new(refused), requests.clone());
    let app = axum::Router::new()
        .route(
            "/v1/call-log/{id}",
            delete(
                |State((refused, n)): State<(Arc<BTreeSet<String>>, Arc<AtomicU64>)>,
                 Path(id): Path<String>| async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    if refused.contains(&id) {
                        (
                            StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({"detail": "call is under legal hold"})),
                        )
                    } else {
                        (
                            StatusCode::OK,
                            axum::Json(serde_json::json!({"message": "deleted", "status": "200"})),
                        )
                    }
                },
            ),
        )
        .with_state(state);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    RefusingServer {
        url,
        requests,
        _runtime: runtime,
    }
}

#[test]
fn refused_items_fail_with_status_and_message_and_exit_3() {
    let fx = synced(60, 1);
    let conn = open(&fx.db());
    let all = set(&conn, "SELECT id FROM calls");
    let refused: BTreeSet<String> = all.iter().take(3).cloned().collect();
    drop(conn);
    let server = refusing_server(refused.clone());
    let out = fx
        .cmd()
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls",
            "--yes",
            "--base-url",
            &server.url,
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("57 done, 0 gone, 0 skipped, 3 failed"),
        "{stderr}"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        60,
        "one request per call: a 400 is not sent again"
    );
    assert!(stderr.contains("(HTTP 400): "), "{stderr}");
    assert!(stderr.contains("call is under legal hold"), "{stderr}");
    let conn = open(&fx.db());
    assert_eq!(set(&conn, "SELECT id FROM calls"), refused);
    assert_eq!(
        set(
            &conn,
            "SELECT call_id FROM delete_items WHERE state = 'failed' AND http_status = 400
               AND retryable = 0 AND last_error LIKE '%legal hold%'"
        ),
        refused
    );
    drop(conn);
    let jobs = stdout_of(&fx.cmd().arg("jobs").output().unwrap());
    assert!(jobs.contains("partial"), "{jobs}");
    // A refusal is not retryable: resuming sends nothing again.
    let before = server.requests.load(Ordering::SeqCst);
    let out = fx
        .cmd()
        .args(["delete", "--resume", "1", "--base-url", &server.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
}

#[test]
fn a_job_left_by_a_dead_process_resumes_and_a_live_ones_is_refused_with_its_cause() {
    let fx = synced(20, 1);
    let out = fx
        .cmd()
        .env("BLUEJAY_API_KEY", "sk-wrong-0000000000000")
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls LIMIT 5",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a rejected key stops the job");
    let job = count(&open(&fx.db()), "SELECT max(id) FROM delete_jobs");
    let mark_running = |pid: u32| {
        Connection::open(fx.db())
            .unwrap()
            .execute(
                "UPDATE delete_jobs SET state = 'running', pid = ?1 WHERE id = ?2",
                rusqlite::params![pid, job],
            )
            .unwrap();
    };
    // A live callvault holds the job: refused, saying so.
    let mut holder = std::process::Command::new(assert_cmd::cargo::cargo_bin("callvault"))
        .args(["sim", "--addr", "127.0.0.1:0", "--calls", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    mark_running(holder.id());
    let out = fx
        .cmd()
        .args(["delete", "--resume", &job.to_string()])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("is being run by process {}", holder.id())),
        "the real cause is shown: {stderr}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The PID now belongs to some other program: the job was left behind and resumes.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    mark_running(other.id());
    let out = fx
        .cmd()
        .args(["delete", "--resume", &job.to_string()])
        .output()
        .unwrap();
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        fx.server
            .sim
            .deletes()
            .iter()
            .filter(|d| d.status == 200)
            .count(),
        5
    );
}

#[test]
fn a_delete_through_faults_stops_when_asked_to_wait_too_long_and_resume_finishes_it() {
    const PLANNED: usize = 150;
    let fx = synced(300, 2);
    let selection =
        format!("SELECT provider, id AS call_id FROM calls ORDER BY created_at LIMIT {PLANNED}");
    let conn = open(&fx.db());
    let planned = set(
        &conn,
        &format!("SELECT id FROM calls ORDER BY created_at LIMIT {PLANNED}"),
    );
    let untouched_before = dump_without(&conn, &planned);
    drop(conn);
    // Refusals before the provider acts (429, 503, 500) and answers lost after it acted (a
    // dropped connection, a cut-off body: the retry then finds the call gone).
    let mid_job_faults = [
        FaultKind::TooManyRequests,
        FaultKind::Unavailable,
        FaultKind::ServerError,
        FaultKind::DropConnection,
        FaultKind::TruncateBody,
    ];
    fx.server.sim.set_faults(FaultConfig {
        rate: 0.3,
        kinds: mid_job_faults.to_vec(),
        retry_after_secs: 0,
        ..FaultConfig::default()
    });
    let mut child = fx
        .std_cmd()
        .args(["delete", "--select", &selection, "--yes", "--rps", "50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A fifth of the way through (at 50 requests a second, 2.4 s of the job are still to
    // come), the provider asks to wait ten minutes: the job stops there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while settled_items(&fx.db()) < PLANNED as i64 / 5 {
        assert!(Instant::now() < deadline, "the job never got going");
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
    fx.server.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::TooManyRequests],
        retry_after_secs: 600,
        ..FaultConfig::default()
    });
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stay pending") && stderr.contains("--resume 1"),
        "{stderr}"
    );
    let pending = count(
        &open(&fx.db()),
        "SELECT count(*) FROM delete_items WHERE state = 'pending'",
    );
    assert!(pending > 0, "stopped mid-job");
    let log = fx.server.sim.request_log();
    for kind in mid_job_faults {
        assert!(
            log.iter()
                .any(|r| r.method == "DELETE" && r.fault == Some(kind)),
            "{kind:?} struck a delete"
        );
    }

    fx.server.sim.set_faults(FaultConfig::default());
    let out = fx.cmd().args(["delete", "--resume", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&fx.db());
    let states: BTreeMap<String, String> = conn
        .prepare("SELECT call_id, state FROM delete_items WHERE job_id = 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(states.keys().cloned().collect::<BTreeSet<_>>(), planned);
    let sim = deletes_by_call(&fx.server.sim.deletes());
    let mut gone = 0;
    for (id, state) in &states {
        let seen = sim.get(id).map(Vec::as_slice).unwrap_or(&[]);
        match state.as_str() {
            "done" => assert_eq!(seen, [200], "{id} is done: deleted once"),
            "gone" => {
                gone += 1;
                assert!(
                    seen.len() >= 2 && seen[0] == 200 && seen[1..].iter().all(|s| *s == 404),
                    "{id} is gone: its answer was lost, the retry found it gone: {seen:?}"
                );
            }
            other => panic!("{id} ended {other}"),
        }
    }
    assert!(gone > 0, "some answers were lost after the provider acted");
    assert!(sim.keys().all(|id| planned.contains(id)));
    assert_eq!(content_dump(&conn), untouched_before);
    assert_eq!(
        set(&conn, "SELECT call_id FROM deleted_calls WHERE job_id = 1"),
        planned
    );
}
