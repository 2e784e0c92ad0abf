//! A fast path for the syslog headers most senders write.
//!
//! `syslog_loose` tries RFC 5424 and then RFC 3164 with nom combinators;
//! on the benchmark's messages that is about a fifth of all the work a
//! message costs in the flow. Nearly every real message has one of two
//! shapes: the RFC 5424 header rsyslog's and syslog-ng's forwarding write,
//! and the BSD header `<PRI>Mmm dd hh:mm:ss host app[pid]: text`. This module
//! reads exactly those shapes, byte by byte, and gives up (`None`) at the
//! first byte that departs from them: a doubled space, a tab, a byte outside
//! printable ASCII in a header field, an escaped structured-data value, a
//! 3164 header without a hostname, a body that `syslog_loose` would read as
//! structured data. The caller then asks `syslog_loose`, so every message is
//! still parsed by the crate's rules.
//!
//! Where it answers, the answer is the `Message` that `syslog_loose` gives
//! for the same text, field for field, including its quirks (a 5424 app name
//! may end in a colon; a 3164 tag of `-` drops the hostname). The property
//! test below checks that on generated headers made of the pieces where the
//! two could part ways.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, Offset, TimeZone};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, StructuredElement};

use crate::syslog_parse::Zone;

/// `text` parsed as `syslog_loose` (`Variant::Either`) would parse it, if it
/// has one of the common shapes; `None` otherwise. `get_year` gives the year
/// of a 3164 date, as for `syslog_loose`.
pub(crate) fn parse(
    text: &str,
    zone: Zone,
    get_year: impl FnOnce(IncompleteDate) -> i32,
) -> Option<Message<&str>> {
    // syslog_loose parses the trimmed text; a text starting with `<` has
    // nothing to trim at its start.
    let text = text.trim_end();
    let b = text.as_bytes();
    if b.first() != Some(&b'<') {
        return None;
    }
    let mut at = 1;
    let pri = digits(b, &mut at, 3)?;
    if b.get(at) != Some(&b'>') || pri > 191 {
        return None;
    }
    at += 1;
    let (facility, severity) = syslog_loose::decompose_pri(u8::try_from(pri).ok()?);
    let mut msg = match b.get(at)? {
        b'0'..=b'9' => rfc5424(text, at)?,
        b'A'..=b'Z' | b'a'..=b'z' => rfc3164(text, at, zone, get_year)?,
        _ => return None,
    };
    msg.facility = facility;
    msg.severity = severity;
    Some(msg)
}

/// The 5424 header from the version on: `1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
fn rfc5424(text: &str, mut at: usize) -> Option<Message<&str>> {
    let b = text.as_bytes();
    let version = digits(b, &mut at, 2)?;
    at = single_space(b, at)?;
    let timestamp = if b.get(at) == Some(&b'-') {
        at += 1;
        None
    } else {
        let end = at + b[at..].iter().position(|&c| c == b' ')?;
        let ts = rfc3339(&b[at..end])?;
        at = end;
        Some(ts)
    };
    at = single_space(b, at)?;
    let hostname = field(text, &mut at, false)?;
    at = single_space(b, at)?;
    let appname = field(text, &mut at, true)?;
    at = single_space(b, at)?;
    let procid = field(text, &mut at, true)?;
    at = single_space(b, at)?;
    let msgid = field(text, &mut at, true)?;
    at = single_space(b, at)?;
    let structured_data = match b.get(at)? {
        b'-' => {
            at += 1;
            Vec::new()
        }
        b'[' => structured_data(text, &mut at)?,
        _ => return None,
    };
    Some(Message {
        protocol: Protocol::RFC5424(version),
        facility: None,
        severity: None,
        timestamp,
        hostname,
        appname,
        procid: procid.map(ProcId::from),
        msgid,
        structured_data,
        msg: &text[skip_blanks(b, at)..],
    })
}

