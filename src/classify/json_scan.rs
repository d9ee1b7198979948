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
