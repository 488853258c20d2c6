//! `export --incremental`: `DIR` kept as a lake of hive partitions
//! (`<table>/provider=<p>/day=<YYYY-MM-DD>/part-0.parquet`), rewriting only the partitions
//! whose content changed since the last export to it, and removing those left empty.
//!
//! What changed comes from the archive, not from the files: every write that changes a
//! partition's content bumps that partition's counter in the same transaction
//! (`store::changes`), and the manifest remembers the counter each partition was written at.
//! A run reads the counters and the changed partitions' rows in one read transaction, writes
//! each changed partition's files into a staging folder beside the tables, then renames each
//! into place (a reader sees a partition's old file or its new one, never half of one), and
//! last replaces the manifest. A crash anywhere leaves every partition old or new and the
//! manifest old; the next run finds the lagging partitions by their counters and finishes.
//!
//! A lake belongs to one archive and one set of options: a run against a lake of another
//! archive (the manifest's `archive_id`), or with other options, or over an export made
//! without `--incremental`, is refused unless `--full`, which rebuilds every partition and
//! sweeps out whatever the lake does not list. Each partition is read on its own: `calls`
//! through a range of `calls_columns`, the other tables by the `seq` of those calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::super::output::Provenance;
use super::super::QueryError;
use super::manifest::{self, Found, LakeOptions, Manifest, Partition, TableFile};
use super::parts::{hive_segment, Parts};
use super::pipeline::write_chunks;
use super::plan::{partition_plan, partition_seqs, plan, Plan};
use super::snapshot::begin_in_one_snapshot;
use super::target::{check_replaceable, remove_target, write_marker, MARKER};
use super::{ExportFormat, ExportOptions, Partitioning};

/// Where a run writes partition files before renaming them into place: beside the table
/// folders, so no table's glob sees them, and on the same file system, so a rename moves them.
const STAGING: &str = ".callvault-staging";

/// What one run did to the lake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeExport {
    /// Partitions the lake holds now (with rows in at least one table).
    pub partitions: usize,
    /// Partitions whose files were written this run.
    pub rewritten: usize,
    /// Partitions removed because none of their calls are archived any more.
    pub removed: usize,
    pub files: usize,
    pub rows: u64,
    /// Whether every partition was rebuilt (`--full`, or a new lake).
    pub rebuilt: bool,
}

/// One partition as the archive keys it.
#[derive(Clone, Debug)]
struct Key {
    provider: String,
    /// '' for calls without `created_at`.
    day: String,
    version: i64,
    /// `provider=<p>/day=<d>`.
    folder: String,
    /// Whether the manifest lists files for it (so that writing it empty removes it).
    listed: bool,
}

/// A changed partition's files, written into the staging folder.
struct Staged {
    key: Key,
    /// By table: the staged file and its rows.
    files: BTreeMap<String, (PathBuf, u64)>,
}

