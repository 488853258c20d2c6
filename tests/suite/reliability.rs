//! Sync reliability: faults, kill -9 and resume, churn during walks, late evaluations,
//! partial failure, rate limits, pruning, and two processes writing one archive at once.

use std::time::{Duration, Instant};

use callvault::sim::{Churn, FaultConfig, FaultKind, SimConfig};
use rusqlite::Connection;

use crate::util::*;

fn run_outcomes(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT outcome FROM sync_runs ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The outcome of every recorded run, oldest first; none while the archive is not there yet.
fn recorded_runs(db: &std::path::Path) -> Vec<String> {
    Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|conn| {
            let mut stmt = conn
                .prepare("SELECT outcome FROM sync_runs ORDER BY id")
                .ok()?;
            let rows = stmt.query_map([], |r| r.get(0)).ok()?;
            rows.collect::<Result<Vec<String>, _>>().ok()
        })
        .unwrap_or_default()
}

#[test]
fn a_sync_through_every_kind_of_fault_ends_equal_to_the_provider() {
    let fx = Fixture::new(SimConfig {
        faults: FaultConfig {
            rate: 0.25,
            kinds: FaultKind::ALL.to_vec(),
            retry_after_secs: 1,
            slow: Duration::from_millis(300),
        },
        ..sim_config(2_400, 3)
    });
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("retrying"), "{}", stderr_of(&out));
    fx.server.sim.set_faults(FaultConfig::default());
    assert_archive_matches(&open(&fx.db()), &served_calls(&fx.server));

    let log = fx.server.sim.request_log();
    for kind in FaultKind::ALL {
        let n = log.iter().filter(|r| r.fault == Some(kind)).count();
        assert!(n >= 1, "{kind:?} never struck in {} requests", log.len());
    }
    eprintln!(
        "{} requests, {} faults",
        log.len(),
        log.iter().filter(|r| r.fault.is_some()).count()
    );
    // Each 429 and 503 said `Retry-After: 1`: the same request came again no sooner.
    for (i, refused) in log.iter().enumerate() {
        if !matches!(
            refused.fault,
            Some(FaultKind::TooManyRequests | FaultKind::Unavailable)
        ) {
            continue;
        }
        let again = log[i + 1..]
            .iter()
            .find(|r| r.target == refused.target)
            .unwrap_or_else(|| panic!("{} was never sent again", refused.target));
        let waited = again.at.duration_since(refused.at);
        assert!(
            waited >= Duration::from_secs(1),
            "{} sent again after {waited:?}",
            refused.target
        );
    }
}

#[test]
fn kill_9_at_twenty_moments_then_resume_ends_equal_with_a_correct_history() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(4),
        ..sim_config(4_000, 3)
    });
    // Deterministic "random" delays spread over the length of a sync.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut kills = 0;
    // Kills that found the run's row written (still `running`): each must end `interrupted`.
    // A kill before the row was written leaves no row at all.
    let mut kills_of_a_recorded_run = 0;
    // A fast machine finishes resumed walks early: each run that ends before its kill halves
    // the span the next delays are drawn from.
    let mut span_ms = 900;
    for _ in 0..60 {
        if kills >= 22 {
            break;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(20 + x % span_ms);
        let runs_before = recorded_runs(&fx.db()).len();
        let mut child = fx.spawn_sync(&["--full", "--concurrency", "2"]);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        } else {
            span_ms = (span_ms / 2).max(20);
        }
        child.wait().unwrap();
        let runs = recorded_runs(&fx.db());
        if runs.len() > runs_before {
            kills_of_a_recorded_run += usize::from(runs.last().unwrap() == "running");
        }
    }
    assert!(kills >= 20, "only {kills} runs were killed mid-way");
    let out = fx.sync().arg("--full").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&fx.db());
    assert_eq!(
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
    assert_archive_matches(&conn, &served_calls(&fx.server));
    let outcomes = run_outcomes(&conn);
    assert_eq!(outcomes.last().map(String::as_str), Some("complete"));
    assert!(!outcomes.contains(&"running".to_string()), "{outcomes:?}");
    let interrupted = outcomes.iter().filter(|o| *o == "interrupted").count();
    assert_eq!(
        interrupted, kills_of_a_recorded_run,
        "every killed run that was recorded ends interrupted: {outcomes:?}"
    );
    assert!(
        kills_of_a_recorded_run >= 10,
        "{kills_of_a_recorded_run} of {kills} kills came after the run was recorded"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| o == "interrupted" || o == "complete"),
        "{outcomes:?}"
    );
}

