//! Ultravox against the simulator: one account-wide stream (or `--agent`), full and
//! incremental walks by creation date, messages of every stage as transcript turns, running
//! calls finished by id within `--recheck-days`, faults, tombstones applied once (calls
//! deleted before the first sync ignored, calls deleted between syncs or during a walk
//! removed with one audit row each), full deletes (a repeat is gone), refused modes, a killed
//! walk resumed along its cursor chain, and the simulator's answers against Ultravox's OpenAPI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callvault::providers::ProviderKind;
use callvault::sim::{Churn, FaultConfig, FaultKind, SimConfig};
use serde_json::Value;

use crate::util::openapi::{validate_response, validate_with, Mode, Target};
use crate::util::*;

const UV: ProviderKind = ProviderKind::Ultravox;

fn served(fx: &Fixture) -> BTreeMap<String, Value> {
    fx.server
        .sim
        .calls_json_of(UV)
        .into_iter()
        .map(|c| (c["callId"].as_str().unwrap().to_string(), c))
        .collect()
}

fn archived(db: &Path) -> BTreeMap<String, Value> {
    let conn = open(db);
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM calls WHERE provider = 'ultravox'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, raw) = row.unwrap();
            (id, serde_json::from_str(&raw).unwrap())
        })
        .collect()
}

/// A request at the simulator's Ultravox API with the key; `path` may be a whole URL.
fn ultravox(fx: &Fixture, method: &str, path: &str) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", fx.server.base_url())
    };
    http_with(method, &url, &[("X-API-Key", KEY)])
}

/// Every message of a call in `mode`, following `next`.
fn all_messages(fx: &Fixture, id: &str, mode: &str) -> Vec<Value> {
    let mut url = format!("/api/calls/{id}/messages?mode={mode}&pageSize=5");
    let mut out = Vec::new();
    loop {
        let (status, page) = ultravox(fx, "GET", &url);
        assert_eq!(status, 200, "{page}");
        out.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => return out,
        }
    }
}

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/ultravox.yaml")
}

