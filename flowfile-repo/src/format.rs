//! The byte format of every file the repository writes (version 1).
//!
//! All integers are little-endian. A *string* is a `u32` byte length followed
//! by that many bytes of UTF-8.
//!
//! # File header (28 bytes, every file kind)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic: `SLUICEWL` WAL segment, `SLUICECK` checkpoint, `SLUICECT` content segment, `SLUICESW` queue swap file |
//! | 8  | 4 | format version, `1` |
//! | 12 | 4 | flags, `0` (reserved) |
//! | 16 | 8 | sequence: segment number (WAL, content), generation (checkpoint), batch number (swap) |
//! | 24 | 4 | CRC32C of bytes 0..24 |
//!
//! # Record framing (WAL segments, checkpoints, swap files)
//!
//! After the header the file is a run of records, each
//!
//! | size | field |
//! |-----:|-------|
//! | 4 | `len`: payload length in bytes (at most [`MAX_RECORD`]) |
//! | 4 | CRC32C of the 4 `len` bytes followed by the payload |
//! | len | payload |
//!
//! A record is written with one `write` and is all-or-nothing: recovery
//! accepts it only whole and with a matching checksum. One session commit is
//! one record, so a commit is never half-applied.
//!
//! # Payload
//!
//! `u32` op count, then that many ops. Each op starts with a tag byte:
//!
//! - `1` **PUT** — the FlowFile now sits in a connection:
//!   `id u64`, `lineage_start u64`, `entry_date u64`, `penalized_until u64`
//!   (all times in ms since the Unix epoch; 0 = not penalised),
//!   `connection` string, `u32` attribute count, then per attribute a key
//!   string and a value string, then the content:
//!   - tag `0` inline: `u32` length and the bytes;
//!   - tag `1` claim: `segment u64`, `offset u64`, `length u64` into the
//!     content repository.
//! - `2` **DELETE** — the FlowFile left the flow: `id u64`.
//! - `3` **END** — last op of a checkpoint: `live u64` (PUT ops in the
//!   checkpoint), `max_id u64` (highest FlowFile id the repository has seen).
//!
//! A later PUT of the same id replaces the earlier one; DELETE of an id that
//! is not live is a no-op.
//!
//! # Content segments
//!
//! After the header, a run of entries `len u64`, `crc u32` (CRC32C of the
//! data), then `len` bytes of data. A claim `(segment, offset, length)` points
//! at the data: its 12-byte entry header sits just before `offset`, so every
//! read is checked against its checksum.

use bytes::Bytes;

/// Current format version.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 28;
/// Size of a record's length + checksum prefix.
pub const RECORD_HEADER_LEN: usize = 8;
/// Size of a content entry's header.
pub const CONTENT_ENTRY_HEADER_LEN: usize = 12;
/// Largest payload a record may claim; a bigger length is damage.
pub const MAX_RECORD: u32 = 1 << 30;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_END: u8 = 3;
const CONTENT_INLINE: u8 = 0;
const CONTENT_CLAIM: u8 = 1;

/// What a file is, by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A write-ahead log segment.
    Wal,
    /// A checkpoint (snapshot of the live FlowFiles).
    Checkpoint,
    /// A content segment.
    Content,
    /// A connection's swap file.
    Swap,
}

impl FileKind {
    /// The magic number of this kind.
    #[must_use]
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            FileKind::Wal => b"SLUICEWL",
            FileKind::Checkpoint => b"SLUICECK",
            FileKind::Content => b"SLUICECT",
            FileKind::Swap => b"SLUICESW",
        }
    }
}

/// A place in the repository's content segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim {
    /// Content segment number.
    pub segment: u64,
    /// Offset of the data in the segment.
    pub offset: u64,
    /// Length of the data.
    pub length: u64,
}

/// A FlowFile's content as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentRef {
    /// The bytes themselves (small content).
    Inline(Bytes),
    /// A claim in the content repository.
    Claim(Claim),
}

/// Content to encode, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum ContentView<'a> {
    /// Bytes stored in the record.
    Inline(&'a [u8]),
    /// A claim.
    Claim(Claim),
}