/// The 3164 header from the month on: `Mmm dd hh:mm:ss HOST TAG: MSG`.
fn rfc3164(
    text: &str,
    mut at: usize,
    zone: Zone,
    get_year: impl FnOnce(IncompleteDate) -> i32,
) -> Option<Message<&str>> {
    let b = text.as_bytes();
    let month = month(b.get(at..at + 3)?)?;
    at = blanks1(b, at + 3)?;
    let day = digits(b, &mut at, 2)?;
    at = blanks1(b, at)?;
    let hour = digits(b, &mut at, 2)?;
    let minute = colon_digits(b, &mut at)?;
    let second = colon_digits(b, &mut at)?;
    if b.get(at) == Some(&b':') {
        at += 1;
    }
    let date = (month, day, hour, minute, second);
    let timestamp = local_time(zone, get_year(date), date)?;
    // ` HOST`: a hostname that ends in a colon is the tag of a header
    // without one, which syslog_loose reads its own way.
    at = single_space(b, at)?;
    let host = field(text, &mut at, false)?;
    // ` TAG`, up to a colon or a space.
    let tag = if at == b.len() {
        None
    } else {
        at = single_space(b, at)?;
        let start = at;
        while at < b.len() && is_field_byte(b[at]) && b[at] != b':' {
            at += 1;
        }
        if at == start || !(at == b.len() || matches!(b[at], b' ' | b':')) {
            return None;
        }
        let tag = &text[start..at];
        Some((tag != "-").then_some(tag))
    };
    at = skip_blanks(b, at);
    if b.get(at) == Some(&b':') {
        at += 1;
    }
    at = skip_blanks(b, at);
    // A body starting with `-` or `[` may be taken for structured data.
    if matches!(b.get(at), Some(b'-' | b'[')) {
        return None;
    }
    let (hostname, appname, procid) = match tag {
        Some(Some(tag)) => match app_and_pid(tag) {
            Some((app, pid)) => (host, Some(app), Some(pid)),
            None => (host, Some(tag), None),
        },
        None => match host {
            Some(field) => match app_and_pid(field) {
                Some((app, pid)) => (None, Some(app), Some(pid)),
                None => (Some(field), None, None),
            },
            None => (None, None, None),
        },
        Some(None) => (None, None, None),
    };
    Some(Message {
        protocol: Protocol::RFC3164,
        facility: None,
        severity: None,
        timestamp: Some(timestamp),
        hostname,
        appname,
        procid: procid.map(ProcId::from),
        msgid: None,
        structured_data: Vec::new(),
        msg: &text[at..],
    })
}

/// A 3164 date read in `zone`, as syslog_loose makes it.
fn local_time(zone: Zone, year: i32, date: IncompleteDate) -> Option<DateTime<FixedOffset>> {
    let (month, day, hour, minute, second) = date;
    match zone {
        Zone::Fixed(z) => z
            .with_ymd_and_hms(year, month, day, hour, minute, second)
            .earliest()
            .map(|t| t.with_timezone(&t.offset().fix())),
        Zone::Local => Local
            .with_ymd_and_hms(year, month, day, hour, minute, second)
            .earliest()
            .map(Into::into),
    }
}

/// `app[pid]` split, when the tag is exactly that (no colon in the app, the
/// pid not empty).
fn app_and_pid(tag: &str) -> Option<(&str, &str)> {
    let open = tag.find(['[', ':'])?;
    if tag.as_bytes()[open] == b':' {
        return None;
    }
    let rest = &tag[open + 1..];
    let close = rest.find(']')?;
    (close > 0 && close + 1 == rest.len()).then(|| (&tag[..open], &rest[..close]))
}

/// Month abbreviation, any case.
fn month(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let lower = [
        name[0].to_ascii_lowercase(),
        name[1].to_ascii_lowercase(),
        name[2].to_ascii_lowercase(),
    ];
    let index = MONTHS.iter().position(|m| **m == lower)?;
    u32::try_from(index + 1).ok()
}

