use serde::{Deserialize, Serialize};

use crate::{Backoff, Error, Intensity, Strategy};

/// How a [`Supervisor`](crate::Supervisor) restarts its children.
///
/// The defaults are one-for-one, 5 restarts within 10 s, and a backoff of
/// 100 ms doubling to 30 s with 10 % jitter, reset after 10 s of readiness.
/// See the crate docs for how they compare with OTP, kameo, systemd and
/// Kubernetes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SupervisorConfig {
    /// Which children a failure restarts.
    pub strategy: Strategy,
    /// The restart limit before giving up.
    pub intensity: Intensity,
    /// The delay before each restart.
    pub backoff: Backoff,
    /// Seed of the jitter generator; `None` seeds from the OS. Fix it to make
    /// jittered delays reproducible.
    pub seed: Option<u64>,
    /// Whether children start one after another or together.
    #[serde(default)]
    pub start_order: StartOrder,
}

/// How a supervisor starts its children: when it starts, and as they are
/// added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StartOrder {
    /// OTP's: each child starts once the one before it is ready, and a
    /// child that fails its first start fails the supervisor's own start
    /// (a child added later is refused instead).
    #[default]
    Sequential,
    /// All at once, so N children whose setup takes a second are all ready
    /// after a second, not N (Jina starts a deployment's replicas so). A
    /// child that fails its first start is not restarted and is forgotten,
    /// whatever its siblings do; it learns so from its verdict
    /// ([`NoRestart::FailedToStart`](crate::NoRestart::FailedToStart)).
    /// Restart cycles and [`RestartChild`](crate::RestartChild) still wait
    /// for each child's readiness.
    Concurrent,
}

impl SupervisorConfig {
    /// Sets the strategy.
    #[must_use]
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the restart limit.
    #[must_use]
    pub fn with_intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Sets the backoff.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how children are started.
    #[must_use]
    pub fn with_start_order(mut self, order: StartOrder) -> Self {
        self.start_order = order;
        self
    }

    /// Fixes the jitter seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.intensity.validate()?;
        self.backoff.validate()
    }
}
