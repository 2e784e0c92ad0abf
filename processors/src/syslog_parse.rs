//! Syslog parsing shared by `ListenSyslog` and `ParseSyslog`.
//!
//! One message (the bytes of one datagram or one TCP frame) becomes either
//! attributes plus a body, or a [`ParseError`] saying why not. RFC 5424 is
//! tried first, then RFC 3164 with its common vendor variants (the parsing
//! itself is `syslog_loose`'s, with a faster reading of the two common
//! header shapes in `syslog_fast` that gives the same result):
//!
//! - no `<PRI>`: the message gets PRI 13 (`user.notice`), as RFC 3164
//!   section 4.3.3 tells a relay to assume;
//! - no hostname (`<13>Oct 11 22:14:15 app[12]: text`): `syslog.hostname` is
//!   left unset (the sender's address is in `syslog.sender`);
//! - ISO 8601 / RFC 3339 timestamps in a 3164 header are taken as written;
//! - a 3164 timestamp has no year and no zone: the zone is the `timezone`
//!   property (`local` by default) and the year is the one that puts the
//!   timestamp closest to now without being more than a day ahead (so a
//!   `Dec 31` line read on January 1st belongs to last year).
//!
//! A message is invalid when it is empty, has a PRI above 191, has neither a
//! 5424 nor a 3164 header (`syslog_loose` fails), or has bytes that are not
//! UTF-8 inside its header. Bytes that are not UTF-8 in the body are kept as
//! they are.
//!
//! Attributes set: `syslog.priority`, `syslog.severity` (0-7),
//! `syslog.severity.name` (`err`...), `syslog.facility` (0-23),
//! `syslog.facility.name` (`local0`...), `syslog.version` (5424 only),
//! `syslog.timestamp` (RFC 3339), `syslog.hostname`, `syslog.appname`,
//! `syslog.procid`, `syslog.msgid`, and `syslog.sd.<id>.<param>` for each
//! structured-data parameter; each only when the message has it.

use std::sync::LazyLock;

use bytes::Bytes;
use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, Offset, SecondsFormat, Timelike, Utc,
};
use sluice_runtime::AttrStr;
use syslog_loose::{IncompleteDate, Message, ProcId, Variant};

use crate::intern::Interner;

/// Largest valid PRI (facility 23, severity 7).
const MAX_PRI: u8 = 191;
/// PRI assumed when a message has none (user.notice).
const DEFAULT_PRI: u8 = 13;

/// Attribute names, built once and shared by every FlowFile.
pub struct Keys {
    /// `syslog.priority`
    pub priority: AttrStr,
    /// `syslog.severity`
    pub severity: AttrStr,
    /// `syslog.severity.name`
    pub severity_name: AttrStr,
    /// `syslog.facility`
    pub facility: AttrStr,
    /// `syslog.facility.name`
    pub facility_name: AttrStr,
    /// `syslog.version`
    pub version: AttrStr,
    /// `syslog.timestamp`
    pub timestamp: AttrStr,
    /// `syslog.hostname`
    pub hostname: AttrStr,
    /// `syslog.appname`
    pub appname: AttrStr,
    /// `syslog.procid`
    pub procid: AttrStr,
    /// `syslog.msgid`
    pub msgid: AttrStr,
    /// `syslog.error`: why a message went to `invalid`.
    pub error: AttrStr,
    /// `syslog.sender`
    pub sender: AttrStr,
    /// `syslog.port`
    pub port: AttrStr,
    /// `syslog.protocol`
    pub protocol: AttrStr,
    /// `syslog.truncated`
    pub truncated: AttrStr,
    /// `syslog.original.size`
    pub original_size: AttrStr,
    priorities: Vec<AttrStr>,
    small_numbers: Vec<AttrStr>,
    severity_names: Vec<AttrStr>,
    facility_names: Vec<AttrStr>,
}

