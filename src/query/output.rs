//! Rendering a frame: an aligned terminal table, CSV, JSON, NDJSON or Parquet, to a writer or
//! to a file that appears whole or not at all.
//!
//! Text formats print times and dates in the archive's own form (`2026-11-02T09:15:00.000Z`,
//! `2026-11-02`); Parquet keeps them typed (`TIMESTAMP(ms, UTC)`, `DATE`) and carries
//! callvault's key-value metadata (`Provenance`). `write_file` writes to a temporary file in
//! the destination's folder and renames it into place only once everything is written, so a
//! failed run leaves no half file behind. A killed run cannot remove its temporary file; the
//! file's name carries the run's process id, and the next write to the same path removes the
//! temporaries of processes that are gone.

use std::io::Write;
use std::path::Path;

use polars::prelude::{
    AnyValue, Column, CsvWriter, DataFrame, DataType, IntoColumn, JsonFormat, JsonWriter,
    KeyValueMetadata, NamedFrom, ParquetWriter, SerWriter, Series,
};

use super::frame::{format_day, format_millis, is_temporal};
use super::QueryError;

/// The output formats of `query` and `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

impl OutputFormat {
    /// Whether the format is binary (not for a terminal).
    pub fn is_binary(self) -> bool {
        self == OutputFormat::Parquet
    }
}

/// Where a Parquet file's rows came from; written as file-level key-value metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// When the archive was read (RFC 3339 UTC).
    pub snapshot_at: String,
    /// The last time any stream of the archive finished a sync, when known.
    pub last_synced_at: Option<String>,
    /// `table calls`, `query <SQL>` or `stats latency --by agent`.
    pub source: String,
}

impl Provenance {
    pub(crate) fn key_values(&self) -> KeyValueMetadata {
        let mut kv = vec![
            (
                "callvault.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "callvault.snapshot_at".to_string(),
                self.snapshot_at.clone(),
            ),
            ("callvault.source".to_string(), self.source.clone()),
        ];
        if let Some(t) = &self.last_synced_at {
            kv.push(("callvault.last_synced_at".to_string(), t.clone()));
        }
        KeyValueMetadata::from_static(kv)
    }
}

/// A copy of `df` whose time and date columns are text in the archive's form.
pub fn with_temporal_as_text(df: &DataFrame) -> Result<DataFrame, QueryError> {
    if !df.columns().iter().any(|c| is_temporal(c.dtype())) {
        return Ok(df.clone());
    }
    let columns = df
        .columns()
        .iter()
        .map(|c| {
            if !is_temporal(c.dtype()) {
                return Ok(c.clone());
            }
            let texts = (0..c.len())
                .map(|i| Ok(temporal_text(&c.get(i)?)))
                .collect::<Result<Vec<Option<String>>, QueryError>>()?;
            Ok(Series::new(c.name().clone(), texts).into_column())
        })
        .collect::<Result<Vec<Column>, QueryError>>()?;
    Ok(DataFrame::new(df.height(), columns)?)
}

fn temporal_text(v: &AnyValue<'_>) -> Option<String> {
    match v {
        AnyValue::Datetime(ms, _, _) => Some(format_millis(*ms)),
        AnyValue::Date(d) => Some(format_day(*d)),
        _ => None,
    }
}

fn cell_text(v: &AnyValue<'_>) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::Boolean(b) => b.to_string(),
        AnyValue::String(s) => (*s).to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Int64(i) => i.to_string(),
        AnyValue::Float64(f) => f.to_string(),
        AnyValue::Datetime(..) | AnyValue::Date(_) => temporal_text(v).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn is_numeric(dtype: &DataType) -> bool {
    matches!(dtype, DataType::Int64 | DataType::Float64 | DataType::Int32)
}

/// Writes `df` in `format`. `provenance` goes into Parquet's metadata.
pub fn write_frame(
    df: &mut DataFrame,
    format: OutputFormat,
    provenance: &Provenance,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => write_table(df, out)?,
        OutputFormat::Csv => {
            let mut text = with_temporal_as_text(df)?;
            CsvWriter::new(&mut *out)
                .include_header(true)
                .finish(&mut text)?;
        }
        OutputFormat::Json | OutputFormat::Ndjson => {
            let mut text = with_temporal_as_text(df)?;
            let json_format = if format == OutputFormat::Json {
                JsonFormat::Json
            } else {
                JsonFormat::JsonLines
            };
            JsonWriter::new(&mut *out)
                .with_json_format(json_format)
                .finish(&mut text)?;
            if format == OutputFormat::Json {
                writeln!(out)?;
            }
        }
        OutputFormat::Parquet => {
            ParquetWriter::new(&mut *out)
                .with_key_value_metadata(Some(provenance.key_values()))
                .finish(df)?;
        }
    }
    Ok(())
}

fn write_table(df: &DataFrame, out: &mut dyn Write) -> Result<(), QueryError> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(df.columns().iter().map(|c| c.name().to_string()));
    for row in 0..df.height() {
        let cells = df
            .columns()
            .iter()
            .map(|c| Ok(cell_text(&c.get(row)?)))
            .collect::<Result<Vec<String>, QueryError>>()?;
        table.add_row(cells);
    }
    for (i, c) in df.columns().iter().enumerate() {
        if is_numeric(c.dtype()) {
            if let Some(col) = table.column_mut(i) {
                col.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
    }
    writeln!(out, "{table}")?;
    let n = df.height();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })?;
    Ok(())
}

