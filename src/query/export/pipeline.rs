//! The three threads a table (or half, or partition) goes through: the caller's steps SQLite
//! and copies blocks of rows out (`RawRows`, sealed into a `Block` once its text is checked
//! as UTF-8), the next builds frames and sorts rows into partition folders, the last encodes
//! and writes them. A failed stage ends the ones before it early.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use polars::prelude::{DataFrame, IdxCa, IdxSize};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::super::frame::{CellValue, FrameBuilder};
use super::super::QueryError;
use super::parts::{hive_segment, Parts};
use super::plan::Plan;
use super::Partitioning;

/// Rows read from SQLite and written per row group.
pub const CHUNK_ROWS: usize = 65_536;

/// Rows per block handed from the SQLite reader to the frame builder, and blocks queued
/// between them; a block is sent early once its text reaches `BLOCK_BYTES`.
pub(super) const BLOCK_ROWS: usize = 512;
pub(super) const BLOCKS_IN_FLIGHT: usize = 4;
pub(super) const BLOCK_BYTES: usize = 32 << 20;

/// Rows as SQLite returned them, copied out of the statement so that another thread can turn
/// them into frames while this one steps on.
pub(super) struct RawRows {
    /// Values per row: the file columns, then the partition keys.
    width: usize,
    cells: Vec<RawCell>,
    /// The text of `cells`, not yet checked as UTF-8.
    text: Vec<u8>,
    blobs: Vec<u8>,
}

#[derive(Clone, Copy)]
pub(super) enum RawCell {
    Null,
    Integer(i64),
    Real(f64),
    Text { start: usize, end: usize },
    Blob { start: usize, end: usize },
}

impl RawRows {
    fn new(width: usize, text_capacity: usize) -> RawRows {
        RawRows {
            width,
            cells: Vec::with_capacity(width * BLOCK_ROWS),
            text: Vec::with_capacity(text_capacity),
            blobs: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.cells.len() / self.width
    }

    fn push(&mut self, value: ValueRef<'_>) {
        let copy = |into: &mut Vec<u8>, bytes: &[u8]| {
            let start = into.len();
            into.extend_from_slice(bytes);
            (start, into.len())
        };
        let cell = match value {
            ValueRef::Null => RawCell::Null,
            ValueRef::Integer(i) => RawCell::Integer(i),
            ValueRef::Real(f) => RawCell::Real(f),
            ValueRef::Text(t) => {
                let (start, end) = copy(&mut self.text, t);
                RawCell::Text { start, end }
            }
            ValueRef::Blob(b) => {
                let (start, end) = copy(&mut self.blobs, b);
                RawCell::Blob { start, end }
            }
        };
        self.cells.push(cell);
    }

    /// Checks the block's text as UTF-8 in one pass, while it is still in this thread's cache.
    /// Text that is not valid UTF-8 (SQLite does not check) gets U+FFFD for its bad bytes, cell
    /// by cell, as `String::from_utf8_lossy` does.
    fn seal(self) -> Block {
        let RawRows {
            width,
            mut cells,
            text,
            blobs,
        } = self;
        let text = match String::from_utf8(text) {
            Ok(text)
                if cells.iter().all(|cell| match *cell {
                    RawCell::Text { start, end } => {
                        text.is_char_boundary(start) && text.is_char_boundary(end)
                    }
                    _ => true,
                }) =>
            {
                text
            }
            Ok(text) => repair(&mut cells, text.as_bytes()),
            Err(e) => repair(&mut cells, e.as_bytes()),
        };
        Block {
            width,
            cells,
            text,
            blobs,
        }
    }
}

/// Rebuilds a block's text cell by cell, replacing bytes that are not UTF-8.
pub(super) fn repair(cells: &mut [RawCell], bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for cell in cells {
        if let RawCell::Text { start, end } = cell {
            let value = String::from_utf8_lossy(&bytes[*start..*end]);
            *start = text.len();
            text.push_str(&value);
            *end = text.len();
        }
    }
    text
}

/// Rows on their way from the SQLite reader to the frame builder: every text cell's range in
/// `text` starts and ends on a character boundary.
pub(super) struct Block {
    width: usize,
    cells: Vec<RawCell>,
    text: String,
    blobs: Vec<u8>,
}

impl Block {
    fn value(&self, cell: RawCell) -> CellValue<'_> {
        match cell {
            RawCell::Null => CellValue::Null,
            RawCell::Integer(i) => CellValue::Integer(i),
            RawCell::Real(f) => CellValue::Real(f),
            RawCell::Text { start, end } => CellValue::Text(&self.text[start..end]),
            RawCell::Blob { start, end } => CellValue::Blob(&self.blobs[start..end]),
        }
    }
}

