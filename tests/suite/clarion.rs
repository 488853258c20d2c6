//! Clarion against the simulator: a full sync that walks a day holding more calls than one
//! answer can (truncated windows halved until each comes back short), an incremental sync of
//! one window, unfinished calls rechecked until they end, the base URL with or without `/v1`,
//! `--agent` kept from the account-wide list, integer ids above 2^32 stored as exact text,
//! both shapes of `analysis`, faults, a killed walk resumed without asking a committed window
//! again, full deletes answered 204 or 200 with the call, refused modes, and the simulator's
//! calls against the Call schema of Clarion's reference page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use callvault::providers::ProviderKind;
use callvault::sim::clarion::DEFAULT_BUSY_DAY_CALLS;
use callvault::sim::{FaultConfig, FaultKind, SimConfig};
use serde_json::Value;

use crate::util::openapi::{validate_with, Mode, Target};
use crate::util::*;

const CLARION: ProviderKind = ProviderKind::Clarion;

/// A Clarion id (a JSON integer) as the decimal text the archive keeps.
fn id_of(call: &Value) -> String {
    call["id"].as_u64().expect("an integer id").to_string()
}

fn served(fx: &Fixture) -> BTreeMap<String, Value> {
    fx.server
        .sim
        .calls_json_of(CLARION)
        .into_iter()
        .map(|c| (id_of(&c), c))
        .collect()
}

fn archived(db: &Path) -> BTreeMap<String, Value> {
    let conn = open(db);
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM calls WHERE provider = 'clarion'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, raw) = row.unwrap();
            (id, serde_json::from_str(&raw).unwrap())
        })
        .collect()
}

/// A request straight at the simulator's Clarion API (under `/v1`) with the key.
fn clarion(fx: &Fixture, method: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    http_with(
        method,
        &format!("{}/v1{path}", fx.server.base_url()),
        &[("Authorization", &auth)],
    )
}

/// `callvault sync clarion` with `extra`, which must succeed; its stderr.
fn sync_ok(fx: &Fixture, extra: &[&str]) -> String {
    let out = fx.sync_of("clarion", extra).output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn synced(config: SimConfig) -> Fixture {
    let fx = Fixture::new(config);
    sync_ok(&fx, &[]);
    fx
}

#[test]
fn a_full_sync_archives_the_busy_day_whole_by_halving_truncated_windows() {
    let fx = synced(sim_config(1_000, 3));
    let served = served(&fx);
    assert_eq!(served.len(), 1_000 + DEFAULT_BUSY_DAY_CALLS as usize);
    assert_eq!(archived(&fx.db()), served, "every call, raw JSON as served");
    // Windows that held more than one answer can were cut off without a word, and the walk
    // still archived every call: it halved them. (The search for the oldest call asks for
    // one call at a time.)
    let answers = fx.server.sim.list_answers();
    assert!(answers.iter().all(|a| a.limit == 1_000 || a.limit == 1));
    let windows: Vec<_> = answers.iter().filter(|a| a.limit == 1_000).collect();
    let truncated: Vec<_> = windows.iter().filter(|a| a.matched > a.served).collect();
    assert!(
        truncated.iter().all(|a| a.served == 1_000),
        "{truncated:#?}"
    );
    assert!(
        truncated
            .iter()
            .filter(|a| a.query.contains("createdAtGe"))
            .count()
            >= 2,
        "bounded windows were cut off, not only the first question: {windows:#?}"
    );
    assert!(
        windows
            .iter()
            .filter(|a| a.served < 1_000)
            .all(|a| a.matched == a.served),
        "a window that came back short came back whole"
    );
    let conn = open(&fx.db());
    let busiest = count(
        &conn,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM calls WHERE provider = 'clarion'
                             GROUP BY substr(start_time, 1, 10))",
    );
    assert!(
        busiest > 1_000,
        "the busy day ({busiest} calls) is archived whole"
    );
    // Times went out as UTC with milliseconds, each one a time again once decoded.
    for answer in &answers {
        let url = reqwest::Url::parse(&format!("http://sim/?{}", answer.query)).unwrap();
        for (name, value) in url.query_pairs() {
            if name.starts_with("createdAt") {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(&value).is_ok() && value.ends_with('Z'),
                    "{}",
                    answer.query
                );
            }
        }
    }
    // Ids above 2^32 are exact decimal text; assistant ids too; Clarion's own statuses.
    let mut stmt = conn
        .prepare(
            "SELECT id, typeof(id), agent_id, status, settled, start_time, created_at
             FROM calls WHERE provider = 'clarion'",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut unfinished = 0;
    while let Some(row) = rows.next().unwrap() {
        let id: String = row.get(0).unwrap();
        let kind: String = row.get(1).unwrap();
        let agent: Option<String> = row.get(2).unwrap();
        let status: Option<String> = row.get(3).unwrap();
        let settled: bool = row.get(4).unwrap();
        let start: Option<String> = row.get(5).unwrap();
        let created: Option<String> = row.get(6).unwrap();
        let call = &served[&id];
        assert_eq!(kind, "text");
        assert!(id.parse::<u64>().unwrap() > u64::from(u32::MAX), "{id}");
        assert_eq!(call["id"].as_u64().map(|n| n.to_string()), Some(id.clone()));
        assert_eq!(
            agent,
            call["assistant_id"].as_u64().map(|n| n.to_string()),
            "{id}"
        );
        assert_eq!(status.as_deref(), call["call_status"].as_str(), "{id}");
        assert_eq!(settled, call["call_status"] == "ended", "{id}");
        assert_eq!(start.as_deref(), call["started_at"].as_str(), "{id}");
        assert_eq!(created, start, "Clarion returns no creation time");
        unfinished += usize::from(!settled);
    }
    assert!(unfinished > 0, "the data set has calls still under way");
    assert_no_orphans(&conn);
}

