//! Exports into a folder that already holds something: only folders callvault wrote are
//! replaced, and every target is checked before any is replaced (issue 12, item 8). The
//! incremental lake (`export --incremental`): after new calls, late evaluations, a Cartesia
//! redaction, an Ultravox upstream deletion and a callvault delete, only the touched
//! partitions' files change, DuckDB reads the same rows as from a fresh export, no deleted
//! call id is left in any byte of the lake, a lake of another archive or other options is
//! refused unless `--full`, and a kill -9 mid-export is finished by the next run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use callvault::providers::ProviderKind;
use callvault::store::CALL_CONTENT_TABLES;
use polars::prelude::{ParquetReader, SerReader};
use serde_json::Value;

use super::query::duckdb_script_json;
use crate::util::*;

fn export(fx: &Fixture, out: &Path, extra: &[&str]) -> std::process::Output {
    fx.cmd()
        .args(["export", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn export_replaces_only_folders_it_wrote_and_checks_every_target_first() {
    let fx = Fixture::synced(120, 2);
    let out = fx.dir.path().join("out");

    // A project folder that happens to be called like a table is not an export.
    let source = out.join("calls/src/main.rs");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(&source, "fn main() {}\n").unwrap();
    let run = export(&fx, &out, &[]);
    let err = stderr_of(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("calls") && err.contains("--force"),
        "the error names the folder and the way out: {err}"
    );
    assert!(source.exists(), "nothing of the user's folder was removed");
    assert!(
        !out.join("evaluations").exists(),
        "no table was written before the check"
    );

    // An earlier export is replaced without a word; the user's folder only with --force.
    std::fs::remove_dir_all(out.join("calls")).unwrap();
    let run = export(&fx, &out, &[]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    let calls_file = out.join("calls/part-0.parquet");
    let before = modified(&calls_file);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = export(&fx, &out, &[]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert_ne!(
        modified(&calls_file),
        before,
        "the earlier export was replaced"
    );

    // A plain file named like a later table: the export fails before replacing `calls`.
    let before = modified(&calls_file);
    std::fs::remove_dir_all(out.join("transcript_turns")).unwrap();
    std::fs::write(out.join("transcript_turns"), "notes").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = export(&fx, &out, &[]);
    let err = stderr_of(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("transcript_turns"), "{err}");
    assert_eq!(modified(&calls_file), before, "calls/ was not replaced");
    assert_eq!(
        std::fs::read_to_string(out.join("transcript_turns")).unwrap(),
        "notes"
    );
    let hidden: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "no staging left: {hidden:?}");

    // --force replaces the file and the user's folder alike.
    std::fs::remove_dir_all(out.join("calls")).unwrap();
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(&source, "fn main() {}\n").unwrap();
    let run = export(&fx, &out, &["--force"]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert!(!source.exists());
    assert!(out.join("transcript_turns").is_dir());
    assert!(calls_file.exists());
}

const MANIFEST: &str = "_callvault_manifest.json";

/// Runs callvault, asserts it succeeded, returns what it said on stderr (export's summary).
fn run_ok_stderr(fx: &Fixture, args: &[&str]) -> String {
    let out = fx.cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    stderr_of(&out)
}

/// `export --out LAKE --incremental` with uncompressed Parquet, so that ids are plain bytes.
fn lake_export(db: &Path, lake: &Path, extra: &[&str]) -> std::process::Output {
    callvault()
        .arg("--db")
        .arg(db)
        .args(["export", "--out", lake.to_str().unwrap(), "--incremental"])
        .args(["--compression", "uncompressed"])
        .args(extra)
        .output()
        .unwrap()
}

/// Every file under `dir` (relative path) with the hash of its bytes and its mtime.
fn files_of(dir: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            out.insert(rel, (xxhash_rust::xxh3::xxh3_64(&bytes), mtime));
        }
    }
    out
}

/// `provider=<p>/day=<d>` of a lake file `table/provider=<p>/day=<d>/part-0.parquet`.
fn partition_of(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    (parts.len() == 4).then(|| format!("{}/{}", parts[1], parts[2]))
}

fn folder(provider: &str, created_at: Option<&str>) -> String {
    match created_at {
        Some(t) => format!("provider={provider}/day={}", &t[..10]),
        None => format!("provider={provider}/day=__HIVE_DEFAULT_PARTITION__"),
    }
}

fn folder_of_call(db: &Path, id: &str) -> String {
    let conn = open(db);
    let (provider, created): (String, Option<String>) = conn
        .query_row(
            "SELECT provider, created_at FROM calls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    folder(&provider, created.as_deref())
}

/// The archive's exported content by partition: every row of every table of call content
/// (without the columns an export leaves out), sorted.
fn archive_partitions(db: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = open(db);
    let mut of_seq: HashMap<i64, String> = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT seq, provider, created_at FROM calls")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (seq, provider, created) = row.unwrap();
        of_seq.insert(seq, folder(&provider, created.as_deref()));
    }
    let skip = ["seq", "call_seq", "source_id", "raw_json", "raw_hash"];
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for table in CALL_CONTENT_TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let key = names
            .iter()
            .position(|n| n == if table == "calls" { "seq" } else { "call_seq" })
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(key)?, row_line(table, &names, &skip, r)?))
            })
            .unwrap();
        for row in rows {
            let (seq, line) = row.unwrap();
            out.entry(of_seq[&seq].clone()).or_default().push(line);
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

/// The lake at `lake` is what its manifest says, and holds `db` as it is now: every listed
/// file is there with its hash and row count, nothing unlisted, no staging left, each
/// partition's calls as many as the archive's.
fn assert_lake_holds(lake: &Path, db: &Path) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(lake.join(MANIFEST)).unwrap()).unwrap();
    let conn = open(db);
    let id: String = conn
        .query_row(
            "SELECT value FROM archive_meta WHERE key = 'archive_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(manifest["archive_id"], id.as_str());
    let mut listed = BTreeSet::new();
    for (name, partition) in manifest["partitions"].as_object().unwrap() {
        for (table, file) in partition["tables"].as_object().unwrap() {
            let rel = file["file"].as_str().unwrap();
            assert_eq!(rel, format!("{table}/{name}/part-0.parquet"));
            let bytes = std::fs::read(lake.join(rel)).unwrap();
            assert_eq!(
                file["xxh3"].as_str().unwrap(),
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
                "{rel}"
            );
            assert_eq!(file["bytes"], bytes.len() as u64);
            let rows = ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .unwrap()
                .height();
            assert_eq!(file["rows"], rows as u64, "{rel}");
            listed.insert(rel.to_string());
        }
        let calls = partition["tables"]["calls"]["rows"].as_i64().unwrap_or(0);
        let (provider, day) = (
            partition["provider"].as_str().unwrap(),
            partition["day"].as_str(),
        );
        let archived = match day {
            Some(day) => count(
                &conn,
                &format!(
                    "SELECT count(*) FROM calls WHERE provider = '{provider}'
                     AND substr(created_at, 1, 10) = '{day}'"
                ),
            ),
            None => count(
                &conn,
                &format!("SELECT count(*) FROM calls WHERE provider = '{provider}' AND created_at IS NULL"),
            ),
        };
        assert_eq!(calls, archived, "{name}");
    }
    let on_disk: BTreeSet<String> = files_of(lake)
        .into_keys()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(
        on_disk, listed,
        "every Parquet file is listed, and only those"
    );
    assert!(!lake.join(".callvault-staging").exists());
}