/// Everything about a FlowFile but its attributes and content, for encoding.
#[derive(Clone, Copy, Debug)]
pub struct PutHeader<'a> {
    /// FlowFile id.
    pub id: u64,
    /// Connection it sits in.
    pub connection: &'a str,
    /// Lineage start, ms epoch.
    pub lineage_start: u64,
    /// Entry date, ms epoch.
    pub entry_date: u64,
    /// Penalised until, ms epoch (0 = not).
    pub penalized_until: u64,
}

/// A FlowFile as the repository stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFlowFile {
    /// FlowFile id.
    pub id: u64,
    /// Connection it sits in.
    pub connection: String,
    /// Attributes in recorded order.
    pub attributes: Vec<(String, String)>,
    /// Content.
    pub content: ContentRef,
    /// Lineage start, ms epoch.
    pub lineage_start: u64,
    /// Entry date, ms epoch.
    pub entry_date: u64,
    /// Penalised until, ms epoch (0 = not).
    pub penalized_until: u64,
}

impl StoredFlowFile {
    /// Content length in bytes.
    #[must_use]
    pub fn content_len(&self) -> u64 {
        match &self.content {
            ContentRef::Inline(b) => b.len() as u64,
            ContentRef::Claim(c) => c.length,
        }
    }

    /// The claim, if the content is in the content repository.
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        match &self.content {
            ContentRef::Claim(c) => Some(*c),
            ContentRef::Inline(_) => None,
        }
    }
}

/// One decoded op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The FlowFile now sits in its connection.
    Put(StoredFlowFile),
    /// The FlowFile left the flow.
    Delete(u64),
    /// End of a checkpoint.
    End {
        /// PUT ops in the checkpoint.
        live: u64,
        /// Highest id seen.
        max_id: u64,
    },
}

/// What the writer needs to know about an op without decoding it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpMeta {
    /// A PUT of this id, with the content segment it references.
    Put {
        /// FlowFile id.
        id: u64,
        /// Content segment of its claim.
        claim_segment: Option<u64>,
    },
    /// A DELETE.
    Delete {
        /// FlowFile id.
        id: u64,
    },
}

/// The payload of one record, built op by op.
#[derive(Clone, Debug)]
pub struct Transaction {
    buf: Vec<u8>,
    meta: Vec<OpMeta>,
    end: bool,
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u32(buf, u32::try_from(s.len()).unwrap_or(u32::MAX));
    buf.extend_from_slice(s.as_bytes());
}

impl Transaction {
    /// An empty transaction.
    #[must_use]
    pub fn new() -> Self {
        // Room for the record's length and checksum, then the op count.
        Self {
            buf: vec![0; RECORD_HEADER_LEN + 4],
            meta: Vec::new(),
            end: false,
        }
    }

    /// Number of ops.
    #[must_use]
    pub fn len(&self) -> usize {
        self.meta.len() + usize::from(self.end)
    }

