//! Human-readable units in the configuration: durations ("10s", "1m 30s") and byte
//! sizes ("16 MiB" or a plain number of bytes).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a duration written as a human string such as `"10s"` or `"500ms"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {err} (write e.g. \"10s\", \"500ms\", \"1m\")"
        ))
    })
}

/// Deserializes a byte size: an integer number of bytes or a string such as `"16 MiB"`.
pub fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(n) => Ok(n),
        Raw::Text(text) => text
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|err| {
                serde::de::Error::custom(format!(
                    "invalid byte size {text:?}: {err} (write e.g. \"16 MiB\" or a number of bytes)"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "duration")]
        d: Duration,
        #[serde(deserialize_with = "byte_size")]
        b: u64,
    }

    #[test]
    fn parses_human_units() {
        let t: T = toml::from_str("d = \"1m 30s\"\nb = \"16 MiB\"").unwrap();
        assert_eq!(t.d, Duration::from_secs(90));
        assert_eq!(t.b, 16 * 1024 * 1024);
        let t: T = toml::from_str("d = \"250ms\"\nb = 4096").unwrap();
        assert_eq!(t.d, Duration::from_millis(250));
        assert_eq!(t.b, 4096);
    }

    #[test]
    fn rejects_nonsense_with_the_value() {
        let err = toml::from_str::<T>("d = \"soon\"\nb = 1").err().unwrap();
        assert!(err.to_string().contains("\"soon\""), "{err}");
        let err = toml::from_str::<T>("d = \"1s\"\nb = \"huge\"")
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"huge\""), "{err}");
    }
}
