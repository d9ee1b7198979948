//! The dead-letter directory: records that failed to decode, written raw (one file
//! each) so an operator can replay them with `kinesis-collector decode FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

/// Writes bad records into one directory.
#[derive(Debug)]
pub struct DeadLetters {
    dir: PathBuf,
}

impl DeadLetters {
    /// Uses `dir`, creating it if missing.
    pub fn open(dir: &Path) -> std::io::Result<DeadLetters> {
        std::fs::create_dir_all(dir)?;
        Ok(DeadLetters {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a bad record goes to:
    /// `STREAM_SHARD_SEQUENCE[_SUBSEQUENCE].bin`.
    pub fn file_name(
        stream: &str,
        shard_id: &str,
        sequence: &str,
        subsequence: Option<u32>,
    ) -> String {
        let mut name = format!("{}_{}_{}", clean(stream), clean(shard_id), clean(sequence));
        if let Some(sub) = subsequence {
            name.push_str(&format!("_{sub}"));
        }
        name.push_str(".bin");
        name
    }

    /// Writes `data` (the whole record as read from Kinesis); a failure is logged,
    /// never fatal: the record was already counted and logged.
    pub fn write(
        &self,
        stream: &str,
        shard_id: &str,
        sequence: &str,
        subsequence: Option<u32>,
        data: &[u8],
    ) {
        let path = self
            .dir
            .join(Self::file_name(stream, shard_id, sequence, subsequence));
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(data));
        match result {
            Ok(()) => {
                info!(path = %path.display(), bytes = data.len(), "bad record written to the dead-letter directory")
            }
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot write bad record to the dead-letter directory")
            }
        }
    }
}

/// Keeps file names to `[A-Za-z0-9._-]`.
fn clean(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_stream_shard_and_sequence() {
        assert_eq!(
            DeadLetters::file_name("fortisiem", "shardId-000000000001", "4959", None),
            "fortisiem_shardId-000000000001_4959.bin"
        );
        assert_eq!(
            DeadLetters::file_name("a/b c", "s", "1", Some(3)),
            "a-b-c_s_1_3.bin"
        );
    }
}
