//! What `export` is asked for: file format, Parquet codec, hive partition keys, tables.

use polars::prelude::ParquetCompression;
use polars_parquet::write::ZstdLevel;
use std::path::PathBuf;

/// The file formats of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    pub(super) fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
        }
    }

    /// The name `--format` takes, as a lake's manifest records it.
    pub(super) fn name(self) -> &'static str {
        self.extension()
    }
}

/// Parquet compression of `export`. zstd at level 1 is the default: on call data its files are
/// no larger than at zstd's usual level 3 (57 against 59 MiB for a million calls) and it takes
/// about 0.9 s less CPU there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    #[default]
    Zstd,
    Lz4,
    Snappy,
    Uncompressed,
}

impl Compression {
    /// The name `--compression` takes, as a lake's manifest records it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Uncompressed => "uncompressed",
        }
    }

    pub(super) fn parquet(self) -> ParquetCompression {
        match self {
            Compression::Zstd => ParquetCompression::Zstd(ZstdLevel::try_new(1).ok()),
            Compression::Lz4 => ParquetCompression::Lz4Raw,
            Compression::Snappy => ParquetCompression::Snappy,
            Compression::Uncompressed => ParquetCompression::Uncompressed,
        }
    }
}

/// Hive partition keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Partitioning {
    pub provider: bool,
    pub day: bool,
}

/// Parses `--partition-by`: `provider`, `day` or `provider,day`.
pub fn parse_partitioning(text: &str) -> Result<Partitioning, String> {
    let mut p = Partitioning::default();
    for part in text.split(',').map(str::trim) {
        match part {
            "provider" => p.provider = true,
            "day" => p.day = true,
            other => return Err(format!("'{other}' is not provider or day")),
        }
    }
    Ok(p)
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub out: PathBuf,
    pub format: ExportFormat,
    pub tables: Vec<String>,
    pub partition: Partitioning,
    pub with_raw: bool,
    /// Parquet only.
    pub compression: Compression,
    /// Replace whatever is named like a table, even if callvault did not write it.
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_flags_parse() {
        assert_eq!(
            parse_partitioning("provider,day"),
            Ok(Partitioning {
                provider: true,
                day: true
            })
        );
        assert!(parse_partitioning("agent").is_err());
    }
}