#[test]
fn both_analysis_shapes_become_evaluations_and_messages_become_turns() {
    let fx = synced(sim_config(300, 2));
    let served = served(&fx);
    let shape = |key: &str| -> Vec<&Value> {
        served
            .values()
            .filter(|c| c["analysis"].get(key).is_some())
            .collect()
    };
    let (documented, other) = (shape("repetition_count"), shape("successEvaluation"));
    assert!(!documented.is_empty() && !other.is_empty());
    let conn = open(&fx.db());
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM evaluations WHERE provider = 'clarion'"
        ) as usize,
        documented.len() + other.len(),
        "one evaluation per analysed call"
    );
    let text = |sql: &str, id: &str| -> Option<String> {
        conn.query_row(sql, [id], |r| r.get(0)).unwrap()
    };
    // The evaluation's JSON is read from the call's `analysis`, not kept twice.
    for call in documented.iter().chain(&other) {
        let id = id_of(call);
        let json = text("SELECT raw_json FROM evaluation_json WHERE id = ?1", &id)
            .expect("the evaluation's JSON");
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            call["analysis"],
            "{id}"
        );
    }
    for call in &other {
        let id = id_of(call);
        let analysis = &call["analysis"];
        assert!(call["summary"].is_null());
        assert_eq!(
            text("SELECT summary FROM calls WHERE id = ?1", &id).as_deref(),
            analysis["summary"].as_str(),
            "the analysis's summary stands in for the missing one"
        );
        let goal: Option<i64> = conn
            .query_row(
                "SELECT goal_success FROM evaluations WHERE call_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            goal,
            Some(i64::from(analysis["successEvaluation"] == "true")),
            "{id}"
        );
        assert_eq!(
            text(
                "SELECT custom_evals_json FROM evaluations WHERE call_id = ?1",
                &id
            ),
            Some(analysis["structuredData"].to_string())
        );
    }
    for call in &documented {
        let id = id_of(call);
        assert_eq!(
            text("SELECT summary FROM calls WHERE id = ?1", &id).as_deref(),
            call["summary"].as_str()
        );
        assert_eq!(
            text(
                "SELECT response_value FROM custom_metrics WHERE call_id = ?1 AND name = 'repetition_count'",
                &id
            ),
            Some(call["analysis"]["repetition_count"].to_string())
        );
        let failed = !call["failure_reason"].is_null();
        let goal: Option<i64> = conn
            .query_row(
                "SELECT goal_success FROM evaluations WHERE call_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            goal,
            failed.then_some(0),
            "a failure reason is a failed goal"
        );
    }
    let messages: usize = served
        .values()
        .map(|c| c["messages"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM transcript_turns WHERE provider = 'clarion'"
        ) as usize,
        messages
    );
    let call = served
        .values()
        .find(|c| c["call_type"] == "inboundPhoneCall" && c["call_status"] == "ended")
        .unwrap();
    let id = id_of(call);
    let turn = &call["messages"][1];
    let (role, start, end): (String, i64, i64) = conn
        .query_row(
            "SELECT t.role, t.start_ms, t.end_ms FROM transcript_turns t
             JOIN calls c ON c.seq = t.call_seq WHERE c.id = ?1 AND t.idx = 1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let from_start = (turn["secondsFromStart"].as_f64().unwrap() * 1000.0).round() as i64;
    assert_eq!(
        (role.as_str(), start, end),
        (
            turn["role"].as_str().unwrap(),
            from_start,
            from_start + turn["duration"].as_i64().unwrap()
        )
    );
    assert_eq!(
        text(
            "SELECT phone_number FROM participants WHERE call_id = ?1 AND role = 'user'",
            &id
        )
        .as_deref(),
        call["source_number"].as_str(),
        "an inbound call's source is the caller"
    );
    assert_eq!(
        text("SELECT call_direction FROM calls WHERE id = ?1", &id).as_deref(),
        Some("inbound")
    );
}