    /// Whether it has no op.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes so far.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        self.buf.len() - RECORD_HEADER_LEN
    }

    /// Ops as the writer tracks them.
    #[must_use]
    pub fn meta(&self) -> &[OpMeta] {
        &self.meta
    }

    /// Adds a PUT.
    ///
    /// Strings longer than 4 GiB cannot be encoded; callers never produce them
    /// (attribute values come from bounded inputs).
    pub fn put<'a>(
        &mut self,
        header: PutHeader<'_>,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
        content: ContentView<'_>,
    ) {
        let b = &mut self.buf;
        b.push(OP_PUT);
        put_u64(b, header.id);
        put_u64(b, header.lineage_start);
        put_u64(b, header.entry_date);
        put_u64(b, header.penalized_until);
        put_str(b, header.connection);
        let count_at = b.len();
        put_u32(b, 0);
        let mut n: u32 = 0;
        for (k, v) in attributes {
            put_str(b, k);
            put_str(b, v);
            n += 1;
        }
        b[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        let claim_segment = match content {
            ContentView::Inline(data) => {
                b.push(CONTENT_INLINE);
                put_u32(b, u32::try_from(data.len()).unwrap_or(u32::MAX));
                b.extend_from_slice(data);
                None
            }
            ContentView::Claim(c) => {
                b.push(CONTENT_CLAIM);
                put_u64(b, c.segment);
                put_u64(b, c.offset);
                put_u64(b, c.length);
                Some(c.segment)
            }
        };
        self.meta.push(OpMeta::Put {
            id: header.id,
            claim_segment,
        });
    }

    /// Adds a PUT of a stored FlowFile (checkpoints, swap files).
    pub fn put_stored(&mut self, ff: &StoredFlowFile) {
        let content = match &ff.content {
            ContentRef::Inline(b) => ContentView::Inline(b),
            ContentRef::Claim(c) => ContentView::Claim(*c),
        };
        self.put(
            PutHeader {
                id: ff.id,
                connection: &ff.connection,
                lineage_start: ff.lineage_start,
                entry_date: ff.entry_date,
                penalized_until: ff.penalized_until,
            },
            ff.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            content,
        );
    }

    /// Adds a DELETE.
    pub fn delete(&mut self, id: u64) {
        self.buf.push(OP_DELETE);
        put_u64(&mut self.buf, id);
        self.meta.push(OpMeta::Delete { id });
    }

    /// Adds the END op of a checkpoint.
    pub fn end(&mut self, live: u64, max_id: u64) {
        self.buf.push(OP_END);
        put_u64(&mut self.buf, live);
        put_u64(&mut self.buf, max_id);
        self.end = true;
    }

    /// The framed record (length, checksum, payload), ready to append, and
    /// the ops as the writer tracks them.
    #[must_use]
    pub fn into_record(mut self) -> (Vec<u8>, Vec<OpMeta>) {
        let n = u32::try_from(self.len()).unwrap_or(u32::MAX);
        let h = RECORD_HEADER_LEN;
        self.buf[h..h + 4].copy_from_slice(&n.to_le_bytes());
        let len = u32::try_from(self.buf.len() - h).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        let mut crc = crc32c::crc32c(&self.buf[0..4]);
        crc = crc32c::crc32c_append(crc, &self.buf[h..]);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        (self.buf, self.meta)
    }
}

/// The 28-byte header of a file of `kind` with sequence `seq`.
#[must_use]
pub fn file_header(kind: FileKind, seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(kind.magic());
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a header or record is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file ends inside the header.
    #[error("file ends inside its {HEADER_LEN}-byte header ({0} bytes)")]
    ShortHeader(usize),
    /// Not a file of the expected kind.
    #[error("wrong magic number (expected {expected:?})")]
    BadMagic {
        /// What was expected.
        expected: FileKind,
    },
    /// The header checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// A version this build cannot read.
    #[error("format version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
    /// The file ends inside a record: a torn write.
    #[error("torn record: {needed} bytes needed, {available} left in the file")]
    Torn {
        /// Bytes the record claims.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The record length is implausible.
    #[error("record length {0} is larger than the limit")]
    BadLength(u32),
    /// The record checksum does not match.
    #[error("record checksum mismatch")]
    Checksum,
    /// The payload does not decode.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

impl FormatError {
    /// Whether this is a write cut short (as opposed to bytes that changed).
    #[must_use]
    pub fn is_torn(&self) -> bool {
        matches!(self, FormatError::Torn { .. } | FormatError::ShortHeader(_))
    }
}

/// Checks a header; returns the sequence number.
///
/// # Errors
/// The header is short, of another kind, damaged or of an unknown version.
pub fn check_header(kind: FileKind, data: &[u8]) -> Result<u64, FormatError> {
    if data.len() < HEADER_LEN {
        return Err(FormatError::ShortHeader(data.len()));
    }
    if &data[0..8] != kind.magic() {
        return Err(FormatError::BadMagic { expected: kind });
    }
    let crc = u32::from_le_bytes(arr4(&data[24..28]));
    if crc != crc32c::crc32c(&data[0..24]) {
        return Err(FormatError::HeaderChecksum);
    }
    let version = u32::from_le_bytes(arr4(&data[8..12]));
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    Ok(u64::from_le_bytes(arr8(&data[16..24])))
}

fn arr4(s: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&s[..4]);
    a
}

fn arr8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&s[..8]);
    a
}

