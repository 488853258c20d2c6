//! Exports into a folder that already holds something: only folders callvault wrote are
//! replaced, and every target is checked before any is replaced (issue 12, item 8).

use std::path::Path;

use crate::util::*;

fn synced(calls: u64) -> Fixture {
    let fx = Fixture::new(sim_config(calls, 2));
    let out = fx.sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    fx
}

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
    let fx = synced(120);
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