#[test]
fn later_syncs_ask_one_window_and_recheck_unfinished_calls_until_they_end() {
    let fx = synced(sim_config(3_000, 2));
    let conn = open(&fx.db());
    let unfinished = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'clarion' AND settled = 0 AND created_at IS NOT NULL",
    );
    drop(conn);
    assert!(!unfinished.is_empty());
    let lists = || fx.server.sim.list_answers().len();

    // Past the recheck horizon, nothing is read by id: one window, and no new calls.
    let (before, asked) = (fx.server.sim.requests(), lists());
    let stderr = sync_ok(&fx, &["--recheck-days", "0"]);
    assert_eq!(summary_counts(&stderr).0, 0, "{stderr}");
    assert_eq!(
        (fx.server.sim.requests() - before, lists() - asked),
        (1, 1),
        "{stderr}"
    );

    let now = chrono::Utc::now();
    let ended = fx.server.sim.complete_pending_of(
        CLARION,
        usize::MAX,
        now - chrono::Duration::days(30)..now + chrono::Duration::hours(1),
    );
    assert!(!ended.is_empty());
    let added = fx.server.sim.add_calls_of(CLARION, 1, 7);
    let (before, asked) = (fx.server.sim.requests(), lists());
    let stderr = sync_ok(&fx, &[]);
    assert_eq!(summary_counts(&stderr).0, 7, "{stderr}");
    assert_eq!(
        lists() - asked,
        1,
        "one window since the high-water mark: {stderr}"
    );
    let requests = fx.server.sim.requests() - before;
    assert!(
        requests <= 1 + unfinished.len() as u64,
        "{requests} requests for 7 new calls and {} unfinished: {stderr}",
        unfinished.len()
    );
    assert!(stderr.contains("unfinished calls rechecked"), "{stderr}");
    let conn = open(&fx.db());
    for id in ended.iter().filter(|id| unfinished.contains(id)) {
        let (status, settled): (String, bool) = conn
            .query_row(
                "SELECT status, settled FROM calls WHERE provider = 'clarion' AND id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), settled), ("ended", true), "{id}");
    }
    drop(conn);
    let archived = archived(&fx.db());
    assert!(added.iter().all(|id| archived.contains_key(id)));
    assert_eq!(archived, served(&fx), "the archive follows the provider");
}

#[test]
fn the_base_url_works_with_or_without_v1_and_names_one_source() {
    let fx = synced(sim_config(200, 1));
    let base = fx.server.base_url();
    // The simulator serves Clarion under /v1 only, as Clarion does.
    assert_eq!(
        http_with(
            "GET",
            &format!("{base}/call"),
            &[("Authorization", &format!("Bearer {KEY}"))]
        )
        .0,
        404
    );
    for url in [
        format!("{base}/v1"),
        format!("{base}/v1/"),
        format!("{base}/"),
    ] {
        let out = fx
            .cmd()
            .args(["sync", "clarion", "--base-url", &url])
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "{url}: {stderr}");
        assert_eq!(summary_counts(&stderr).0, 0, "{url}: {stderr}");
    }
    let conn = open(&fx.db());
    assert_eq!(
        strings(
            &conn,
            "SELECT base_url FROM sources WHERE provider = 'clarion'"
        ),
        [format!("{base}/v1")]
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT scope FROM sync_state WHERE provider = 'clarion'"
        ),
        ["*"],
        "one account-wide stream"
    );
    drop(conn);
    assert_eq!(archived(&fx.db()), served(&fx));
}

#[test]
fn one_assistant_is_kept_from_the_account_wide_list() {
    let fx = Fixture::new(sim_config(600, 3));
    let assistant = fx.server.sim.agents_of(CLARION)[1].clone();
    assert!(assistant.parse::<u64>().is_ok(), "{assistant}");
    sync_ok(&fx, &["--agent", &assistant]);
    let mine: BTreeMap<String, Value> = served(&fx)
        .into_iter()
        .filter(|(_, c)| {
            c["assistant_id"].as_u64().map(|n| n.to_string()) == Some(assistant.clone())
        })
        .collect();
    assert!(!mine.is_empty() && mine.len() < served(&fx).len());
    assert_eq!(archived(&fx.db()), mine);
    let conn = open(&fx.db());
    assert_eq!(
        strings(
            &conn,
            "SELECT scope FROM sync_state WHERE provider = 'clarion'"
        ),
        [assistant]
    );
}

