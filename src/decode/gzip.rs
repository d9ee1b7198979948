//! Size-capped gunzip into a reused buffer.
//!
//! libdeflate does the work (one call, no streaming state, several times faster
//! than a streaming inflater); the output buffer is sized from the gzip trailer's
//! ISIZE but never beyond the cap, so a record that claims to inflate to gigabytes
//! costs at most `cap` bytes. Input libdeflate rejects is run through flate2 once
//! more, which accepts multi-member files and names what is wrong with the rest.
//!
//! libdeflate is called through libdeflate-sys for `libdeflate_gzip_decompress_ex`,
//! which reports how much input the first gzip member took: that tells a whole
//! single-member record (the CloudWatch Logs case) from one with more members or
//! trailing bytes without a second pass over the output to recompute its CRC-32
//! (libdeflate checks the member's own CRC). That pass was 2-3% of the pipeline's
//! time (docs/BENCHMARKS.md).

use std::io::Read;
use std::ptr::NonNull;

use libdeflate_sys as sys;

/// The two bytes every gzip member starts with.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A gunzip failure for one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// The record inflates to more than the configured cap.
    #[error("decompressed size exceeds decode.max_record_bytes ({cap} bytes)")]
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// The stream is truncated or corrupt.
    #[error("corrupt gzip data: {0}")]
    Corrupt(String),
}

/// Keep at most this much buffer between records; a rare huge record does not pin
/// its buffer for the life of the shard.
const RETAIN_BYTES: usize = 4 << 20;

/// libdeflate's decompressor state (about 32 KiB of tables).
struct Inflater(NonNull<sys::libdeflate_decompressor>);

// SAFETY: a libdeflate decompressor is plain heap memory with no thread affinity;
// it is only used through `&mut self`, so never by two threads at once.
unsafe impl Send for Inflater {}
// SAFETY: no method takes `&self`.
unsafe impl Sync for Inflater {}

/// What one gzip member inflated to.
enum Inflated {
    /// `output` bytes written from the first `input` bytes of the input.
    Done { input: usize, output: usize },
    /// The output did not fit.
    NoSpace,
    /// Not a valid gzip member.
    BadData,
}

impl Inflater {
    fn new() -> Inflater {
        // SAFETY: no preconditions; NULL (out of memory) is checked.
        let p = unsafe { sys::libdeflate_alloc_decompressor() };
        Inflater(NonNull::new(p).expect("libdeflate_alloc_decompressor: out of memory"))
    }

