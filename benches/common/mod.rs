//! What the store-level benches share: one Bluejay stream of a bench source in a new archive,
//! simulator calls parsed into pages up front, and pages handed to the writer as a sync does.

use callvault::providers::bluejay::{parse_call_log, CALLS_PER_PAGE};
use callvault::providers::{CallRecord, ProviderKind};
use callvault::sim::bluejay;
use callvault::sim::data::{CallSlot, Renderer};
use callvault::store::{Archive, ArchiveWriter, PageWrite, SourceSpec, StoreError, StreamId};
use futures::{StreamExt, TryStreamExt};

pub type Error = Box<dyn std::error::Error>;

/// Pages handed to the writer before waiting for the first answer, as a sync's fetch tasks do.
pub const IN_FLIGHT: usize = 16;

/// Registers the bench's source and stream in `archive` and begins a run on it.
pub fn bench_stream(archive: &mut Archive) -> Result<(StreamId, i64), StoreError> {
    let source = archive.source_id(&SourceSpec {
        provider: ProviderKind::Bluejay,
        account: "bench".into(),
        base_url: "http://127.0.0.1:9".into(),
        key_env: "BLUEJAY_API_KEY".into(),
    })?;
    let run = archive.begin_run(ProviderKind::Bluejay, source, &["bench".into()])?;
    let stream = StreamId {
        provider: ProviderKind::Bluejay,
        source,
        scope: "bench".into(),
    };
    Ok((stream, run))
}

/// The calls of `slots` as the Bluejay simulator renders them, parsed, in pages of a list
/// response's size.
pub fn parsed_pages(
    renderer: &Renderer,
    slots: &[CallSlot],
) -> Result<Vec<Vec<CallRecord>>, Error> {
    let records: Vec<CallRecord> = slots
        .iter()
        .map(|s| {
            parse_call_log(&serde_json::to_string(&bluejay::render(renderer, *s))?)
                .map_err(Into::into)
        })
        .collect::<Result<_, Error>>()?;
    let mut pages = Vec::new();
    let mut rest = records.into_iter().peekable();
    while rest.peek().is_some() {
        pages.push(rest.by_ref().take(CALLS_PER_PAGE as usize).collect());
    }
    Ok(pages)
}

/// Hands `writes` to the writer, `IN_FLIGHT` at a time, and waits until all are committed.
pub fn write_pages(
    runtime: &tokio::runtime::Runtime,
    writer: &ArchiveWriter,
    stream: &StreamId,
    run: i64,
    writes: impl Iterator<Item = PageWrite>,
) -> Result<(), StoreError> {
    runtime.block_on(async {
        let writes = writes.map(|write| {
            let stream = stream.clone();
            writer.run(move |a| a.write_page(&stream, run, &write))
        });
        futures::stream::iter(writes)
            .buffer_unordered(IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await
    })
}
