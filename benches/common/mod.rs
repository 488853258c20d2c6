//! What the store-level benches share: one Bluejay stream of a bench source in a new archive.

use callvault::providers::ProviderKind;
use callvault::store::{Archive, SourceSpec, StoreError, StreamId};

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