fn sync(fx: &Fixture, extra: &[&str]) -> String {
    let out = fx.sync_of("ultravox", extra).output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn upstream_rows(db: &Path) -> Vec<String> {
    strings(
        &open(db),
        "SELECT call_id FROM deleted_calls WHERE provider = 'ultravox' AND mode = 'upstream'
         ORDER BY call_id",
    )
}

/// One archived transcript turn: role, text, start and end in milliseconds.
type Turn = (String, Option<String>, Option<i64>, Option<i64>);

fn turns_of(db: &Path, id: &str) -> Vec<Turn> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(
            "SELECT t.role, t.text, t.start_ms, t.end_ms FROM transcript_turns t
             JOIN calls c ON c.seq = t.call_seq WHERE c.id = ?1 ORDER BY t.idx",
        )
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `"0.480s"` in milliseconds.
fn ms(duration: &Value) -> Option<i64> {
    let text = duration.as_str()?.strip_suffix('s')?;
    Some((text.parse::<f64>().ok()? * 1000.0).round() as i64)
}

#[test]
fn a_full_sync_mirrors_the_account_with_every_stage_of_every_conversation() {
    let fx = Fixture::new(sim_config(600, 3));
    // Calls created now: some are still running.
    fx.server.sim.add_calls_of(UV, 1, 20);
    let stderr = sync(&fx, &[]);
    assert_eq!(summary_counts(&stderr).0, 620, "{stderr}");
    let served = served(&fx);
    assert_eq!(archived(&fx.db()), served, "every call, raw JSON as served");
    let conn = open(&fx.db());
    assert_eq!(
        strings(
            &conn,
            "SELECT scope FROM sync_state WHERE provider = 'ultravox'"
        ),
        ["*"],
        "one account-wide stream"
    );
    // Statuses derived from joined/ended; running calls wait for a recheck, without messages.
    let running: Vec<&Value> = served.values().filter(|c| c["ended"].is_null()).collect();
    assert!(!running.is_empty() && running.len() < 20);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM calls WHERE provider = 'ultravox' AND settled = 0
             AND status IN ('created', 'joined')
             AND NOT EXISTS (SELECT 1 FROM transcript_turns t WHERE t.call_seq = calls.seq)"
        ),
        running.len() as i64
    );
    let joined_only = running.iter().filter(|c| c["joined"].is_string()).count();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls WHERE status = 'joined'"),
        joined_only as i64
    );
    let unjoined = served
        .values()
        .filter(|c| c["endReason"] == "unjoined")
        .count();
    assert!(unjoined > 0);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM calls WHERE status = 'ended' AND end_reason = 'unjoined'
             AND start_time IS NULL AND duration_ms = 0"
        ),
        unjoined as i64
    );
    // Typed columns of an ended call.
    let (id, call) = served
        .iter()
        .find(|(_, c)| c["joined"].is_string() && c["ended"].is_string())
        .unwrap();
    let typed: (String, String, i64, String, String) = conn
        .query_row(
            "SELECT agent_id, created_at, duration_ms, status, metadata_json FROM calls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(call[k].as_str().unwrap()).unwrap();
    assert_eq!(typed.0, call["agentId"].as_str().unwrap());
    assert_eq!(
        typed.1,
        at("created")
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(typed.2, (at("ended") - at("joined")).num_milliseconds());
    assert_eq!(typed.3, "ended");
    assert_eq!(
        serde_json::from_str::<Value>(&typed.4).unwrap(),
        call["metadata"]
    );
    drop(conn);

    // Every stage of a two-stage call, not only the last (the API's default).
    let (two_stage, messages) = served
        .iter()
        .filter(|(_, c)| c["ended"].is_string() && c["joined"].is_string())
        .map(|(id, _)| (id, all_messages(&fx, id, "in_call")))
        .find(|(_, m)| {
            m.iter()
                .map(|m| m["callStageId"].as_str().unwrap())
                .collect::<BTreeSet<_>>()
                .len()
                == 2
        })
        .unwrap();
    let last_stage = all_messages(&fx, two_stage, "last_stage");
    assert!(last_stage.len() < messages.len());
    let turns = turns_of(&fx.db(), two_stage);
    assert_eq!(turns.len(), messages.len());
    for (turn, message) in turns.iter().zip(&messages) {
        let role = message["role"].as_str().unwrap();
        assert_eq!(
            turn.0,
            role.strip_prefix("MESSAGE_ROLE_").unwrap().to_lowercase()
        );
        assert_eq!(turn.1.as_deref(), message["text"].as_str());
        assert_eq!(turn.2, ms(&message["timespan"]["start"]));
        assert_eq!(turn.3, ms(&message["timespan"]["end"]));
    }
    // Tool calls, paired with their results.
    let conn = open(&fx.db());
    let tools = count(
        &conn,
        "SELECT count(*) FROM tool_calls WHERE provider = 'ultravox'",
    );
    let results = count(
        &conn,
        "SELECT count(*) FROM transcript_turns WHERE provider = 'ultravox' AND role = 'tool_result'",
    );
    assert!(tools > 0);
    assert_eq!(tools, results);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tool_calls WHERE output_json IS NULL OR name IS NULL
             OR json_valid(parameters_json) = 0"
        ),
        0
    );
    assert_no_orphans(&conn);
}

