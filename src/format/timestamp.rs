//! RFC 3339 UTC timestamps with exactly three fractional digits
//! (`2021-04-27T08:40:50.000Z`), written straight into an output buffer.
//!
//! On the hot path: the date and time of the last second formatted are cached, as
//! consecutive events mostly share their second.

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: RFC 3339 has four-digit
/// years, so times outside are clamped to these.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Formats timestamps, remembering the last second.
#[derive(Debug, Clone)]
pub struct TimestampWriter {
    second: i64,
    prefix: [u8; 20],
}

impl Default for TimestampWriter {
    fn default() -> Self {
        TimestampWriter {
            second: i64::MIN,
            prefix: [0; 20],
        }
    }
}

impl TimestampWriter {
    /// Appends `ms` (milliseconds since the epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn write(&mut self, ms: i64, out: &mut Vec<u8>) {
        let ms = ms.clamp(MIN_MS, MAX_MS);
        let second = ms.div_euclid(1000);
        let milli = ms.rem_euclid(1000) as u32;
        if second != self.second {
            self.second = second;
            self.prefix = date_time(second);
        }
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&[
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
            b'Z',
        ]);
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the epoch.
fn date_time(second: i64) -> [u8; 20] {
    let days = second.div_euclid(86_400);
    let secs = second.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut b = [0u8; 20];
    let y = y as u32;
    b[0] = b'0' + (y / 1000 % 10) as u8;
    b[1] = b'0' + (y / 100 % 10) as u8;
    b[2] = b'0' + (y / 10 % 10) as u8;
    b[3] = b'0' + (y % 10) as u8;
    b[4] = b'-';
    two(&mut b[5..7], m);
    b[7] = b'-';
    two(&mut b[8..10], d);
    b[10] = b'T';
    two(&mut b[11..13], hh);
    b[13] = b':';
    two(&mut b[14..16], mm);
    b[16] = b':';
    two(&mut b[17..19], ss);
    b[19] = b'.';
    b
}

fn two(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fmt(ms: i64) -> String {
        let mut out = Vec::new();
        TimestampWriter::default().write(ms, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt(1_619_538_050_000), "2021-04-27T15:40:50.000Z");
        assert_eq!(fmt(1_619_620_191_783), "2021-04-28T14:29:51.783Z");
        assert_eq!(fmt(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(fmt(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(fmt(i64::MIN), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_cache_does_not_leak_between_seconds() {
        let mut w = TimestampWriter::default();
        let mut out = Vec::new();
        for ms in [1_000, 1_999, 2_000, 1_500] {
            w.write(ms, &mut out);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:01.000Z 1970-01-01T00:00:01.999Z \
             1970-01-01T00:00:02.000Z 1970-01-01T00:00:01.500Z "
        );
    }

    proptest! {
        #[test]
        fn agrees_with_humantime(ms in 0i64..253_402_300_799_999) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            prop_assert_eq!(fmt(ms), humantime::format_rfc3339_millis(t).to_string());
        }
    }
}