/// Appends `payload` framed as a record to `out`.
pub fn frame_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    let mut crc = crc32c::crc32c(&len_bytes);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads the record starting at `data[0]`; returns its payload and total size.
///
/// # Errors
/// The record is torn, too long or fails its checksum.
pub fn read_record(data: &[u8]) -> Result<(&[u8], usize), FormatError> {
    if data.len() < RECORD_HEADER_LEN {
        return Err(FormatError::Torn {
            needed: RECORD_HEADER_LEN as u64,
            available: data.len() as u64,
        });
    }
    let len = u32::from_le_bytes(arr4(&data[0..4]));
    let crc = u32::from_le_bytes(arr4(&data[4..8]));
    if len > MAX_RECORD {
        return Err(FormatError::BadLength(len));
    }
    let total = RECORD_HEADER_LEN + len as usize;
    if data.len() < total {
        // Tell a torn write from a damaged length: a torn record's bytes
        // are a prefix of what was written; nothing more can be checked.
        return Err(FormatError::Torn {
            needed: total as u64,
            available: data.len() as u64,
        });
    }
    let payload = &data[RECORD_HEADER_LEN..total];
    let mut c = crc32c::crc32c(&data[0..4]);
    c = crc32c::crc32c_append(c, payload);
    if c != crc {
        return Err(FormatError::Checksum);
    }
    Ok((payload, total))
}

/// One record found by [`scan`], or the damage that stopped the scan.
#[derive(Debug)]
pub enum Scanned<'a> {
    /// A whole record at `offset` (from the start of the file).
    Record {
        /// Where the record starts.
        offset: u64,
        /// Its payload.
        payload: &'a [u8],
    },
    /// Damage at `offset`; nothing after it is read.
    Damage {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        error: FormatError,
    },
}

/// Iterates the records of a file body (`data` is the whole file, header
/// included, already checked). Stops at the end or at the first damage.
pub fn scan(data: &[u8]) -> impl Iterator<Item = Scanned<'_>> {
    let mut pos = HEADER_LEN.min(data.len());
    let mut done = false;
    std::iter::from_fn(move || {
        if done || pos >= data.len() {
            return None;
        }
        match read_record(&data[pos..]) {
            Ok((payload, total)) => {
                let offset = pos as u64;
                pos += total;
                Some(Scanned::Record { offset, payload })
            }
            Err(error) => {
                done = true;
                Some(Scanned::Damage {
                    offset: pos as u64,
                    error,
                })
            }
        }
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(FormatError::Malformed(format!(
                "{what} runs past the end of the payload at byte {}",
                self.pos
            )));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(arr4(self.take(4, what)?)))
    }
    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(arr8(self.take(8, what)?)))
    }
    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| FormatError::Malformed(format!("{what} is not UTF-8")))
    }
}

