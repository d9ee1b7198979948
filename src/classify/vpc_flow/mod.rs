//! Amazon VPC (and Transit Gateway) flow log records: the default version 2 format
//! recognised automatically, and custom formats in AWS's LogFormat syntax
//! (`${version} ${vpc-id} ...`, as `aws ec2 describe-flow-logs` prints it).
//!
//! A record is one line of space-separated values, one per field of its format, `-`
//! where a field does not apply. Recognising a line and finding its event type never
//! allocates; the parsed fields are produced only for the JSON output.

pub mod fields;

use serde::ser::{Serialize, SerializeMap, Serializer};

pub use fields::{Field, Kind, Scope, FIELDS};

/// The default format (version 2), as AWS documents it.
pub const DEFAULT_V2: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} \
${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// Event type of a record whose `action` is `ACCEPT`.
pub const ACCEPT: &str = "AWS_VPC_FLOW_ACCEPT";
/// Event type of a record whose `action` is `REJECT`.
pub const REJECT: &str = "AWS_VPC_FLOW_REJECT";
/// Event type of a record whose `log-status` is `NODATA` (no traffic in the window).
pub const NODATA: &str = "AWS_VPC_FLOW_NODATA";
/// Event type of a record whose `log-status` is `SKIPDATA` (records were skipped).
pub const SKIPDATA: &str = "AWS_VPC_FLOW_SKIPDATA";
/// Event type of a record that says neither (a custom format without `action` and
/// `log-status`, or a Transit Gateway record, which has no `action`).
pub const FLOW: &str = "AWS_VPC_FLOW";

/// What is wrong with a LogFormat string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No fields at all.
    #[error("empty format: name at least one field, e.g. \"${{version}} ${{srcaddr}}\"")]
    Empty,
    /// A token that is not `${name}`.
    #[error("expected ${{field}} separated by spaces, found {token:?}")]
    Token {
        /// The offending token.
        token: String,
    },
    /// A `${name}` AWS does not document.
    #[error(
        "unknown field ${{{name}}}{}; the fields are listed at \
         https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html",
        match .suggestion { Some(s) => format!(" (did you mean ${{{s}}}?)"), None => String::new() }
    )]
    UnknownField {
        /// The name inside `${...}`.
        name: String,
        /// The documented name it most resembles.
        suggestion: Option<&'static str>,
    },
    /// The same field twice (AWS rejects such formats).
    #[error("field ${{{name}}} appears more than once")]
    Duplicate {
        /// The repeated name.
        name: &'static str,
    },
    /// VPC-only and Transit Gateway-only fields together: no flow log has both.
    #[error(
        "mixes VPC-only field ${{{vpc}}} with Transit Gateway-only field ${{{tgw}}}; \
         a flow log is either a VPC or a Transit Gateway flow log"
    )]
    MixedScopes {
        /// The first VPC-only field.
        vpc: &'static str,
        /// The first Transit Gateway-only field.
        tgw: &'static str,
    },
}

/// A parsed LogFormat: the documented fields in record order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    fields: Box<[&'static Field]>,
    action: Option<usize>,
    log_status: Option<usize>,
}