/// The shared attribute names and common values.
pub static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let s = AttrStr::constant;
    Keys {
        priority: s("syslog.priority"),
        severity: s("syslog.severity"),
        severity_name: s("syslog.severity.name"),
        facility: s("syslog.facility"),
        facility_name: s("syslog.facility.name"),
        version: s("syslog.version"),
        timestamp: s("syslog.timestamp"),
        hostname: s("syslog.hostname"),
        appname: s("syslog.appname"),
        procid: s("syslog.procid"),
        msgid: s("syslog.msgid"),
        error: s("syslog.error"),
        sender: s("syslog.sender"),
        port: s("syslog.port"),
        protocol: s("syslog.protocol"),
        truncated: s("syslog.truncated"),
        original_size: s("syslog.original.size"),
        priorities: (0..=MAX_PRI).map(|p| s(&p.to_string())).collect(),
        small_numbers: (0..24u8).map(|p| s(&p.to_string())).collect(),
        severity_names: (0..8u8)
            .map(|n| s(sluice_runtime::severity::severity_name(n).unwrap_or("unknown")))
            .collect(),
        facility_names: FACILITY_NAMES.iter().map(|n| s(n)).collect(),
    }
});

/// Facility names by number (RFC 5424 section 6.2.1; the names rsyslog uses).
pub const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clockd", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Why a message could not be parsed (it goes to `invalid` with its raw bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("empty message")]
    Empty,
    /// `<PRI>` above 191.
    #[error("PRI {0} is outside 0..=191")]
    BadPri(u32),
    /// Neither an RFC 5424 nor an RFC 3164 header.
    #[error("not an RFC 5424 or RFC 3164 syslog message")]
    NoHeader,
    /// Bytes that are not UTF-8 before the message body.
    #[error("bytes that are not UTF-8 at offset {0}, inside the syslog header")]
    NotUtf8(usize),
}

/// How 3164 timestamps without a zone are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The machine's local time zone.
    Local,
    /// A fixed offset (`UTC`, `+02:00`).
    Fixed(FixedOffset),
}

impl Zone {
    /// Parses `local`, `UTC`/`Z`, or an offset such as `+02:00`, `-0500`.
    ///
    /// # Errors
    /// None of those, with a message.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if t.eq_ignore_ascii_case("utc") || t == "Z" || t.eq_ignore_ascii_case("gmt") {
            return Ok(Zone::Fixed(Utc.fix()));
        }
        let bad = || format!("`{s}` is not a time zone; write local, UTC or an offset like +02:00");
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let h: i32 = digits[..2].parse().map_err(|_| bad())?;
        let m: i32 = digits[2..].parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Zone::Fixed)
            .ok_or_else(bad)
    }
}

/// Parses syslog messages into attributes; cheap to share.
#[derive(Debug, Clone)]
pub struct SyslogParser {
    zone: Zone,
}

impl SyslogParser {
    /// A parser reading zone-less 3164 timestamps in `zone`.
    #[must_use]
    pub fn new(zone: Zone) -> Self {
        Self { zone }
    }

    /// Parses `raw`, appending the attributes to `attrs`, and returns the
    /// body (a slice of `raw`, without the trailing whitespace). `now` is the
    /// receive time, used to fill the year of 3164 timestamps.
    ///
    /// # Errors
    /// The message is not syslog (see the module docs); `attrs` is then
    /// unchanged.
    pub fn parse(
        &self,
        raw: &Bytes,
        now: DateTime<Utc>,
        values: &mut Interner,
        attrs: &mut Vec<(AttrStr, AttrStr)>,
    ) -> Result<Bytes, ParseError> {
        match std::str::from_utf8(raw) {
            Ok(text) => {
                let (body_start, body_len) = self.parse_text(text, now, values, attrs)?;
                Ok(raw.slice(body_start..body_start + body_len))
            }
            Err(e) => {
                // Parse a lossy copy; the header bytes before the first bad
                // byte are the same in both, so the body can be cut from the
                // raw bytes unchanged.
                let valid = e.valid_up_to();
                let lossy = String::from_utf8_lossy(raw);
                let mark = attrs.len();
                let (body_start, _) = self.parse_text(&lossy, now, values, attrs)?;
                if body_start > valid {
                    attrs.truncate(mark);
                    return Err(ParseError::NotUtf8(valid));
                }
                let body = raw[body_start..].trim_ascii_end();
                Ok(raw.slice(body_start..body_start + body.len()))
            }
        }
    }

