//! Falling behind: a shard whose MillisBehindLatest passes a share of the stream's
//! retention period is read too slowly, and its oldest unread data will expire
//! before it is read. Warned once per shard (and again after it recovers), shown
//! as the FallingBehind metric.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Telemetry;
use crate::kinesis::{api, StreamId};

/// How often [`watch`] looks.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// How often the streams' retention periods are read again (they rarely change).
pub const RETENTION_REFRESH: Duration = Duration::from_secs(3600);
/// How soon a failed retention read is tried again.
const RETENTION_RETRY: Duration = Duration::from_secs(60);

/// A stream whose retention period [`watch`] reads (DescribeStreamSummary).
#[derive(Debug, Clone)]
pub struct StreamRetention {
    /// The stream.
    pub stream: StreamId,
    /// Its region (as in [`super::ShardKey::region`]).
    pub region: String,
    /// A client for that region (and role).
    pub client: aws_sdk_kinesis::Client,
}

/// Reads every stream's retention into `telemetry`; returns whether all answered.
async fn read_retention(telemetry: &Telemetry, streams: &[StreamRetention]) -> bool {
    let mut all = true;
    for s in streams {
        match api::describe_stream_summary(&s.client, &s.stream).await {
            Ok(summary) => {
                let hours = u64::try_from(summary.retention_period_hours).unwrap_or(24);
                let retention = Duration::from_secs(hours * 3600);
                telemetry.set_retention(s.stream.name(), &s.region, retention);
                debug!(stream = %s.stream.name(), region = %s.region, hours, "retention period read");
            }
            Err(err) => {
                all = false;
                warn!(
                    stream = %s.stream.name(),
                    region = %s.region,
                    error = %err,
                    "cannot read the stream's retention period; falling-behind check waits for it"
                );
            }
        }
    }
    all
}

/// Marks every shard falling behind (MillisBehindLatest above `share` of its
/// stream's retention, when the retention is known), logs each change, and
/// returns how many shards are falling behind.
pub fn check(telemetry: &Telemetry, share: f64) -> usize {
    let mut behind = 0;
    for (key, metrics) in telemetry.shards() {
        let Some(retention) = telemetry.retention(&key.stream, &key.region) else {
            continue;
        };
        let limit_ms = (retention.as_millis() as f64 * share) as i64;
        let millis = metrics.millis_behind_latest.load(Relaxed);
        let now = metrics.held.load(Relaxed) && millis >= 0 && millis > limit_ms;
        let was = metrics.falling_behind.swap(now, Relaxed);
        if now {
            behind += 1;
        }
        if now && !was {
            warn!(
                stream = %key.stream,
                region = %key.region,
                shard_id = %key.shard_id,
                millis_behind_latest = millis,
                retention = %humantime::format_duration(retention),
                share,
                "shard is falling behind: unread data will expire before it is read \
                 unless the collector reads faster (more workers, a faster sink) or the \
                 retention period is raised"
            );
        } else if was && !now {
            info!(
                stream = %key.stream,
                region = %key.region,
                shard_id = %key.shard_id,
                millis_behind_latest = millis,
                "shard has caught up"
            );
        }
    }
    behind
}

/// Reads the streams' retention periods (again every [`RETENTION_REFRESH`]) and
/// runs [`check`] every [`CHECK_EVERY`], until `cancel`.
pub async fn watch(
    telemetry: Telemetry,
    share: f64,
    streams: Vec<StreamRetention>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let refresh = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(refresh);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = &mut refresh => {
                let read = tokio::select! {
                    _ = cancel.cancelled() => return,
                    all = read_retention(&telemetry, &streams) => all,
                };
                let next = if read { RETENTION_REFRESH } else { RETENTION_RETRY };
                refresh.as_mut().reset(tokio::time::Instant::now() + next);
            }
            _ = tick.tick() => {
                check(&telemetry, share);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ShardKey;

    #[test]
    fn a_shard_falls_behind_past_the_share_of_retention_and_recovers() {
        let t = Telemetry::new();
        let key = |shard: &str| ShardKey {
            stream: "s".into(),
            region: "r".into(),
            shard_id: shard.into(),
        };
        let a = t.shard(key("a"));
        let b = t.shard(key("b"));
        a.millis_behind_latest.store(13 * 3_600_000, Relaxed);
        b.millis_behind_latest.store(11 * 3_600_000, Relaxed);
        // Unknown retention: no judgement.
        assert_eq!(check(&t, 0.5), 0);
        t.set_retention("s", "r", Duration::from_secs(24 * 3600));
        assert_eq!(check(&t, 0.5), 1);
        assert!(a.falling_behind.load(Relaxed));
        assert!(!b.falling_behind.load(Relaxed));
        assert_eq!(check(&t, 0.5), 1, "still behind, counted again");
        a.millis_behind_latest.store(0, Relaxed);
        assert_eq!(check(&t, 0.5), 0);
        assert!(!a.falling_behind.load(Relaxed));
    }
}