#[test]
fn later_syncs_read_from_the_high_water_mark_and_finish_running_calls_by_id() {
    // The data leads up to twelve hours ago, so calls still running then are older than the
    // overlap of the next walk: only a read by id can see them finish.
    let anchor = chrono::Utc::now() - chrono::Duration::hours(12);
    let fx = Fixture::new(SimConfig {
        anchor: Some(anchor),
        ..sim_config(30_000, 2)
    });
    let stderr = sync(&fx, &["--window", "1day"]);
    let first = summary_counts(&stderr).0;
    assert!((100..200).contains(&first), "one day of calls: {stderr}");
    let conn = open(&fx.db());
    let high_water: String = conn
        .query_row("SELECT high_water FROM sync_state", [], |r| r.get(0))
        .unwrap();
    let running = strings(&conn, "SELECT id FROM calls WHERE settled = 0 ORDER BY id");
    drop(conn);
    let now = chrono::Utc::now();
    let finished: BTreeSet<String> = fx
        .server
        .sim
        .complete_pending_of(UV, usize::MAX, now - chrono::Duration::days(2)..now)
        .into_iter()
        .collect();
    assert!(running.iter().all(|id| finished.contains(id)));
    let overlap_start =
        chrono::DateTime::parse_from_rfc3339(&high_water).unwrap() - chrono::Duration::hours(1);
    let old_running: Vec<String> = {
        let conn = open(&fx.db());
        running
            .iter()
            .filter(|id| {
                let created: String = conn
                    .query_row("SELECT created_at FROM calls WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .unwrap();
                chrono::DateTime::parse_from_rfc3339(&created).unwrap() < overlap_start
            })
            .cloned()
            .collect()
    };
    assert!(old_running.len() >= 5, "{old_running:?}");
    let added = fx.server.sim.add_calls_of(UV, 0, 7);

    // Past --recheck-days, a running call is no longer read by id.
    let stderr = sync(&fx, &["--recheck-days", "0"]);
    assert_eq!(summary_counts(&stderr).0, 7, "{stderr}");
    assert!(!stderr.contains("rechecked"), "{stderr}");
    let conn = open(&fx.db());
    let checkpoint: String = conn
        .query_row("SELECT checkpoint_json FROM sync_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&checkpoint).unwrap()["fromDate"],
        overlap_start
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    for id in &old_running {
        let settled: bool = conn
            .query_row("SELECT settled FROM calls WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!settled, "{id} not read again");
    }
    drop(conn);

    let before = fx.server.sim.requests();
    let stderr = sync(&fx, &[]);
    assert!(
        stderr.contains(&format!("{} unfinished calls rechecked", old_running.len())),
        "{stderr}"
    );
    // The walk's few pages, then one read and one messages read per rechecked call.
    let requests = fx.server.sim.requests() - before;
    assert!(
        requests <= 2 + 2 * old_running.len() as u64 + 2 * 20,
        "{requests} requests"
    );
    let conn = open(&fx.db());
    for id in &running {
        let (status, settled): (String, bool) = conn
            .query_row(
                "SELECT status, settled FROM calls WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), settled), ("ended", true), "{id}");
    }
    drop(conn);
    let joined_and_finished = running.iter().find(|id| !turns_of(&fx.db(), id).is_empty());
    assert!(
        joined_and_finished.is_some(),
        "finished calls got their messages"
    );
    let archived_ids: BTreeSet<String> = archived(&fx.db()).into_keys().collect();
    assert!(added.iter().all(|id| archived_ids.contains(id)));
    assert_eq!(archived_ids.len() as u64, first + 7);
}

#[test]
fn faults_are_survived_and_answered_in_ultravoxs_error_shape() {
    let fx = Fixture::new(SimConfig {
        faults: FaultConfig {
            rate: 0.1,
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
        ..sim_config(300, 2)
    });
    sync(&fx, &[]);
    assert!(fx.server.sim.faults_served() > 0);
    fx.server.sim.set_faults(FaultConfig::default());
    assert_eq!(archived(&fx.db()), served(&fx));
    let expected_turns: usize = served(&fx)
        .iter()
        .filter(|(_, c)| c["ended"].is_string() && c["joined"].is_string())
        .map(|(id, _)| all_messages(&fx, id, "in_call").len())
        .sum();
    assert_eq!(
        count(
            &open(&fx.db()),
            "SELECT count(*) FROM transcript_turns WHERE provider = 'ultravox'"
        ),
        expected_turns as i64,
        "no page returned without all its messages"
    );
    fx.server.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::TooManyRequests],
        ..FaultConfig::default()
    });
    let (status, body) = ultravox(&fx, "GET", "/api/calls");
    assert_eq!(status, 429);
    assert!(body["detail"].is_string(), "{body}");
    fx.server.sim.set_faults(FaultConfig::default());
    let (status, body) = http_with(
        "GET",
        &format!("{}/api/calls", fx.server.base_url()),
        &[("X-API-Key", "wrong")],
    );
    assert_eq!(status, 401);
    assert!(body["detail"].is_string(), "{body}");
}

#[test]
fn tombstones_remove_calls_deleted_upstream_once_and_ignore_calls_never_archived() {
    let fx = Fixture::new(sim_config(500, 2));
    let before_first = fx.server.sim.delete_upstream(UV, 5);
    assert_eq!(before_first.len(), 5);
    let stderr = sync(&fx, &[]);
    assert!(!stderr.contains("deleted upstream"), "{stderr}");
    assert_eq!(archived(&fx.db()).len(), 495);
    assert!(
        upstream_rows(&fx.db()).is_empty(),
        "never archived: ignored"
    );

    // Deleted by someone else between two syncs, old calls too: the incremental walk does
    // not list them, the tombstones say so.
    let gone: BTreeSet<String> = fx.server.sim.delete_upstream(UV, 7).into_iter().collect();
    let conn = open(&fx.db());
    let list = gone
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let agents: BTreeMap<String, String> = strings(
        &conn,
        &format!("SELECT id || ' ' || agent_id FROM calls WHERE id IN ({list})"),
    )
    .into_iter()
    .map(|row| {
        let (id, agent) = row.split_once(' ').unwrap();
        (id.to_string(), agent.to_string())
    })
    .collect();
    assert_eq!(agents.len(), 7);
    let turns_before = count(
        &conn,
        &format!(
            "SELECT count(*) FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
             WHERE c.id IN ({list})"
        ),
    );
    assert!(turns_before > 0);
    drop(conn);
    let stderr = sync(&fx, &[]);
    assert!(
        stderr.contains("; 7 calls deleted upstream removed"),
        "{stderr}"
    );
    assert_eq!(
        upstream_rows(&fx.db()).into_iter().collect::<BTreeSet<_>>(),
        gone
    );
    let conn = open(&fx.db());
    for (id, agent) in &agents {
        let row: (String, Option<i64>) = conn
            .query_row(
                "SELECT agent_id, job_id FROM deleted_calls WHERE call_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row, (agent.clone(), None));
    }
    for table in ["transcript_turns", "tool_calls"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE call_id IN ({list})");
        assert_eq!(count(&conn, &sql), 0, "{table}");
    }
    assert_eq!(
        count(
            &conn,
            "SELECT deleted_upstream FROM sync_runs ORDER BY id DESC LIMIT 1"
        ),
        7
    );
    assert_no_orphans(&conn);
    let dump = content_dump(&conn);
    drop(conn);
    assert_eq!(archived(&fx.db()), served(&fx));

    // Applied once: the next syncs, a full one too, change nothing.
    for extra in [&[][..], &["--full"][..]] {
        let stderr = sync(&fx, extra);
        assert!(!stderr.contains("deleted upstream"), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
        let conn = open(&fx.db());
        assert_eq!(content_dump(&conn), dump);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM deleted_calls"),
            7,
            "no audit row twice"
        );
    }
}

#[test]
fn calls_deleted_while_the_walk_runs_are_gone_when_the_sync_ends() {
    let fx = Fixture::new(SimConfig {
        churn: Churn {
            insert_chance: 0.0,
            delete_chance: 1.0,
        },
        ..sim_config(1_200, 2)
    });
    sync(&fx, &[]);
    let (_, churned) = fx.server.sim.churned();
    assert!(churned.len() >= 10, "one deletion per page of calls");
    fx.server.sim.set_churn(Churn::default());
    // A call deleted after its page was read left with the tombstones that followed.
    assert_eq!(archived(&fx.db()), served(&fx));
    let removed = upstream_rows(&fx.db());
    assert!(!removed.is_empty(), "some deletions hit pages already read");
    let churned: BTreeSet<String> = churned.into_iter().collect();
    assert!(removed.iter().all(|id| churned.contains(id)));
    assert_no_orphans(&open(&fx.db()));
}

#[test]
fn a_full_delete_removes_the_call_and_a_later_tombstone_adds_no_second_audit_row() {
    let fx = Fixture::new(sim_config(200, 2));
    sync(&fx, &[]);
    let conn = open(&fx.db());
    let targets = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'ultravox' AND status = 'ended' ORDER BY id LIMIT 4",
    );
    drop(conn);
    // One of them is already gone at the provider: its DELETE answers 404.
    let (status, _) = ultravox(&fx, "DELETE", &format!("/api/calls/{}", targets[0]));
    assert_eq!(status, 204);
    let selection = format!(
        "SELECT provider, id AS call_id FROM calls WHERE id IN ({})",
        targets
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let out = fx
        .cmd()
        .args(["delete", "--select", &selection, "--mode", "full", "--yes"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("3 done, 1 gone, 0 skipped, 0 failed, 0 pending"),
        "{stderr}"
    );
    let statuses: Vec<(String, u16)> = fx
        .server
        .sim
        .deletes()
        .into_iter()
        .map(|d| (d.call_id, d.status))
        .collect();
    assert_eq!(statuses.len(), 5);
    assert_eq!(statuses.iter().filter(|(_, s)| *s == 404).count(), 1);
    let check = |when: &str| {
        let conn = open(&fx.db());
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM deleted_calls WHERE mode = 'full'"
            ),
            4,
            "{when}"
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM deleted_calls"),
            4,
            "{when}: no upstream row beside the full one"
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 196, "{when}");
        assert_no_orphans(&conn);
    };
    check("after the delete");
    // All four are tombstones now; the archive already let them go.
    let (_, tombstones) = ultravox(&fx, "GET", "/api/deleted_calls");
    assert_eq!(tombstones["total"], 4);
    let stderr = sync(&fx, &["--full"]);
    assert!(!stderr.contains("deleted upstream"), "{stderr}");
    check("after a full sync");
}

#[test]
fn modes_ultravox_does_not_offer_are_refused_before_anything_is_sent() {
    let fx = Fixture::new(sim_config(50, 1));
    sync(&fx, &[]);
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
            stderr.contains(&format!(
                "ultravox offers no {mode} delete (it offers full)"
            )),
            "{stderr}"
        );
    }
    assert!(fx.server.sim.deletes().is_empty());
    assert_eq!(count(&open(&fx.db()), "SELECT count(*) FROM calls"), 50);
}

