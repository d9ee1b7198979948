//! Shutdown signals: the first SIGTERM or SIGINT cancels the one root
//! [`CancellationToken`] every task descends from (a clean stop: drain, final
//! checkpoints, lease release); a second one exits the process at once.
//!
//! Exiting at once keeps at-least-once delivery: nothing is checkpointed past what
//! the sink acknowledged, so what was in flight is read again by whoever takes the
//! shard next (after the failover time, as the leases are not released).

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Exit status after a second signal: 128 + SIGINT, as shells report an
/// interrupted command.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Waits for SIGTERM / SIGINT: the first cancels `root`, the second exits the
/// process with [`FORCED_EXIT_CODE`]. Never returns otherwise; run it beside the
/// application (e.g. in a `select!`) and drop it when the application ends.
pub async fn watch(root: CancellationToken) {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            // Without handlers the default action (exit) applies: still safe.
            error!(error = %err, "cannot install SIGTERM/SIGINT handlers; signals stop the process at once");
            return std::future::pending().await;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(
        signal = name,
        "stopping: draining in-flight events, then final checkpoints and lease release (a second signal exits at once)"
    );
    root.cancel();
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    warn!(
        signal = name,
        code = FORCED_EXIT_CODE,
        "second signal: exiting at once; unacknowledged events are read again after the failover time"
    );
    std::process::exit(FORCED_EXIT_CODE);
}
