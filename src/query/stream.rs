//! A query's rows written as they are read, so a large (or endless, recursive) result never
//! has to fit in memory.
//!
//! The first `CHUNK_ROWS` rows decide each column's kind (as a whole result did before); then
//! rows go out a chunk at a time: CSV, NDJSON and JSON as text, Parquet as one row group per
//! chunk. A later value that does not fit its column's kind stops the output with an error
//! that says to `CAST` it. The table format, made for a terminal, shows at most
//! `TABLE_MAX_ROWS` rows and says when there were more.

use std::io::Write;

use polars::prelude::{CsvWriter, DataFrame, JsonFormat, JsonWriter, ParquetWriter, SerWriter};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Statement;

use super::frame::{self, FrameBuilder};
use super::output::{self, with_temporal_as_text, OutputFormat, Provenance};
use super::{column_shape, row_values, QueryError};

/// Rows read before the columns' kinds are decided, and rows written per chunk.
pub const CHUNK_ROWS: usize = 65_536;

/// The most rows the table format prints.
pub const TABLE_MAX_ROWS: usize = 10_000;

/// Where the rows are going.
enum Sink<'w> {
    Text {
        out: &'w mut dyn Write,
        format: OutputFormat,
        rows_written: u64,
    },
    Parquet(Box<polars::io::parquet::write::BatchedWriter<&'w mut dyn Write>>),
}

/// Runs a prepared (and bound) statement and writes its rows to `out` in `format`. Returns how
/// many rows were written.
pub fn write_rows(
    stmt: &mut Statement<'_>,
    format: OutputFormat,
    provenance: &Provenance,
    out: &mut dyn Write,
) -> Result<u64, QueryError> {
    let (names, decl_types) = column_shape(stmt);
    let width = names.len();
    let first_chunk = match format {
        // One more than shown, to know whether there were more.
        OutputFormat::Table => TABLE_MAX_ROWS + 1,
        _ => CHUNK_ROWS,
    };
    let mut rows = stmt.raw_query();
    let mut head: Vec<Vec<Value>> = Vec::new();
    while head.len() < first_chunk {
        let Some(row) = rows.next()? else { break };
        head.push(row_values(row, width)?);
    }
    let kinds = frame::infer_kinds(&names, &decl_types, &head);
    let mut builder = FrameBuilder::new(names, kinds, CHUNK_ROWS.min(head.len().max(1)));
    if format == OutputFormat::Table {
        let more = head.len() > TABLE_MAX_ROWS;
        head.truncate(TABLE_MAX_ROWS);
        for row in &head {
            builder.push(row.iter().map(ValueRef::from))?;
        }
        output::write_frame(&mut builder.take()?, format, provenance, out)?;
        if more {
            writeln!(
                out,
                "(only the first {TABLE_MAX_ROWS} rows are shown; --format csv, ndjson or parquet writes them all)"
            )?;
        }
        return Ok(head.len() as u64);
    }
    for row in &head {
        builder.push(row.iter().map(ValueRef::from))?;
    }
    drop(head);
    let mut written = builder.rows() as u64;
    let mut sink = Sink::open(format, provenance, &mut builder.take()?, out)?;
    loop {
        while builder.rows() < CHUNK_ROWS {
            let Some(row) = rows.next()? else { break };
            builder.push((0..width).map(|i| row.get_ref_unwrap(i)))?;
        }
        if builder.rows() == 0 {
            break;
        }
        written += builder.rows() as u64;
        sink.write(&mut builder.take()?)?;
    }
    sink.finish()?;
    Ok(written)
}

impl<'w> Sink<'w> {
    /// Starts the output with the first chunk (which may be empty: a CSV header, a JSON array
    /// and a Parquet schema still go out).
    fn open(
        format: OutputFormat,
        provenance: &Provenance,
        first: &mut DataFrame,
        out: &'w mut dyn Write,
    ) -> Result<Sink<'w>, QueryError> {
        let mut sink = if format == OutputFormat::Parquet {
            Sink::Parquet(Box::new(
                ParquetWriter::new(out)
                    .with_key_value_metadata(Some(provenance.key_values()))
                    .batched(first.schema())?,
            ))
        } else {
            if format == OutputFormat::Json {
                out.write_all(b"[")?;
            }
            Sink::Text {
                out,
                format,
                rows_written: 0,
            }
        };
        sink.write(first)?;
        Ok(sink)
    }

    fn write(&mut self, chunk: &mut DataFrame) -> Result<(), QueryError> {
        let (out, format, rows_written) = match self {
            Sink::Parquet(writer) => return Ok(writer.write_batch(chunk)?),
            Sink::Text {
                out,
                format,
                rows_written,
            } => (out, *format, rows_written),
        };
        let mut text = with_temporal_as_text(chunk)?;
        match format {
            OutputFormat::Csv => CsvWriter::new(&mut **out)
                .include_header(*rows_written == 0)
                .finish(&mut text)?,
            OutputFormat::Ndjson => JsonWriter::new(&mut **out)
                .with_json_format(JsonFormat::JsonLines)
                .finish(&mut text)?,
            _ => {
                // One JSON array across chunks: each chunk's objects, comma-separated.
                let mut lines = Vec::new();
                JsonWriter::new(&mut lines)
                    .with_json_format(JsonFormat::JsonLines)
                    .finish(&mut text)?;
                for (i, line) in lines
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    if *rows_written > 0 || i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(line)?;
                }
            }
        }
        *rows_written += chunk.height() as u64;
        Ok(())
    }

    fn finish(self) -> Result<(), QueryError> {
        match self {
            Sink::Parquet(writer) => {
                writer.finish()?;
            }
            Sink::Text { out, format, .. } => {
                if format == OutputFormat::Json {
                    out.write_all(b"]\n")?;
                }
                out.flush()?;
            }
        }
        Ok(())
    }
}
