//! systemd `Type=notify`: READY=1 once the configuration is loaded and the lease
//! coordinator has started (not waiting for the SIEM: a SIEM down at boot must not
//! fail the unit into a restart loop), STOPPING=1 when a clean stop begins, and
//! WATCHDOG=1 pings at half of `WatchdogSec` when systemd asks for them.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

fn send(state: NotifyState<'_>) {
    let what = state.to_string();
    match sd_notify::notify(false, &[state]) {
        Ok(()) => debug!(state = %what, "told systemd"),
        // A notification is advice to the service manager; failing to send one is
        // logged and the collector goes on.
        Err(err) => warn!(state = %what, error = %err, "cannot notify systemd"),
    }
}

/// READY=1: configuration loaded, lease coordinator started.
pub fn ready() {
    send(NotifyState::Ready);
}

/// STOPPING=1: a clean stop has begun.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// The watchdog ping period systemd asks for (half of `WATCHDOG_USEC`), if any.
pub fn watchdog_period() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
        .then(|| Duration::from_micros(usec) / 2)
}

/// Sends WATCHDOG=1 every [`watchdog_period`] until `cancel`; returns at once when
/// systemd asked for no watchdog. Runs on the runtime with everything else, so a
/// stalled runtime stops the pings and systemd restarts the collector.
pub async fn watchdog_task(cancel: CancellationToken) {
    let Some(period) = watchdog_period() else {
        return;
    };
    debug!(period = ?period, "systemd watchdog pings");
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => send(NotifyState::Watchdog),
        }
    }
}
