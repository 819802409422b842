//! The services' allocator, and the reclaimer that returns what a burst
//! freed.
//!
//! Both services allocate many small JSON values per event, and glibc's
//! allocator showed as a third of their CPU under load, so they run on
//! mimalloc ([`Allocator`]). mimalloc keeps pages freed by a burst resident
//! for a delay (a second by default) and purges them only when an
//! allocating thread next takes its slow path, which an idle process never
//! does: after bursts of large refused bodies, 80-100 MiB stayed resident
//! for as long as the process stayed idle. [`reclaim`] asks mimalloc once a
//! tick to collect, which purges whatever has passed its delay, so the
//! resident size falls back to what the service still holds within a
//! second or two of the burst. One call a tick costs nothing measurable
//! under load, unlike a purge delay of zero (about a tenth more CPU on
//! batch ingest).
//!
//! This module is the workspace's one use of `unsafe`: a call without
//! arguments into the allocator's C API.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The global allocator both service binaries declare.
pub type Allocator = mimalloc::MiMalloc;

/// How often the services' reclaimer runs.
pub const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown`, asking the allocator every `every` to return the
/// memory whose purge delay has passed.
pub async fn reclaim(every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => collect(),
        }
    }
}

#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` takes no pointer and touches only the
    // allocator's own state, which it guards for concurrent use; with
    // `force = false` it frees nothing still in use and purges only what
    // passed its delay. Called when mimalloc is not the global allocator,
    // it collects mimalloc's own empty heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reclaimer_stops_when_told_to() {
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(reclaim(Duration::from_millis(5), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the reclaimer stops")
            .expect("it does not panic");
    }
}
