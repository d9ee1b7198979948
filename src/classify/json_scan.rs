//! A zero-allocation walk over the members of a JSON object, for recognising
//! CloudTrail records on the hot path.
//!
//! serde_json cannot do this without allocating: skipping a value nested two or
//! more levels deep (CloudTrail's `userIdentity.sessionContext`) pushes onto its
//! scratch buffer, which is new for every message. This reader only finds member
//! boundaries — strings are matched up to their closing quote, containers by
//! bracket depth — and validates nothing else; it never panics and never reads
//! past the input.

use memchr::memchr2;

/// A member's value as far as the walk tells it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string: its raw bytes between the quotes, escapes left undone.
    Str(&'a [u8]),
    /// An object, array, number, `true`, `false` or `null` (skipped).
    Other,
}

/// What the member callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next member.
    Continue,
    /// Stop the walk here (the rest of the input is not read).
    Stop,
}

/// A cursor over JSON text.
#[derive(Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, at: 0 }
    }

    /// Walks the object at the cursor, calling `member` with each key (raw bytes)
    /// and the scanner positioned at its value, which `member` must consume with
    /// [`Scanner::value`] or [`Scanner::members`]. `None` when the input is not an
    /// object as far as the walk got, or `member` returned `None`.
    pub fn members(
        &mut self,
        mut member: impl FnMut(&'a [u8], &mut Scanner<'a>) -> Option<Flow>,
    ) -> Option<Flow> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(Flow::Continue);
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            if member(key, self)? == Flow::Stop {
                return Some(Flow::Stop);
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Flow::Continue);
                }
                _ => return None,
            }
        }
    }

    /// Reads (or skips) the value at the cursor.
    pub fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'{' | b'[' => self.skip_container().map(|()| Value::Other),
            _ => {
                // A number or literal: up to the next delimiter.
                let rest = self.bytes.get(self.at..)?;
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(rest.len());
                if len == 0 {
                    return None;
                }
                self.at += len;
                Some(Value::Other)
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    pub fn peek_byte(&mut self) -> Option<u8> {
        self.peek()
    }

    /// The next non-whitespace byte (not consumed).
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string at the cursor: its raw contents; the cursor ends after it.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let i = memchr2(b'"', b'\\', rest)?;
            if rest[i] == b'\\' {
                self.at += i + 2; // the escaped byte cannot end the string
            } else {
                self.at += i + 1;
                return self.bytes.get(start..self.at - 1);
            }
        }
    }

    /// Skips an object or array by bracket depth, strings included.
    fn skip_container(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(json: &str) -> Option<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        Scanner::new(json.as_bytes()).members(|k, s| {
            let v = match s.value()? {
                Value::Str(v) => Some(String::from_utf8_lossy(v).into_owned()),
                Value::Other => None,
            };
            out.push((String::from_utf8_lossy(k).into_owned(), v));
            Some(Flow::Continue)
        })?;
        Some(out)
    }

    #[test]
    fn walks_top_level_members_only() {
        let got = keys(r#" { "a" : "x\"y" , "b":{"c":[1,{"d":"}"}],"e":"]"}, "n": -1.5e3, "t":true,"z":null } "#)
            .unwrap();
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "n", "t", "z"]);
        assert_eq!(got[0].1.as_deref(), Some(r#"x\"y"#));
        assert_eq!(keys("{}").unwrap(), vec![]);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value as J;
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(J::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(J::from),
            "\\PC{0,8}|[\"\\\\{}\\[\\],: ]{0,4}".prop_map(J::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| J::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The walk agrees with serde_json on every object serde_json writes,
        /// compact or pretty: same keys, same (raw) strings.
        #[test]
        fn agrees_with_serde_json(
            members in prop::collection::btree_map("\\PC{0,6}", json_value(), 0..8),
            pretty in any::<bool>(),
        ) {
            let object = serde_json::Value::Object(members.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                serde_json::to_string(&object).unwrap()
            };
            let mut seen = Vec::new();
            let flow = Scanner::new(text.as_bytes()).members(|k, s| {
                seen.push((k.to_vec(), s.value()?));
                Some(Flow::Continue)
            });
            prop_assert_eq!(flow, Some(Flow::Continue));
            let map = object.as_object().unwrap();
            prop_assert_eq!(seen.len(), map.len());
            for ((key, value), (want_key, want_value)) in seen.iter().zip(map) {
                let raw = |s: &str| {
                    let quoted = serde_json::to_string(s).unwrap();
                    quoted[1..quoted.len() - 1].to_owned()
                };
                prop_assert_eq!(String::from_utf8(key.clone()).unwrap(), raw(want_key));
                match (value, want_value) {
                    (Value::Str(v), serde_json::Value::String(w)) => {
                        prop_assert_eq!(String::from_utf8(v.to_vec()).unwrap(), raw(w));
                    }
                    (Value::Other, w) => prop_assert!(!w.is_string()),
                    (v, w) => prop_assert!(false, "{:?} for {}", v, w),
                }
            }
        }

        /// Arbitrary bytes never make the walk panic or loop.
        #[test]
        fn arbitrary_input_is_safe(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Scanner::new(&bytes).members(|_, s| s.value().map(|_| Flow::Continue));
        }
    }

    #[test]
    fn malformed_input_ends_the_walk_without_panicking() {
        for bad in [
            "",
            "{",
            "[",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":\"x",
            "{\"a\":\"x\\",
            "{\"a\":{",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{\"a\":}",
            "{\"a\":[}]",
            "}",
            "\"a\"",
        ] {
            assert!(keys(bad).is_none(), "{bad:?}");
        }
    }
}