#[test]
fn an_interrupted_walk_resumes_after_its_last_committed_page() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(25),
        ..sim_config(3_000, 1)
    });
    let total_pages = 30;
    let mut child = fx.spawn_sync(&["--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the sync never committed pages");
        if let Ok(conn) =
            Connection::open_with_flags(fx.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        {
            let done: i64 = conn
                .query_row("SELECT count(*) FROM sync_walk_pages", [], |r| r.get(0))
                .unwrap_or(0);
            if done >= 8 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = count(&open(&fx.db()), "SELECT count(*) FROM sync_walk_pages");
    assert!(committed < total_pages, "killed mid-walk");

    let out = fx.sync().output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "resumed, {} pages already committed",
            committed - 1
        )) || stderr.contains(&format!("resumed, {committed} pages already committed")),
        "{stderr}"
    );
    let conn = open(&fx.db());
    let pages_second = count(
        &conn,
        "SELECT pages FROM sync_runs ORDER BY id DESC LIMIT 1",
    );
    assert!(
        pages_second <= total_pages - committed + 2,
        "{pages_second} pages refetched"
    );
    assert_archive_matches(&conn, &served_calls(&fx.server));
    assert_eq!(run_outcomes(&conn), vec!["interrupted", "complete"]);
}

#[test]
fn calls_inserted_and_deleted_during_a_walk_are_neither_missed_nor_doubled() {
    let fx = Fixture::new(sim_config(2_500, 2));
    // The first four list requests each add a call and delete one: the walks they belong to
    // drift and are repeated, and the repeats, undisturbed, settle.
    fx.server.sim.churn_for(
        Churn {
            insert_chance: 1.0,
            delete_chance: 1.0,
        },
        4,
    );
    let out = fx.sync().args(["--concurrency", "2"]).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("walking the stream again"),
        "drift detected: {stderr}"
    );
    let (inserted, deleted) = fx.server.sim.churned();
    assert_eq!((inserted.len(), deleted.len()), (4, 4));
    fx.server.sim.set_churn(Churn::default());
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    let conn = open(&fx.db());
    let served = served_calls(&fx.server);
    let archived = archived_calls(&conn);
    for id in served.keys() {
        assert!(archived.contains_key(id), "{id} missed");
    }
    for id in archived.keys().filter(|id| !served.contains_key(*id)) {
        assert!(deleted.contains(id), "{id} archived but never served");
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM (SELECT call_id, idx FROM participants GROUP BY 1, 2 HAVING count(*) > 1)"),
        0
    );

    // A complete walk of everything, with --prune, removes what the provider deleted.
    let out = fx.sync().args(["--full", "--prune"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_archive_matches(&conn, &served);
    let pruned: Vec<String> = conn
        .prepare("SELECT call_id FROM deleted_calls WHERE mode = 'upstream' ORDER BY call_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<String> = archived
        .keys()
        .filter(|id| !served.contains_key(*id))
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(pruned, expected);
}

#[test]
fn without_prune_nothing_is_removed_and_prune_needs_full() {
    let fx = Fixture::new(sim_config(300, 1));
    assert!(fx.sync().output().unwrap().status.success());
    let agent = fx.agents()[0].clone();
    let base = fx.server.base_url();
    let (_, page) = http(
        "GET",
        &format!("{base}/v1/retrieve-call-logs/{agent}?last=all&page_size=3"),
        Some(KEY),
    );
    let victim = page["call_logs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        http("DELETE", &format!("{base}/v1/call-log/{victim}"), Some(KEY)).0,
        200
    );
    assert!(fx.sync().arg("--full").output().unwrap().status.success());
    assert_eq!(count(&open(&fx.db()), "SELECT count(*) FROM calls"), 300);
    let out = fx.sync().arg("--prune").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn late_evaluations_on_calls_older_than_the_window_are_picked_up() {
    let fx = Fixture::new(sim_config(4_000, 2));
    assert!(fx.sync().output().unwrap().status.success());
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(6)..now - chrono::Duration::hours(30);
    let completed = fx.server.sim.complete_pending(4, old);
    assert!(
        completed.len() >= 2,
        "the data set has older unfinished calls"
    );

    let out = fx.sync().output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unfinished calls rechecked"), "{stderr}");
    let conn = open(&fx.db());
    let window: String = conn
        .query_row("SELECT checkpoint_json FROM sync_state LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(window.contains("1day"), "{window}");
    for id in &completed {
        let evals = count(
            &conn,
            &format!("SELECT count(*) FROM evaluations WHERE call_id = '{id}'"),
        );
        assert_eq!(evals, 1, "late evaluation of {id}");
        let settled = count(
            &conn,
            &format!("SELECT settled FROM calls WHERE id = '{id}'"),
        );
        assert_eq!(settled, 1);
    }
    assert_archive_matches(&conn, &served_calls(&fx.server));
}

#[test]
fn one_failing_stream_does_not_stop_the_others() {
    let fx = Fixture::new(sim_config(400, 2));
    let agents = fx.agents();
    let out = fx
        .cmd()
        .args(["sync", "bluejay", "--base-url", &fx.server.base_url()])
        .args([
            "--agent",
            &agents[0],
            "--agent",
            "no-such-agent",
            "--agent",
            &agents[1],
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no-such-agent failed") && stderr.contains("404"),
        "{stderr}"
    );
    let conn = open(&fx.db());
    assert_archive_matches(&conn, &served_calls(&fx.server));
    assert_eq!(run_outcomes(&conn), vec!["partial"]);
}

#[test]
fn a_provider_asking_to_wait_too_long_stops_the_run_cleanly_and_it_resumes() {
    let fx = Fixture::new(sim_config(500, 2));
    fx.server.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::TooManyRequests],
        retry_after_secs: 600,
        ..FaultConfig::default()
    });
    let started = Instant::now();
    let out = fx.sync().args(["--max-wait", "5"]).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait out the 600 s"
    );
    assert!(
        stderr.contains("run the same sync again to resume"),
        "{stderr}"
    );
    assert!(stderr.contains("600s"), "{stderr}");
    fx.server.sim.set_faults(FaultConfig::default());
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&fx.db());
    assert_archive_matches(&conn, &served_calls(&fx.server));
    assert_eq!(run_outcomes(&conn), vec!["partial", "complete"]);
}

