//! The open output files of one table's export, one per hive partition folder, and the
//! folder names themselves.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvWriter, DataFrame, ParquetWriter, PolarsError, SerWriter};

use super::super::output::{with_temporal_as_text, Provenance};
use super::super::QueryError;
use super::{Compression, ExportFormat};

/// Most partition files open at once; past that, open parts are finished and new ones begun.
pub(super) const MAX_OPEN_FILES: usize = 128;

/// Bytes buffered per open Parquet file; `MAX_OPEN_FILES` of them at most.
const PARQUET_BUFFER: usize = 256 << 10;

/// One open output file.
pub(super) enum Part {
    /// Buffered: the Parquet writer writes each page header and page on its own, about a
    /// thousand writes for a small file (a million system calls for a lake of 600 files made
    /// the lake's first export twice as slow as the plain one). Its `finish` flushes.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<BufWriter<File>>>),
    /// CSV batches arrive already serialized in large buffers.
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl Part {
    pub(super) fn write(&mut self, df: &DataFrame) -> Result<(), QueryError> {
        match self {
            Part::Parquet(w) => w.write_batch(df)?,
            Part::Csv(w) => w.write_batch(&with_temporal_as_text(df)?)?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), PolarsError> {
        match &mut self {
            Part::Parquet(w) => w.finish().map(|_| ()),
            Part::Csv(w) => w.finish(),
        }
    }
}

/// The open files of one table's export, by partition folder.
pub(super) struct Parts<'a> {
    pub(super) root: &'a Path,
    pub(super) format: ExportFormat,
    pub(super) compression: Compression,
    pub(super) provenance: Provenance,
    pub(super) open: HashMap<PathBuf, Part>,
    /// Next part number per partition folder.
    pub(super) next: HashMap<PathBuf, usize>,
    pub(super) files: usize,
    /// Whether a table without rows still gets a file (with its columns): a plain export's
    /// does; a lake leaves an empty partition out.
    pub(super) empty_files: bool,
}

impl Parts<'_> {
    pub(super) fn write(&mut self, folder: &Path, df: &DataFrame) -> Result<(), QueryError> {
        if df.height() == 0 && !self.empty_files {
            return Ok(());
        }
        if !self.open.contains_key(folder) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.finish_all()?;
            }
            let dir = self.root.join(folder);
            let number = self.next.entry(folder.to_path_buf()).or_insert(0);
            let path = dir.join(format!("part-{number}.{}", self.format.extension()));
            *number += 1;
            let cannot = |source| QueryError::OutFile {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(cannot)?;
            let file = File::create(&path).map_err(cannot)?;
            let part = match self.format {
                ExportFormat::Parquet => Part::Parquet(Box::new(
                    ParquetWriter::new(BufWriter::with_capacity(PARQUET_BUFFER, file))
                        .with_compression(self.compression.parquet())
                        .with_key_value_metadata(Some(self.provenance.key_values()))
                        .batched(df.schema())?,
                )),
                ExportFormat::Csv => Part::Csv(
                    CsvWriter::new(file)
                        .include_header(true)
                        .batched(with_temporal_as_text(&df.head(Some(0)))?.schema())?,
                ),
            };
            self.files += 1;
            self.open.insert(folder.to_path_buf(), part);
        }
        match self.open.get_mut(folder) {
            Some(part) => part.write(df),
            None => Ok(()),
        }
    }

    pub(super) fn finish_all(&mut self) -> Result<(), QueryError> {
        for (_, part) in self.open.drain() {
            part.finish()?;
        }
        Ok(())
    }
}

/// A hive folder segment `key=value`, with characters that are unsafe in paths escaped as
/// `%XX` and NULL as Hive's default partition name.
pub(super) fn hive_segment(key: &str, value: Option<&str>) -> String {
    let value = match value {
        None => return format!("{key}=__HIVE_DEFAULT_PARTITION__"),
        Some(v) => v,
    };
    let mut out = format!("{key}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' ' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape() {
        assert_eq!(hive_segment("day", Some("2026-11-02")), "day=2026-11-02");
        assert_eq!(
            hive_segment("provider", Some("a/b=c")),
            "provider=a%2Fb%3Dc"
        );
        assert_eq!(hive_segment("day", None), "day=__HIVE_DEFAULT_PARTITION__");
    }
}