impl Format {
    /// Parses a LogFormat string such as `"${version} ${srcaddr}"`, listing every
    /// problem it has.
    pub fn parse(text: &str) -> Result<Format, Vec<FormatError>> {
        let mut errors = Vec::new();
        let mut fields: Vec<&'static Field> = Vec::new();
        for token in text.split_ascii_whitespace() {
            let Some(name) = token.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
                errors.push(FormatError::Token {
                    token: token.to_owned(),
                });
                continue;
            };
            if name.contains(['$', '{', '}']) {
                errors.push(FormatError::Token {
                    token: token.to_owned(),
                });
                continue;
            }
            match fields::lookup(name) {
                Some(field) if fields.contains(&field) => {
                    let duplicate = FormatError::Duplicate { name: field.name };
                    if !errors.contains(&duplicate) {
                        errors.push(duplicate);
                    }
                }
                Some(field) => fields.push(field),
                None => errors.push(FormatError::UnknownField {
                    name: name.to_owned(),
                    suggestion: fields::suggest(name),
                }),
            }
        }
        if fields.is_empty() && errors.is_empty() {
            errors.push(FormatError::Empty);
        }
        let first = |scope| fields.iter().find(|f| f.scope == scope).map(|f| f.name);
        if let (Some(vpc), Some(tgw)) = (first(Scope::Vpc), first(Scope::TransitGateway)) {
            errors.push(FormatError::MixedScopes { vpc, tgw });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let position = |name: &str| fields.iter().position(|f| f.name == name);
        Ok(Format {
            action: position("action"),
            log_status: position("log-status"),
            fields: fields.into_boxed_slice(),
        })
    }

    /// The default version 2 format.
    pub fn default_v2() -> &'static Format {
        static V2: std::sync::LazyLock<Format> =
            std::sync::LazyLock::new(|| Format::parse(DEFAULT_V2).expect("the default is valid"));
        &V2
    }

    /// The fields, in record order.
    pub fn fields(&self) -> &[&'static Field] {
        &self.fields
    }

    /// The event type of a line in this format, or `None` when its number of
    /// values differs from the format's number of fields or a value is empty (two
    /// spaces in a row; AWS writes `-` for a missing value). Does not allocate.
    pub fn event_type(&self, line: &str) -> Option<&'static str> {
        let (mut action, mut log_status) = (None, None);
        let mut index = 0;
        let mut start = 0;
        // Splitting at an ASCII space always leaves `line` slices on char boundaries.
        let mut value_end = |index: usize, start: usize, end: usize| -> bool {
            if Some(index) == self.action {
                action = Some(&line[start..end]);
            } else if Some(index) == self.log_status {
                log_status = Some(&line[start..end]);
            }
            end > start
        };
        let complete = for_each_space(line.as_bytes(), |i| {
            if index + 1 >= self.fields.len() || !value_end(index, start, i) {
                return false;
            }
            index += 1;
            start = i + 1;
            true
        });
        if !complete || index + 1 != self.fields.len() || !value_end(index, start, line.len()) {
            return None;
        }
        Some(event_type(action, log_status))
    }

    /// The parsed fields of `line` for the JSON output, or `None` when the line
    /// does not fit this format. Borrows the line; serializing allocates nothing.
    pub fn record<'a>(&'a self, line: &'a str) -> Option<Record<'a>> {
        self.event_type(line).map(|_| Record { format: self, line })
    }
}

/// The FortiSIEM event type for a record's `action` and `log-status` values.
fn event_type(action: Option<&str>, log_status: Option<&str>) -> &'static str {
    match (log_status, action) {
        (Some("NODATA"), _) => NODATA,
        (Some("SKIPDATA"), _) => SKIPDATA,
        (_, Some("ACCEPT")) => ACCEPT,
        (_, Some("REJECT")) => REJECT,
        _ => FLOW,
    }
}