    /// Inflates the first gzip member of `input` into `out`.
    fn gzip(&mut self, input: &[u8], out: &mut [u8]) -> Inflated {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is live and exclusively ours; the pointers and
        // lengths come from valid slices; libdeflate writes at most `out.len()`
        // bytes and the two counts.
        let result = unsafe {
            sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match result {
            sys::libdeflate_result_LIBDEFLATE_SUCCESS => Inflated::Done {
                input: used,
                output: written,
            },
            sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Inflated::NoSpace,
            _ => Inflated::BadData,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// A gunzip decoder with a reused output buffer.
pub struct Gunzip {
    inflater: Inflater,
    buf: Vec<u8>,
    cap: usize,
}

impl std::fmt::Debug for Gunzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gunzip").field("cap", &self.cap).finish()
    }
}

impl Gunzip {
    /// A decoder whose output never exceeds `cap` bytes.
    pub fn new(cap: usize) -> Gunzip {
        Gunzip {
            inflater: Inflater::new(),
            buf: Vec::new(),
            cap,
        }
    }

    /// Decompresses `data` (one or more gzip members) and returns the output.
    pub fn gunzip(&mut self, data: &[u8]) -> Result<&[u8], GzipError> {
        if self.buf.len() > RETAIN_BYTES {
            self.buf = Vec::new();
        }
        let mut want = claimed_size(data).min(self.cap).max(1024);
        loop {
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let avail = self.buf.len().min(self.cap);
            match self.inflater.gzip(data, &mut self.buf[..avail]) {
                // libdeflate stops after the first member; if it did not take the
                // whole input, there is more (another member, or garbage) for the
                // slow path.
                Inflated::Done { input, output } if input == data.len() => {
                    return Ok(&self.buf[..output])
                }
                Inflated::Done { .. } | Inflated::BadData => return self.gunzip_slow(data),
                Inflated::NoSpace => {
                    if avail >= self.cap {
                        return Err(GzipError::TooLarge { cap: self.cap });
                    }
                    want = avail.saturating_mul(2).min(self.cap);
                }
            }
        }
    }

    /// flate2 fallback: multi-member input, and a precise reason for bad input.
    fn gunzip_slow(&mut self, data: &[u8]) -> Result<&[u8], GzipError> {
        self.buf.clear();
        let reader = flate2::read::MultiGzDecoder::new(data);
        let mut limited = reader.take(self.cap as u64 + 1);
        match limited.read_to_end(&mut self.buf) {
            Ok(n) if n > self.cap => {
                self.buf.clear();
                Err(GzipError::TooLarge { cap: self.cap })
            }
            Ok(_) => Ok(&self.buf),
            Err(err) => {
                self.buf.clear();
                let reason = if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    "truncated (unexpected end of stream)".to_owned()
                } else {
                    err.to_string()
                };
                Err(GzipError::Corrupt(reason))
            }
        }
    }
}

/// The uncompressed size the gzip trailer claims (modulo 2^32; a hint only).
fn claimed_size(data: &[u8]) -> usize {
    match data.len().checked_sub(4) {
        Some(at) if data.len() >= 18 => {
            u32::from_le_bytes(data[at..].try_into().expect("4 bytes")) as usize
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trips_and_reuses_the_buffer() {
        let mut g = Gunzip::new(1 << 20);
        assert_eq!(g.gunzip(&gz(b"hello")).unwrap(), b"hello");
        let big = vec![b'x'; 300_000];
        assert_eq!(g.gunzip(&gz(&big)).unwrap(), &big[..]);
        assert_eq!(g.gunzip(&gz(b"")).unwrap(), b"");
    }

    #[test]
    fn caps_the_output_even_when_the_trailer_lies() {
        let mut data = gz(&vec![0u8; 10_000]);
        let n = data.len();
        data[n - 4..].copy_from_slice(&16u32.to_le_bytes()); // claims 16 bytes
        let mut g = Gunzip::new(4096);
        assert_eq!(g.gunzip(&data), Err(GzipError::TooLarge { cap: 4096 }));
        assert!(g.buf.len() <= 4097);
    }

    #[test]
    fn exactly_the_cap_is_allowed() {
        let mut g = Gunzip::new(4096);
        assert_eq!(g.gunzip(&gz(&[7u8; 4096])).unwrap().len(), 4096);
        assert!(g.gunzip(&gz(&[7u8; 4097])).is_err());
    }

    #[test]
    fn truncated_and_corrupt_input_is_an_error() {
        let data = gz(&vec![b'a'; 5000]);
        let mut g = Gunzip::new(1 << 20);
        let err = g.gunzip(&data[..data.len() / 2]).unwrap_err();
        assert!(
            matches!(err, GzipError::Corrupt(ref r) if r.contains("truncated")),
            "{err}"
        );
        let mut bad = data.clone();
        bad[12] ^= 0xff;
        bad[13] ^= 0xff;
        assert!(matches!(g.gunzip(&bad), Err(GzipError::Corrupt(_))));
    }

    #[test]
    fn a_wrong_crc_or_size_in_the_trailer_is_corrupt() {
        let data = gz(b"payload");
        let n = data.len();
        for at in [n - 8, n - 1] {
            let mut bad = data.clone();
            bad[at] ^= 1;
            let mut g = Gunzip::new(1 << 20);
            assert!(
                matches!(g.gunzip(&bad), Err(GzipError::Corrupt(_))),
                "byte {at}"
            );
        }
    }

    #[test]
    fn trailing_garbage_is_an_error_not_silently_ignored() {
        let mut data = gz(b"payload");
        data.extend_from_slice(b"garbage after the member");
        let mut g = Gunzip::new(1 << 20);
        assert!(matches!(g.gunzip(&data), Err(GzipError::Corrupt(_))));
    }

    #[test]
    fn accepts_multi_member_input_of_equal_sizes() {
        let mut data = gz(b"abc");
        data.extend(gz(b"xyz"));
        let mut g = Gunzip::new(1 << 20);
        assert_eq!(g.gunzip(&data).unwrap(), b"abcxyz");
    }

    #[test]
    fn accepts_multi_member_input() {
        let mut data = gz(b"one ");
        data.extend(gz(b"two"));
        let mut g = Gunzip::new(1 << 20);
        assert_eq!(g.gunzip(&data).unwrap(), b"one two");
    }
}
