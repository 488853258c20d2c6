//! Cartesia against the simulator: agent discovery, full and incremental cursor walks,
//! transcripts and their per-turn latency, completion of started calls by id, faults, a
//! killed walk resumed along its cursor chain, redaction (and the 400 for an unfinished
//! call), refused delete modes, and the simulator's answers against Cartesia's OpenAPI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use callvault::providers::ProviderKind;
use callvault::sim::{FaultConfig, FaultKind, SimConfig};
use serde_json::Value;

use crate::util::openapi::{validate_response, Mode, Target};
use crate::util::*;

const VERSION: &str = "2026-03-01";

fn served(fx: &Fixture) -> BTreeMap<String, Value> {
    fx.server
        .sim
        .calls_json_of(ProviderKind::Cartesia)
        .into_iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c))
        .collect()
}

fn archived(db: &Path) -> BTreeMap<String, Value> {
    let conn = open(db);
    let mut stmt = conn
        .prepare("SELECT id, raw_json FROM calls WHERE provider = 'cartesia'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (id, raw) = row.unwrap();
            (id, serde_json::from_str(&raw).unwrap())
        })
        .collect()
}

/// `GET`/`DELETE` at the simulator's Cartesia API with the key and version.
fn cartesia(fx: &Fixture, method: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    http_with(
        method,
        &format!("{}{path}", fx.server.base_url()),
        &[("Authorization", &auth), ("Cartesia-Version", VERSION)],
    )
}

fn synced(calls: u64, agents: u32) -> Fixture {
    let fx = Fixture::new(sim_config(calls, agents));
    let out = fx.sync_of("cartesia", &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    fx
}

#[test]
fn a_full_sync_finds_every_agent_and_mirrors_calls_turns_and_tool_calls() {
    let fx = synced(600, 2);
    let served = served(&fx);
    assert_eq!(served.len(), 600);
    assert_eq!(
        archived(&fx.db()),
        served,
        "every call, raw JSON as served by id"
    );
    let conn = open(&fx.db());
    // Both agents and the one without calls are streams of their own.
    let streams = strings(
        &conn,
        "SELECT scope FROM sync_state WHERE provider = 'cartesia' ORDER BY scope",
    );
    let mut agents = fx.server.sim.agents_of(ProviderKind::Cartesia);
    agents.push("agent_idle00000000".into());
    agents.sort();
    assert_eq!(streams, agents);
    let turns: usize = served
        .values()
        .map(|c| c["transcript"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM transcript_turns WHERE provider = 'cartesia'"
        ),
        turns as i64
    );
    let tools: usize = served
        .values()
        .flat_map(|c| c["transcript"].as_array().cloned().unwrap_or_default())
        .map(|t| t["tool_calls"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(tools > 0);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tool_calls WHERE provider = 'cartesia'"
        ),
        tools as i64
    );
    // Per-turn latency in milliseconds, from Cartesia's seconds.
    let (id, call) = served
        .iter()
        .find(|(_, c)| c["transcript"].as_array().is_some_and(|t| t.len() > 3))
        .unwrap();
    let turn = &call["transcript"][1];
    let ms: f64 = conn
        .query_row(
            "SELECT t.tts_ttfb_ms FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
             WHERE c.id = ?1 AND t.idx = 1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!((ms - turn["tts_ttfb"].as_f64().unwrap() * 1000.0).abs() < 1e-6);
    let role: String = conn
        .query_row(
            "SELECT t.role FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
             WHERE c.id = ?1 AND t.idx = 1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(role, turn["role"].as_str().unwrap());
    // Cartesia's own statuses; unfinished calls wait for a recheck.
    let started = served.values().filter(|c| c["status"] == "started").count();
    assert!(started > 0, "the data set has calls still in progress");
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM calls WHERE provider = 'cartesia' AND status = 'started' AND settled = 0"
        ),
        started as i64
    );
    assert_no_orphans(&conn);
}

#[test]
fn later_syncs_read_only_new_pages_and_complete_started_calls_by_id() {
    let fx = synced(3_000, 1);
    let agent = fx.server.sim.agents_of(ProviderKind::Cartesia)[0].clone();
    let conn = open(&fx.db());
    let started_before = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'cartesia' AND status = 'started'",
    );
    drop(conn);
    assert!(!started_before.is_empty());
    let now = chrono::Utc::now();
    let completed = fx.server.sim.complete_pending_of(
        ProviderKind::Cartesia,
        usize::MAX,
        now - chrono::Duration::days(30)..now,
    );
    assert!(!completed.is_empty());
    let added = fx.server.sim.add_calls_of(ProviderKind::Cartesia, 0, 7);
    let before = fx.server.sim.requests();
    let out = fx
        .sync_of("cartesia", &["--agent", &agent])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary_counts(&stderr).0, 7, "{stderr}");
    let requests = fx.server.sim.requests() - before;
    // One page down to the high-water mark (the new calls and the overlap), then one read
    // by id per unfinished call, old or new.
    assert!(
        requests <= 2 + started_before.len() as u64 + 7,
        "{requests} requests for 7 new calls: {stderr}"
    );
    let conn = open(&fx.db());
    for id in &completed {
        let (status, settled): (String, bool) = conn
            .query_row(
                "SELECT status, settled FROM calls WHERE provider = 'cartesia' AND id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), settled), ("completed", true), "{id}");
    }
    let archived_ids: BTreeSet<String> = archived(&fx.db()).into_keys().collect();
    assert!(added.iter().all(|id| archived_ids.contains(id)));
    assert_eq!(archived(&fx.db()).len(), 3_007);
}