/// Writes `df` to `path` through a temporary file in the same folder, renamed into place
/// once complete; on any failure no file is left at `path` or beside it.
pub fn write_file(
    df: &mut DataFrame,
    format: OutputFormat,
    provenance: &Provenance,
    path: &Path,
) -> Result<(), QueryError> {
    atomic_write(path, |file| write_frame(df, format, provenance, file))
}

/// Runs `write` on a temporary file beside `path`, then renames it to `path`: `path` is
/// written whole or not at all. Only a regular file is ever replaced (a symlink, FIFO, device
/// or folder at `path` is refused untouched); a replaced file keeps its mode, a new one gets
/// the umask's, as any other program's would.
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let cannot = |source: std::io::Error| QueryError::OutFile {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Some(meta.permissions()),
        Ok(_) => {
            return Err(cannot(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists and is not a regular file (a link, pipe, device or folder); callvault replaces only regular files",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(cannot(e)),
    };
    remove_stale_temporaries(folder, &name);
    let prefix = format!(".{name}.{}.", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    if let Some(permissions) = existing.or_else(new_file_permissions) {
        builder.permissions(permissions);
    }
    let tmp = builder.tempfile_in(folder).map_err(cannot)?;
    let mut writer = std::io::BufWriter::new(tmp);
    write(&mut writer)?;
    let tmp = writer.into_inner().map_err(|e| cannot(e.into_error()))?;
    tmp.as_file().sync_all().map_err(cannot)?;
    tmp.persist(path).map_err(|e| cannot(e.error))?;
    Ok(())
}

/// What a new file asks for; the umask narrows it, as it does for any program.
#[cfg(unix)]
fn new_file_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o666))
}

#[cfg(not(unix))]
fn new_file_permissions() -> Option<std::fs::Permissions> {
    None
}

/// Removes the temporary files (`.{name}.{pid}.{random}.tmp`) that runs killed while writing
/// `name` left in `folder`: those of processes that are no longer running.
fn remove_stale_temporaries(folder: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        // Exactly `{pid}.{random}`: a longer name belongs to another file (`name.1`).
        let Some((pid, random)) = rest.split_once('.') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i64>() else {
            continue;
        };
        if random.chars().all(|c| c.is_ascii_alphanumeric()) && !crate::store::process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::frame::{ColumnKind, FrameBuilder};
    use rusqlite::types::ValueRef;

    fn frame() -> DataFrame {
        let mut b = FrameBuilder::new(
            vec!["n".into(), "created_at".into(), "ok".into()],
            vec![ColumnKind::Integer, ColumnKind::Timestamp, ColumnKind::Text],
            2,
        );
        b.push([
            ValueRef::Integer(1),
            ValueRef::Text(b"2026-11-02T09:15:00.000Z"),
            ValueRef::Text(b"x"),
        ])
        .unwrap();
        b.push([ValueRef::Integer(2), ValueRef::Null, ValueRef::Null])
            .unwrap();
        b.take().unwrap()
    }

    fn render(format: OutputFormat) -> String {
        let mut out = Vec::new();
        let p = Provenance {
            snapshot_at: "t".into(),
            last_synced_at: None,
            source: "test".into(),
        };
        write_frame(&mut frame(), format, &p, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_formats_print_times_in_the_archive_form() {
        assert_eq!(
            render(OutputFormat::Csv),
            "n,created_at,ok\n1,2026-11-02T09:15:00.000Z,x\n2,,\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(OutputFormat::Json)).unwrap();
        assert_eq!(json[0]["created_at"], "2026-11-02T09:15:00.000Z");
        assert_eq!(json[1]["ok"], serde_json::Value::Null);
        assert_eq!(render(OutputFormat::Ndjson).lines().count(), 2);
        let table = render(OutputFormat::Table);
        assert!(table.contains("2026-11-02T09:15:00.000Z"), "{table}");
        assert!(table.ends_with("(2 rows)\n"), "{table}");
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let err = atomic_write(&path, |_| Err(QueryError::Empty)).unwrap_err();
        assert!(matches!(err, QueryError::Empty));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no/such/folder/out.csv");
        let err = atomic_write(&missing, |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("no/such/folder/out.csv"), "{err}");
    }

    #[test]
    fn a_write_removes_what_dead_runs_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            ".out.csv.4194999.Ab12Cd.tmp",   // a run that is gone
            ".out.csv.1.Ab12Cd.tmp",         // PID 1 is no callvault
            ".out.csv.1.4194999.Ab12Cd.tmp", // `out.csv.1`'s
            ".other.csv.4194999.Ab12Cd.tmp",
            ".out.csv.Ab12Cd.tmp",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        atomic_write(&dir.path().join("out.csv"), |w| Ok(w.write_all(b"a\n")?)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".other.csv.4194999.Ab12Cd.tmp",
                ".out.csv.1.4194999.Ab12Cd.tmp",
                ".out.csv.Ab12Cd.tmp",
                "out.csv"
            ]
        );
    }
}