    /// Parses text; returns the body as (offset, length) in `text`.
    fn parse_text(
        &self,
        text: &str,
        now: DateTime<Utc>,
        values: &mut Interner,
        attrs: &mut Vec<(AttrStr, AttrStr)>,
    ) -> Result<(usize, usize), ParseError> {
        if text.trim().is_empty() {
            return Err(ParseError::Empty);
        }
        if let Some(p) = leading_pri(text)
            && p > u32::from(MAX_PRI)
        {
            return Err(ParseError::BadPri(p));
        }
        // The common shapes first; whatever departs from them is read by
        // syslog_loose (same result, see syslog_fast).
        // Today in the zone: only 3164 dates need it.
        let today = || match self.zone {
            Zone::Local => now.with_timezone(&Local).date_naive(),
            Zone::Fixed(z) => now.with_timezone(&z).date_naive(),
        };
        let fast = crate::syslog_fast::parse(text, self.zone, |d| infer_year(d, today()));
        let msg = match (fast, self.zone) {
            (Some(msg), _) => Ok(msg),
            (None, Zone::Local) => {
                let today = today();
                syslog_loose::parse_message_with_year_exact_tz::<_, Local>(
                    text,
                    move |d| infer_year(d, today),
                    None,
                    Variant::Either,
                )
            }
            (None, Zone::Fixed(z)) => {
                let today = today();
                syslog_loose::parse_message_with_year_exact_tz(
                    text,
                    move |d| infer_year(d, today),
                    Some(z),
                    Variant::Either,
                )
            }
        }
        .map_err(|_| ParseError::NoHeader)?;
        let body = body_range(text, msg.msg);
        push_fields(&msg, values, attrs);
        Ok(body)
    }
}

/// The number inside a leading `<...>`, if the text starts with one.
fn leading_pri(text: &str) -> Option<u32> {
    let rest = text.trim_start().strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The year for a 3164 date without one: this year, unless that puts it
/// more than a day in the future (then last year).
fn infer_year(d: IncompleteDate, today: NaiveDate) -> i32 {
    let (month, day, ..) = d;
    let year = today.year();
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) if date > today + chrono::Duration::days(1) => year - 1,
        _ => year,
    }
}

/// Offset and length of `msg` (a slice of `text`, or a string elsewhere when
/// empty) with a leading UTF-8 BOM removed (RFC 5424 section 6.4).
fn body_range(text: &str, msg: &str) -> (usize, usize) {
    let base = text.as_ptr() as usize;
    let at = msg.as_ptr() as usize;
    let (mut start, mut len) = match at.checked_sub(base) {
        Some(off) if off + msg.len() <= text.len() => (off, msg.len()),
        _ => (text.trim_end().len(), 0),
    };
    if text[start..start + len].starts_with('\u{feff}') {
        start += 3;
        len -= 3;
    }
    (start, len)
}

/// Pushes the parsed fields in key order (so building the attribute map
/// needs no sort; structured data, when present, is sorted in its place).
fn push_fields(msg: &Message<&str>, values: &mut Interner, attrs: &mut Vec<(AttrStr, AttrStr)>) {
    let k = &*KEYS;
    let (facility, severity) = match (msg.facility, msg.severity) {
        (Some(f), Some(s)) => (f as u8, s as u8),
        _ => (DEFAULT_PRI >> 3, DEFAULT_PRI & 7),
    };
    let pri = usize::from(facility) * 8 + usize::from(severity);
    // Host and app names and message ids repeat across messages: shared.
    // Process ids and structured-data values are often one-offs: copied.
    let text = |attrs: &mut Vec<(AttrStr, AttrStr)>,
                values: &mut Interner,
                key: &AttrStr,
                v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty() && *v != "-") {
            attrs.push((key.clone(), values.get(v)));
        }
    };
    // syslog.appname < facility < facility.name < hostname < msgid <
    // priority < procid < sd.* < severity < severity.name < timestamp <
    // version
    text(attrs, values, &k.appname, msg.appname);
    attrs.push((
        k.facility.clone(),
        k.small_numbers[usize::from(facility)].clone(),
    ));
    attrs.push((
        k.facility_name.clone(),
        k.facility_names[usize::from(facility)].clone(),
    ));
    text(attrs, values, &k.hostname, msg.hostname);
    text(attrs, values, &k.msgid, msg.msgid);
    attrs.push((k.priority.clone(), k.priorities[pri].clone()));
    match &msg.procid {
        Some(ProcId::PID(p)) => {
            let value = match u64::try_from(*p) {
                Ok(n) => {
                    let mut text = Text::default();
                    text.number(n, 1);
                    text.shared()
                }
                Err(_) => AttrStr::from(p.to_string()),
            };
            attrs.push((k.procid.clone(), value));
        }
        Some(ProcId::Name(n)) if !n.is_empty() && *n != "-" => {
            attrs.push((k.procid.clone(), AttrStr::from(*n)));
        }
        Some(ProcId::Name(_)) | None => {}
    }
    let sd_start = attrs.len();
    let mut key = String::with_capacity(64);
    for element in &msg.structured_data {
        for (name, value) in element.params() {
            key.clear();
            key.push_str("syslog.sd.");
            key.push_str(element.id);
            key.push('.');
            key.push_str(name);
            attrs.push((values.get(&key), AttrStr::from(value)));
        }
    }
    attrs[sd_start..].sort_by(|a, b| a.0.cmp(&b.0));
    attrs.push((
        k.severity.clone(),
        k.small_numbers[usize::from(severity)].clone(),
    ));
    attrs.push((
        k.severity_name.clone(),
        k.severity_names[usize::from(severity)].clone(),
    ));
    if let Some(ts) = msg.timestamp {
        attrs.push((k.timestamp.clone(), rfc3339(&ts)));
    }
    if let syslog_loose::Protocol::RFC5424(v) = msg.protocol {
        let value = usize::try_from(v)
            .ok()
            .and_then(|i| k.small_numbers.get(i).cloned())
            .unwrap_or_else(|| AttrStr::from(v.to_string()));
        attrs.push((k.version.clone(), value));
    }
}

