//! What an export may replace in its folder. A table's folder is replaced only when callvault
//! wrote it: it holds the marker file `MARKER`, or only what an export writes (`part-<n>.<ext>`
//! files under `key=value` folders: exports made before the marker), or nothing. Anything else
//! named like a table (a project folder, a plain file, a link) is refused unless `--force`,
//! and every table's target is checked before any is replaced, so a refusal changes nothing.

use std::path::{Path, PathBuf};

use super::super::QueryError;

/// The file in each table folder an export writes, saying callvault may replace the folder.
/// A dot file: Spark, Hive and Trino skip it, and `*.parquet` globs never match it.
pub(super) const MARKER: &str = ".callvault-export";

const MARKER_TEXT: &str = "Written by `callvault export`, which replaces this folder on the \
next export into its parent folder.\n";

/// Whether `path`, named like a table, may be replaced: `Ok` when nothing is there, when
/// callvault wrote it, or with `force`; otherwise why not.
pub(super) fn check_replaceable(path: &Path, force: bool) -> Result<(), QueryError> {
    let refuse = |what: &str| {
        if force {
            Ok(())
        } else {
            Err(QueryError::NotAnExport {
                path: path.to_path_buf(),
                what: what.to_string(),
            })
        }
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(QueryError::OutFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if meta.file_type().is_symlink() {
        return refuse("is a link");
    }
    if !meta.is_dir() {
        return refuse("is a file");
    }
    if path.join(MARKER).is_file() {
        return Ok(());
    }
    let looks_exported =
        holds_only_export_files(path, 0).map_err(|source| QueryError::OutFile {
            path: path.to_path_buf(),
            source,
        })?;
    if looks_exported {
        Ok(())
    } else {
        refuse("is a folder callvault did not write")
    }
}

/// Whether a folder holds only `part-<n>.parquet|csv` files, under `key=value` folders.
fn holds_only_export_files(dir: &Path, depth: usize) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        let fits = if kind.is_dir() {
            // provider=, day=: two levels at most.
            depth < 2 && name.contains('=') && holds_only_export_files(&entry.path(), depth + 1)?
        } else if kind.is_file() {
            is_part_file(&name)
        } else {
            false
        };
        if !fits {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `part-<n>.parquet` or `part-<n>.csv`.
fn is_part_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let number = rest
        .strip_suffix(".parquet")
        .or_else(|| rest.strip_suffix(".csv"));
    number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes whatever `check_replaceable` allowed at `path`: a folder with all it holds, or the
/// file or link itself.
pub(super) fn remove_target(path: &Path) -> Result<(), QueryError> {
    let cannot = |source| QueryError::OutFile {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(cannot(e)),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).map_err(cannot),
        Ok(_) => std::fs::remove_file(path).map_err(cannot),
    }
}

/// Writes the marker into a table folder callvault is writing.
pub(super) fn write_marker(folder: &Path) -> Result<(), QueryError> {
    let path: PathBuf = folder.join(MARKER);
    std::fs::write(&path, MARKER_TEXT).map_err(|source| QueryError::OutFile { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_callvault_wrote_is_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: &str| dir.path().join(p);
        assert!(check_replaceable(&at("missing"), false).is_ok());
        std::fs::create_dir_all(at("empty")).unwrap();
        assert!(check_replaceable(&at("empty"), false).is_ok());
        // An export from before the marker: part files under key=value folders.
        std::fs::create_dir_all(at("old/provider=a/day=2026-11-02")).unwrap();
        std::fs::write(at("old/provider=a/day=2026-11-02/part-0.parquet"), "").unwrap();
        std::fs::write(at("old/part-12.csv"), "").unwrap();
        assert!(check_replaceable(&at("old"), false).is_ok());
        std::fs::write(at("old/provider=a/notes.txt"), "").unwrap();
        let err = check_replaceable(&at("old"), false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        std::fs::write(at("old/.callvault-export"), "").unwrap();
        assert!(check_replaceable(&at("old"), false).is_ok(), "marked");
        std::fs::create_dir_all(at("project/src")).unwrap();
        assert!(check_replaceable(&at("project"), false).is_err());
        assert!(check_replaceable(&at("project"), true).is_ok());
        std::fs::write(at("file"), "x").unwrap();
        assert!(check_replaceable(&at("file"), false)
            .unwrap_err()
            .to_string()
            .contains("is a file"));
        for name in [
            "part-.csv",
            "part-1.json",
            "part-x.parquet",
            "part-1.parquet.tmp",
        ] {
            assert!(!is_part_file(name), "{name}");
        }
    }
}