/// Brings the lake at `options.out` up to date with the archive (see the module doc).
pub fn export_lake(
    conn: &Connection,
    options: &ExportOptions,
    snapshot: &Provenance,
    full: bool,
) -> Result<LakeExport, QueryError> {
    check_lake_options(options)?;
    let out = &options.out;
    let wanted = lake_options(options);
    let found = manifest::read(out)?;
    let old_tables: Vec<String> = match &found {
        Found::Manifest(m) => m.options.tables.clone(),
        _ => Vec::new(),
    };
    // Every folder this run may replace or remove, checked before anything changes.
    for table in options
        .tables
        .iter()
        .chain(if full { &old_tables[..] } else { &[] })
    {
        check_replaceable(&out.join(table), options.force)?;
    }

    let mut helper = begin_in_one_snapshot(conn)?;
    let read = read_changes(conn, options, &found, &wanted, full);
    let staged = read.and_then(|changes| {
        let staged = stage(conn, helper.as_mut(), options, snapshot, &changes.changed)?;
        Ok((changes, staged))
    });
    // Only read; a rollback and a commit end it alike.
    let ended = conn.execute_batch("COMMIT");
    if let Some(helper) = &helper {
        helper.execute_batch("COMMIT")?;
    }
    let (
        Changes {
            archive_id,
            kept: base,
            vanished,
            ..
        },
        staged,
    ) = match staged {
        Ok(staged) => staged,
        Err(e) => {
            let _ = remove_target(&out.join(STAGING));
            return Err(e);
        }
    };
    ended?;
    let rebuilt = full || !matches!(found, Found::Manifest(_));

    let mut report = LakeExport {
        partitions: 0,
        rewritten: staged.len(),
        removed: 0,
        files: 0,
        rows: 0,
        rebuilt,
    };
    let mut partitions = base;
    for table in &options.tables {
        let folder = out.join(table);
        std::fs::create_dir_all(&folder).map_err(out_file(&folder))?;
        if !folder.join(MARKER).exists() {
            write_marker(&folder)?;
        }
    }
    for Staged { key, files } in staged {
        let mut tables = BTreeMap::new();
        for table in &options.tables {
            let dir = out.join(table).join(&key.folder);
            match files.get(table) {
                Some((file, rows)) => {
                    let written = place(file, &dir, table, &key.folder, options.format)?;
                    tables.insert(
                        table.clone(),
                        TableFile {
                            rows: *rows,
                            ..written
                        },
                    );
                    report.files += 1;
                    report.rows += rows;
                }
                None => remove_partition_folder(&dir)?,
            }
        }
        if key.listed && tables.is_empty() {
            report.removed += 1;
        }
        let day = (!key.day.is_empty()).then(|| key.day.clone());
        partitions.insert(
            key.folder,
            Partition {
                provider: key.provider,
                day,
                version: key.version,
                tables,
            },
        );
    }
    for folder in vanished {
        if partitions
            .remove(&folder)
            .is_some_and(|p| !p.tables.is_empty())
        {
            report.removed += 1;
        }
        for table in &options.tables {
            remove_partition_folder(&out.join(table).join(&folder))?;
        }
    }
    if full {
        sweep(out, options, &old_tables, &partitions)?;
    }
    report.partitions = partitions.values().filter(|p| !p.tables.is_empty()).count();
    manifest::write(
        out,
        &Manifest {
            manifest_version: manifest::MANIFEST_VERSION,
            written_by: format!("callvault {}", env!("CARGO_PKG_VERSION")),
            archive_id,
            schema_version: Some(crate::store::SCHEMA_VERSION),
            snapshot_at: snapshot.snapshot_at.clone(),
            last_synced_at: snapshot.last_synced_at.clone(),
            options: wanted,
            partitions,
        },
    )?;
    remove_target(&out.join(STAGING))?;
    Ok(report)
}

/// A lake is partitioned by provider and day, and holds only tables of call content (the
/// tables whose changes the archive tracks).
fn check_lake_options(options: &ExportOptions) -> Result<(), QueryError> {
    let partition = options.partition;
    if !(partition.provider && partition.day) {
        return Err(QueryError::LakeOptions {
            needs: "provider,day partitions (--partition-by provider,day)".into(),
        });
    }
    let tracked = &crate::store::CALL_CONTENT_TABLES;
    if let Some(other) = options
        .tables
        .iter()
        .find(|t| !tracked.contains(&t.as_str()))
    {
        return Err(QueryError::LakeOptions {
            needs: format!(
                "tables of call content ({}); '{other}' is not one",
                tracked.join(", ")
            ),
        });
    }
    if options.tables.is_empty() {
        return Err(QueryError::LakeOptions {
            needs: "at least one table".into(),
        });
    }
    Ok(())
}

/// The options a manifest records; tables in a set's order, since their order changes no file.
fn lake_options(options: &ExportOptions) -> LakeOptions {
    let tables: BTreeSet<String> = options.tables.iter().cloned().collect();
    LakeOptions {
        format: options.format.name().to_string(),
        tables: tables.into_iter().collect(),
        partition_by: vec!["provider".into(), "day".into()],
        with_raw: options.with_raw,
        compression: (options.format == ExportFormat::Parquet)
            .then(|| options.compression.name().to_string()),
    }
}

fn describe(options: &LakeOptions) -> String {
    let mut text = format!("--format {}", options.format);
    if let Some(codec) = &options.compression {
        text.push_str(&format!(" --compression {codec}"));
    }
    text.push_str(&format!(" --tables {}", options.tables.join(",")));
    if options.with_raw {
        text.push_str(" --with-raw");
    }
    text
}

/// What a run must do, against the manifest found.
struct Changes {
    archive_id: String,
    /// The manifest's partitions that stay as they are.
    kept: BTreeMap<String, Partition>,
    /// The partitions to rewrite.
    changed: Vec<Key>,
    /// Folders the manifest lists that the archive has no counter for at all.
    vanished: Vec<String>,
}