/// Decodes a record payload into its ops.
///
/// # Errors
/// The payload is not a well-formed op list (damage a checksum missed, or a
/// bug): the caller reports it like any other damage.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Op>, FormatError> {
    let mut r = Reader {
        data: payload,
        pos: 0,
    };
    let n = r.u32("op count")?;
    let mut ops = Vec::with_capacity((n as usize).min(4096));
    for _ in 0..n {
        match r.u8("op tag")? {
            OP_PUT => {
                let id = r.u64("id")?;
                let lineage_start = r.u64("lineage_start")?;
                let entry_date = r.u64("entry_date")?;
                let penalized_until = r.u64("penalized_until")?;
                let connection = r.string("connection")?;
                let na = r.u32("attribute count")?;
                let mut attributes = Vec::with_capacity((na as usize).min(1024));
                for _ in 0..na {
                    let k = r.string("attribute key")?;
                    let v = r.string("attribute value")?;
                    attributes.push((k, v));
                }
                let content = match r.u8("content tag")? {
                    CONTENT_INLINE => {
                        let len = r.u32("content length")? as usize;
                        ContentRef::Inline(Bytes::copy_from_slice(r.take(len, "content")?))
                    }
                    CONTENT_CLAIM => ContentRef::Claim(Claim {
                        segment: r.u64("claim segment")?,
                        offset: r.u64("claim offset")?,
                        length: r.u64("claim length")?,
                    }),
                    t => return Err(FormatError::Malformed(format!("unknown content tag {t}"))),
                };
                ops.push(Op::Put(StoredFlowFile {
                    id,
                    connection,
                    attributes,
                    content,
                    lineage_start,
                    entry_date,
                    penalized_until,
                }));
            }
            OP_DELETE => ops.push(Op::Delete(r.u64("id")?)),
            OP_END => ops.push(Op::End {
                live: r.u64("live count")?,
                max_id: r.u64("max id")?,
            }),
            t => return Err(FormatError::Malformed(format!("unknown op tag {t}"))),
        }
    }
    if r.pos != payload.len() {
        return Err(FormatError::Malformed(format!(
            "{} bytes after the last op",
            payload.len() - r.pos
        )));
    }
    Ok(ops)
}

/// The 12-byte header of a content entry holding `data`.
#[must_use]
pub fn content_entry_header(data: &[u8]) -> [u8; CONTENT_ENTRY_HEADER_LEN] {
    let mut h = [0u8; CONTENT_ENTRY_HEADER_LEN];
    h[0..8].copy_from_slice(&(data.len() as u64).to_le_bytes());
    h[8..12].copy_from_slice(&crc32c::crc32c(data).to_le_bytes());
    h
}

