//! Splitting a TCP byte stream into syslog messages (RFC 6587).
//!
//! The framing is detected per message, as rsyslog's `imtcp` does: a frame
//! that starts with a digit followed by more digits and a space is
//! octet-counted (`LEN SP MSG`); anything else runs up to the next LF (or NUL,
//! when enabled). A digit run that is not followed by a space (a message with
//! no PRI that starts with a date) falls back to LF framing, keeping every
//! byte. Between frames, stray LF, CR and NUL bytes are skipped.
//!
//! rsyslog's RFC 5424 forwarding template ends each message with LF and counts
//! it inside the octet count: a trailing LF (or CR LF) inside an octet-counted
//! frame is removed.
//!
//! A message longer than `max` bytes is cut: the decoder keeps the first
//! `keep` bytes (`max` when oversize messages are truncated, more when they go
//! whole to `invalid`), skips the rest up to the end of the frame, and reports
//! the original length, so the caller can count and mark it. Memory per
//! connection is bounded by `keep` plus one read.

use bytes::{Buf, Bytes, BytesMut};

/// Most digits of an octet count (a count above 999,999,999 is not a frame).
const MAX_COUNT_DIGITS: usize = 9;

/// One message cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bytes kept (all of them unless the message was oversize).
    pub data: Bytes,
    /// The length the message had on the wire (without framing).
    pub original_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Start,
    /// Inside an octet-counted frame with this many bytes left.
    Counted { remaining: usize },
    /// Inside a delimited frame; `scanned` bytes of the buffer hold no delimiter.
    Delimited { scanned: usize },
}

/// Incremental decoder; feed it with [`decode`](Self::decode) after each read.
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    keep: usize,
    nul_delimits: bool,
    state: State,
    /// Bytes kept so far of an oversize message.
    partial: BytesMut,
    /// Length on the wire of the message in `partial`, so far.
    partial_len: usize,
    /// Whether the current frame is oversize (its head is in `partial`).
    oversize: bool,
    /// Bytes consumed that belong to no message: separators, octet counts,
    /// delimiters, a counted frame's trailing LF.
    framing_bytes: usize,
}

impl Decoder {
    /// Messages above `max` bytes are cut to `keep` (at least `max`) bytes.
    #[must_use]
    pub fn new(max: usize, keep: usize, nul_delimits: bool) -> Self {
        Self {
            max,
            keep: keep.max(max),
            nul_delimits,
            state: State::Start,
            partial: BytesMut::new(),
            partial_len: 0,
            oversize: false,
            framing_bytes: 0,
        }
    }

    /// Bytes consumed so far that belong to no message (separators, octet
    /// counts, delimiters). With the messages' `original_len`s this accounts
    /// for every byte of the stream.
    #[must_use]
    #[cfg_attr(not(test), allow(dead_code))] // the property tests account with it
    pub fn framing_bytes(&self) -> usize {
        self.framing_bytes
    }

    /// The next complete message in `buf`, consuming it; `None` when more
    /// bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            match self.state {
                State::Start => {
                    let skip = buf
                        .iter()
                        .position(|b| !matches!(b, b'\n' | b'\r' | 0))
                        .unwrap_or(buf.len());
                    buf.advance(skip);
                    self.framing_bytes += skip;
                    let first = *buf.first()?;
                    if first.is_ascii_digit() {
                        match octet_count(buf) {
                            Count::Need => return None,
                            Count::Len { len, header } => {
                                buf.advance(header);
                                self.framing_bytes += header;
                                self.state = State::Counted { remaining: len };
                                // +1: the LF rsyslog counts inside the frame.
                                if len > self.max + 1 {
                                    self.start_oversize();
                                }
                            }
                            Count::NotCounted => self.state = State::Delimited { scanned: 0 },
                        }
                    } else {
                        self.state = State::Delimited { scanned: 0 };
                    }
                }
                State::Counted { remaining } => {
                    if self.oversize {
                        let take = remaining.min(buf.len());
                        self.keep_partial(buf, take);
                        let remaining = remaining - take;
                        if remaining > 0 {
                            self.state = State::Counted { remaining };
                            return None;
                        }
                        self.state = State::Start;
                        return Some(self.finish_oversize());
                    }
                    if buf.len() < remaining {
                        return None;
                    }
                    let mut data = buf.split_to(remaining).freeze();
                    self.state = State::Start;
                    if data.ends_with(b"\n") {
                        data.truncate(data.len() - 1);
                        if data.ends_with(b"\r") {
                            data.truncate(data.len() - 1);
                        }
                    }
                    self.framing_bytes += remaining - data.len();
                    return Some(Frame {
                        original_len: data.len(),
                        data,
                    });
                }
                State::Delimited { scanned } => {
                    let found = if self.nul_delimits {
                        memchr::memchr2(b'\n', 0, &buf[scanned..])
                    } else {
                        memchr::memchr(b'\n', &buf[scanned..])
                    };
                    let Some(i) = found.map(|i| scanned + i) else {
                        if !self.oversize && buf.len() > self.max {
                            self.start_oversize();
                        }
                        if self.oversize {
                            let n = buf.len();
                            self.keep_partial(buf, n);
                            self.state = State::Delimited { scanned: 0 };
                        } else {
                            self.state = State::Delimited { scanned: buf.len() };
                        }
                        return None;
                    };
                    self.state = State::Start;
                    self.framing_bytes += 1;
                    if self.oversize {
                        self.keep_partial(buf, i);
                        buf.advance(1);
                        return Some(self.finish_oversize());
                    }
                    let mut data = buf.split_to(i).freeze();
                    buf.advance(1);
                    if data.ends_with(b"\r") {
                        data.truncate(data.len() - 1);
                        self.framing_bytes += 1;
                    }
                    if data.len() > self.max {
                        let original_len = data.len();
                        data.truncate(self.keep);
                        return Some(Frame { data, original_len });
                    }
                    return Some(Frame {
                        original_len: data.len(),
                        data,
                    });
                }
            }
        }
    }

    /// At the end of the stream: whatever is left as a last message (a sender
    /// that closes without a final LF), or `None`. An octet-counted frame cut
    /// short is returned with what arrived of it.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let state = std::mem::replace(&mut self.state, State::Start);
        if self.oversize {
            let n = buf.len();
            self.keep_partial(buf, n);
            return Some(self.finish_oversize());
        }
        match state {
            State::Start if buf.iter().all(|b| matches!(b, b'\n' | b'\r' | 0)) => {
                self.framing_bytes += buf.len();
                buf.clear();
                None
            }
            _ => {
                let data = buf.split().freeze();
                let original_len = data.len();
                let mut data = data;
                data.truncate(self.keep);
                Some(Frame { data, original_len })
            }
        }
    }

    fn start_oversize(&mut self) {
        self.oversize = true;
        self.partial = BytesMut::with_capacity(self.keep.min(1 << 20));
        self.partial_len = 0;
    }

    /// Moves `n` bytes of `buf` into the oversize message, keeping at most `keep`.
    fn keep_partial(&mut self, buf: &mut BytesMut, n: usize) {
        let room = self.keep.saturating_sub(self.partial.len()).min(n);
        self.partial.extend_from_slice(&buf[..room]);
        buf.advance(n);
        self.partial_len += n;
    }

    fn finish_oversize(&mut self) -> Frame {
        self.oversize = false;
        let mut data = std::mem::take(&mut self.partial).freeze();
        let mut original_len = self.partial_len;
        self.partial_len = 0;
        // A counted frame's own trailing LF is framing, not message.
        if data.len() == original_len && data.ends_with(b"\n") {
            data.truncate(data.len() - 1);
            original_len -= 1;
            self.framing_bytes += 1;
        }
        Frame { data, original_len }
    }
}