/// One chunk of rows on its way to the files: the frame and, when partitioned, each row's
/// partition folder as an index into the folders named so far.
pub(super) struct Chunk {
    frame: DataFrame,
    row_folder: Vec<u32>,
    /// Folders first seen in this chunk, in index order.
    new_folders: Vec<PathBuf>,
}

/// Three stages, each on its own thread: this one steps SQLite and copies the values out, the
/// next builds frames from them, the last encodes and writes. Returns the number of rows.
pub(super) fn write_chunks(
    conn: &Connection,
    plan: &Plan,
    partition: Partitioning,
    parts: &mut Parts<'_>,
) -> Result<u64, QueryError> {
    let (raw_sender, raw) = std::sync::mpsc::sync_channel::<Block>(BLOCKS_IN_FLIGHT);
    let (chunk_sender, chunks) = std::sync::mpsc::sync_channel::<Chunk>(1);
    std::thread::scope(|scope| {
        let partitioned = plan.keys > 0;
        let writer = scope.spawn(move || write_parts(&chunks, partitioned, parts));
        let builder = scope.spawn(move || build_chunks(&raw, plan, partition, &chunk_sender));
        let read = read_rows(conn, plan, &raw_sender);
        drop(raw_sender);
        let built = builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A failed stage ends the ones before it early, so the first error downstream is the
        // one to report.
        written.and(built).and_then(|rows| read.map(|()| rows))
    })
}

pub(super) fn write_parts(
    chunks: &Receiver<Chunk>,
    partitioned: bool,
    parts: &mut Parts<'_>,
) -> Result<(), QueryError> {
    let mut folders: Vec<PathBuf> = Vec::new();
    for chunk in chunks {
        folders.extend(chunk.new_folders);
        if !partitioned {
            parts.write(Path::new(""), &chunk.frame)?;
            continue;
        }
        let mut indices: Vec<Vec<IdxSize>> = vec![Vec::new(); folders.len()];
        for (row, f) in chunk.row_folder.iter().enumerate() {
            indices[*f as usize].push(row as IdxSize);
        }
        for (f, idx) in indices.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = chunk.frame.take(&IdxCa::from_vec("idx".into(), idx))?;
            parts.write(&folders[f], &part)?;
        }
    }
    Ok(())
}

/// Steps the plan's statement, sending its rows on in blocks; stops early, without error, when
/// the next stage has stopped.
pub(super) fn read_rows(
    conn: &Connection,
    plan: &Plan,
    blocks: &SyncSender<Block>,
) -> Result<(), QueryError> {
    let width = plan.names.len() + plan.keys;
    let mut stmt = conn.prepare(&plan.sql)?;
    for (name, value) in &plan.params {
        stmt.raw_bind_parameter(*name, value)?;
    }
    let mut rows = stmt.raw_query();
    let mut block = RawRows::new(width, 0);
    while let Some(row) = rows.next()? {
        for i in 0..width {
            block.push(row.get_ref(i)?);
        }
        if block.len() >= BLOCK_ROWS || block.text.len() + block.blobs.len() >= BLOCK_BYTES {
            let next = RawRows::new(width, block.text.len());
            if blocks
                .send(std::mem::replace(&mut block, next).seal())
                .is_err()
            {
                return Ok(());
            }
        }
    }
    let _ = blocks.send(block.seal());
    Ok(())
}