#[test]
fn an_agent_narrows_the_stream_to_its_calls() {
    let fx = Fixture::new(sim_config(300, 3));
    let agents = fx.server.sim.agents_of(UV);
    let stderr = sync(&fx, &["--agent", &agents[1]]);
    let mine: BTreeMap<String, Value> = served(&fx)
        .into_iter()
        .filter(|(_, c)| c["agentId"] == agents[1].as_str())
        .collect();
    assert!(mine.len() > 50 && mine.len() < 200);
    assert_eq!(summary_counts(&stderr).0, mine.len() as u64);
    assert_eq!(archived(&fx.db()), mine);
    assert_eq!(
        strings(&open(&fx.db()), "SELECT scope FROM sync_state"),
        [agents[1].clone()]
    );
    // Ultravox takes agentIds repeated or comma-separated, and refuses what is not a UUID.
    let (_, both) = ultravox(
        &fx,
        "GET",
        &format!("/api/calls?agentIds={}&agentIds={}", agents[0], agents[1]),
    );
    let (_, comma) = ultravox(
        &fx,
        "GET",
        &format!("/api/calls?agentIds={},{}", agents[0], agents[1]),
    );
    let (_, all) = ultravox(&fx, "GET", "/api/calls");
    assert_eq!(both["total"], comma["total"]);
    assert!(both["total"].as_u64() < all["total"].as_u64());
    let (status, refused) = ultravox(&fx, "GET", "/api/calls?agentIds=agent-1");
    assert_eq!(status, 400);
    assert!(refused["agentIds"][0].is_string(), "{refused}");
    let out = fx
        .sync_of("ultravox", &["--agent", "agent-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("is not a valid UUID"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_killed_walk_resumes_along_its_cursor_chain() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(20),
        ..sim_config(1_500, 2)
    });
    let mut child = fx
        .std_cmd()
        .args(["sync", "ultravox", "--base-url", &fx.server.base_url()])
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
        if done >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // kill -9: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = count(&open(&fx.db()), "SELECT count(*) FROM sync_walk_pages");
    // 15 pages of calls, then one of tombstones.
    assert!(committed < 15, "killed mid-walk ({committed} of 16 pages)");

    let stderr = sync(&fx, &[]);
    assert!(
        stderr.contains(&format!("resumed, {committed} pages already committed")),
        "{stderr}"
    );
    let conn = open(&fx.db());
    assert_eq!(
        count(
            &conn,
            "SELECT pages FROM sync_runs ORDER BY id DESC LIMIT 1"
        ),
        16 - committed,
        "only the pages after the last committed one were fetched"
    );
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
fn the_simulators_answers_match_ultravoxs_openapi() {
    let fx = Fixture::new(sim_config(400, 2));
    fx.server.sim.add_calls_of(UV, 0, 12);
    let spec = spec();
    let check = |path: &str, method: &str, body: &Value| {
        let errors = validate_response(&spec, path, method, "200", body);
        assert!(errors.is_empty(), "{method} {path}: {errors:#?}\n{body:#}");
    };
    let (status, first) = ultravox(&fx, "GET", "/api/calls?pageSize=150");
    assert_eq!(status, 200);
    check("/api/calls", "get", &first);
    assert_eq!(first["total"], 412);
    assert!(first["previous"].is_null());
    let next = first["next"].as_str().unwrap();
    assert!(next.starts_with(&fx.server.base_url()), "absolute: {next}");
    let (_, second) = ultravox(&fx, "GET", next);
    check("/api/calls", "get", &second);
    // `previous` leads back to the first page.
    let (_, back) = ultravox(&fx, "GET", second["previous"].as_str().unwrap());
    assert_eq!(back["results"], first["results"]);
    let agent = &fx.server.sim.agents_of(UV)[0];
    let (_, filtered) = ultravox(
        &fx,
        "GET",
        &format!("/api/calls?sort=created&fromDate=2000-01-01&agentIds={agent}"),
    );
    check("/api/calls", "get", &filtered);
    let calls: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|p| p["results"].as_array().unwrap().clone())
        .chain(filtered["results"].as_array().unwrap().clone())
        .collect();
    let pick = |what: &str, test: &dyn Fn(&Value) -> bool| {
        calls
            .iter()
            .find(|c| test(c))
            .unwrap_or_else(|| panic!("no {what} call"))
            .clone()
    };
    let kinds = [
        pick("ended", &|c| {
            c["ended"].is_string() && c["joined"].is_string()
        }),
        pick("unjoined", &|c| c["endReason"] == "unjoined"),
        pick("running", &|c| {
            c["ended"].is_null() && c["joined"].is_string()
        }),
        pick("not yet joined", &|c| {
            c["joined"].is_null() && c["ended"].is_null()
        }),
        pick("sip", &|c| c["sipDetails"].is_object()),
    ];
    for call in &kinds {
        let id = call["callId"].as_str().unwrap();
        let (status, one) = ultravox(&fx, "GET", &format!("/api/calls/{id}"));
        assert_eq!(status, 200);
        check("/api/calls/{call_id}", "get", &one);
        for mode in ["in_call", "last_stage"] {
            let (_, page) = ultravox(
                &fx,
                "GET",
                &format!("/api/calls/{id}/messages?mode={mode}&pageSize=4"),
            );
            check("/api/calls/{call_id}/messages", "get", &page);
            if let Some(next) = page["next"].as_str() {
                let (_, more) = ultravox(&fx, "GET", next);
                check("/api/calls/{call_id}/messages", "get", &more);
            }
        }
    }
    let ended = kinds[0]["callId"].as_str().unwrap().to_string();
    let (status, body) = ultravox(&fx, "DELETE", &format!("/api/calls/{ended}"));
    assert_eq!((status, body), (204, Value::Null));
    let (status, _) = ultravox(&fx, "DELETE", &format!("/api/calls/{ended}"));
    assert_eq!(status, 404, "a repeat");
    let (status, _) = ultravox(&fx, "GET", &format!("/api/calls/{ended}/messages"));
    assert_eq!(status, 404);
    fx.server.sim.delete_upstream(UV, 6);
    let (_, tombstones) = ultravox(&fx, "GET", "/api/deleted_calls?pageSize=5");
    check("/api/deleted_calls", "get", &tombstones);
    assert_eq!(tombstones["total"], 7);
    let (_, rest) = ultravox(&fx, "GET", tombstones["next"].as_str().unwrap());
    check("/api/deleted_calls", "get", &rest);
    assert_eq!(rest["results"].as_array().unwrap().len(), 2);
    let mine = tombstones["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["results"].as_array().unwrap())
        .find(|t| t["callId"] == ended.as_str())
        .unwrap()
        .clone();
    assert!(mine["deletionTime"].is_string() && mine["hadSummary"].is_boolean());
    let (status, _) = http_with(
        "GET",
        &format!("{}/api/deleted_calls", fx.server.base_url()),
        &[],
    );
    assert_eq!(status, 401, "no key");

    // Wrong values fail: the checks have teeth.
    let component = |name: &str, value: &Value| {
        validate_with(&spec, Target::Component(name), Mode::RESPONSE, value)
    };
    let mut bogus = kinds[0].clone();
    bogus["endReason"] = Value::from("completed");
    assert!(!component("Call", &bogus).is_empty());
    let mut no_agent = kinds[0].clone();
    no_agent["agent"] = Value::Null;
    assert!(!component("Call", &no_agent).is_empty());
    let mut tombstone = mine.clone();
    tombstone.as_object_mut().unwrap().remove("deletionTime");
    assert!(!component("CallTombstone", &tombstone).is_empty());
    let message = serde_json::json!({"role": "MESSAGE_ROLE_AGENT", "timespan": {"start": "0.48", "end": "1s"}});
    assert!(!component("ultravox.v1.Message", &message).is_empty());
}
