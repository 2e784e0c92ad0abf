//! FlowFiles to and from the repository's record format (the WAL and the
//! spill files of connections share it).

use std::sync::Arc;

use sluice_flowfile_repo::{
    Claim, ContentRef, ContentView, PutHeader, StoredFlowFile, Transaction,
};

use crate::attributes::Attributes;
use crate::flowfile::{Content, FlowFile, StoredContent};

/// Adds a PUT of `ff` in `connection` to `tx`. Content in memory is written
/// inline; stored content as its claim.
pub(crate) fn put(tx: &mut Transaction, ff: &FlowFile, connection: &str) {
    let header = PutHeader {
        id: ff.id,
        connection,
        lineage_start: ff.lineage_start,
        entry_date: ff.entry_date,
        penalized_until: ff.penalized_until,
    };
    let attrs = ff.attributes.iter();
    match &ff.content {
        Content::Memory(b) => tx.put(header, attrs, ContentView::Inline(b)),
        Content::Stored(s) => tx.put(header, attrs, ContentView::Claim(claim_of(s.as_ref()))),
    }
}

/// The claim a stored content points at.
pub(crate) fn claim_of(s: &dyn StoredContent) -> Claim {
    let (segment, offset, length) = s.locator();
    Claim {
        segment,
        offset,
        length,
    }
}

/// Rebuilds a FlowFile; `claim` turns a claim back into content (or says
/// why it cannot).
pub(crate) fn restore<E>(
    stored: StoredFlowFile,
    claim: impl FnOnce(Claim) -> Result<Arc<dyn StoredContent>, E>,
) -> Result<FlowFile, E> {
    let attributes: Attributes = stored.attributes.into_iter().collect();
    let content = match stored.content {
        ContentRef::Inline(b) => Content::Memory(b),
        ContentRef::Claim(c) => Content::Stored(claim(c)?),
    };
    Ok(FlowFile::restored(
        stored.id,
        attributes,
        content,
        stored.lineage_start,
        stored.entry_date,
        stored.penalized_until,
    ))
}