/// A header field up to the next space (or the end): printable ASCII,
/// `-` for none. A field of `:` alone is refused, and so is one ending in a
/// colon unless `trailing_colon` (syslog_loose splits such a field).
// The outer `None` leaves the message to syslog_loose; `Some(None)` is `-`.
#[allow(clippy::option_option)]
fn field<'a>(text: &'a str, at: &mut usize, trailing_colon: bool) -> Option<Option<&'a str>> {
    let b = text.as_bytes();
    let start = *at;
    while *at < b.len() && is_field_byte(b[*at]) {
        *at += 1;
    }
    if *at == start || (*at < b.len() && b[*at] != b' ') {
        return None;
    }
    let value = &text[start..*at];
    if value == ":" || (!trailing_colon && value.ends_with(':')) {
        return None;
    }
    Some((value != "-").then_some(value))
}

fn is_field_byte(c: u8) -> bool {
    c.is_ascii_graphic()
}

/// Structured data of the plain kind: `[id name="value" ...]...`, values
/// without backslashes, one space between parameters.
fn structured_data<'a>(text: &'a str, at: &mut usize) -> Option<Vec<StructuredElement<&'a str>>> {
    let b = text.as_bytes();
    let mut elements = Vec::new();
    while b.get(*at) == Some(&b'[') {
        *at += 1;
        let id = sd_name(text, at)?;
        let mut params = Vec::new();
        loop {
            match b.get(*at)? {
                b']' => break,
                b' ' => {
                    *at += 1;
                    let name = sd_name(text, at)?;
                    if b.get(*at) != Some(&b'=') || b.get(*at + 1) != Some(&b'"') {
                        return None;
                    }
                    *at += 2;
                    let start = *at;
                    let len = b[start..].iter().position(|&c| c == b'"' || c == b'\\')?;
                    *at += len;
                    if b[*at] != b'"' {
                        return None;
                    }
                    params.push((name, &text[start..*at]));
                    *at += 1;
                }
                _ => return None,
            }
        }
        *at += 1;
        elements.push(StructuredElement { id, params });
    }
    Some(elements)
}

/// An SD-ID or parameter name: printable ASCII but `=`, `]`, `"`, `[`.
fn sd_name<'a>(text: &'a str, at: &mut usize) -> Option<&'a str> {
    let b = text.as_bytes();
    let start = *at;
    while *at < b.len() && is_field_byte(b[*at]) && !matches!(b[*at], b'=' | b']' | b'"' | b'[') {
        *at += 1;
    }
    (*at > start).then(|| &text[start..*at])
}

/// RFC 3339 as chrono reads it, in its common form only: upper-case `T` and
/// `Z`, a fraction of 1 to 9 digits, no leap second (chrono's `and_hms`
/// refuses second 60).
fn rfc3339(t: &[u8]) -> Option<DateTime<FixedOffset>> {
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = t.get(from..from + len)?;
        part.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punct = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punct.iter().any(|&(i, c)| t.get(i) != Some(&c)) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 2)?, num(8, 2)?)?;
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut at = 19;
    let mut nanos = 0;
    if t.get(at) == Some(&b'.') {
        let len = t[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=9).contains(&len) {
            return None;
        }
        nanos = num(at + 1, len)? * 10u32.pow(u32::try_from(9 - len).ok()?);
        at += 1 + len;
    }
    let offset = match t.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let local = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    FixedOffset::east_opt(offset)?
        .from_local_datetime(&local)
        .single()
}

/// 1 to `max` ASCII digits at `*at`, as a number.
fn digits(b: &[u8], at: &mut usize, max: usize) -> Option<u32> {
    let start = *at;
    let mut n = 0u32;
    while *at < b.len() && b[*at].is_ascii_digit() && *at - start < max {
        n = n * 10 + u32::from(b[*at] - b'0');
        *at += 1;
    }
    // More digits than `max`: not the common shape.
    if *at == start || b.get(*at).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(n)
}

/// `:` and one or two digits.
fn colon_digits(b: &[u8], at: &mut usize) -> Option<u32> {
    if b.get(*at) != Some(&b':') {
        return None;
    }
    *at += 1;
    digits(b, at, 2)
}