/// Short text built on the stack: numbers and timestamps become an attribute
/// value with one allocation, not a `String` and then a copy.
struct Text {
    buf: [u8; 48],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl Text {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `n` (below 100) as two digits.
    fn two(&mut self, n: u32) {
        self.byte(b'0' + (n / 10 % 10) as u8);
        self.byte(b'0' + (n % 10) as u8);
    }

    /// `n` in decimal, zero-padded to at least `width` digits.
    fn number(&mut self, mut n: u64, width: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        while n > 0 || digits.len() - i < width.max(1) {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        for &d in &digits[i..] {
            self.byte(d);
        }
    }

    fn shared(&self) -> AttrStr {
        // Only ASCII digits and punctuation are ever written.
        AttrStr::from(std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default())
    }
}

/// `ts` in RFC 3339, exactly as chrono's `to_rfc3339_opts(AutoSi, true)`
/// writes it (fraction of 0, 3, 6 or 9 digits, `Z` for UTC), without its
/// intermediate `String`. Years outside 0..=9999, leap seconds and offsets
/// with seconds are left to chrono.
fn rfc3339(ts: &DateTime<FixedOffset>) -> AttrStr {
    let offset = ts.offset().local_minus_utc();
    let nanos = ts.nanosecond();
    if !(0..=9999).contains(&ts.year()) || nanos >= 1_000_000_000 || offset % 60 != 0 {
        return AttrStr::from(ts.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    let local = ts.naive_local();
    let mut t = Text::default();
    let year = local.year().unsigned_abs();
    t.two(year / 100);
    t.two(year % 100);
    for (sep, n) in [
        (b'-', local.month()),
        (b'-', local.day()),
        (b'T', local.hour()),
        (b':', local.minute()),
        (b':', local.second()),
    ] {
        t.byte(sep);
        t.two(n);
    }
    if nanos != 0 {
        t.byte(b'.');
        if nanos.is_multiple_of(1_000_000) {
            t.number(u64::from(nanos / 1_000_000), 3);
        } else if nanos.is_multiple_of(1_000) {
            t.number(u64::from(nanos / 1_000), 6);
        } else {
            t.number(u64::from(nanos), 9);
        }
    }
    if offset == 0 {
        t.byte(b'Z');
    } else {
        t.byte(if offset < 0 { b'-' } else { b'+' });
        let minutes = offset.unsigned_abs() / 60;
        t.two(minutes / 60);
        t.byte(b':');
        t.two(minutes % 60);
    }
    t.shared()
}

/// The attributes of a message that went to `invalid`: why, as `syslog.error`.
pub fn push_error(error: &ParseError, attrs: &mut Vec<(AttrStr, AttrStr)>) {
    attrs.push((KEYS.error.clone(), AttrStr::from(error.to_string())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    fn parse_with(zone: Zone, raw: &[u8]) -> Result<(BTreeMap<String, String>, Bytes), ParseError> {
        let mut attrs = Vec::new();
        let body = SyslogParser::new(zone).parse(
            &Bytes::copy_from_slice(raw),
            now(),
            &mut Interner::default(),
            &mut attrs,
        )?;
        Ok((
            attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        ))
    }

    fn utc() -> Zone {
        Zone::parse("UTC").unwrap()
    }

    fn parse(raw: &str) -> (BTreeMap<String, String>, String) {
        let (a, b) = parse_with(utc(), raw.as_bytes()).unwrap();
        (a, String::from_utf8(b.to_vec()).unwrap())
    }

    fn expect(attrs: &BTreeMap<String, String>, want: &[(&str, &str)]) {
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(attrs, &want);
    }

    #[test]
    fn rfc5424_every_field() {
        let (a, body) = parse(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 \
             [exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\"][meta seq=\"7\"] \u{feff}An application event",
        );
        expect(
            &a,
            &[
                ("syslog.priority", "165"),
                ("syslog.severity", "5"),
                ("syslog.severity.name", "notice"),
                ("syslog.facility", "20"),
                ("syslog.facility.name", "local4"),
                ("syslog.version", "1"),
                ("syslog.timestamp", "2003-10-11T22:14:15.003Z"),
                ("syslog.hostname", "mymachine.example.com"),
                ("syslog.appname", "evntslog"),
                ("syslog.procid", "1234"),
                ("syslog.msgid", "ID47"),
                ("syslog.sd.exampleSDID@32473.iut", "3"),
                ("syslog.sd.exampleSDID@32473.eventSource", "Appli\"cation"),
                ("syslog.sd.meta.seq", "7"),
            ],
        );
        assert_eq!(body, "An application event");
    }

    #[test]
    fn rfc5424_nil_values_are_left_out() {
        let (a, body) = parse("<34>1 2003-10-11T22:14:15+02:00 - - - - - hello");
        expect(
            &a,
            &[
                ("syslog.priority", "34"),
                ("syslog.severity", "2"),
                ("syslog.severity.name", "crit"),
                ("syslog.facility", "4"),
                ("syslog.facility.name", "auth"),
                ("syslog.version", "1"),
                ("syslog.timestamp", "2003-10-11T22:14:15+02:00"),
            ],
        );
        assert_eq!(body, "hello");
    }

    #[test]
    fn rfc3164_year_and_zone_are_filled() {
        let (a, body) = parse("<13>Mar  9 08:01:02 web01 sshd[4242]: Accepted publickey");
        expect(
            &a,
            &[
                ("syslog.priority", "13"),
                ("syslog.severity", "5"),
                ("syslog.severity.name", "notice"),
                ("syslog.facility", "1"),
                ("syslog.facility.name", "user"),
                ("syslog.timestamp", "2026-03-09T08:01:02Z"),
                ("syslog.hostname", "web01"),
                ("syslog.appname", "sshd"),
                ("syslog.procid", "4242"),
            ],
        );
        assert_eq!(body, "Accepted publickey");
        // A December line read in March is from last year; a zone applies.
        let (a, _) = parse_with(
            Zone::parse("+02:00").unwrap(),
            b"<13>Dec 31 23:59:59 web01 cron: x",
        )
        .unwrap();
        assert_eq!(a["syslog.timestamp"], "2025-12-31T23:59:59+02:00");
        // Tomorrow is still this year (clock skew); later is last year.
        let (a, _) = parse("<13>Mar 11 10:00:00 h a: x");
        assert_eq!(a["syslog.timestamp"], "2026-03-11T10:00:00Z");
        let (a, _) = parse("<13>Mar 12 10:00:00 h a: x");
        assert_eq!(a["syslog.timestamp"], "2025-03-12T10:00:00Z");
    }

    #[test]
    fn rfc3164_variants() {
        // No hostname.
        let (a, body) = parse("<30>Mar 10 11:00:00 dhclient[77]: bound to 10.0.0.5");
        assert_eq!(a.get("syslog.hostname"), None);
        assert_eq!(a["syslog.appname"], "dhclient");
        assert_eq!(a["syslog.procid"], "77");
        assert_eq!(body, "bound to 10.0.0.5");
        // ISO timestamp in a 3164 header.
        let (a, body) = parse("<11>2026-03-10T11:00:00.250+01:00 fw01 kernel: DROP IN=eth0");
        assert_eq!(a["syslog.timestamp"], "2026-03-10T11:00:00.250+01:00");
        assert_eq!(a["syslog.hostname"], "fw01");
        assert_eq!(a["syslog.appname"], "kernel");
        assert_eq!(a["syslog.severity.name"], "err");
        assert_eq!(a.get("syslog.version"), None);
        assert_eq!(body, "DROP IN=eth0");
        // No PRI: user.notice is assumed.
        let (a, body) = parse("Mar 10 11:00:00 sw1 lldpd[9]: neighbour up");
        assert_eq!(a["syslog.priority"], "13");
        assert_eq!(a["syslog.severity.name"], "notice");
        assert_eq!(a["syslog.hostname"], "sw1");
        assert_eq!(body, "neighbour up");
    }

    #[test]
    fn invalid_messages_say_why() {
        let e = |raw: &[u8]| parse_with(utc(), raw).unwrap_err();
        assert_eq!(e(b""), ParseError::Empty);
        assert_eq!(e(b" \n"), ParseError::Empty);
        assert_eq!(e(b"<192>1 - - - - - - x"), ParseError::BadPri(192));
        assert_eq!(
            e(b"<99999>Mar 10 11:00:00 h a: x"),
            ParseError::BadPri(99999)
        );
        assert_eq!(e(b"just some words"), ParseError::NoHeader);
        assert_eq!(e(b"<13>no timestamp here"), ParseError::NoHeader);
        assert_eq!(
            e(b"<13>1 2026-03-10T11:00:00Z h\xff a - - - x"),
            ParseError::NotUtf8(28)
        );
    }

    #[test]
    fn latin1_body_is_kept_byte_for_byte() {
        let raw = b"<14>Mar 10 11:00:00 h app: caf\xe9 cr\xe8me\n";
        let (a, body) = parse_with(utc(), raw).unwrap();
        assert_eq!(a["syslog.appname"], "app");
        assert_eq!(&body[..], b"caf\xe9 cr\xe8me");
    }

    #[test]
    fn zones_parse() {
        assert_eq!(Zone::parse("local"), Ok(Zone::Local));
        assert_eq!(
            Zone::parse("-05:30").unwrap(),
            Zone::Fixed(FixedOffset::west_opt(19800).unwrap())
        );
        assert_eq!(
            Zone::parse("+0100").unwrap(),
            Zone::Fixed(FixedOffset::east_opt(3600).unwrap())
        );
        assert!(Zone::parse("Europe/Paris").is_err());
        assert!(Zone::parse("+25:00").is_err());
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// The timestamp text is chrono's, byte for byte: every year of
        /// 0..=9999, every kind of fraction, whole-minute offsets either way
        /// and the fallbacks (other years, leap seconds, offsets with seconds).
        #[test]
        fn timestamps_are_written_as_chrono_writes_them(
            secs in -62_167_219_200i64..253_402_300_800,
            nanos in proptest::prop_oneof![
                proptest::strategy::Just(0u32),
                (1u32..1000).prop_map(|n| n * 1_000_000),
                (1u32..1_000_000).prop_map(|n| n * 1_000),
                0u32..1_000_000_000,
                1_000_000_000u32..2_000_000_000,
            ],
            offset in proptest::prop_oneof![
                proptest::strategy::Just(0i32),
                (-1439i32..=1439).prop_map(|m| m * 60),
                -86_399i32..86_400,
            ],
            far in proptest::bool::weighted(0.05),
        ) {
            let secs = if far { secs * 3 } else { secs };
            let zone = FixedOffset::east_opt(offset).unwrap();
            if let Some(utc) = DateTime::from_timestamp(secs, nanos) {
                let ts = utc.with_timezone(&zone);
                let want = ts.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                let got = rfc3339(&ts);
                proptest::prop_assert_eq!(got.as_ref(), want.as_str());
            }
        }

        #[test]
        fn numbers_are_written_in_decimal(n in proptest::num::u64::ANY, width in 0usize..12) {
            let mut t = Text::default();
            t.number(n, width);
            let (got, want) = (t.shared(), format!("{n:0width$}"));
            proptest::prop_assert_eq!(got.as_ref(), want.as_str());
        }
    }
}
