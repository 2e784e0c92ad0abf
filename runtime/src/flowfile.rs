//! The FlowFile: attributes plus a content claim, as it moves through a flow.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::attributes::Attributes;

/// Content kept somewhere other than memory (the content repository).
///
/// The runtime never interprets the location; the repository that created the
/// claim does. Dropping the last reference releases the claim.
pub trait StoredContent: Send + Sync + fmt::Debug {
    /// Content length in bytes.
    fn len(&self) -> u64;
    /// Whether the content is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the whole content.
    ///
    /// # Errors
    /// The storage could not be read, or what it returned is damaged.
    fn read(&self) -> std::io::Result<Bytes>;
    /// The claim as the repository encodes it (segment, offset, length).
    fn locator(&self) -> (u64, u64, u64);
}

/// Where a FlowFile's bytes are.
#[derive(Clone)]
pub enum Content {
    /// In memory (the default, and the only kind without a repository).
    Memory(Bytes),
    /// In the content repository.
    Stored(Arc<dyn StoredContent>),
}

impl Content {
    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Content::Memory(b) => b.len() as u64,
            Content::Stored(s) => s.len(),
        }
    }

    /// Whether the content is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Content {
    fn default() -> Self {
        Content::Memory(Bytes::new())
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
            Content::Stored(s) => write!(f, "Stored({s:?})"),
        }
    }
}

/// Milliseconds since the Unix epoch: the clock every FlowFile time uses, so
/// times survive a restart (unlike `Instant`).
#[must_use]
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Makes sure ids handed out from now on are above `max_seen` (after recovery).
pub fn reserve_ids_above(max_seen: u64) {
    NEXT_ID.fetch_max(max_seen.saturating_add(1), Ordering::Relaxed);
}

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A unit of data: attributes and content, with the times the runtime keeps.
#[derive(Clone, Debug)]
pub struct FlowFile {
    /// Unique within this repository (and process lifetime without one).
    pub id: u64,
    /// The attribute map.
    pub attributes: Attributes,
    /// The content.
    pub content: Content,
    /// When the oldest ancestor of this FlowFile entered the flow (ms epoch).
    pub lineage_start: u64,
    /// When this FlowFile entered the flow (ms epoch): the clock for expiration.
    pub entry_date: u64,
    /// Not handed to a processor before this time (ms epoch); 0 = not penalised.
    pub penalized_until: u64,
}

impl FlowFile {
    /// A new FlowFile with empty content and no attributes.
    #[must_use]
    pub fn new() -> Self {
        let now = now_millis();
        Self {
            id: next_id(),
            attributes: Attributes::new(),
            content: Content::default(),
            lineage_start: now,
            entry_date: now,
            penalized_until: 0,
        }
    }

    /// A FlowFile rebuilt from storage, keeping its id.
    #[must_use]
    pub fn restored(
        id: u64,
        attributes: Attributes,
        content: Content,
        lineage_start: u64,
        entry_date: u64,
        penalized_until: u64,
    ) -> Self {
        reserve_ids_above(id);
        Self {
            id,
            attributes,
            content,
            lineage_start,
            entry_date,
            penalized_until,
        }
    }

    /// A child of `self`: same attributes and content, new id, same lineage.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            id: next_id(),
            attributes: self.attributes.clone(),
            content: self.content.clone(),
            lineage_start: self.lineage_start,
            entry_date: now_millis(),
            penalized_until: 0,
        }
    }

    /// Content size in bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.content.len()
    }

    /// Shortcut for `attributes.get`.
    #[must_use]
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key)
    }

    /// The bytes this FlowFile accounts for in queue thresholds: its content.
    #[must_use]
    pub fn queued_bytes(&self) -> u64 {
        self.content.len()
    }

    /// Whether it is penalised at `now` (ms epoch).
    #[must_use]
    pub fn is_penalized(&self, now: u64) -> bool {
        self.penalized_until > now
    }
}

impl Default for FlowFile {
    fn default() -> Self {
        Self::new()
    }
}