#[test]
fn faults_are_survived_and_answered_in_cartesias_error_shape() {
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
    let out = fx.sync_of("cartesia", &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(fx.server.sim.faults_served() > 0);
    assert_eq!(archived(&fx.db()), served(&fx));
    fx.server.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::TooManyRequests],
        ..FaultConfig::default()
    });
    let (status, body) = cartesia(&fx, "GET", "/agents");
    assert_eq!(status, 429);
    assert_eq!(body["error_code"], "concurrency_limited");
    assert!(body["message"].is_string() && body["request_id"].is_string());
}

#[test]
fn a_killed_cursor_walk_resumes_along_its_chain() {
    let fx = Fixture::new(SimConfig {
        latency: Duration::from_millis(25),
        ..sim_config(3_000, 1)
    });
    let agent = fx.server.sim.agents_of(ProviderKind::Cartesia)[0].clone();
    let mut child = fx
        .std_cmd()
        .args(["sync", "cartesia", "--base-url", &fx.server.base_url()])
        .args(["--agent", &agent, "--concurrency", "1"])
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
        if done >= 8 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // kill -9: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = count(&open(&fx.db()), "SELECT count(*) FROM sync_walk_pages");
    assert!(committed < 30, "killed mid-walk ({committed} of 30 pages)");

    let out = fx
        .sync_of("cartesia", &["--agent", &agent])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
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
        30 - committed,
        "only the pages after the last committed one were fetched"
    );
    drop(conn);
    assert_eq!(
        archived(&fx.db()),
        served(&fx),
        "nothing lost, nothing twice"
    );
    let conn = open(&fx.db());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sync_walk_pages"),
        0,
        "the walk completed"
    );
}

#[test]
fn redaction_keeps_the_record_drops_its_content_and_survives_later_syncs() {
    let fx = synced(400, 1);
    let conn = open(&fx.db());
    let targets = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'cartesia' AND status = 'completed'
         AND EXISTS (SELECT 1 FROM transcript_turns t WHERE t.call_seq = calls.seq)
         ORDER BY id LIMIT 5",
    );
    let unfinished = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'cartesia' AND status = 'started' ORDER BY id LIMIT 1",
    );
    assert_eq!((targets.len(), unfinished.len()), (5, 1));
    let unfinished_turns = count(
        &conn,
        &format!(
            "SELECT count(*) FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq WHERE c.id = '{}'",
            unfinished[0]
        ),
    );
    drop(conn);
    let list = |ids: &[String]| {
        ids.iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let selection = format!(
        "SELECT provider, id AS call_id FROM calls WHERE id IN ({},{})",
        list(&targets),
        list(&unfinished)
    );
    let out = fx
        .cmd()
        .args([
            "delete", "--select", &selection, "--mode", "redact", "--yes",
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not in a terminal state"), "{stderr}");
    let deletes = fx.server.sim.deletes();
    assert_eq!(deletes.len(), 6, "the 400 was not sent again: {deletes:?}");
    assert_eq!(
        deletes
            .iter()
            .filter(|d| d.provider == "cartesia" && d.status == 200)
            .count(),
        5
    );

    let check = |when: &str| {
        let conn = open(&fx.db());
        for id in &targets {
            let (redacted, summary, raw): (Option<String>, Option<String>, String) = conn
                .query_row(
                    "SELECT redacted_at, summary, raw_json FROM calls WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert!(redacted.is_some(), "{when}: {id} redacted");
            assert_eq!(summary, None, "{when}: {id}");
            let raw: Value = serde_json::from_str(&raw).unwrap();
            assert!(
                raw.get("transcript").is_none_or(Value::is_null),
                "{when}: {raw}"
            );
            assert!(raw["telephony_params"].get("to").is_none(), "{when}: {raw}");
        }
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT count(*) FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
                     WHERE c.id IN ({})",
                    list(&targets)
                )
            ),
            0,
            "{when}: no turns left"
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM deleted_calls WHERE mode = 'redact' AND provider = 'cartesia'"
            ),
            5
        );
        // The unfinished call is untouched.
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT count(*) FROM transcript_turns t JOIN calls c ON c.seq = t.call_seq
                     WHERE c.id = '{}'",
                    unfinished[0]
                )
            ),
            unfinished_turns
        );
        let failed: (String, i64) = conn
            .query_row(
                "SELECT state, http_status FROM delete_items WHERE call_id = ?1",
                [&unfinished[0]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(failed, ("failed".to_string(), 400));
    };
    check("after the delete");
    let out = fx.sync_of("cartesia", &["--full"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    check("after a full sync");
}

#[test]
fn modes_cartesia_does_not_offer_are_refused_before_anything_is_sent() {
    let fx = synced(100, 1);
    for mode in ["full", "recording-only"] {
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
                "cartesia offers no {mode} delete (it offers redact)"
            )),
            "{stderr}"
        );
    }
    assert!(fx.server.sim.deletes().is_empty());
}

