//! Retry policy in one place: an exponential [`Backoff`] with one named
//! policy per caller, and the [`CircuitBreaker`] that stops calling a
//! failing service for a while.
//!
//! The policies differ on purpose:
//!
//! - [`Backoff::relay`] and [`Backoff::projector`]: long-running loops that
//!   reconnect to NATS and Postgres; 100 ms doubling to 5 s, no jitter (one
//!   process each, nobody to fall into lockstep with).
//! - [`Backoff::conflict`]: optimistic-concurrency retries of a command;
//!   full jitter up to 1 ms doubling to 64 ms, so writers that collided do
//!   not collide again in lockstep.
//! - [`Backoff::llm`]: retries of one LLM call; 200 ms doubling, bounded by
//!   the number of attempts the LLM settings allow.
//! - [`Backoff::position_wait`]: polling a read model for read-your-writes;
//!   2 ms doubling to 50 ms, so a short wait stays short.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// How much of each delay is drawn at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The delay as computed.
    None,
    /// Uniformly from zero up to (not including) the delay.
    Full,
}

/// Exponential backoff: `first`, then `factor` times the one before, never
/// above `ceiling`, with `jitter` applied to each.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    ceiling: Duration,
    factor: u32,
    jitter: Jitter,
    current: Duration,
}

impl Backoff {
    pub fn new(first: Duration, ceiling: Duration, factor: u32, jitter: Jitter) -> Self {
        Self {
            first,
            ceiling,
            factor,
            jitter,
            current: first.min(ceiling),
        }
    }

    /// The relay's reconnects: 100 ms doubling to
    /// [`relay::MAX_BACKOFF`](crate::relay::MAX_BACKOFF), which the stream's
    /// duplicate window is many times.
    pub fn relay() -> Self {
        Self::new(
            Duration::from_millis(100),
            crate::relay::MAX_BACKOFF,
            2,
            Jitter::None,
        )
    }

    /// A projector's reconnects: 100 ms doubling to 5 s.
    pub fn projector() -> Self {
        Self::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            2,
            Jitter::None,
        )
    }

    /// Optimistic-concurrency retries: a random pause below 1 ms, doubling
    /// to below 64 ms.
    pub fn conflict() -> Self {
        Self::new(
            Duration::from_millis(1),
            Duration::from_millis(64),
            2,
            Jitter::Full,
        )
    }

    /// LLM call retries: 200 ms doubling. The attempts setting bounds how
    /// many there are, so the policy needs no ceiling of its own.
    pub fn llm() -> Self {
        Self::new(Duration::from_millis(200), Duration::MAX, 2, Jitter::None)
    }

    /// Read-your-writes polling: 2 ms doubling to 50 ms.
    pub fn position_wait() -> Self {
        Self::new(
            Duration::from_millis(2),
            Duration::from_millis(50),
            2,
            Jitter::None,
        )
    }

    /// The longest delay this backoff answers.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The pause before the next retry; each call moves one step on.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = self
            .current
            .checked_mul(self.factor)
            .unwrap_or(self.ceiling)
            .min(self.ceiling);
        match self.jitter {
            Jitter::None => delay,
            Jitter::Full if delay.is_zero() => delay,
            Jitter::Full => rand::thread_rng().gen_range(Duration::ZERO..delay),
        }
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.first.min(self.ceiling);
    }
}

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Calls go through; counts consecutive failures.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant, failures: u32 },
    /// The cooldown is over: calls go through as the trial, and the next
    /// failure opens the breaker again at once.
    HalfOpen,
}