#[test]
fn faults_are_survived_and_answered_in_clarions_error_shape() {
    let fx = Fixture::new(SimConfig {
        faults: FaultConfig {
            rate: 0.2,
            kinds: vec![
                FaultKind::TooManyRequests,
                FaultKind::Unavailable,
                FaultKind::ServerError,
                FaultKind::DropConnection,
                FaultKind::TruncateBody,
            ],
            retry_after_secs: 0,
            ..FaultConfig::default()
        },
        ..sim_config(800, 2)
    });
    let stderr = sync_ok(&fx, &[]);
    assert!(fx.server.sim.faults_served() > 0);
    assert!(stderr.contains("retrying"), "{stderr}");
    assert_eq!(archived(&fx.db()), served(&fx));
    fx.server.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::TooManyRequests],
        ..FaultConfig::default()
    });
    let (status, body) = clarion(&fx, "GET", "/call?limit=1");
    assert_eq!(status, 429);
    assert_eq!(body["statusCode"], 429);
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

#[test]
fn a_killed_window_walk_resumes_without_asking_a_committed_window_again() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(25),
        ..sim_config(4_000, 2)
    });
    let mut child = fx
        .std_cmd()
        .args(["sync", "clarion", "--base-url", &fx.server.base_url()])
        .args(["--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the sync never committed pages");
        let done = rusqlite::Connection::open_with_flags(
            fx.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT count(*) FROM sync_walk_pages", [], |r| r.get(0)))
        .unwrap_or(0i64);
        // Past the search for the oldest call, into the windows.
        if done >= 24 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // kill -9: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = count(&open(&fx.db()), "SELECT count(*) FROM sync_walk_pages") as usize;
    let first_run = fx.server.sim.list_answers();

    let stderr = sync_ok(&fx, &[]);
    assert!(
        stderr.contains(&format!("resumed, {committed} pages already committed")),
        "{stderr}"
    );
    let answers = fx.server.sim.list_answers();
    let second_run = &answers[first_run.len()..];
    assert!(!second_run.is_empty(), "killed mid-walk");
    let conn = open(&fx.db());
    assert_eq!(
        count(
            &conn,
            "SELECT pages FROM sync_runs ORDER BY id DESC LIMIT 1"
        ) as usize,
        second_run.len(),
        "one page per question"
    );
    // Every question of the resumed walk is one the killed walk left unanswered or
    // uncommitted: the same windows (same bounds, same `now`), none committed asked again.
    let distinct: BTreeSet<&str> = answers.iter().map(|a| a.query.as_str()).collect();
    assert_eq!(distinct.len(), committed + second_run.len(), "{stderr}");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sync_walk_pages"),
        0,
        "the walk completed"
    );
    drop(conn);
    assert_eq!(
        archived(&fx.db()),
        served(&fx),
        "nothing lost, nothing twice"
    );
}

