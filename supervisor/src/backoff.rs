use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Exponential backoff with jitter and reset, applied before every restart.
///
/// The delay before restart attempt `n` (counted from 1 since the last reset)
/// is `min(max, initial × multiplierⁿ⁻¹)`, then shortened by a random share of
/// at most `jitter` of itself. Jitter only ever shortens the delay, so `max`
/// is a hard bound, and replicas that fail together spread over
/// `[(1 − jitter) × d, d]` instead of restarting in lockstep.
///
/// A child that stayed ready for `reset_after` starts again at attempt 1.
/// `initial = 0` restarts at once, every time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pod_supervisor::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1))
///     .with_jitter(0.0);
/// assert_eq!(b.delay(1, 0.5), Duration::from_millis(100));
/// assert_eq!(b.delay(3, 0.5), Duration::from_millis(400));
/// assert_eq!(b.delay(9, 0.5), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay before the first restart. Zero restarts at once.
    pub initial: Duration,
    /// Growth factor per attempt; at least 1.
    pub multiplier: f64,
    /// Upper bound of any delay; at least `initial`.
    pub max: Duration,
    /// Share of the delay that may be cut at random, in `0..=1`.
    pub jitter: f64,
    /// Readiness time after which the attempt count starts again from 1.
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 30 s, 10 % jitter, reset after 10 s of readiness.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.1,
            reset_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// An exponential backoff with the default jitter and reset.
    #[must_use]
    pub fn new(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Backoff {
            initial,
            multiplier,
            max,
            ..Backoff::default()
        }
    }

    /// No delay at all: every restart happens at once (OTP's behaviour).
    #[must_use]
    pub fn immediate() -> Self {
        Backoff {
            initial: Duration::ZERO,
            multiplier: 1.0,
            max: Duration::ZERO,
            jitter: 0.0,
            reset_after: Duration::ZERO,
        }
    }

    /// Sets the jitter factor.
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets how long a child must stay ready before its attempts reset.
    #[must_use]
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::InvalidConfig {
                field: "backoff.multiplier",
                reason: "must be finite and at least 1",
            });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::InvalidConfig {
                field: "backoff.jitter",
                reason: "must be between 0 and 1",
            });
        }
        if self.max < self.initial {
            return Err(Error::InvalidConfig {
                field: "backoff.max",
                reason: "must be at least backoff.initial",
            });
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (1-based) without jitter.
    #[must_use]
    pub fn base_delay(&self, attempt: u32) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = secs.min(self.max.as_secs_f64());
        Duration::try_from_secs_f64(capped)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before attempt `attempt` (1-based), with jitter drawn from
    /// `unit`, a uniform sample from `0..1` (the supervisor draws it from a
    /// seedable generator). Never longer than [`base_delay`](Self::base_delay).
    #[must_use]
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let keep = (1.0 - self.jitter * unit).clamp(0.0, 1.0);
        if keep >= 1.0 || keep.is_nan() {
            return base;
        }
        Duration::try_from_secs_f64(base.as_secs_f64() * keep)
            .unwrap_or(base)
            .min(base)
    }

    /// Whether a child that has been ready for `ready_for` starts again from
    /// attempt 1 on its next failure.
    #[must_use]
    pub fn resets_after(&self, ready_for: Duration) -> bool {
        ready_for >= self.reset_after
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
    fn doubling_sequence_is_capped() {
        let b = Backoff::new(ms(100), 2.0, ms(1000)).with_jitter(0.0);
        let seq: Vec<_> = (1..=6).map(|n| b.delay(n, 0.9)).collect();
        assert_eq!(
            seq,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }

    #[test]
    fn zero_initial_is_immediate() {
        let b = Backoff::new(Duration::ZERO, 2.0, ms(1000));
        assert_eq!(b.delay(1, 0.3), Duration::ZERO);
        assert_eq!(b.delay(40, 0.3), Duration::ZERO);
        assert_eq!(Backoff::immediate().delay(7, 0.3), Duration::ZERO);
    }

    #[test]
    fn huge_attempts_saturate_at_max() {
        let b = Backoff::new(ms(1), 10.0, ms(5000)).with_jitter(0.0);
        assert_eq!(b.delay(u32::MAX, 0.0), ms(5000));
    }

    #[test]
    fn validation_rejects_bad_values() {
        let ok = Backoff::default();
        assert!(ok.validate().is_ok());
        let bad = [
            Backoff {
                multiplier: 0.5,
                ..ok
            },
            Backoff {
                multiplier: f64::NAN,
                ..ok
            },
            Backoff {
                multiplier: f64::INFINITY,
                ..ok
            },
            Backoff { jitter: 1.5, ..ok },
            Backoff { jitter: -0.1, ..ok },
            Backoff {
                jitter: f64::NAN,
                ..ok
            },
            Backoff { max: ms(1), ..ok },
        ];
        for b in bad {
            assert!(
                matches!(b.validate(), Err(Error::InvalidConfig { .. })),
                "{b:?}"
            );
        }
    }

    #[test]
    fn reset_threshold_is_inclusive() {
        let b = Backoff::default().with_reset_after(ms(500));
        assert!(!b.resets_after(ms(499)));
        assert!(b.resets_after(ms(500)));
    }

    prop_compose! {
        fn valid_backoff()(
            initial in 0u64..10_000,
            extra in 0u64..600_000,
            multiplier in 1.0f64..8.0,
            jitter in 0.0f64..=1.0,
        ) -> Backoff {
            Backoff {
                initial: ms(initial),
                multiplier,
                max: ms(initial + extra),
                jitter,
                reset_after: ms(1000),
            }
        }
    }

    proptest! {
        #[test]
        fn delay_within_jitter_bounds(b in valid_backoff(), n in 1u32..200, unit in 0.0f64..1.0) {
            prop_assert!(b.validate().is_ok());
            let base = b.base_delay(n);
            let d = b.delay(n, unit);
            prop_assert!(d <= base);
            prop_assert!(d <= b.max);
            let floor = base.as_secs_f64() * (1.0 - b.jitter);
            prop_assert!(d.as_secs_f64() >= floor - 1e-9, "{d:?} < {floor}");
        }

        #[test]
        fn base_delay_is_monotonic_and_capped(b in valid_backoff(), n in 1u32..200) {
            let now = b.base_delay(n);
            let next = b.base_delay(n + 1);
            prop_assert!(next >= now);
            prop_assert!(next <= b.max);
            if n == 1 {
                prop_assert_eq!(now, b.initial);
            }
        }

        #[test]
        fn base_delay_matches_closed_form(b in valid_backoff(), n in 1u32..30) {
            let expected = (b.initial.as_secs_f64() * b.multiplier.powi(n as i32 - 1))
                .min(b.max.as_secs_f64());
            let got = b.base_delay(n).as_secs_f64();
            prop_assert!((got - expected).abs() <= 1e-6, "{got} vs {expected}");
        }

        #[test]
        fn no_jitter_ignores_the_draw(b in valid_backoff(), n in 1u32..64, unit in 0.0f64..1.0) {
            let b = b.with_jitter(0.0);
            prop_assert_eq!(b.delay(n, unit), b.base_delay(n));
        }
    }
}