#[test]
fn rps_bounds_the_request_rate_of_the_whole_run() {
    let fx = Fixture::new(sim_config(2_400, 2));
    let out = fx
        .sync()
        .args(["--rps", "10", "--concurrency", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let times = fx.server.sim.request_times();
    assert!(times.len() >= 24, "{} requests", times.len());
    for (i, start) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(within <= 11, "{within} requests within one second");
    }
}

#[test]
fn two_syncs_of_one_archive_at_once_both_finish_and_agree_with_the_provider() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(5),
        ..sim_config(2_000, 2)
    });
    let spawn = || {
        fx.std_cmd()
            .args(fx.sync_args())
            .args(["--concurrency", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let conn = open(&fx.db());
    assert_eq!(
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
    assert_archive_matches(&conn, &served_calls(&fx.server));
    assert_eq!(run_outcomes(&conn), ["complete", "complete"]);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sync_runs a JOIN sync_runs b ON b.id > a.id
             WHERE b.started_at < a.finished_at"
        ),
        1,
        "the two runs overlapped"
    );
    // And the next sync finds nothing new.
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(summary_counts(&stderr_of(&out)).0, 0);
}

#[test]
fn a_delete_while_a_sync_writes_waits_its_turn_and_both_finish() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(40),
        ..sim_config(400, 1)
    });
    assert!(fx.sync().output().unwrap().status.success());
    // Thousands of new calls: the next sync commits page after page for two seconds or more.
    fx.server.sim.add_calls(0, 5_000);
    let sync = fx
        .std_cmd()
        .args(fx.sync_args())
        .args(["--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&open(&fx.db()), "SELECT count(*) FROM calls") < 600 {
        assert!(Instant::now() < deadline, "the sync never wrote");
        std::thread::sleep(Duration::from_millis(2));
    }
    let selection = "SELECT provider, id AS call_id FROM calls ORDER BY created_at LIMIT 100";
    let planned = strings(
        &open(&fx.db()),
        "SELECT id FROM calls ORDER BY created_at LIMIT 100",
    );
    let out = fx
        .cmd()
        .args(["delete", "--select", selection, "--yes"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("100 done, 0 gone, 0 skipped, 0 failed, 0 pending"),
        "{stderr}"
    );
    let out = sync.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The two overlapped: the sync fetched pages between the delete's first and last request.
    let log = fx.server.sim.request_log();
    let deletes: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].method == "DELETE")
        .collect();
    let (first, last) = (deletes[0], deletes[deletes.len() - 1]);
    assert!(
        log[first..last]
            .iter()
            .any(|r| r.target.starts_with("/v1/retrieve-call-logs/")),
        "the delete ran while the sync was writing"
    );
    let conn = open(&fx.db());
    assert_archive_matches(&conn, &served_calls(&fx.server));
    assert_eq!(
        strings(&conn, "SELECT call_id FROM deleted_calls ORDER BY call_id"),
        {
            let mut p = planned.clone();
            p.sort();
            p
        }
    );
}