/// Checks a content entry (`entry` = its header then its data) against the
/// claimed length. Returns the data.
///
/// # Errors
/// The entry is short, its length differs from the claim's, or its checksum
/// does not match.
pub fn check_content_entry(entry: &[u8], length: u64) -> Result<&[u8], FormatError> {
    if entry.len() < CONTENT_ENTRY_HEADER_LEN {
        return Err(FormatError::Torn {
            needed: CONTENT_ENTRY_HEADER_LEN as u64,
            available: entry.len() as u64,
        });
    }
    let len = u64::from_le_bytes(arr8(&entry[0..8]));
    if len != length {
        return Err(FormatError::Malformed(format!(
            "content entry holds {len} bytes, the claim says {length}"
        )));
    }
    let data = &entry[CONTENT_ENTRY_HEADER_LEN..];
    if data.len() as u64 != len {
        return Err(FormatError::Torn {
            needed: len,
            available: data.len() as u64,
        });
    }
    if u32::from_le_bytes(arr4(&entry[8..12])) != crc32c::crc32c(data) {
        return Err(FormatError::Checksum);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored() -> impl Strategy<Value = StoredFlowFile> {
        (
            any::<u64>(),
            "[a-z.>]{0,12}",
            proptest::collection::vec(("[a-z.]{0,8}", "\\PC{0,16}"), 0..6),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|v| ContentRef::Inline(Bytes::from(v))),
                (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(segment, offset, length)| {
                    ContentRef::Claim(Claim {
                        segment,
                        offset,
                        length,
                    })
                }),
            ],
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(id, connection, attributes, content, a, b, c)| StoredFlowFile {
                    id,
                    connection,
                    attributes,
                    content,
                    lineage_start: a,
                    entry_date: b,
                    penalized_until: c,
                },
            )
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            stored().prop_map(Op::Put),
            any::<u64>().prop_map(Op::Delete),
        ]
    }

    fn encode(ops: &[Op]) -> Vec<u8> {
        let mut tx = Transaction::new();
        for op in ops {
            match op {
                Op::Put(ff) => tx.put_stored(ff),
                Op::Delete(id) => tx.delete(*id),
                Op::End { live, max_id } => tx.end(*live, *max_id),
            }
        }
        let (record, meta) = tx.into_record();
        assert_eq!(
            meta.len(),
            ops.iter().filter(|o| !matches!(o, Op::End { .. })).count()
        );
        let mut file = file_header(FileKind::Wal, 7).to_vec();
        file.extend_from_slice(&record);
        file
    }

    proptest! {
        #[test]
        fn ops_round_trip(ops in proptest::collection::vec(op(), 0..8)) {
            let file = encode(&ops);
            prop_assert_eq!(check_header(FileKind::Wal, &file), Ok(7));
            let recs: Vec<_> = scan(&file).collect();
            prop_assert_eq!(recs.len(), 1);
            let Scanned::Record { offset, payload } = &recs[0] else {
                return Err(TestCaseError::fail("damage in a clean file"));
            };
            prop_assert_eq!(*offset, HEADER_LEN as u64);
            prop_assert_eq!(decode_payload(payload).unwrap(), ops);
        }

        /// Cutting a record at any byte is detected as torn, never decoded.
        #[test]
        fn every_truncation_is_torn(ops in proptest::collection::vec(op(), 1..4)) {
            let file = encode(&ops);
            for cut in HEADER_LEN..file.len() {
                let recs: Vec<_> = scan(&file[..cut]).collect();
                if cut == HEADER_LEN {
                    prop_assert!(recs.is_empty());
                    continue;
                }
                prop_assert_eq!(recs.len(), 1, "cut at {}", cut);
                match &recs[0] {
                    Scanned::Damage { offset, error } => {
                        prop_assert_eq!(*offset, HEADER_LEN as u64);
                        prop_assert!(error.is_torn(), "cut at {cut}: {error}");
                    }
                    Scanned::Record { .. } => {
                        return Err(TestCaseError::fail(format!("cut at {cut} accepted")));
                    }
                }
            }
        }

        /// Flipping any single bit of a record is caught by the checksum (or
        /// the length check), never decoded as data.
        #[test]
        fn every_bit_flip_is_caught(ops in proptest::collection::vec(op(), 1..3)) {
            let file = encode(&ops);
            for byte in HEADER_LEN..file.len() {
                for bit in 0..8 {
                    let mut bad = file.clone();
                    bad[byte] ^= 1 << bit;
                    let first = scan(&bad).next();
                    prop_assert!(
                        matches!(first, Some(Scanned::Damage { .. })),
                        "flip of byte {} bit {} accepted", byte, bit
                    );
                }
            }
        }

        /// Header damage is caught too.
        #[test]
        fn header_bit_flips_are_caught(byte in 0..HEADER_LEN, bit in 0..8u8) {
            let mut h = file_header(FileKind::Checkpoint, 3).to_vec();
            h[byte] ^= 1 << bit;
            prop_assert!(check_header(FileKind::Checkpoint, &h).is_err());
        }
    }

    #[test]
    fn a_damaged_record_stops_the_scan_at_its_offset() {
        let mut file = file_header(FileKind::Wal, 1).to_vec();
        let mut tx = Transaction::new();
        tx.delete(1);
        let (rec, _) = tx.into_record();
        file.extend_from_slice(&rec);
        let second = file.len();
        let (p, _) = read_record(&rec).unwrap();
        frame_record(&mut file, p);
        frame_record(&mut file, p);
        file[second + 9] ^= 0x40;
        let got: Vec<_> = scan(&file).collect();
        assert_eq!(got.len(), 2);
        match &got[1] {
            Scanned::Damage { offset, error } => {
                assert_eq!(*offset, second as u64);
                assert_eq!(*error, FormatError::Checksum);
            }
            Scanned::Record { .. } => panic!("damage accepted"),
        }
    }

    #[test]
    fn content_entries_check_length_and_checksum() {
        let data = b"hello content";
        let mut e = content_entry_header(data).to_vec();
        e.extend_from_slice(data);
        assert_eq!(check_content_entry(&e, data.len() as u64).unwrap(), data);
        assert!(check_content_entry(&e, 3).is_err());
        e[15] ^= 1;
        assert_eq!(
            check_content_entry(&e, data.len() as u64),
            Err(FormatError::Checksum)
        );
    }
}