/// Opens after `threshold` consecutive failures and refuses calls for
/// `cooldown`; then lets calls through as the trial, where one failure
/// opens it again and one success closes it.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    circuit: Mutex<Circuit>,
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the circuit breaker is open")]
pub struct BreakerOpen;

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go now.
    pub fn allow(&self) -> Result<(), BreakerOpen> {
        self.allow_at(Instant::now())
    }

    /// Whether a call may go at `now`; moves an open breaker whose cooldown
    /// is over to half-open.
    pub fn allow_at(&self, now: Instant) -> Result<(), BreakerOpen> {
        let mut circuit = self.lock();
        match *circuit {
            Circuit::Open { until, .. } if now < until => Err(BreakerOpen),
            Circuit::Open { .. } => {
                *circuit = Circuit::HalfOpen;
                Ok(())
            }
            Circuit::Closed { .. } | Circuit::HalfOpen => Ok(()),
        }
    }

    /// A call succeeded: the breaker closes.
    pub fn record_success(&self) {
        *self.lock() = Circuit::Closed { failures: 0 };
    }

    /// A call failed now; see [`record_failure_at`](Self::record_failure_at).
    pub fn record_failure(&self) -> Option<u32> {
        self.record_failure_at(Instant::now())
    }

    /// A call failed at `now`. Answers the consecutive failures when this
    /// one opened the breaker (a call still in flight when it opened opens
    /// it again, for a fresh cooldown).
    pub fn record_failure_at(&self, now: Instant) -> Option<u32> {
        let mut circuit = self.lock();
        let failures = match *circuit {
            Circuit::Closed { failures } | Circuit::Open { failures, .. } => failures + 1,
            Circuit::HalfOpen => self.threshold.max(1),
        };
        if failures >= self.threshold {
            *circuit = Circuit::Open {
                until: now + self.cooldown,
                failures,
            };
            Some(failures)
        } else {
            *circuit = Circuit::Closed { failures };
            None
        }
    }

    /// Where the breaker stands.
    pub fn circuit(&self) -> Circuit {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        // The state is a plain value, valid whatever a panicking holder did.
        self.circuit.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_backoff_doubles_from_its_first_delay_and_stops_at_its_ceiling() {
        let mut backoff = Backoff::new(ms(100), ms(1000), 2, Jitter::None);
        let delays: Vec<Duration> = (0..7).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn a_backoff_without_a_ceiling_saturates_instead_of_overflowing() {
        let mut backoff = Backoff::llm();
        assert_eq!(backoff.next_delay(), ms(200));
        assert_eq!(backoff.next_delay(), ms(400));
        assert_eq!(backoff.next_delay(), ms(800));
        for _ in 0..200 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }

    #[test]
    fn a_reset_backoff_starts_again_from_its_first_delay() {
        let mut backoff = Backoff::relay();
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
        assert_eq!(backoff.next_delay(), ms(200));
    }

    #[test]
    fn full_jitter_stays_below_the_delay_it_draws_from() {
        let mut backoff = Backoff::conflict();
        for ceiling in [1, 2, 4, 8, 16, 32, 64, 64, 64] {
            let delay = backoff.next_delay();
            assert!(delay < ms(ceiling), "{delay:?} is not below {ceiling} ms");
        }
    }

    #[test]
    fn full_jitter_spreads_its_delays() {
        let mut backoff = Backoff::conflict();
        for _ in 0..6 {
            backoff.next_delay();
        }
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn a_breaker_opens_after_its_threshold_of_consecutive_failures() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(breaker.record_failure_at(start), None);
        assert_eq!(breaker.record_failure_at(start), None);
        assert_eq!(breaker.allow_at(start), Ok(()));
        assert_eq!(breaker.record_failure_at(start), Some(3));
        assert_eq!(breaker.allow_at(start), Err(BreakerOpen));
        assert_eq!(
            breaker.allow_at(start + Duration::from_secs(29)),
            Err(BreakerOpen)
        );
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(breaker.record_failure_at(start), None);
        breaker.record_success();
        assert_eq!(breaker.record_failure_at(start), None);
        assert_eq!(breaker.allow_at(start), Ok(()));
        assert_eq!(breaker.circuit(), Circuit::Closed { failures: 1 });
    }

    #[test]
    fn after_its_cooldown_an_open_breaker_lets_a_trial_through_and_one_failure_reopens_it() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        let start = Instant::now();
        for _ in 0..3 {
            breaker.record_failure_at(start);
        }
        let later = start + Duration::from_secs(30);
        assert_eq!(breaker.allow_at(later), Ok(()));
        assert_eq!(breaker.circuit(), Circuit::HalfOpen);
        assert_eq!(breaker.record_failure_at(later), Some(3));
        assert_eq!(breaker.allow_at(later), Err(BreakerOpen));
        assert_eq!(breaker.allow_at(later + Duration::from_secs(30)), Ok(()));
    }

    #[test]
    fn a_successful_trial_closes_the_breaker() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(breaker.record_failure_at(start), Some(1));
        assert_eq!(breaker.allow_at(start), Err(BreakerOpen));
        assert_eq!(breaker.allow_at(start + Duration::from_secs(31)), Ok(()));
        breaker.record_success();
        assert_eq!(breaker.circuit(), Circuit::Closed { failures: 0 });
        assert_eq!(breaker.allow_at(start + Duration::from_secs(31)), Ok(()));
    }
}