/// Reads the archive's identity and partition counters (inside the run's read transaction)
/// and decides, against the manifest found, which partitions to rewrite.
fn read_changes(
    conn: &Connection,
    options: &ExportOptions,
    found: &Found,
    wanted: &LakeOptions,
    full: bool,
) -> Result<Changes, QueryError> {
    let archive_id = crate::store::changes::archive_id(conn)?;
    let out = &options.out;
    let refuse = |reason: String| QueryError::LakeMismatch {
        dir: out.clone(),
        reason,
    };
    let base = match found {
        _ if full => BTreeMap::new(),
        Found::Manifest(m) if m.archive_id != archive_id => {
            return Err(refuse(format!(
                "was exported from another archive (its manifest names archive {}, this is {archive_id})",
                m.archive_id
            )))
        }
        Found::Manifest(m) if &m.options != wanted => {
            return Err(refuse(format!(
                "was exported with other options ({}, this run asks for {})",
                describe(&m.options),
                describe(wanted)
            )))
        }
        Found::Manifest(m) if m.schema_version != Some(crate::store::SCHEMA_VERSION) => {
            tracing::warn!(
                "{} was written from archive schema {}, this archive is at {}: every partition is rewritten once",
                out.display(),
                m.schema_version.map_or("before 6".into(), |v| v.to_string()),
                crate::store::SCHEMA_VERSION
            );
            BTreeMap::new()
        }
        Found::Manifest(m) => m.partitions.clone(),
        Found::Unreadable(why) => {
            return Err(refuse(format!(
                "has a manifest this build cannot read ({why})"
            )))
        }
        Found::None => {
            for table in &options.tables {
                let folder = out.join(table);
                let empty = std::fs::read_dir(&folder).map_or(true, |mut d| d.next().is_none());
                if !empty {
                    return Err(refuse(format!(
                        "holds an export made without --incremental ({})",
                        folder.display()
                    )));
                }
            }
            BTreeMap::new()
        }
    };

    let mut stmt = conn.prepare("SELECT provider, day, version FROM partition_versions")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut changed = Vec::new();
    let mut present = BTreeSet::new();
    for row in rows {
        let (provider, day, version): (String, String, i64) = row?;
        let folder = format!(
            "{}/{}",
            hive_segment("provider", Some(&provider)),
            hive_segment("day", (!day.is_empty()).then_some(day.as_str()))
        );
        let listed = base.get(&folder);
        let current = listed.is_some_and(|p| p.version == version && files_intact(out, p));
        let listed = listed.is_some_and(|p| !p.tables.is_empty());
        present.insert(folder.clone());
        if !current {
            changed.push(Key {
                provider,
                day,
                version,
                folder,
                listed,
            });
        }
    }
    let vanished = base
        .keys()
        .filter(|folder| !present.contains(*folder))
        .cloned()
        .collect();
    let mut kept = base;
    for key in &changed {
        kept.remove(&key.folder);
    }
    Ok(Changes {
        archive_id,
        kept,
        changed,
        vanished,
    })
}

/// Whether every file the manifest lists for a partition is there at its size; a partition
/// whose files were removed or damaged by hand is written again.
fn files_intact(out: &Path, partition: &Partition) -> bool {
    partition.tables.values().all(|f| {
        std::fs::metadata(out.join(&f.file)).is_ok_and(|m| m.is_file() && m.len() == f.bytes)
    })
}

/// Writes every changed partition's files into the staging folder: on `conn` alone, or with
/// `helper` (a second connection in the same snapshot) taking every other partition on a
/// thread of its own. A partition's files cost about the same whatever its rows (a writer and
/// its codec contexts per file, threads started and joined), so two partitions written at
/// once keep both cores busy where one leaves them waiting on each other.
fn stage(
    conn: &Connection,
    helper: Option<&mut Connection>,
    options: &ExportOptions,
    snapshot: &Provenance,
    changed: &[Key],
) -> Result<Vec<Staged>, QueryError> {
    let staging = options.out.join(STAGING);
    remove_target(&staging)?;
    std::fs::create_dir_all(&staging).map_err(out_file(&staging))?;
    let plans: Vec<Plan> = options
        .tables
        .iter()
        .map(|table| plan(conn, options, table))
        .collect::<Result<_, _>>()?;
    let job = Staging {
        staging: &staging,
        options,
        snapshot,
        plans: &plans,
    };
    let Some(helper) = helper.filter(|_| changed.len() > 1) else {
        return job.run(conn, changed.iter(), 0, 1);
    };
    let (staged, theirs) = std::thread::scope(|scope| {
        let job = &job;
        let theirs =
            scope.spawn(move || job.run(&*helper, changed.iter().skip(1).step_by(2), 1, 2));
        let mine = job.run(conn, changed.iter().step_by(2), 0, 2);
        let theirs = theirs
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs)
    });
    let mut all = staged?;
    all.extend(theirs?);
    Ok(all)
}

/// What staging a share of the changed partitions needs.
struct Staging<'a> {
    staging: &'a Path,
    options: &'a ExportOptions,
    snapshot: &'a Provenance,
    plans: &'a [Plan],
}