pub(super) fn build_chunks(
    blocks: &Receiver<Block>,
    plan: &Plan,
    partition: Partitioning,
    chunks: &SyncSender<Chunk>,
) -> Result<u64, QueryError> {
    let width = plan.names.len();
    let mut builder = FrameBuilder::new(plan.names.clone(), plan.kinds.clone(), CHUNK_ROWS);
    let mut row_folder: Vec<u32> = Vec::with_capacity(CHUNK_ROWS);
    let mut new_folders: Vec<PathBuf> = Vec::new();
    let mut folder_index: HashMap<String, u32> = HashMap::new();
    let mut key = String::new();
    let mut total = 0u64;
    let key_names: Vec<&str> = [("provider", partition.provider), ("day", partition.day)]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    let send = |builder: &mut FrameBuilder,
                row_folder: &mut Vec<u32>,
                new_folders: &mut Vec<PathBuf>|
     -> Result<bool, QueryError> {
        let chunk = Chunk {
            frame: builder.take()?,
            row_folder: std::mem::replace(row_folder, Vec::with_capacity(CHUNK_ROWS)),
            new_folders: std::mem::take(new_folders),
        };
        Ok(chunks.send(chunk).is_ok())
    };
    for block in blocks {
        for row in block.cells.chunks_exact(block.width) {
            let (columns, keys) = row.split_at(width);
            builder
                .push_row(columns.iter().map(|cell| block.value(*cell)))
                .map_err(|e| match e {
                    QueryError::Mismatch {
                        column,
                        kind,
                        value,
                    } => QueryError::Mismatch {
                        column: format!("{}.{column}", plan.table),
                        kind,
                        value,
                    },
                    other => other,
                })?;
            if plan.keys > 0 {
                key.clear();
                for (k, (name, cell)) in key_names.iter().zip(keys).enumerate() {
                    if k > 0 {
                        key.push('/');
                    }
                    let value = match block.value(*cell) {
                        CellValue::Text(t) => Some(t),
                        _ => None,
                    };
                    key.push_str(&hive_segment(name, value));
                }
                let f = match folder_index.get(&key) {
                    Some(f) => *f,
                    None => {
                        let f = folder_index.len() as u32;
                        new_folders.push(PathBuf::from(&key));
                        folder_index.insert(key.clone(), f);
                        f
                    }
                };
                row_folder.push(f);
            }
            total += 1;
            if builder.rows() >= CHUNK_ROWS
                && !send(&mut builder, &mut row_folder, &mut new_folders)?
            {
                return Ok(total);
            }
        }
    }
    if builder.rows() > 0 || total == 0 {
        send(&mut builder, &mut row_folder, &mut new_folders)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(block: &Block) -> Vec<String> {
        block
            .cells
            .iter()
            .map(|cell| match block.value(*cell) {
                CellValue::Text(t) => t.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_block_keeps_its_text_and_mends_bytes_that_are_not_utf8() {
        let mut rows = RawRows::new(2, 0);
        for value in [
            ValueRef::Text("café".as_bytes()),
            ValueRef::Integer(7),
            ValueRef::Blob(&[0xff]),
            ValueRef::Null,
        ] {
            rows.push(value);
        }
        assert_eq!(
            texts(&rows.seal()),
            ["café", "Integer(7)", "Blob([255])", "Null"]
        );

        // A bad byte in one cell; and two cells, each invalid, whose bytes together make "é".
        let mut rows = RawRows::new(2, 0);
        for value in [
            ValueRef::Text(b"a\xffb"),
            ValueRef::Text(b"ok"),
            ValueRef::Text(b"x\xc3"),
            ValueRef::Text(b"\xa9y"),
        ] {
            rows.push(value);
        }
        assert_eq!(rows.len(), 2);
        assert_eq!(
            texts(&rows.seal()),
            ["a\u{fffd}b", "ok", "x\u{fffd}", "\u{fffd}y"]
        );
    }
}
