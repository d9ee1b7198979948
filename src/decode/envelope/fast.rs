//! A strict fast path for the envelope exactly as CloudWatch Logs writes it:
//! compact JSON, string values, and `logEvents` elements of the one shape
//! `{"id":"…","timestamp":N,"message":"…"}`.
//!
//! It answers `None` at the first byte it was not written for (whitespace, another
//! key order, a numeric `id`, a float, `null`, a nested value, a duplicate key, a
//! control character, a bad escape or lone surrogate, trailing bytes) and the
//! caller then parses the whole payload with sonic-rs, so what it accepts it must
//! decode exactly as sonic-rs does: `tests` compares the two on generated
//! envelopes and `fuzz/fuzz_targets/envelope_fast_path.rs` on arbitrary ones.
//!
//! Why by hand: sonic-rs through serde took about 1.25 times libdeflate's own time
//! on the VPC flow corpus (it copies the payload into a padded buffer, then walks
//! a visitor per field); this path takes 0.42 times: one SSE2 scan per string, 16
//! bytes a step, borrowing every string without escapes. On CloudTrail payloads,
//! escapes every few bytes, undoing them here made the whole pipeline 1.8 times
//! faster per byte than handing each escaped string to sonic-rs, and 1.4 times
//! faster than sonic-rs parsing the whole payload. Figures: docs/BENCHMARKS.md
//! (`## Decode`).

use std::borrow::Cow;

use super::{Envelope, LogEvent};

/// Parses `text` if it has exactly the shape CloudWatch Logs writes; `None` for
/// anything else (which may still be a valid envelope).
pub fn parse(text: &str) -> Option<Envelope<'_>> {
    let mut p = Parser {
        text,
        pos: 0,
        scratch: String::new(),
    };
    let mut env = Envelope {
        message_type: None,
        owner: None,
        log_group: None,
        log_stream: None,
        log_events: None,
    };
    p.eat(b'{')?;
    if p.peek()? != b'}' {
        loop {
            let key = p.string_no_escapes()?;
            p.eat(b':')?;
            match key {
                "messageType" => set_once(&mut env.message_type, p.string()?)?,
                "owner" => set_once(&mut env.owner, p.string()?)?,
                "logGroup" => set_once(&mut env.log_group, p.string()?)?,
                "logStream" => set_once(&mut env.log_stream, p.string()?)?,
                "logEvents" => set_once(&mut env.log_events, p.log_events()?)?,
                _ => p.skip_strings()?,
            }
            match p.peek()? {
                b',' => p.pos += 1,
                _ => break,
            }
        }
    }
    p.eat(b'}')?;
    (p.pos == text.len()).then_some(env)
}