#[test]
fn full_deletes_are_confirmed_by_204_or_by_200_with_the_call() {
    let fx = synced(sim_config(200, 2));
    let conn = open(&fx.db());
    let ids = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'clarion' AND settled = 1 ORDER BY id LIMIT 5",
    );
    drop(conn);
    assert_eq!(ids.len(), 5);
    let delete = |ids: &[String]| {
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let selection = format!("SELECT provider, id AS call_id FROM calls WHERE id IN ({list})");
        let out = fx
            .cmd()
            .args(["delete", "--select", &selection, "--mode", "full", "--yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    };
    delete(&ids[..2]);
    fx.server.sim.set_clarion_delete_body(true);
    delete(&ids[2..4]);
    // Deleted at Clarion by someone else: the 404 means done.
    assert_eq!(clarion(&fx, "DELETE", &format!("/call/{}", ids[4])).0, 200);
    delete(&ids[4..]);
    let mut statuses: Vec<(String, u16)> = fx
        .server
        .sim
        .deletes()
        .into_iter()
        .map(|d| (d.call_id, d.status))
        .collect();
    statuses.sort();
    let mut expected: Vec<(String, u16)> =
        [(0, 204), (1, 204), (2, 200), (3, 200), (4, 200), (4, 404)]
            .into_iter()
            .map(|(i, status)| (ids[i].clone(), status))
            .collect();
    expected.sort();
    assert_eq!(statuses, expected);
    let conn = open(&fx.db());
    let left = count(
        &conn,
        &format!(
            "SELECT count(*) FROM calls WHERE id IN ({})",
            ids.iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    assert_eq!(left, 0, "deleted calls leave the archive");
    assert_eq!(
        strings(
            &conn,
            "SELECT call_id FROM deleted_calls WHERE provider = 'clarion' AND mode = 'full' ORDER BY call_id"
        ),
        ids,
        "an audit row each, the one already gone too"
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT state FROM delete_items WHERE provider = 'clarion' ORDER BY job_id, call_id"
        ),
        ["done", "done", "done", "done", "gone"]
    );
    drop(conn);
    assert!(served(&fx).keys().all(|id| !ids.contains(id)));
    // A later full sync does not bring them back, and finds nothing else missing.
    sync_ok(&fx, &["--full"]);
    assert_eq!(archived(&fx.db()), served(&fx));
}

#[test]
fn modes_clarion_does_not_offer_are_refused_before_anything_is_sent() {
    let fx = synced(sim_config(100, 1));
    for mode in ["recording-only", "redact"] {
        let out = fx
            .cmd()
            .args([
                "delete",
                "--select",
                "SELECT provider, id AS call_id FROM calls LIMIT 3",
                "--mode",
                mode,
                "--yes",
            ])
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("clarion offers no {mode} delete (it offers full)")),
            "{stderr}"
        );
    }
    assert!(fx.server.sim.deletes().is_empty());
}

#[test]
fn the_simulators_calls_match_clarions_documented_call() {
    let fx = Fixture::new(sim_config(300, 2));
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi/clarion-delete-call.yaml");
    let check = |call: &Value| {
        let errors = validate_with(&spec, Target::Component("Call"), Mode::RESPONSE, call);
        assert!(errors.is_empty(), "{errors:#?}\n{call:#}");
    };
    // A bare array, 100 calls unless asked for more, in no order.
    let (status, page) = clarion(&fx, "GET", "/call");
    assert_eq!(status, 200);
    let calls = page.as_array().expect("a bare array");
    assert_eq!(calls.len(), 100);
    let (_, all) = clarion(&fx, "GET", "/call?limit=1000");
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 1_000);
    let ids: Vec<u64> = all.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).any(|w| w[0] > w[1]) && ids.windows(2).any(|w| w[0] < w[1]));
    for call in &all {
        check(call);
    }
    for state in ["ended", "in-progress"] {
        assert!(all.iter().any(|c| c["call_status"] == state), "{state}");
    }
    let (_, whole) = clarion(
        &fx,
        "GET",
        "/call?limit=1000&createdAtLe=2100-01-01T00:00:00Z",
    );
    let unfinished = served(&fx)
        .into_values()
        .filter(|c| c["call_status"] != "ended")
        .collect::<Vec<_>>();
    assert!(!unfinished.is_empty());
    for call in &unfinished {
        check(call);
    }
    assert_eq!(
        whole.as_array().unwrap().len(),
        1_000,
        "at most limit calls"
    );
    // One read by id, and the DELETE that answers with the call.
    let id = ids[0];
    let (status, one) = clarion(&fx, "GET", &format!("/call/{id}"));
    assert_eq!(status, 200);
    check(&one);
    fx.server.sim.set_clarion_delete_body(true);
    let (status, deleted) = clarion(&fx, "DELETE", &format!("/call/{id}"));
    assert_eq!(status, 200);
    check(&deleted);
    assert_eq!(deleted, one);
    assert_eq!(clarion(&fx, "GET", &format!("/call/{id}")).0, 404);
    // Refusals: a limit past 1,000, a `+` sent bare (it arrives as a space), no key.
    let (status, body) = clarion(&fx, "GET", "/call?limit=1001");
    assert_eq!(
        (status, body["statusCode"].as_u64()),
        (400, Some(400)),
        "{body}"
    );
    let (status, _) = clarion(
        &fx,
        "GET",
        "/call?createdAtGe=2026-03-01T12:00:00.000+01:00",
    );
    assert_eq!(status, 400, "a bare + is a space");
    let (status, _) = clarion(
        &fx,
        "GET",
        "/call?createdAtGe=2026-03-01T12:00:00.000%2B01:00",
    );
    assert_eq!(status, 200);
    let (status, _) = http_with("GET", &format!("{}/v1/call", fx.server.base_url()), &[]);
    assert_eq!(status, 401);
    // A wrong value fails the schema: the check has teeth.
    let mut bogus = one.clone();
    bogus["call_status"] = Value::from("finished");
    assert!(!validate_with(&spec, Target::Component("Call"), Mode::RESPONSE, &bogus).is_empty());
}