/// DuckDB reads the same rows from the lake as from a fresh full export of `db`, and the
/// README's query over the lake counts the archive's calls per provider and day.
fn assert_same_rows_as_a_fresh_export(fx: &Fixture, db: &Path, lake: &Path) {
    let fresh = fx.dir.path().join("fresh");
    let _ = std::fs::remove_dir_all(&fresh);
    let out = callvault()
        .arg("--db")
        .arg(db)
        .args([
            "export",
            "--out",
            fresh.to_str().unwrap(),
            "--partition-by",
            "provider,day",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lake_duckdb.py");
    let got = duckdb_script_json(
        [script.as_os_str(), lake.as_os_str(), fresh.as_os_str()]
            .into_iter()
            .chain(CALL_CONTENT_TABLES.iter().map(std::ffi::OsStr::new)),
    );
    let conn = open(db);
    for table in CALL_CONTENT_TABLES {
        let t = &got["tables"][table];
        let archived = count(&conn, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(t["lake"], archived, "{table}: {t}");
        assert_eq!(t["fresh"], archived, "{table}: {t}");
        assert_eq!(
            (t["only_lake"].as_i64(), t["only_fresh"].as_i64()),
            (Some(0), Some(0)),
            "{table}: {t}"
        );
    }
    let per_day: Vec<Value> = strings(
        &conn,
        "SELECT provider || '|' || substr(created_at, 1, 10) || '|' || count(*) FROM calls
         GROUP BY provider, substr(created_at, 1, 10) ORDER BY provider, substr(created_at, 1, 10)",
    )
    .into_iter()
    .map(|row| {
        let f: Vec<&str> = row.split('|').collect();
        serde_json::json!([f[0], f[1], f[2].parse::<i64>().unwrap()])
    })
    .collect();
    assert_eq!(got["per_day"], Value::Array(per_day));
}

/// The files under `dir` whose bytes hold `id`.
fn files_holding(dir: &Path, id: &str) -> Vec<String> {
    // str::contains comes from the optimized standard library; a byte loop here is slow.
    files_of(dir)
        .into_keys()
        .filter(|rel| String::from_utf8_lossy(&std::fs::read(dir.join(rel)).unwrap()).contains(id))
        .collect()
}

fn select_ids(ids: &[String]) -> String {
    let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    format!(
        "SELECT provider, id AS call_id FROM calls WHERE id IN ({})",
        list.join(",")
    )
}

#[test]
fn an_incremental_export_rewrites_only_changed_partitions_and_keeps_no_deleted_call() {
    let fx = Fixture::new(sim_config(150, 2));
    for mut sync in [
        fx.sync(),
        fx.sync_of("cartesia", &[]),
        fx.sync_of("ultravox", &[]),
    ] {
        let out = sync.output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let db = fx.db();
    let lake = fx.dir.path().join("lake");
    let out = lake_export(&db, &lake, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("rebuilt"), "{}", stderr_of(&out));
    assert_lake_holds(&lake, &db);
    let files_before = files_of(&lake);
    let content_before = archive_partitions(&db);
    std::thread::sleep(Duration::from_millis(20));

    // Late evaluations and new calls (Bluejay), a redaction (Cartesia), a deletion upstream
    // (Ultravox), and a delete through callvault (Bluejay).
    let now = chrono::Utc::now();
    let completed = fx
        .server
        .sim
        .complete_pending(3, now - chrono::Duration::days(3)..now);
    assert!(!completed.is_empty(), "recent calls wait for evaluations");
    let added = fx.server.sim.add_calls(0, 4);
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&db);
    let redacted = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'cartesia' AND status = 'completed'
         AND EXISTS (SELECT 1 FROM transcript_turns t WHERE t.call_seq = calls.seq)
         ORDER BY created_at LIMIT 2",
    );
    let deleted = strings(
        &conn,
        "SELECT id FROM calls WHERE provider = 'bluejay' ORDER BY created_at LIMIT 2 OFFSET 40",
    );
    drop(conn);
    assert_eq!((redacted.len(), deleted.len()), (2, 2));
    let deleted_folders: Vec<String> = deleted.iter().map(|id| folder_of_call(&db, id)).collect();
    run_ok_stderr(
        &fx,
        &[
            "delete",
            "--select",
            &select_ids(&redacted),
            "--mode",
            "redact",
            "--yes",
        ],
    );
    run_ok_stderr(
        &fx,
        &[
            "delete",
            "--select",
            &select_ids(&deleted),
            "--mode",
            "full",
            "--yes",
        ],
    );
    let gone_upstream = fx.server.sim.delete_upstream(ProviderKind::Ultravox, 3);
    let gone_folders: Vec<String> = gone_upstream
        .iter()
        .map(|id| folder_of_call(&db, id))
        .collect();
    let synced = run_ok_stderr(
        &fx,
        &["sync", "ultravox", "--base-url", &fx.server.base_url()],
    );
    assert!(
        synced.contains("3 calls deleted upstream removed"),
        "{synced}"
    );

    let content_after = archive_partitions(&db);
    let touched: BTreeSet<String> = content_before
        .keys()
        .chain(content_after.keys())
        .filter(|k| content_before.get(*k) != content_after.get(*k))
        .cloned()
        .collect();
    let mut caused: BTreeSet<String> = completed
        .iter()
        .chain(&added)
        .chain(&redacted)
        .map(|id| folder_of_call(&db, id))
        .collect();
    caused.extend(deleted_folders);
    caused.extend(gone_folders);
    assert!(caused.is_subset(&touched), "{caused:?} within {touched:?}");
    assert!(caused.iter().any(|f| f.starts_with("provider=cartesia")));
    assert!(caused.iter().any(|f| f.starts_with("provider=ultravox")));
    assert!(
        touched.len() * 4 < content_after.len(),
        "most partitions untouched"
    );

    let out = lake_export(&db, &lake, &[]);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    let emptied = touched
        .iter()
        .filter(|k| !content_after.contains_key(*k))
        .count();
    assert!(
        stderr.contains(&format!(
            "{} partitions rewritten ({emptied} removed)",
            touched.len()
        )),
        "{stderr}"
    );
    let files_after = files_of(&lake);
    let mut changed_partitions = BTreeSet::new();
    for file in files_before.keys().chain(files_after.keys()) {
        if files_before.get(file) == files_after.get(file) {
            continue;
        }
        match partition_of(file) {
            Some(partition) => {
                changed_partitions.insert(partition);
            }
            None => assert_eq!(
                file, MANIFEST,
                "only the manifest changes outside partitions"
            ),
        }
    }
    assert_eq!(
        changed_partitions, touched,
        "only the touched partitions' files changed"
    );

    assert_lake_holds(&lake, &db);
    assert_same_rows_as_a_fresh_export(&fx, &db, &lake);
    for id in deleted.iter().chain(&gone_upstream) {
        assert_eq!(
            files_holding(&lake, id),
            Vec::<String>::new(),
            "{id} left the lake"
        );
    }
    // The search sees ids where they are: a call kept from the deleted calls' partition.
    let conn = open(&db);
    let kept: String = conn
        .query_row(
            "SELECT id FROM calls WHERE provider = 'bluejay' ORDER BY created_at LIMIT 1 OFFSET 40",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    assert!(!files_holding(&lake.join("calls"), &kept).is_empty());

    // A run with nothing new rewrites nothing.
    let out = lake_export(&db, &lake, &[]);
    assert!(
        stderr_of(&out).contains("0 partitions rewritten"),
        "{}",
        stderr_of(&out)
    );
    let unchanged = files_of(&lake);
    assert_eq!(
        unchanged
            .iter()
            .filter(|(f, _)| f.as_str() != MANIFEST)
            .collect::<Vec<_>>(),
        files_after
            .iter()
            .filter(|(f, _)| f.as_str() != MANIFEST)
            .collect::<Vec<_>>()
    );

    // Other options, or another archive: refused, and nothing changes; --full rebuilds.
    let manifest = std::fs::read(lake.join(MANIFEST)).unwrap();
    let out = lake_export(&db, &lake, &["--tables", "calls,evaluations"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("other options") && err.contains("--full"),
        "{err}"
    );
    let other = fx.dir.path().join("other.db");
    let out = callvault()
        .arg("--db")
        .arg(&other)
        .args([
            "sync",
            "bluejay",
            "--base-url",
            &fx.server.base_url(),
            "--agent",
            &fx.agents()[1],
        ])
        .env("BLUEJAY_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = lake_export(&other, &lake, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another archive") && err.contains("--full"),
        "{err}"
    );
    assert_eq!(std::fs::read(lake.join(MANIFEST)).unwrap(), manifest);
    assert_eq!(files_of(&lake), unchanged);

    let out = lake_export(&other, &lake, &["--full", "--tables", "calls,evaluations"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_lake_holds(&lake, &other);
    assert!(
        !lake.join("call_tags").exists(),
        "tables the lake no longer has are removed"
    );
    let provider_folders: Vec<String> = std::fs::read_dir(lake.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !provider_folders.iter().any(|p| p.contains("cartesia")),
        "partitions of the other archive are swept: {provider_folders:?}"
    );
}

/// Deletes a spread of `n` Bluejay calls through callvault; returns their ids.
fn delete_spread(fx: &Fixture, n: usize, offset: usize) -> Vec<String> {
    let conn = open(&fx.db());
    let ids = strings(
        &conn,
        &format!(
            "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY created_at) AS k FROM calls)
             WHERE k % 5 = {} ORDER BY k LIMIT {n}",
            offset % 5
        ),
    );
    drop(conn);
    run_ok_stderr(fx, &["delete", "--select", &select_ids(&ids), "--yes"]);
    ids
}

#[test]
fn a_kill_during_an_incremental_export_is_finished_by_the_next_run() {
    let fx = Fixture::new(sim_config(400, 2));
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let db = fx.db();
    let lake = fx.dir.path().join("lake");
    let started = std::time::Instant::now();
    let out = lake_export(&db, &lake, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let full = started.elapsed();

    // Deletes spread over most days make the next export rewrite most partitions; it is
    // killed part way (a shorter wait each time it finished first).
    let mut deleted = Vec::new();
    let mut wait = full / 3;
    let mut killed = false;
    for attempt in 0..5 {
        deleted.extend(delete_spread(&fx, 60, attempt));
        let mut child = fx
            .std_cmd()
            .args(["export", "--out", lake.to_str().unwrap(), "--incremental"])
            .args(["--compression", "uncompressed"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            killed = true;
            break;
        }
        wait /= 2;
    }
    assert!(killed, "an export was killed while it ran");
    // Whatever a reader finds meanwhile is whole.
    let readable = files_of(&lake);
    let tables = readable
        .keys()
        .filter(|f| f.ends_with(".parquet") && !f.starts_with(".callvault-staging"));
    for file in tables {
        let bytes = std::fs::read(lake.join(file)).unwrap();
        assert!(
            ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .is_ok(),
            "{file} is a whole Parquet file"
        );
    }

    let out = lake_export(&db, &lake, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_lake_holds(&lake, &db);
    assert_same_rows_as_a_fresh_export(&fx, &db, &lake);
    for id in &deleted {
        assert_eq!(
            files_holding(&lake, id),
            Vec::<String>::new(),
            "{id} left the lake"
        );
    }
}

#[test]
fn a_lake_over_a_plain_export_needs_full_and_a_plain_export_forgets_the_lake() {
    let fx = Fixture::synced(60, 2);
    let db = fx.db();
    let dir = fx.dir.path().join("out");
    let out = export(&fx, &dir, &["--partition-by", "provider,day"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = lake_export(&db, &dir, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("without --incremental") && err.contains("--full"),
        "{err}"
    );
    let out = lake_export(&db, &dir, &["--full"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_lake_holds(&dir, &db);
    let out = export(&fx, &dir, &["--tables", "calls"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !dir.join(MANIFEST).exists(),
        "a plain export leaves no stale manifest"
    );
    let out = lake_export(&db, &dir, &["--partition-by", "day"]);
    assert!(
        stderr_of(&out).contains("provider,day"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_archive_from_before_schema_5_is_upgraded_by_its_first_incremental_export() {
    let fx = Fixture::synced(40, 2);
    let db = fx.db();
    let conn = rusqlite::Connection::open(&db).unwrap();
    back_to_schema_5(&conn);
    conn.execute_batch(
        "DROP TABLE archive_meta; DROP TABLE partition_versions; PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    let lake = fx.dir.path().join("lake");
    let out = lake_export(&db, &lake, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let conn = open(&db);
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        callvault::store::SCHEMA_VERSION
    );
    // Every day with calls starts at version 1.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM partition_versions WHERE version = 1"
        ),
        count(
            &conn,
            "SELECT count(DISTINCT provider || substr(created_at, 1, 10)) FROM calls"
        )
    );
    drop(conn);
    assert_lake_holds(&lake, &db);
}

#[test]
fn a_lake_written_from_another_archive_schema_is_rewritten_whole_once() {
    let fx = Fixture::synced(40, 2);
    let db = fx.db();
    let lake = fx.dir.path().join("lake");
    let with_raw = ["--tables", "calls,evaluations", "--with-raw"];
    let out = lake_export(&db, &lake, &with_raw);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let partitions = archive_partitions(&db).len();
    // The manifest of a build from before the schema was kept in it.
    let manifest = lake.join("_callvault_manifest.json");
    let mut kept: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(kept["schema_version"], callvault::store::SCHEMA_VERSION);
    kept.as_object_mut().unwrap().remove("schema_version");
    std::fs::write(&manifest, serde_json::to_vec(&kept).unwrap()).unwrap();

    let out = lake_export(&db, &lake, &with_raw);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("every partition is rewritten once"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{partitions} partitions rewritten")),
        "{stderr}"
    );
    let out = lake_export(&db, &lake, &with_raw);
    assert!(
        stderr_of(&out).contains("0 partitions rewritten"),
        "{}",
        stderr_of(&out)
    );
}