/// Recognises a default-format (version 2) line strictly and returns its event type;
/// `None` for anything else. Does not allocate.
///
/// A line fits when it has exactly 14 single-space-separated values and:
/// - `version` is `2`;
/// - `account-id` is 12 digits or `unknown` (interfaces AWS services create);
/// - `interface-id` is `eni-` and letters or digits. `NODATA` and `SKIPDATA`
///   records carry it too: a record always belongs to one interface (its log
///   stream), only the traffic values are `-` (AWS's examples:
///   `2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA`);
/// - ports, protocol, packets and bytes are digits or `-`; `start` and `end` digits;
/// - `action` is `ACCEPT` or `REJECT`, or `-` when `log-status` is not `OK`;
/// - `log-status` is `OK`, `NODATA` or `SKIPDATA`.
///
/// Addresses are only required to be non-empty (IPv4, IPv6 or `-`).
///
/// One pass, left to right, each value checked as it is split off: this runs for
/// every event of every log group without a configured format, and fusing the
/// split and the checks (digits eight at a time) cut its cost by about 40%
/// (docs/BENCHMARKS.md, `## Decode`).
pub fn detect_default(line: &str) -> Option<&'static str> {
    // Cheap reject for everything that is not a version 2 record (JSON, text).
    let rest = line.as_bytes().strip_prefix(b"2 ")?;
    let rest = match rest.strip_prefix(b"unknown ") {
        Some(rest) => rest,
        None => match rest.split_at_checked(12)? {
            (account, [b' ', rest @ ..]) if digits_len(account) == 12 => rest,
            _ => return None,
        },
    };
    let rest = rest.strip_prefix(b"eni-")?;
    let rest = match rest.split_at(alnum_len(rest)) {
        ([_, ..], [b' ', rest @ ..]) => rest,
        _ => return None,
    };
    let rest = non_empty_value(rest)?; // srcaddr
    let mut rest = non_empty_value(rest)?; // dstaddr
    for _ in 0..5 {
        // srcport, dstport, protocol, packets, bytes
        rest = match rest {
            [b'-', b' ', rest @ ..] => rest,
            _ => digits_value(rest)?,
        };
    }
    let rest = digits_value(rest)?; // start
    let rest = digits_value(rest)?; // end

    // What is left is exactly `action log-status`.
    Some(match rest {
        b"ACCEPT OK" => ACCEPT,
        b"REJECT OK" => REJECT,
        b"- NODATA" | b"ACCEPT NODATA" | b"REJECT NODATA" => NODATA,
        b"- SKIPDATA" | b"ACCEPT SKIPDATA" | b"REJECT SKIPDATA" => SKIPDATA,
        _ => return None,
    })
}

/// The bytes after a non-empty value and its space; `None` if there is none.
#[inline(always)]
fn non_empty_value(rest: &[u8]) -> Option<&[u8]> {
    // Values are a few bytes long: a word at a time beats memchr's vector setup.
    let n = run_len(
        rest,
        |x| {
            let x = x ^ SPACES;
            ((x & LOW7).wrapping_add(LOW7) | x) & HIGH
        },
        |b| *b != b' ',
    );
    match rest.get(n) {
        Some(b' ') if n > 0 => Some(&rest[n + 1..]),
        _ => None,
    }
}

/// The bytes after a non-empty run of digits and its space; `None` otherwise.
#[inline(always)]
fn digits_value(rest: &[u8]) -> Option<&[u8]> {
    match digits_len(rest) {
        0 => None,
        n => match &rest[n..] {
            [b' ', rest @ ..] => Some(rest),
            _ => None,
        },
    }
}

/// Length of the run of ASCII digits `s` starts with; eight bytes at a time.
#[inline(always)]
fn digits_len(s: &[u8]) -> usize {
    run_len(s, |x| in_range(x, b'0', b'9'), |b| b.is_ascii_digit())
}

/// Length of the run of ASCII letters and digits `s` starts with.
#[inline(always)]
fn alnum_len(s: &[u8]) -> usize {
    const CASE: u64 = u64::from_ne_bytes([0x20; 8]);
    run_len(
        s,
        // Setting bit 5 folds upper case onto lower case and maps no other byte
        // into `a..=z`.
        |x| in_range(x, b'0', b'9') | in_range(x | CASE, b'a', b'z'),
        |b| b.is_ascii_alphanumeric(),
    )
}

const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of each byte of `x` that lies in `lo..=hi` (both below 0x80).
/// Exact: the additions never carry from one byte into the next.
#[inline(always)]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let low = x & LOW7;
    let at_least_lo = low + u64::from_ne_bytes([0x80 - lo; 8]);
    let above_hi = low + u64::from_ne_bytes([0x7f - hi; 8]);
    at_least_lo & !above_hi & !x & HIGH
}