/// Fills `slot`; `None` if it was filled already (a duplicate key, which serde
/// rejects).
fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Where strings are unescaped before being copied out at their exact size
    /// (growing a fresh `String` per message cost a copy per doubling).
    scratch: String,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn eat_str(&mut self, s: &[u8]) -> Option<()> {
        let end = self.pos + s.len();
        (self.bytes().get(self.pos..end)? == s).then(|| self.pos = end)
    }

    /// `[{"id":"…","timestamp":N,"message":"…"},…]`.
    fn log_events(&mut self) -> Option<Vec<LogEvent<'a>>> {
        self.eat(b'[')?;
        // A payload holds up to 10,000 events; guess from its size (VPC flow
        // events take about 200 bytes) rather than grow the Vec a dozen times.
        let mut events = Vec::with_capacity((self.text.len() - self.pos) / 256);
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(events);
        }
        loop {
            self.eat_str(br#"{"id":"#)?;
            let id = self.string()?;
            self.eat_str(br#","timestamp":"#)?;
            let timestamp = self.integer()?;
            self.eat_str(br#","message":"#)?;
            let message = self.string()?;
            self.eat(b'}')?;
            events.push(LogEvent {
                id: Some(id),
                timestamp,
                message,
            });
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(events);
                }
                _ => return None,
            }
        }
    }

    /// A JSON integer without sign, fraction or exponent that fits an `i64`.
    fn integer(&mut self) -> Option<i64> {
        let digits = self.bytes()[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let s = &self.bytes()[self.pos..self.pos + digits];
        // No leading zeros (JSON forbids them); 18 digits always fit an i64.
        if digits == 0 || digits > 18 || (digits > 1 && s[0] == b'0') {
            return None;
        }
        if matches!(
            self.bytes().get(self.pos + digits),
            Some(b'.' | b'e' | b'E')
        ) {
            return None;
        }
        self.pos += digits;
        Some(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    }

    /// A string value; borrowed unless it holds escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = special(&self.bytes()[start..]) + start;
        match self.bytes().get(end)? {
            b'"' => {
                self.pos = end + 1;
                Some(Cow::Borrowed(self.text.get(start..end)?))
            }
            b'\\' => self.unescape(start, end).map(Cow::Owned),
            _ => None, // a control character
        }
    }

    /// The rest of a string whose content starts at `start` and holds a backslash
    /// at `at`, unescaped. `None` for a bad escape and for a UTF-16 surrogate that
    /// is not half of a pair (sonic-rs decides what those mean).
    fn unescape(&mut self, start: usize, at: usize) -> Option<String> {
        let (text, bytes) = (self.text, self.bytes());
        // CloudTrail records (JSON in a JSON string) are most of what has escapes,
        // one every few bytes: each 16-byte mask is used for every escape it holds
        // rather than scanning again after each one.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        // `run..` is plain text not yet copied; nothing before `scan` is unhandled.
        let (mut run, mut scan) = (start, at);
        loop {
            let (base, mut mask, next) = match bytes.get(scan..scan + 16) {
                Some(chunk) => (
                    scan,
                    special16(chunk.try_into().expect("16 bytes")),
                    scan + 16,
                ),
                None => {
                    let at = scan + special_swar(&bytes[scan..]);
                    if at >= bytes.len() {
                        return None; // no closing quote
                    }
                    (at, 1, at + 1)
                }
            };
            while mask != 0 {
                let at = base + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if at < run {
                    continue; // the second byte of an escape already undone
                }
                out.push_str(text.get(run..at)?);
                let (c, len) = match bytes[at] {
                    b'"' => {
                        self.pos = at + 1;
                        let unescaped = out.as_str().to_owned();
                        self.scratch = out;
                        return Some(unescaped);
                    }
                    b'\\' => match *bytes.get(at + 1)? {
                        b'"' => ('"', 2),
                        b'\\' => ('\\', 2),
                        b'/' => ('/', 2),
                        b'b' => ('\u{8}', 2),
                        b'f' => ('\u{c}', 2),
                        b'n' => ('\n', 2),
                        b'r' => ('\r', 2),
                        b't' => ('\t', 2),
                        b'u' => unicode_escape(&bytes[at..])?,
                        _ => return None,
                    },
                    _ => return None, // a control character
                };
                out.push(c);
                run = at + len;
            }
            scan = next.max(run);
        }
    }

    /// A string without escapes (an object key).
    fn string_no_escapes(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    /// The value of a key the envelope does not use: a string or an array of
    /// strings (`subscriptionFilters`, `policyLevel`); anything else is `None`.
    fn skip_strings(&mut self) -> Option<()> {
        if self.peek()? != b'[' {
            return self.string().map(drop);
        }
        self.pos += 1;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.string()?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The character of the `\uXXXX` escape (or surrogate pair of two) `s` starts
/// with, and the escape's length; `None` for a lone surrogate or bad hex.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let hex = |at: usize| -> Option<u32> {
        let digits = s.get(at..at + 4)?;
        // Four hex digits exactly (from_str_radix alone would take a sign).
        digits.iter().all(u8::is_ascii_hexdigit).then(|| {
            digits
                .iter()
                .fold(0, |n, d| n * 16 + char::from(*d).to_digit(16).unwrap_or(0))
        })
    };
    let high = hex(2)?;
    match high {
        0xd800..=0xdbff => {
            if s.get(6..8)? != b"\\u" {
                return None;
            }
            let low = hex(8)?;
            if !(0xdc00..=0xdfff).contains(&low) {
                return None;
            }
            let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
            Some((char::from_u32(c)?, 12))
        }
        0xdc00..=0xdfff => None,
        _ => Some((char::from_u32(high)?, 6)),
    }
}

/// Index of the first `"`, `\` or control character (below 0x20) in `s`, or its
/// length; 16 bytes at a time.
#[inline]
fn special(s: &[u8]) -> usize {
    let mut n = 0;
    while let Some(chunk) = s.get(n..n + 16) {
        let mask = special16(chunk.try_into().expect("16 bytes"));
        if mask != 0 {
            return n + mask.trailing_zeros() as usize;
        }
        n += 16;
    }
    n + special_swar(&s[n..])
}

/// Bit `i` set when `chunk[i]` is `"`, `\` or a control character. Messages are
/// a few hundred bytes: SSE2 (every x86-64 CPU has it), else two `u64`s.
#[inline(always)]
fn special16(chunk: &[u8; 16]) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: the function only needs SSE2, which this build targets (cfg above).
        unsafe { special16_sse2(chunk) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    special16_swar(chunk)
}

/// [`special16`] in two `u64`s.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn special16_swar(chunk: &[u8; 16]) -> u32 {
    let (lo, hi) = chunk.split_at(8);
    let bits = |half: &[u8]| {
        let m = special_mask_swar(u64::from_le_bytes(half.try_into().expect("8 bytes")));
        // Bit 0 of each byte, gathered into the top byte (byte i to bit 56 + i).
        ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    bits(lo) | bits(hi) << 8
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn special16_sse2(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    let lo = i64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
    let hi = i64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
    // Compiles to one unaligned load.
    let x = _mm_set_epi64x(hi, lo);
    let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
    // Unsigned x <= 0x1f exactly when max(x, 0x1f) == 0x1f.
    let max_control = _mm_set1_epi8(0x1f);
    let control = _mm_cmpeq_epi8(_mm_max_epu8(x, max_control), max_control);
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

/// The high bit of each byte of `x` that is `"`, `\` or a control character.
#[inline(always)]
fn special_mask_swar(x: u64) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// High bit of each byte of `x` that is zero; exact (no carries across bytes).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !(((x & LOW7) + LOW7) | x) & HIGH
    }
    let quote = zero_bytes(x ^ u64::from_ne_bytes([b'"'; 8]));
    let backslash = zero_bytes(x ^ u64::from_ne_bytes([b'\\'; 8]));
    // Below 0x20: adding 0x60 to the low 7 bits leaves the high bit clear.
    let control = !((x & LOW7) + u64::from_ne_bytes([0x60; 8])) & !x & HIGH;
    quote | backslash | control
}

/// [`special`] eight bytes at a time in a `u64`.
fn special_swar(s: &[u8]) -> usize {
    let mut n = 0;
    while let Some(chunk) = s.get(n..n + 8) {
        let found = special_mask_swar(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if found != 0 {
            return n + (found.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + s[n..]
        .iter()
        .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::envelope::parse_generic;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    const AWS: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"vpc","logStream":"eni-1-all","subscriptionFilters":["f"],"logEvents":[{"id":"35950","timestamp":1619538050000,"message":"2 1 eni-1 - - - - - - - 1 2 - NODATA"},{"id":"35951","timestamp":0,"message":"q\"\\x\u00e9\n"}],"policyLevel":"ACCOUNT_LEVEL_POLICY"}"#;

    #[test]
    fn takes_the_aws_shape_and_borrows_plain_strings() {
        let env = parse(AWS).expect("the fast path takes AWS's shape");
        assert_eq!(Some(&env), parse_generic(AWS).ok().as_ref());
        let events = env.log_events.as_ref().unwrap();
        assert!(matches!(events[0].message, Cow::Borrowed(_)));
        assert!(matches!(events[0].id, Some(Cow::Borrowed("35950"))));
        assert_eq!(events[1].message, "q\"\\x\u{e9}\n");
        for text in [r#"{}"#, r#"{"logEvents":[]}"#, r#"{"a":[],"b":"c"}"#] {
            assert_eq!(parse(text).as_ref(), parse_generic(text).ok().as_ref());
        }
    }

    #[test]
    fn special_bytes_are_found_exactly() {
        for b in 0..=255u8 {
            for at in 0..40 {
                let mut s = vec![b'a'; 40];
                s[at] = b;
                let want = if b == b'"' || b == b'\\' || b < 0x20 {
                    at
                } else {
                    40
                };
                assert_eq!(special(&s), want, "{b:#x} at {at}");
                if at < 16 {
                    let mask = special16(s[..16].try_into().unwrap());
                    assert_eq!(mask, if want == at { 1 << at } else { 0 }, "{b:#x} at {at}");
                    assert_eq!(special16_swar(s[..16].try_into().unwrap()), mask);
                }
                assert_eq!(special_swar(&s), want, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn unescapes_as_sonic_does() {
        for escaped in [
            r#"\"\\\/\b\f\n\r\t"#,
            r#"a\u00e9\u00E9\u6f22b"#,
            r#"\ud83d\ude00\uD83D\uDE00"#,
            r#"{\"eventVersion\":\"1.08\",\"x\":[\"\\\"\"]}"#,
            r#"\u0000\u001f"#,
        ] {
            let text = format!(r#"{{"owner":"{escaped}"}}"#);
            let fast = parse(&text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(Some(fast), parse_generic(&text).ok(), "{text}");
        }
    }

    #[test]
    fn both_chunk_masks_agree() {
        let alphabet = [b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let chunk: [u8; 16] = std::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            });
            let want = (0..16)
                .filter(|&i| special(&chunk[i..i + 1]) == 0)
                .fold(0, |m, i| m | 1 << i);
            assert_eq!(special16(&chunk), want, "{chunk:?}");
            assert_eq!(special16_swar(&chunk), want, "{chunk:?}");
        }
    }

    #[test]
    fn leaves_every_other_shape_to_sonic() {
        for text in [
            r#" {"logEvents":[]}"#,
            r#"{"logEvents":[]} "#,
            r#"{"logEvents": []}"#,
            r#"{"logEvents":[{"id":1,"timestamp":1,"message":"m"}]}"#,
            r#"{"logEvents":[{"timestamp":1,"id":"1","message":"m"}]}"#,
            r#"{"logEvents":[{"id":"1","timestamp":1.5,"message":"m"}]}"#,
            r#"{"logEvents":[{"id":"1","timestamp":01,"message":"m"}]}"#,
            r#"{"logEvents":[{"id":"1","timestamp":-1,"message":"m"}]}"#,
            r#"{"logEvents":[{"id":"1","timestamp":1,"message":"m","x":1}]}"#,
            r#"{"logEvents":[{"id":"1","timestamp":1,"message":"a	b"}]}"#,
            r#"{"logEvents":[],"logEvents":[]}"#,
            r#"{"owner":"a","owner":"b"}"#,
            r#"{"owner":null}"#,
            r#"{"log\u0047roup":"g"}"#,
            r#"{"x":{"y":1}}"#,
            r#"{"owner":"\ud800"}"#,
            r#"{"owner":"\q"}"#,
            r#"{"owner":"abc\"#,
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    /// A JSON string: valid (serde_json's encoding) or raw bytes between quotes
    /// that may hold any escape, valid or not, or a control character.
    fn json_string() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[ -~\u{e9}\u{6f22}\u{1f600}\n\t\u{1}\"\\\\]{0,24}"
                .prop_map(|s| serde_json::to_string(&s).unwrap()),
            1 => r#"([a-z "/]|\\[nt"\\/bfrx]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-f]{2}|\x01|\x7f|é){0,8}"#
                .prop_map(|s| format!("\"{s}\"")),
        ]
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => (0u64..=9_999_999_999_999).prop_map(|n| n.to_string()),
            1 => "-?[0-9]{1,21}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?",
            1 => Just("null".to_owned()),
        ]
    }

    fn event() -> impl Strategy<Value = String> {
        let id = prop_oneof![4 => json_string(), 1 => number()];
        (id, number(), json_string(), 0..8u8).prop_map(|(id, ts, msg, variant)| match variant {
            0 => format!(r#"{{"timestamp":{ts},"id":{id},"message":{msg}}}"#),
            1 => format!(r#"{{ "id" : {id}, "timestamp" : {ts}, "message" : {msg} }}"#),
            2 => format!(r#"{{"id":{id},"timestamp":{ts},"message":{msg},"extra":1}}"#),
            _ => format!(r#"{{"id":{id},"timestamp":{ts},"message":{msg}}}"#),
        })
    }

    fn envelope() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            json_string().prop_map(|s| format!(r#""messageType":{s}"#)),
            json_string().prop_map(|s| format!(r#""owner":{s}"#)),
            json_string().prop_map(|s| format!(r#""logGroup":{s}"#)),
            json_string().prop_map(|s| format!(r#""logStream":{s}"#)),
            proptest::collection::vec(json_string(), 0..3)
                .prop_map(|v| format!(r#""subscriptionFilters":[{}]"#, v.join(","))),
            json_string().prop_map(|s| format!(r#""policyLevel":{s}"#)),
            Just(r#""other":{"a":[1,2]}"#.to_owned()),
        ];
        let events = proptest::collection::vec(event(), 0..4)
            .prop_map(|v| format!(r#""logEvents":[{}]"#, v.join(",")));
        (
            proptest::collection::vec(member, 0..6),
            events,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut members, events, at)| {
                let at = at.index(members.len() + 1);
                members.insert(at, events);
                format!("{{{}}}", members.join(","))
            })
    }

    /// What the fast path accepts, it decodes as sonic-rs does.
    fn check(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = parse(text) {
            let generic = parse_generic(text);
            prop_assert_eq!(Some(&fast), generic.as_ref().ok(), "{}", text);
        }
        Ok(())
    }

    #[test]
    fn generated_envelopes_often_take_the_fast_path() {
        // Otherwise the differential tests below would prove little.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = envelope();
        let (mut fast, mut valid) = (0, 0);
        for _ in 0..1000 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            fast += usize::from(parse(&text).is_some());
            valid += usize::from(parse_generic(&text).is_ok());
        }
        eprintln!("fast path took {fast} of 1000, {valid} were valid");
        assert!(fast >= 100 && valid > fast, "{fast} fast, {valid} valid");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn agrees_with_sonic(text in envelope()) {
            check(&text)?;
        }

        #[test]
        fn agrees_with_sonic_on_mutated_envelopes(
            text in envelope(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0..3u8), 1..4),
        ) {
            let mut text = text;
            for (at, c, op) in edits {
                let at = at.index(text.len() + 1);
                let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
                match op {
                    0 => text.insert(at, c),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ => text.insert(at, ['"', '\\', ',', '}', ']', ' '][c as usize % 6]),
                }
            }
            check(&text)?;
        }
    }
}