/// Exactly one space at `at`, followed by something that is not a blank.
fn single_space(b: &[u8], at: usize) -> Option<usize> {
    (b.get(at) == Some(&b' ') && !matches!(b.get(at + 1), None | Some(b' ' | b'\t')))
        .then_some(at + 1)
}

/// Past any spaces and tabs (nom's `space0`).
fn skip_blanks(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

/// Past one or more spaces and tabs (nom's `space1`).
fn blanks1(b: &[u8], at: usize) -> Option<usize> {
    let past = skip_blanks(b, at);
    (past > at).then_some(past)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use proptest::prelude::*;
    use proptest::sample::select;
    use syslog_loose::Variant;

    use super::*;

    /// The year function both parsers get: any fixed rule will do.
    fn year((month, ..): IncompleteDate) -> i32 {
        if month == 12 { 2025 } else { 2026 }
    }

    fn slow(text: &str, zone: Zone) -> Option<Message<&str>> {
        match zone {
            Zone::Fixed(z) => {
                syslog_loose::parse_message_with_year_exact_tz(text, year, Some(z), Variant::Either)
            }
            Zone::Local => syslog_loose::parse_message_with_year_exact_tz::<_, Local>(
                text,
                year,
                None,
                Variant::Either,
            ),
        }
        .ok()
    }

    /// Every field, the timestamp with its offset and the body as a
    /// position in `text` (the caller cuts the body from there).
    fn fields(text: &str, m: &Message<&str>) -> String {
        let sd: Vec<(&str, &Vec<(&str, &str)>)> = m
            .structured_data
            .iter()
            .map(|e| (e.id, &e.params))
            .collect();
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} at {} len {}",
            m.protocol,
            m.facility,
            m.severity,
            m.timestamp,
            m.timestamp.map(|t| t.offset().local_minus_utc()),
            m.hostname,
            m.appname,
            m.procid,
            m.msgid,
            sd,
            m.msg,
            m.msg.as_ptr() as usize - text.as_ptr() as usize,
            m.msg.len(),
        )
    }

    fn utc() -> Zone {
        Zone::Fixed(Utc.fix())
    }

    #[test]
    fn common_shapes_take_the_fast_path_and_agree() {
        for text in [
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event"#,
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
            "<86>1 2026-11-23T12:00:01.123456+01:00 host app 42 - - msg\n",
            r#"<14>1 2026-11-23T12:01:02.003Z web-03 nginx 4242 ACCESS [meta@32473 seq="7" zone="eu-1"][b x=""] GET /"#,
            "<13>1 - - - - - -",
            "<13>Nov 23 12:00:01 web-01 nginx[1234]: GET / 200",
            "<13>Nov  3 12:00:01 web-01 nginx[1234]: GET / 200",
            "<38>Dec 31 23:59:59 fw01 sshd: Accepted publickey",
            "<0>Jan 1 00:00:00 10.0.0.1 kernel[0]: Oops",
            "<13>Nov 23 12:00:01 web-01 -: drops the host, as syslog_loose does",
            "<13>Nov 23 12:00:01 app[12]",
            "<13>Nov 23 12:00:01 a:b[12]",
        ] {
            for zone in [
                utc(),
                Zone::Fixed(FixedOffset::east_opt(19_800).unwrap()),
                Zone::Local,
            ] {
                let fast = parse(text, zone, year).unwrap_or_else(|| panic!("slow path: {text}"));
                let slow = slow(text, zone).expect("syslog_loose parses it");
                assert_eq!(fields(text, &fast), fields(text, &slow), "{text}");
            }
        }
    }

    #[test]
    fn unusual_shapes_are_left_to_syslog_loose() {
        for text in [
            "<13>Oct 11 22:14:15 app: no hostname",
            "<13>Oct 11 22:14:15  two spaces",
            "<13>Oct 11 2023 22:14:15 host app: with a year",
            "<13>2023-10-11T22:14:15Z host app: ISO in 3164",
            r#"<13>1 2003-10-11T22:14:15Z h a p m [id a="x\"y"] escaped"#,
            "<13>Oct 11 22:14:15 host app: [sd-looking] body",
            "Oct 11 22:14:15 host app: no PRI",
            "<13>1 2003-10-11t22:14:15z h a p m - lower-case t",
            "<13>Oct 11 22:14:15 hôst app: not ASCII",
        ] {
            assert!(parse(text, utc(), year).is_none(), "{text}");
        }
    }

    fn pick(items: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
        select(items)
    }

    /// One of the usual pieces three times in four, else one of the odd.
    fn piece(
        usual: &'static [&'static str],
        odd: &'static [&'static str],
    ) -> impl Strategy<Value = &'static str> {
        prop_oneof![3 => select(usual), 1 => select(odd)]
    }

    const PRIS: (&[&str], &[&str]) = (
        &["<13>", "<0>", "<191>", "<165>"],
        &["<013>", "<>", "<19a>", "<0013>", ""],
    );
    const SEP: (&[&str], &[&str]) = (&[" "], &["  ", "\t", ""]);
    const BODIES: (&[&str], &[&str]) = (
        &["msg", "GET / 200 OK", "a\r\n", "é ünï"],
        &[
            "",
            " msg",
            "msg  ",
            "\u{feff}BOM",
            " \t msg\n",
            "[x] y",
            "[a b=\"c\"] y",
            "- y",
            ": y",
            "-",
        ],
    );

    fn rfc3339_text() -> impl Strategy<Value = String> {
        (
            piece(&["2003", "2026"], &["0000", "9999", "203"]),
            piece(&["10", "01", "12"], &["13", "00", "1"]),
            piece(&["11", "28"], &["31", "30", "29", "00"]),
            piece(&["T"], &["t", "_"]),
            piece(&["22", "00", "23"], &["24", "2"]),
            piece(&["14", "59"], &["60"]),
            piece(&["15", "59", "00"], &["60", "5"]),
            piece(
                &["", ".003", ".52", ".123456789"],
                &[".0", ".1234567891", "."],
            ),
            piece(
                &["Z", "+02:00", "-07:30"],
                &["z", "+23:59", "+24:00", "-00:00", "+0200", "+02:60", ""],
            ),
        )
            .prop_map(|(y, mo, d, t, h, mi, s, f, z)| format!("{y}-{mo}-{d}{t}{h}:{mi}:{s}{f}{z}"))
    }

    fn rfc5424_text() -> impl Strategy<Value = String> {
        let ts = prop_oneof![
            4 => rfc3339_text(),
            1 => pick(&["-", "-x", ""]).prop_map(String::from),
        ];
        let header = (
            piece(PRIS.0, PRIS.1),
            piece(&["1"], &["2", "12", "123", "01", ""]),
            ts,
            piece(
                &["web-01", "-", "::1"],
                &[":", "a:", "2001:db8::1", "é", "h\u{a0}x", "a]b", "[x]"],
            ),
            piece(&["sshd", "-"], &[":", "app:", "a:b", "ünï", "x[1]"]),
            piece(
                &["1234", "-"],
                &["+5", "-5", "abc", "99999999999", ":", "p:"],
            ),
            piece(&["ID47", "-"], &[":", "m:", "[x]"]),
        );
        let sd = piece(
            &[
                "-",
                r#"[id a="1"]"#,
                r#"[meta@32473 seq="12" zone="eu-1"]"#,
                r#"[a b="c"][d e="f"]"#,
            ],
            &[
                "-x",
                "[id]",
                r#"[id a="1" b=""]"#,
                r#"[id a="x\"y"]"#,
                r#"[id  a="1"]"#,
                r#"[id a="1" ]"#,
                r#"[id a="]"]"#,
                "[id a=1]",
                r#"[id a= "1"]"#,
                r#"[id a="1""#,
                "[]",
                r#"[id a="é"]"#,
                "[x=y]",
                r#"[id a=""b"]"#,
            ],
        );
        let seps = prop::collection::vec(piece(SEP.0, SEP.1), 7);
        (header, seps, sd, piece(BODIES.0, BODIES.1)).prop_map(
            |((pri, version, ts, host, app, procid, msgid), s, sd, body)| {
                format!(
                    "{pri}{version}{}{ts}{}{host}{}{app}{}{procid}{}{msgid}{}{sd}{}{body}",
                    s[0], s[1], s[2], s[3], s[4], s[5], s[6]
                )
            },
        )
    }

    fn rfc3164_text() -> impl Strategy<Value = String> {
        let date = (
            piece(PRIS.0, PRIS.1),
            piece(&[""], &[" "]),
            piece(&["Oct", "oct", "OCT", "Dec"], &["Feb", "Foo", "Ma"]),
            piece(&[" ", "  "], &["\t", ""]),
            piece(&["11", "1", "01"], &["30", "31", "001", "0"]),
            piece(&[" "], &["  ", ""]),
            piece(
                &["22:14:15", "2:4:5", "23:59:59"],
                &[
                    "22:14:15:",
                    "24:00:00",
                    "23:59:60",
                    "22:14",
                    "2023 22:14:15",
                    "22:14:15.123",
                ],
            ),
        );
        let rest = (
            piece(SEP.0, SEP.1),
            piece(
                &["web-01", "host", "10.0.0.1", "-"],
                &[":", "app:", "app[12]:", "a:b[1]", "é", "app[1]", "a[1]b"],
            ),
            piece(SEP.0, &["  ", "", ":", "\t"]),
            piece(
                &["sshd[123]", "sshd", "-", "su[+5]"],
                &[
                    "app[]", "app[1]x", "[1]", "a[1[2]]", "x[1]y[2]", "app:", "ünï[1]", "", "a:b",
                ],
            ),
            piece(&[": ", ":"], &[" ", "", " : ", "::", ":\t"]),
            piece(BODIES.0, BODIES.1),
        );
        // A quarter end after the host (`host` alone is read as a tag).
        (date, rest, any::<u8>()).prop_map(
            |((pri, pre, mon, s1, day, s2, time), (s3, host, s4, tag, s5, body), cut)| {
                if cut % 4 == 0 {
                    let end = if cut % 8 == 0 { "" } else { " " };
                    format!("{pri}{pre}{mon}{s1}{day}{s2}{time}{s3}{host}{end}")
                } else {
                    format!("{pri}{pre}{mon}{s1}{day}{s2}{time}{s3}{host}{s4}{tag}{s5}{body}")
                }
            },
        )
    }

    fn zone() -> impl Strategy<Value = Zone> {
        prop_oneof![
            Just(utc()),
            Just(Zone::Fixed(FixedOffset::west_opt(25_200).unwrap())),
            Just(Zone::Local),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Wherever the fast path answers, syslog_loose answers the same.
        #[test]
        fn agrees_with_syslog_loose(
            text in prop_oneof![rfc5424_text(), rfc3164_text()],
            zone in zone(),
        ) {
            if let Some(fast) = parse(&text, zone, year) {
                let slow = slow(&text, zone);
                prop_assert!(slow.is_some(), "syslog_loose refuses {text:?}");
                let slow = slow.unwrap_or_else(|| unreachable!());
                prop_assert_eq!(fields(&text, &fast), fields(&text, &slow), "{:?}", text);
            }
        }

        /// Arbitrary text: never a panic, and agreement where it answers.
        #[test]
        fn arbitrary_text_is_safe(text in "<[0-9]{1,3}>[ -~\t\u{a0}é]{0,80}", zone in zone()) {
            if let Some(fast) = parse(&text, zone, year) {
                let slow = slow(&text, zone);
                prop_assert!(slow.is_some(), "syslog_loose refuses {text:?}");
                let slow = slow.unwrap_or_else(|| unreachable!());
                prop_assert_eq!(fields(&text, &fast), fields(&text, &slow), "{:?}", text);
            }
        }
    }
}
