//! Where keys and deletes may go: no redirect is followed, each call's delete goes to the
//! source that archived it, a planted config cannot borrow another variable's secret, a key a
//! provider echoes is never stored or printed, plain http off this machine needs the user's
//! word, two accounts of one provider never mix, statements SQLite calls read-only cannot
//! change the archive, and bad input (flags, config files) is refused rather than a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use callvault::sim::{SimConfig, SimServer};

use crate::util::*;

/// A server on 127.0.0.1 that counts the connections it gets and answers each with `reply`.
struct RawServer {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn raw_server(reply: impl Fn(u16) -> String + Send + 'static) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            // Read the request head, then answer.
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(reply(port).as_bytes());
        }
    });
    RawServer {
        url: format!("http://127.0.0.1:{port}"),
        hits,
    }
}

/// A server that answers every request with a redirect to `target` (another host name).
fn redirector(status: u16, target: &str) -> RawServer {
    let target = target.to_string();
    raw_server(move |_| {
        format!(
            "HTTP/1.1 {status} Moved\r\nLocation: {target}/v1/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    })
}

#[test]
fn no_redirect_is_followed_and_a_redirected_delete_is_not_done() {
    // `localhost` is another host than `127.0.0.1` to an HTTP client.
    let collector = raw_server(|_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string()
    });
    let elsewhere = collector.url.replace("127.0.0.1", "localhost");
    let fx = Fixture::new(sim_config(50, 1));
    assert!(fx.sync().output().unwrap().status.success());
    for status in [302, 307] {
        let hop = redirector(status, &elsewhere);
        let out = fx
            .cmd()
            .args(["sync", "bluejay", "--agent", "a", "--base-url", &hop.url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr_of(&out).contains(&format!("HTTP {status}")),
            "{}",
            stderr_of(&out)
        );
        let out = fx
            .cmd()
            .args([
                "delete",
                "--select",
                "SELECT provider, id AS call_id FROM calls LIMIT 3",
                "--yes",
                "--base-url",
                &hop.url,
            ])
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("0 done") && stderr.contains("3 failed"),
            "{stderr}"
        );
        assert!(hop.hits.load(Ordering::SeqCst) >= 4);
    }
    assert_eq!(
        collector.hits.load(Ordering::SeqCst),
        0,
        "the key went nowhere else"
    );
    let conn = open(&fx.db());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM calls"),
        50,
        "nothing deleted"
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM deleted_calls"), 0);
}

#[test]
fn each_calls_delete_goes_to_the_source_that_archived_it() {
    let fx = Fixture::new(sim_config(40, 1));
    let other = SimServer::start(SimConfig {
        seed: 99,
        ..sim_config(30, 1)
    })
    .unwrap();
    assert!(fx.sync().output().unwrap().status.success());
    let agent = other.sim.agents()[0].clone();
    let out = fx
        .cmd()
        .args([
            "sync",
            "bluejay",
            "--agent",
            &agent,
            "--base-url",
            &other.base_url(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // A failed sync against a wrong address changes nowhere any delete goes.
    let out = fx
        .cmd()
        .args([
            "sync",
            "bluejay",
            "--agent",
            "x",
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let first_agent = fx.agents()[0].clone();
    let selection = format!(
        "SELECT provider, id AS call_id FROM calls WHERE agent_id IN ('{first_agent}', '{agent}') ORDER BY id"
    );
    let out = fx
        .cmd()
        .args(["delete", "--select", &selection])
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout.contains(&format!("bluejay at {} (40 call(s)", fx.server.base_url()))
            && stdout.contains(&format!("bluejay at {} (30 call(s)", other.base_url())),
        "the dry run says where requests go: {stdout}"
    );
    let out = fx
        .cmd()
        .args(["delete", "--select", &selection, "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("; deleting at bluejay at ")
            && stderr.contains(&format!("bluejay at {} (40 call(s)", fx.server.base_url()))
            && stderr.contains(&format!("bluejay at {} (30 call(s)", other.base_url())),
        "the confirmation says where requests go: {stderr}"
    );
    let mine = fx.server.sim.deletes();
    let theirs = other.sim.deletes();
    assert_eq!((mine.len(), theirs.len()), (40, 30));
    let conn = open(&fx.db());
    let served_here: std::collections::BTreeSet<String> =
        served_calls(&fx.server).into_keys().collect();
    assert!(mine.iter().all(|d| d.status == 200));
    assert!(theirs
        .iter()
        .all(|d| d.status == 200 && !served_here.contains(&d.call_id)));
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 0);
}

#[test]
fn a_planted_config_cannot_borrow_another_secret_and_foreign_hosts_are_named() {
    let fx = Fixture::new(sim_config(20, 1));
    let config = fx.dir.path().join("callvault.toml");
    std::fs::write(
        &config,
        "[[source]]\nprovider = \"bluejay\"\nagents = [\"a\"]\nkey_env = \"GITHUB_TOKEN\"\n",
    )
    .unwrap();
    let out = fx
        .cmd()
        .env("GITHUB_TOKEN", "ghp_0123456789abcdefSECRET")
        .arg("sync")
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("ending in _KEY"), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(
        !std::path::Path::new(&fx.db()).exists(),
        "nothing was opened or sent"
    );

    let agent = fx.agents()[0].clone();
    std::fs::write(
        &config,
        format!(
            "[[source]]\nprovider = \"bluejay\"\nagents = [\"{agent}\"]\nbase_url = \"{}\"\n",
            fx.server.base_url()
        ),
    )
    .unwrap();
    let out = fx.cmd().arg("sync").output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: callvault.toml sends the bluejay key to {}",
            fx.server.base_url()
        )),
        "{stderr}"
    );
}

#[test]
fn a_key_the_provider_echoes_is_never_stored_or_printed() {
    let wrong = "sk-wrong-0123456789abcdef";
    let fx = Fixture::new(sim_config(30, 1));
    let out = fx.sync().env("BLUEJAY_API_KEY", wrong).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected the API key"), "{stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");
    assert!(fx.sync().output().unwrap().status.success());
    let out = fx
        .cmd()
        .env("BLUEJAY_API_KEY", wrong)
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls LIMIT 2",
            "--yes",
        ])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success());
    assert!(!stderr.contains(wrong), "{stderr}");
    drop(out);
    let mut raw = Vec::new();
    std::fs::File::open(fx.db())
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let wal = std::fs::read(fx.dir.path().join("archive.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(
            !bytes.windows(wrong.len()).any(|w| w == wrong.as_bytes()),
            "the key is nowhere in the archive"
        );
    }
    let conn = open(&fx.db());
    let errors = strings(
        &conn,
        "SELECT coalesce(error, '') FROM sync_runs UNION ALL SELECT coalesce(last_error, '') FROM delete_items",
    );
    assert!(errors.iter().any(|e| e.contains("***")), "{errors:?}");
}

#[test]
fn keys_do_not_travel_in_clear_text_and_bad_values_are_usage_errors() {
    let fx = Fixture::new(sim_config(10, 1));
    for (args, says) in [
        (
            vec![
                "sync",
                "bluejay",
                "--agent",
                "a",
                "--base-url",
                "http://example.com",
            ],
            "plain http to another machine",
        ),
        (
            vec!["sync", "bluejay", "--agent", "a", "--base-url", "notaurl"],
            "is not a URL",
        ),
        (
            vec![
                "sync",
                "bluejay",
                "--agent",
                "a",
                "--base-url",
                "ftp://example.com",
            ],
            "http or https",
        ),
        (
            vec![
                "sync",
                "bluejay",
                "--agent",
                "a",
                "--base-url",
                "https://u:p@example.com",
            ],
            "credentials",
        ),
        (vec!["sync", "bluejay", "--agent", ""], "empty id"),
        (vec!["sync", "bluejay", "--agent", ".."], "is not an id"),
        (
            vec!["sync", "bluejay", "--agent", "a", "--rps", "1e-300"],
            "requests per second",
        ),
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(fx.server.sim.requests(), 0);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let fx = Fixture::new(sim_config(300, 2));
    assert!(fx.sync().output().unwrap().status.success());
    for args in [
        vec!["query", "SELECT * FROM calls", "--format", "csv"],
        vec!["status"],
        vec!["jobs"],
    ] {
        let mut child = fx
            .std_cmd()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_preview_with_query_selects_what_delete_would_delete() {
    let fx = Fixture::new(sim_config(400, 2));
    assert!(fx.sync().output().unwrap().status.success());
    let sql =
        "SELECT provider, id AS call_id FROM calls WHERE duration_ms >= :secs * 1000 LIMIT :n";
    for (secs, n) in [("60.5", "300"), ("090", "0250"), ("120", "1e2")] {
        let params = [format!("secs={secs}"), format!("n={n}")];
        let out = fx
            .cmd()
            .args(["query", sql, "--format", "ndjson"])
            .args(["--param", &params[0], "--param", &params[1]])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let previewed = stdout_of(&out).lines().count();
        let out = fx
            .cmd()
            .args(["delete", "--select", sql, "--max", "1000"])
            .args(["--param", &params[0], "--param", &params[1]])
            .output()
            .unwrap();
        let stdout = stdout_of(&out);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(previewed > 0);
        assert!(
            stdout.contains(&format!("dry run: {previewed} call(s) would be deleted")),
            "secs={secs} n={n}: query found {previewed}: {stdout}"
        );
    }
}

#[test]
fn a_file_that_replaces_a_shipped_query_says_so() {
    let fx = Fixture::new(sim_config(50, 1));
    assert!(fx.sync().output().unwrap().status.success());
    let dir = fx.dir.path().join("queries");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("calls_older_than.sql");
    std::fs::write(
        &file,
        "-- planted: every call\nSELECT provider, id AS call_id FROM calls WHERE :days = :days\n",
    )
    .unwrap();
    // Run where the file is: the working directory's `queries/` wins.
    let out = fx
        .cmd()
        .current_dir(fx.dir.path())
        .args([
            "delete",
            "--query",
            "calls_older_than",
            "--param",
            "days=90",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("replaces the shipped query 'calls_older_than'"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stdout_of(&out).contains(&format!(
            "selection: query 'calls_older_than' from {}",
            file.display()
        )) && stdout_of(&out).contains("dry run: 50 call(s)"),
        "{}",
        stdout_of(&out)
    );
    let out = fx
        .cmd()
        .current_dir(fx.dir.path())
        .args(["query", "calls_older_than", "--param", "days=90"])
        .output()
        .unwrap();
    assert!(stderr_of(&out).contains("replaces the shipped query"));
}

#[test]
fn query_out_replaces_only_regular_files_and_honours_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new(sim_config(20, 1));
    assert!(fx.sync().output().unwrap().status.success());
    let dir = fx.dir.path();
    let target = dir.join("kept.txt");
    std::fs::write(&target, "not yours").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.join("pipe.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [&link, &fifo] {
        let out = fx
            .cmd()
            .args(["query", "SELECT id FROM calls", "--format", "csv", "--out"])
            .arg(path)
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not yours");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A new file gets the umask's mode (022 here: 0644), not a private 0600.
    let fresh = dir.join("fresh.csv");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec {} --db {} query 'SELECT id FROM calls' --format csv --out {}",
            assert_cmd::cargo::cargo_bin("callvault").display(),
            fx.db().display(),
            fresh.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    // A replaced file keeps its own mode.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = fx
        .cmd()
        .args([
            "query",
            "SELECT id FROM calls LIMIT 1",
            "--format",
            "csv",
            "--out",
        ])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(std::fs::read_to_string(&fresh).unwrap().lines().count(), 2);
}

#[test]
fn another_user_reads_an_archive_in_a_folder_it_cannot_write_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !is_root || !setpriv.exists() {
        eprintln!("SKIPPED: needs root and setpriv to act as another user");
        return;
    }
    let fx = Fixture::new(sim_config(40, 1));
    assert!(fx.sync().output().unwrap().status.success());
    // The owner's folder: readable by everyone, writable by the owner only.
    let folder = tempfile::Builder::new()
        .prefix("callvault-ro")
        .tempdir_in("/tmp")
        .unwrap();
    let db = folder.path().join("archive.db");
    std::fs::copy(fx.db(), &db).unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The binary, where another user can run it.
    let bin = folder.path().join("callvault");
    std::fs::hard_link(assert_cmd::cargo::cargo_bin("callvault"), &bin).unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("CALLVAULT_DB")
            .output()
            .unwrap()
    };
    let out = as_nobody(&[
        "query",
        "SELECT count(*) AS n FROM calls",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "n\n40\n");
    for args in [&["status"][..], &["stats", "summary"][..]] {
        let out = as_nobody(args);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    }
    let left: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("archive.db-"))
        .collect();
    assert!(left.is_empty(), "no -wal or -shm left behind: {left:?}");
    // While a sync writes (its WAL exists), such a reader is told why it must wait.
    std::fs::write(folder.path().join("archive.db-wal"), b"").unwrap();
    let out = as_nobody(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("being written by a sync"),
        "{}",
        stderr_of(&out)
    );
}

/// The archive's bytes: the file and its write-ahead log.
fn archive_bytes(fx: &Fixture) -> [Vec<u8>; 2] {
    let wal = fx.dir.path().join("archive.db-wal");
    [
        std::fs::read(fx.db()).unwrap(),
        std::fs::read(wal).unwrap_or_default(),
    ]
}

#[test]
fn statements_sqlite_calls_read_only_cannot_change_the_archive() {
    let fx = Fixture::new(sim_config(60, 1));
    assert!(fx.sync().output().unwrap().status.success());
    let other = fx.dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let created = fx.dir.path().join("created.db");
    let statements = [
        format!("ATTACH '{}' AS other", other.display()),
        format!("ATTACH '{}' AS created", created.display()),
        format!("ATTACH 'file:{}?mode=rwc' AS created", created.display()),
        "BEGIN DEFERRED".to_string(),
        "BEGIN IMMEDIATE".to_string(),
        "BEGIN EXCLUSIVE".to_string(),
        "SAVEPOINT s".to_string(),
        "PRAGMA query_only = OFF".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        "PRAGMA journal_mode = DELETE".to_string(),
        "PRAGMA wal_checkpoint(TRUNCATE)".to_string(),
        format!("VACUUM INTO '{}'", created.display()),
    ];
    let before = archive_bytes(&fx);
    let other_before = std::fs::read(&other).unwrap();
    for sql in &statements {
        for args in [
            vec!["query", sql.as_str()],
            vec!["delete", "--select", sql.as_str()],
            vec!["delete", "--select", sql.as_str(), "--yes"],
        ] {
            let out = fx.cmd().args(&args).output().unwrap();
            let stderr = stderr_of(&out);
            match out.status.code() {
                // Refused, or run as the one statement of a connection that cannot write.
                Some(1) => {
                    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
                    assert!(out.stdout.is_empty(), "{args:?}");
                }
                Some(0) => assert!(args[0] == "query", "{args:?} selected nothing to delete"),
                other => panic!("{args:?} ended {other:?}: {stderr}"),
            }
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                archive_bytes(&fx) == before,
                "{args:?} changed the archive's bytes"
            );
            assert!(!created.exists(), "{args:?} created a file");
            assert_eq!(std::fs::read(&other).unwrap(), other_before, "{args:?}");
        }
    }
    assert!(fx.server.sim.deletes().is_empty());
    assert_eq!(
        count(&open(&fx.db()), "SELECT count(*) FROM delete_jobs"),
        0
    );
}

#[test]
fn two_accounts_of_one_provider_keep_their_calls_streams_keys_and_deletes_apart() {
    let key_eu = "sk-eu-0000000000000000";
    let key_us = "sk-us-1111111111111111";
    let eu = SimServer::start(SimConfig {
        seed: 21,
        api_key: key_eu.into(),
        ..sim_config(80, 2)
    })
    .unwrap();
    let us = SimServer::start(SimConfig {
        seed: 22,
        api_key: key_us.into(),
        ..sim_config(50, 1)
    })
    .unwrap();
    let fx = Fixture::new(sim_config(1, 1));
    std::fs::write(
        fx.dir.path().join("callvault.toml"),
        format!(
            "[[source]]\nprovider = \"bluejay\"\naccount = \"eu\"\nbase_url = \"{}\"\nkey_env = \"BLUEJAY_EU_API_KEY\"\n\n\
             [[source]]\nprovider = \"bluejay\"\naccount = \"us\"\nbase_url = \"{}\"\nkey_env = \"BLUEJAY_US_API_KEY\"\n",
            eu.base_url(),
            us.base_url()
        ),
    )
    .unwrap();
    let with_keys = |cmd: &mut assert_cmd::Command| {
        cmd.env_remove("BLUEJAY_API_KEY")
            .env("BLUEJAY_EU_API_KEY", key_eu)
            .env("BLUEJAY_US_API_KEY", key_us);
    };
    let mut sync = fx.cmd();
    with_keys(&mut sync);
    let out = sync.arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    let conn = open(&fx.db());
    let ids_of = |server: &SimServer| -> Vec<String> { served_calls(server).into_keys().collect() };
    for (account, server) in [("eu", &eu), ("us", &us)] {
        let mine = strings(
            &conn,
            &format!(
                "SELECT c.id FROM calls c JOIN sources o ON o.id = c.source_id
                 WHERE o.account = '{account}' AND o.base_url = '{}' ORDER BY c.id",
                server.base_url()
            ),
        );
        assert_eq!(mine, ids_of(server), "{account}'s calls");
        let mut agents = server.sim.agents();
        agents.sort();
        assert_eq!(
            strings(
                &conn,
                &format!(
                    "SELECT s.scope FROM sync_state s JOIN sources o ON o.id = s.source_id
                     WHERE o.account = '{account}' ORDER BY s.scope"
                )
            ),
            agents,
            "{account}'s streams"
        );
    }
    assert_eq!(count(&conn, "SELECT count(*) FROM calls"), 130);
    drop(conn);

    // One delete of every call: each goes to its own account, with its own key.
    let mut delete = fx.cmd();
    with_keys(&mut delete);
    let out = delete
        .args([
            "delete",
            "--select",
            "SELECT provider, id AS call_id FROM calls",
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (server, n) in [(&eu, 80), (&us, 50)] {
        let deletes = server.sim.deletes();
        assert_eq!(deletes.len(), n);
        assert!(deletes.iter().all(|d| d.status == 200), "{deletes:?}");
        assert!(
            ids_of(server).is_empty(),
            "every call deleted where it lives"
        );
    }
    assert_eq!(count(&open(&fx.db()), "SELECT count(*) FROM calls"), 0);
    assert!(fx.server.sim.deletes().is_empty());
}

#[test]
fn a_config_with_no_agents_or_an_unknown_key_is_refused_before_anything_happens() {
    let fx = Fixture::new(sim_config(10, 1));
    let config = fx.dir.path().join("callvault.toml");
    let base = fx.server.base_url();
    for (text, says) in [
        (
            format!("[[source]]\nprovider = \"bluejay\"\nagents = []\nbase_url = \"{base}\"\n"),
            "the bluejay source lists no agents; leave `agents` out to sync every agent",
        ),
        (
            format!(
                "[[source]]\nprovider = \"bluejay\"\nagentz = [\"a\"]\nbase_url = \"{base}\"\n"
            ),
            "unknown field `agentz`",
        ),
        (
            format!(
                "[[source]]\nprovider = \"bluejay\"\nbase_url = \"{base}\"\n[sources]\nx = 1\n"
            ),
            "unknown field `sources`",
        ),
    ] {
        std::fs::write(&config, &text).unwrap();
        let out = fx.cmd().arg("sync").output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("callvault.toml"),
            "{text}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!fx.db().exists(), "no archive was opened");
    }
    assert_eq!(fx.server.sim.requests(), 0, "nothing was sent");
}
