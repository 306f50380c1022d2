use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::Error;

/// The restart limit: more than `max_restarts` restarts within `within` and
/// the supervisor gives up.
///
/// The window slides: each restart is remembered at its own instant and
/// forgotten exactly `within` later (OTP's rule), not in fixed buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intensity {
    /// Restarts allowed within the window; one more gives up. Zero gives up
    /// on the first failure that asks for a restart.
    pub max_restarts: u32,
    /// Length of the sliding window; must be positive.
    pub within: Duration,
}

impl Default for Intensity {
    /// 5 restarts within 10 s (systemd's `StartLimitBurst`/`IntervalSec`).
    fn default() -> Self {
        Intensity {
            max_restarts: 5,
            within: Duration::from_secs(10),
        }
    }
}

impl Intensity {
    /// A limit of `max_restarts` within `within`.
    #[must_use]
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        Intensity {
            max_restarts,
            within,
        }
    }

    /// Checks the window length.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `within` is zero.
    pub fn validate(&self) -> Result<(), Error> {
        if self.within.is_zero() {
            return Err(Error::InvalidConfig {
                field: "intensity.within",
                reason: "must be positive",
            });
        }
        Ok(())
    }
}

/// The sliding log of restart instants behind [`Intensity`].
#[derive(Debug, Clone, Default)]
pub(crate) struct RestartLog {
    instants: VecDeque<Instant>,
}

impl RestartLog {
    /// Records a restart at `now`; returns `false` when it exceeds the limit.
    pub(crate) fn record(&mut self, limit: &Intensity, now: Instant) -> bool {
        self.prune(limit, now);
        self.instants.push_back(now);
        // Only the newest `max_restarts + 1` instants can ever matter.
        let keep = usize::try_from(limit.max_restarts)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while self.instants.len() > keep {
            self.instants.pop_front();
        }
        self.instants.len() <= keep.saturating_sub(1)
    }

    /// Restarts still inside the window at `now`.
    pub(crate) fn count(&mut self, limit: &Intensity, now: Instant) -> usize {
        self.prune(limit, now);
        self.instants.len()
    }

    pub(crate) fn clear(&mut self) {
        self.instants.clear();
    }

    fn prune(&mut self, limit: &Intensity, now: Instant) {
        while let Some(&oldest) = self.instants.front() {
            if now.saturating_duration_since(oldest) >= limit.within {
                self.instants.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn max_restarts_pass_then_one_more_fails() {
        let limit = Intensity::new(3, ms(1000));
        let mut log = RestartLog::default();
        let t0 = Instant::now();
        assert!(log.record(&limit, t0));
        assert!(log.record(&limit, t0 + ms(10)));
        assert!(log.record(&limit, t0 + ms(20)));
        assert!(!log.record(&limit, t0 + ms(30)));
    }

    #[test]
    fn old_restarts_slide_out() {
        let limit = Intensity::new(2, ms(1000));
        let mut log = RestartLog::default();
        let t0 = Instant::now();
        assert!(log.record(&limit, t0));
        assert!(log.record(&limit, t0 + ms(600)));
        // Exactly `within` after the first restart, it no longer counts.
        assert!(log.record(&limit, t0 + ms(1000)));
        assert!(!log.record(&limit, t0 + ms(1500)));
        assert_eq!(log.count(&limit, t0 + ms(2600)), 0);
    }

    #[test]
    fn zero_restarts_gives_up_at_once() {
        let limit = Intensity::new(0, ms(1000));
        assert!(!RestartLog::default().record(&limit, Instant::now()));
    }

    #[test]
    fn zero_window_is_rejected() {
        assert!(Intensity::new(1, Duration::ZERO).validate().is_err());
        assert!(Intensity::default().validate().is_ok());
    }

    proptest! {
        /// The bounded log agrees with a naive count over every restart ever
        /// recorded.
        #[test]
        fn log_matches_naive_window(
            max in 0u32..6,
            within in 1u64..2_000,
            gaps in proptest::collection::vec(0u64..800, 1..60),
        ) {
            let limit = Intensity::new(max, ms(within));
            let mut log = RestartLog::default();
            let t0 = Instant::now();
            let mut all = Vec::new();
            let mut at = t0;
            for gap in gaps {
                at += ms(gap);
                all.push(at);
                let in_window = all.iter().filter(|&&t| at - t < ms(within)).count();
                prop_assert_eq!(log.record(&limit, at), in_window <= max as usize);
                prop_assert_eq!(log.count(&limit, at), in_window.min(max as usize + 1));
            }
        }
    }
}