enum Count {
    Need,
    Len { len: usize, header: usize },
    NotCounted,
}

/// Reads `DIGITS SP` at the start of `buf`.
fn octet_count(buf: &[u8]) -> Count {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_COUNT_DIGITS {
        return Count::NotCounted;
    }
    match buf.get(digits) {
        None => Count::Need,
        Some(b' ') => {
            let mut len = 0usize;
            for b in &buf[..digits] {
                len = len * 10 + usize::from(b - b'0');
            }
            if len == 0 {
                Count::NotCounted
            } else {
                Count::Len {
                    len,
                    header: digits + 1,
                }
            }
        }
        Some(_) => Count::NotCounted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes, then ends the stream.
    fn frames(d: &mut Decoder, input: &[u8], chunk: usize) -> Vec<(String, usize)> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(part);
            while let Some(f) = d.decode(&mut buf) {
                out.push((
                    String::from_utf8_lossy(&f.data).into_owned(),
                    f.original_len,
                ));
            }
        }
        if let Some(f) = d.finish(&mut buf) {
            out.push((
                String::from_utf8_lossy(&f.data).into_owned(),
                f.original_len,
            ));
        }
        out
    }

    fn texts(input: &[u8]) -> Vec<String> {
        let mut all = None;
        // Every chunking gives the same messages.
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let got: Vec<String> = frames(&mut Decoder::new(1024, 1024, true), input, chunk)
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            if let Some(prev) = &all {
                assert_eq!(prev, &got, "chunk size {chunk}");
            }
            all = Some(got);
        }
        all.unwrap_or_default()
    }

    #[test]
    fn both_framings_mixed_on_one_stream() {
        let input =
            b"<13>first\n17 <13>second\nthird\n5 <1>x\n<14>fourth\r\n\n\n<15>fifth\0<16>sixth";
        assert_eq!(
            texts(input),
            [
                "<13>first",
                "<13>second\nthird",
                "<1>x",
                "<14>fourth",
                "<15>fifth",
                "<16>sixth"
            ]
        );
    }

    #[test]
    fn rsyslog_counted_trailing_newline_is_stripped() {
        let msg = "<13>1 2026-01-01T00:00:00Z h a - - - body\n";
        let input = format!("{} {msg}{} {msg}", msg.len(), msg.len());
        assert_eq!(texts(input.as_bytes()), [msg.trim_end(), msg.trim_end()]);
    }

    #[test]
    fn digits_without_space_are_a_delimited_message() {
        assert_eq!(
            texts(b"2026-01-01T00:00:00Z host app: no pri\n12345678901 x\n"),
            ["2026-01-01T00:00:00Z host app: no pri", "12345678901 x"]
        );
    }

    #[test]
    fn oversize_is_cut_and_measured() {
        let long = "x".repeat(100);
        let input = format!("{long}\n<1>ok\n100 {long}<2>ok\n{long}");
        let got = frames(&mut Decoder::new(10, 10, false), input.as_bytes(), 7);
        let x10 = "x".repeat(10);
        assert_eq!(
            got,
            [
                (x10.clone(), 100),
                ("<1>ok".into(), 5),
                (x10.clone(), 100),
                ("<2>ok".into(), 5),
                (x10, 100)
            ]
        );
        // Whole (up to `keep`) for the invalid route.
        let got = frames(&mut Decoder::new(10, 50, false), input.as_bytes(), 3);
        assert_eq!(got[0], ("x".repeat(50), 100));
        assert_eq!(got[2], ("x".repeat(50), 100));
    }

    #[test]
    fn short_counted_frame_at_end_is_kept() {
        assert_eq!(texts(b"50 <13>cut short"), ["<13>cut short"]);
        assert_eq!(texts(b"\n\n\0"), Vec::<String>::new());
    }
}