#[test]
fn the_simulators_answers_match_cartesias_openapi() {
    let fx = Fixture::new(sim_config(300, 2));
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi/cartesia-2026-03-01.yaml");
    let check = |path: &str, method: &str, status: &str, body: &Value| {
        let errors = validate_response(&spec, path, method, status, body);
        assert!(errors.is_empty(), "{method} {path}: {errors:#?}\n{body:#}");
    };
    let (status, agents) = cartesia(&fx, "GET", "/agents");
    assert_eq!(status, 200);
    check("/agents", "get", "200", &agents);
    let agent = fx.server.sim.agents_of(ProviderKind::Cartesia)[0].clone();
    let (_, page) = cartesia(
        &fx,
        "GET",
        &format!("/agents/calls?agent_id={agent}&limit=100&expand=transcript"),
    );
    check("/agents/calls", "get", "200", &page);
    let next = page["next_page"].as_str().unwrap().to_string();
    let (_, bare) = cartesia(
        &fx,
        "GET",
        &format!("/agents/calls?agent_id={agent}&limit=50&starting_after={next}"),
    );
    check("/agents/calls", "get", "200", &bare);
    assert!(
        bare["data"][0].get("transcript").is_none(),
        "no expand, no transcript"
    );
    let calls = page["data"].as_array().unwrap();
    let started = calls.iter().find(|c| c["status"] == "started").unwrap();
    let done = calls.iter().find(|c| c["status"] == "completed").unwrap();
    for call in [started, done] {
        let (_, one) = cartesia(
            &fx,
            "GET",
            &format!("/agents/calls/{}", call["id"].as_str().unwrap()),
        );
        check("/agents/calls/{call_id}", "get", "200", &one);
    }
    let done_id = done["id"].as_str().unwrap();
    let (status, redacted) = cartesia(&fx, "DELETE", &format!("/agents/calls/{done_id}"));
    assert_eq!(status, 200);
    check("/agents/calls/{call_id}", "delete", "200", &redacted);
    assert!(redacted["transcript"].is_null() && redacted["redacted_at"].is_string());
    let (_, later) = cartesia(&fx, "GET", &format!("/agents/calls/{done_id}"));
    check("/agents/calls/{call_id}", "get", "200", &later);
    assert!(later.get("transcript").is_none(), "absent from later reads");
    let (status, refused) = cartesia(
        &fx,
        "DELETE",
        &format!("/agents/calls/{}", started["id"].as_str().unwrap()),
    );
    assert_eq!(
        (status, refused["error_code"].as_str()),
        (400, Some("call_not_terminal"))
    );
    let (status, _) = http_with(
        "GET",
        &format!("{}/agents", fx.server.base_url()),
        &[("Authorization", &format!("Bearer {KEY}"))],
    );
    assert_eq!(status, 400, "no Cartesia-Version header");
    // A wrong value fails the schema: the check has teeth.
    let mut bogus = done.clone();
    bogus["status"] = Value::from("bogus");
    assert!(!crate::util::openapi::validate_with(
        &spec,
        Target::Component("AgentCall"),
        Mode::RESPONSE,
        &bogus
    )
    .is_empty());
}

#[test]
fn stats_latency_pools_every_turns_time_to_first_byte_per_agent() {
    let fx = synced(500, 2);
    let out = fx
        .cmd()
        .args(["stats", "latency", "--by", "agent", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut checked = 0;
    for agent in fx.server.sim.agents_of(ProviderKind::Cartesia) {
        // Every assistant turn of the agent's calls is one sample, in milliseconds.
        let mut samples: Vec<f64> = served(&fx)
            .values()
            .filter(|c| c["agent_id"] == agent.as_str())
            .flat_map(|c| c["transcript"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["tts_ttfb"].as_f64())
            .map(|s| s * 1000.0)
            .collect();
        samples.sort_by(f64::total_cmp);
        let rank = 0.95 * (samples.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let p95 = samples[lo] + (samples[hi] - samples[lo]) * (rank - lo as f64);
        let row = rows
            .iter()
            .find(|r| r["provider"] == "cartesia" && r["agent_id"] == agent.as_str())
            .unwrap_or_else(|| panic!("no row for {agent}: {rows:?}"));
        assert_eq!(row["measure"], "tts_ttfb_per_turn");
        assert_eq!(row["n"].as_u64(), Some(samples.len() as u64));
        assert!(
            (row["p95"].as_f64().unwrap() - p95).abs() < 1e-6,
            "{row} vs {p95}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}