impl Staging<'_> {
    /// Stages `keys` read on `conn`. Staged files lie side by side, numbered
    /// `first, first + stride, ...` (`part-<n>`) so two sharers never meet: a folder per
    /// partition would cost a directory more to create per file, and creating is what takes
    /// the time on ext4.
    fn run<'k>(
        &self,
        conn: &Connection,
        keys: impl Iterator<Item = &'k Key>,
        first: usize,
        stride: usize,
    ) -> Result<Vec<Staged>, QueryError> {
        let options = self.options;
        let mut number = first;
        let mut staged = Vec::new();
        for key in keys {
            let seqs = partition_seqs(conn, &key.provider, &key.day)?;
            let mut files = BTreeMap::new();
            // A partition without calls has no rows in any table: its parts are found by them.
            for whole in self.plans.iter().filter(|_| !seqs.is_empty()) {
                let mut parts = Parts {
                    root: self.staging,
                    format: options.format,
                    compression: options.compression,
                    provenance: Provenance {
                        source: format!("table {}", whole.table),
                        ..self.snapshot.clone()
                    },
                    open: HashMap::new(),
                    next: HashMap::from([(PathBuf::new(), number)]),
                    files: 0,
                    empty_files: false,
                };
                let plan = partition_plan(whole, &key.provider, &key.day, &seqs);
                let rows = write_chunks(conn, &plan, Partitioning::default(), &mut parts)?;
                parts.finish_all()?;
                if rows > 0 {
                    let name = format!("part-{number}.{}", options.format.extension());
                    files.insert(whole.table.clone(), (self.staging.join(name), rows));
                }
                number += stride;
            }
            staged.push(Staged {
                key: key.clone(),
                files,
            });
        }
        Ok(staged)
    }
}

/// The one file of a lake partition.
fn part_name(format: ExportFormat) -> String {
    format!("part-0.{}", format.extension())
}

/// Moves a staged file into its partition folder `dir` (one rename, so a reader sees the old
/// file or the new one), then removes anything else there (parts of an export this one
/// replaces). Returns its manifest entry, rows left at 0.
fn place(
    staged: &Path,
    dir: &Path,
    table: &str,
    folder: &str,
    format: ExportFormat,
) -> Result<TableFile, QueryError> {
    let bytes = std::fs::read(staged).map_err(|source| QueryError::ReadFile {
        path: staged.to_path_buf(),
        source,
    })?;
    let name = part_name(format);
    std::fs::create_dir_all(dir).map_err(out_file(dir))?;
    let target = dir.join(&name);
    std::fs::rename(staged, &target).map_err(out_file(&target))?;
    for entry in std::fs::read_dir(dir).map_err(out_file(dir))? {
        let entry = entry.map_err(out_file(dir))?;
        if entry.file_name() != name.as_str() {
            remove_target(&entry.path())?;
        }
    }
    Ok(TableFile {
        file: format!("{table}/{folder}/{name}"),
        rows: 0,
        bytes: bytes.len() as u64,
        xxh3: manifest::file_hash(&bytes),
    })
}

/// Removes a partition's folder of one table, and its provider folder once that is empty.
fn remove_partition_folder(dir: &Path) -> Result<(), QueryError> {
    remove_target(dir)?;
    if let Some(provider) = dir.parent() {
        // Fails, as it should, while other days are left.
        let _ = std::fs::remove_dir(provider);
    }
    Ok(())
}

/// After a rebuild: removes from each table folder whatever the new manifest does not list
/// (partitions of another archive or an older export, files of an unpartitioned one), and the
/// folders of tables the old manifest had and this run does not.
fn sweep(
    out: &Path,
    options: &ExportOptions,
    old_tables: &[String],
    partitions: &BTreeMap<String, Partition>,
) -> Result<(), QueryError> {
    for table in &options.tables {
        let root = out.join(table);
        for entry in std::fs::read_dir(&root).map_err(out_file(&root))? {
            let entry = entry.map_err(out_file(&root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name == MARKER {
                continue;
            }
            if !(name.starts_with("provider=") && path.is_dir()) {
                remove_target(&path)?;
                continue;
            }
            for day in std::fs::read_dir(&path).map_err(out_file(&path))? {
                let day = day.map_err(out_file(&path))?;
                let folder = format!("{name}/{}", day.file_name().to_string_lossy());
                let listed = partitions
                    .get(&folder)
                    .is_some_and(|p| p.tables.contains_key(table));
                if !listed {
                    remove_target(&day.path())?;
                }
            }
            let _ = std::fs::remove_dir(&path);
        }
    }
    for table in old_tables.iter().filter(|t| !options.tables.contains(t)) {
        remove_target(&out.join(table))?;
    }
    Ok(())
}

fn out_file(path: &Path) -> impl Fn(std::io::Error) -> QueryError {
    let path = path.to_path_buf();
    move |source| QueryError::OutFile {
        path: path.clone(),
        source,
    }
}