/// Length of the run of bytes in a class that `s` starts with, eight bytes at a
/// time: `word` gives the high bit of each byte of a little-endian word that is in
/// the class, `byte` decides the last few bytes.
#[inline(always)]
fn run_len(s: &[u8], word: impl Fn(u64) -> u64, byte: impl Fn(&u8) -> bool) -> usize {
    let mut n = 0;
    while let Some(chunk) = s.get(n..n + 8) {
        let outside = !word(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) & HIGH;
        if outside != 0 {
            return n + (outside.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + s[n..].iter().take_while(|b| byte(b)).count()
}

/// Calls `f` with the index of each space in `line`, in order, until it returns
/// false; true when every space was seen. Eight bytes at a time (SWAR): flow log
/// lines have a space every few bytes, too dense for a memchr call per value.
#[inline]
fn for_each_space(line: &[u8], mut f: impl FnMut(usize) -> bool) -> bool {
    let mut chunks = line.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let x = word ^ SPACES;
        // High bit of each byte that is zero in `x`, i.e. a space in `word`; exact
        // (no carries between bytes), unlike the shorter "has zero byte" trick.
        let mut mask = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
        while mask != 0 {
            if !f(base + (mask.trailing_zeros() / 8) as usize) {
                return false;
            }
            mask &= mask - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b' ' && !f(base + i) {
            return false;
        }
    }
    true
}

/// One record's fields, serialized as a JSON object in format order: AWS names with
/// underscores, [`Kind::Int`] values as numbers, `-` as `null`, ids as strings.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    format: &'a Format,
    line: &'a str,
}

impl<'a> Record<'a> {
    /// `(json key, value)` pairs in format order; `None` stands for `-`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Field, Option<&'a str>)> + 'a {
        let fields = self.format.fields.iter().copied();
        fields.zip(self.line.split(' ').map(|v| (v != "-").then_some(v)))
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.format.fields.len()))?;
        for (field, value) in self.iter() {
            match value {
                None => map.serialize_entry(field.key, &())?,
                Some(v) if field.kind == Kind::Int => match v.parse::<u64>() {
                    Ok(n) => map.serialize_entry(field.key, &n)?,
                    // A value AWS documents as a number but that is not one: keep it.
                    Err(_) => map.serialize_entry(field.key, v)?,
                },
                Some(v) => map.serialize_entry(field.key, v)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACCEPT_LINE: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

    #[test]
    fn default_detection_is_strict() {
        let cases: &[(&str, Option<&str>)] = &[
            (ACCEPT_LINE, Some(ACCEPT)),
            ("2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK", Some(REJECT)),
            ("2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA", Some(NODATA)),
            ("2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA", Some(SKIPDATA)),
            ("2 unknown eni-0a1b2c3d4e5f67890 10.0.0.5 10.0.1.9 443 55012 6 4 392 1620000000 1620000060 ACCEPT OK", Some(ACCEPT)),
            ("2 2001:db8::1 eni-1 - - - - - - - 1 2 - NODATA", None),
            // Wrong version, short account, no eni-, 13 or 15 values, bad status.
            (&ACCEPT_LINE.replacen('2', "3", 1), None),
            (&ACCEPT_LINE.replace("123456789010", "12345678901"), None),
            (&ACCEPT_LINE.replace("eni-1235b8ca123456789", "i-1235b8ca"), None),
            (&ACCEPT_LINE.replace("eni-1235b8ca123456789", "eni-"), None),
            (&ACCEPT_LINE.replace(" OK", ""), None),
            (&format!("{ACCEPT_LINE} OK"), None),
            (&ACCEPT_LINE.replace(" OK", " FINE"), None),
            (&ACCEPT_LINE.replace("ACCEPT", "-"), None),
            (&ACCEPT_LINE.replace(" 4249 ", " 4k "), None),
            (&ACCEPT_LINE.replace(" 22 ", "  22 "), None),
            (&format!("{ACCEPT_LINE}\n"), None),
            ("", None),
            ("2", None),
            ("2 ", None),
            ("{\"eventVersion\":\"1.08\"}", None),
        ];
        for (line, expected) in cases {
            assert_eq!(detect_default(line), *expected, "{line:?}");
        }
    }

    /// The rules of [`detect_default`] as plainly as they can be written: the
    /// fused one-pass version must agree with it on every line.
    fn detect_reference(line: &str) -> Option<&'static str> {
        let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let values: Vec<&str> = line.split(' ').collect();
        let [version, account, interface, src, dst, counters @ .., start, end, action, status] =
            values.as_slice()
        else {
            return None;
        };
        let ok = *version == "2"
            && (*account == "unknown" || (account.len() == 12 && digits(account)))
            && interface
                .strip_prefix("eni-")
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))
            && !src.is_empty()
            && !dst.is_empty()
            && counters.len() == 5
            && counters.iter().all(|v| *v == "-" || digits(v))
            && digits(start)
            && digits(end);
        let event_type = match (*status, *action) {
            ("OK", "ACCEPT") => ACCEPT,
            ("OK", "REJECT") => REJECT,
            ("NODATA", "ACCEPT" | "REJECT" | "-") => NODATA,
            ("SKIPDATA", "ACCEPT" | "REJECT" | "-") => SKIPDATA,
            _ => return None,
        };
        ok.then_some(event_type)
    }

    /// Values for each of the 14 positions, mostly valid, sometimes not.
    fn v2_values() -> impl Strategy<Value = Vec<String>> {
        let re = |r: &str| proptest::string::string_regex(r).unwrap();
        let pick =
            |v: &[&'static str]| proptest::sample::select(v.to_vec()).prop_map(str::to_owned);
        let addr = || prop_oneof![re("-|[0-9.]{7,15}|[0-9a-f:]{2,20}"), re("[^ ]{0,3}")];
        let counter = || prop_oneof![re("-|[0-9]{1,17}"), re("[0-9]{0,3}[a-z-]?[0-9]?")];
        let time = || prop_oneof![re("[0-9]{1,11}"), re("-|[0-9]{0,9}[^0-9 ]")];
        (
            (
                pick(&["2", "2", "3", ""]),
                prop_oneof![
                    re("[0-9]{12}"),
                    Just("unknown".to_owned()),
                    re("[0-9]{11,13}|unknown.|[0-9a-z]{12}")
                ],
                prop_oneof![
                    re("eni-[0-9a-z]{1,17}"),
                    re("eni-[0-9a-z.]{0,5}|i-[0-9a-z]{3}")
                ],
                addr(),
                addr(),
            ),
            proptest::collection::vec(counter(), 5),
            (time(), time()),
            pick(&["ACCEPT", "REJECT", "-", "X", ""]),
            pick(&["OK", "NODATA", "SKIPDATA", "FINE", "OK ", ""]),
        )
            .prop_map(|((v, a, i, s, d), counters, (t0, t1), action, status)| {
                let mut values = vec![v, a, i, s, d];
                values.extend(counters);
                values.extend([t0, t1, action.to_owned(), status.to_owned()]);
                values
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn detection_matches_its_reference(
            values in v2_values(),
            mutate in proptest::option::of((0usize..200, any::<char>(), any::<bool>())),
        ) {
            let mut line = values.join(" ");
            if let Some((at, c, insert)) = mutate {
                let at = (0..=at.min(line.len())).rev().find(|i| line.is_char_boundary(*i)).unwrap();
                if insert {
                    line.insert(at, c);
                } else if at < line.len() {
                    line.remove(at);
                }
            }
            prop_assert_eq!(detect_default(&line), detect_reference(&line), "{:?}", line);
        }
    }

    #[test]
    fn runs_are_measured_exactly_for_every_byte() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut s = vec![b'7'; 20];
                s[at] = b;
                let digits = if b.is_ascii_digit() { 20 } else { at };
                assert_eq!(digits_len(&s), digits, "{b:#x} at {at}");
                s.fill(b'Q');
                s[at] = b;
                let alnum = if b.is_ascii_alphanumeric() { 20 } else { at };
                assert_eq!(alnum_len(&s), alnum, "{b:#x} at {at}");
                s.fill(b'x');
                s[at] = b;
                let after = (b == b' ' && at > 0).then(|| &s[at + 1..]);
                assert_eq!(non_empty_value(&s), after, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn spaces_are_found_exactly() {
        let line = "a bc  d\u{e9}f g h ij k l mnop qr s    t ";
        let mut seen = Vec::new();
        assert!(for_each_space(line.as_bytes(), |i| {
            seen.push(i);
            true
        }));
        let want: Vec<usize> = line.match_indices(' ').map(|(i, _)| i).collect();
        assert_eq!(seen, want);
        // Bytes 0x21 and 0xa0 next to spaces do not count.
        let mut n = 0;
        for_each_space(b"!\xa0 !\xa0 \x20\x21\x1f\xa0", |_| {
            n += 1;
            true
        });
        assert_eq!(n, 3);
    }

    #[test]
    fn parse_lists_every_problem() {
        let errors =
            Format::parse("${version} ${srcadr} $bytes ${version} ${hostname}").unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            matches!(&errors[0], FormatError::UnknownField { name, suggestion: Some("srcaddr") } if name == "srcadr")
        );
        assert!(matches!(&errors[1], FormatError::Token { token } if token == "$bytes"));
        assert_eq!(errors[2], FormatError::Duplicate { name: "version" });
        assert!(matches!(
            &errors[3],
            FormatError::UnknownField {
                suggestion: None,
                ..
            }
        ));
        let text = errors[0].to_string();
        assert!(
            text.starts_with("unknown field ${srcadr} (did you mean ${srcaddr}?)"),
            "{text}"
        );
        assert_eq!(Format::parse("  ").unwrap_err(), vec![FormatError::Empty]);
        assert_eq!(
            Format::parse("${interface-id} ${tgw-id}").unwrap_err(),
            vec![FormatError::MixedScopes {
                vpc: "interface-id",
                tgw: "tgw-id"
            }]
        );
        assert!(matches!(
            &Format::parse("${a}${b}").unwrap_err()[0],
            FormatError::Token { .. }
        ));
    }

    #[test]
    fn custom_format_event_type_counts_values() {
        let f = Format::parse("${version} ${vpc-id} ${action} ${log-status}").unwrap();
        assert_eq!(f.event_type("3 vpc-1 ACCEPT OK"), Some(ACCEPT));
        assert_eq!(f.event_type("3 vpc-1 - NODATA"), Some(NODATA));
        assert_eq!(f.event_type("3 vpc-1 ACCEPT"), None);
        assert_eq!(f.event_type("3 vpc-1 ACCEPT OK x"), None);
        assert_eq!(f.event_type("3  ACCEPT OK"), None);
        assert_eq!(f.event_type("3 vpc-1 ACCEPT OK "), None);
        let bare = Format::parse("${srcaddr} ${dstaddr}").unwrap();
        assert_eq!(bare.event_type("10.0.0.1 10.0.0.2"), Some(FLOW));
        assert_eq!(bare.event_type(""), None);
    }

    #[test]
    fn record_types_values() {
        let f = Format::parse(
            "${version} ${account-id} ${vpc-id} ${bytes} ${tcp-flags} ${log-status} ${srcport}",
        )
        .unwrap();
        let r = f.record("5 012345678901 vpc-0a1 4249 18 OK -").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"version":5,"account_id":"012345678901","vpc_id":"vpc-0a1","bytes":4249,"tcp_flags":18,"log_status":"OK","srcport":null}"#
        );
        assert!(f.record("5 1 2").is_none());
    }
}
