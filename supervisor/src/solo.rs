//! The restart decisions of a supervisor with one child, without an actor.

use std::time::Duration;

use tokio::time::Instant;

use crate::intensity::RestartLog;
use crate::{ChildExit, Error, NoRestart, RestartPolicy, SupervisorConfig, Verdict};

/// What one exit asks for, by the child's restart type, the intensity and
/// the backoff. The one rule behind both [`Solo`] and the
/// [`Supervisor`](crate::Supervisor) actor.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Not restarted, by the restart type (never a give-up).
    Keep(NoRestart),
    /// One restart too many within the intensity window.
    GiveUp {
        reason: String,
    },
    Restart {
        attempt: u32,
        delay: Duration,
    },
}

/// The memory a decision needs: restarts in the window, and the generator
/// of the jitter.
#[derive(Debug)]
pub(crate) struct Pacing {
    pub(crate) restarts: RestartLog,
    pub(crate) rng: fastrand::Rng,
}

impl Pacing {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Pacing {
            restarts: RestartLog::default(),
            rng: match seed {
                Some(seed) => fastrand::Rng::with_seed(seed),
                None => fastrand::Rng::new(),
            },
        }
    }

    /// Decides an exit of a child restarted as `policy`, by `config`'s
    /// intensity and backoff. `attempt` is the child's restart attempt since
    /// its last backoff reset, updated here; `ready_for` is how long it had
    /// been ready, when it was.
    pub(crate) fn decide(
        &mut self,
        config: &SupervisorConfig,
        policy: RestartPolicy,
        exit: &ChildExit,
        attempt: &mut u32,
        ready_for: Option<Duration>,
        now: Instant,
    ) -> Decision {
        let (intensity, backoff) = (&config.intensity, &config.backoff);
        if !policy.should_restart(exit) {
            return Decision::Keep(match policy {
                RestartPolicy::Temporary => NoRestart::Temporary,
                _ => NoRestart::NormalExit,
            });
        }
        if !self.restarts.record(intensity, now) {
            return Decision::GiveUp {
                reason: format!(
                    "more than {} restarts within {:?}",
                    intensity.max_restarts, intensity.within
                ),
            };
        }
        let unit = self.rng.f64();
        if ready_for.is_some_and(|d| backoff.resets_after(d)) {
            *attempt = 0;
        }
        *attempt = attempt.saturating_add(1);
        Decision::Restart {
            attempt: *attempt,
            delay: backoff.delay(*attempt, unit),
        }
    }
}

/// The decisions a [`Supervisor`](crate::Supervisor) makes for a child it
/// supervises alone, for an actor that restarts its own work: a pod with no
/// supervisor of its own, say.
///
/// Same rules, same verdicts, same reasons as a supervisor with this config
/// and that one child added with [`AddChild`](crate::AddChild): restart
/// types, intensity (giving up is [`NoRestart::GaveUp`]), backoff with
/// jitter and its reset after a period of readiness, and a failure before
/// the first readiness that is not restarted ([`NoRestart::FailedToStart`])
/// unless `restart_on_start_failure`. With one child the strategy changes
/// nothing, and there is no sibling, parent or job queue to wait for: the
/// verdict is given the moment the exit is known, with no message and no
/// actor.
///
/// ```
/// use std::time::Duration;
/// use pod_supervisor::{
///     Backoff, ChildExit, Intensity, NoRestart, RestartPolicy, Solo, SupervisorConfig, Verdict,
/// };
/// use tokio::time::Instant;
///
/// let config = SupervisorConfig::default()
///     .with_intensity(Intensity::new(1, Duration::from_secs(10)))
///     .with_backoff(
///         Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)).with_jitter(0.0),
///     );
/// let mut solo = Solo::new(config, RestartPolicy::Permanent, false)?;
/// let now = Instant::now();
/// let crash = ChildExit::Failed { cause: "boom".into() };
///
/// solo.ready(now);
/// assert_eq!(
///     solo.exited(&crash, now),
///     Verdict::Restart { attempt: 1, delay: Duration::from_millis(100) }
/// );
/// solo.ready(now);
/// assert!(matches!(
///     solo.exited(&crash, now),
///     Verdict::NoRestart(NoRestart::GaveUp { .. })
/// ));
/// # Ok::<(), pod_supervisor::Error>(())
/// ```
#[derive(Debug)]
pub struct Solo {
    config: SupervisorConfig,
    restart: RestartPolicy,
    restart_on_start_failure: bool,
    pacing: Pacing,
    attempt: u32,
    /// Since when the current start is ready.
    ready_since: Option<Instant>,
    /// No start has ended yet, and none was ready: a failure now fails the
    /// first start.
    first_start: bool,
}

impl Solo {
    /// The decisions for one child restarted as `restart`, paced by
    /// `config`'s intensity, backoff and seed (its strategy and start order
    /// mean nothing with one child).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `config` is invalid, as
    /// [`Supervisor::new`](crate::Supervisor::new) says.
    pub fn new(
        config: SupervisorConfig,
        restart: RestartPolicy,
        restart_on_start_failure: bool,
    ) -> Result<Self, Error> {
        config.validate()?;
        Ok(Solo {
            pacing: Pacing::new(config.seed),
            config,
            restart,
            restart_on_start_failure,
            attempt: 0,
            ready_since: None,
            first_start: true,
        })
    }

    /// The current start became ready at `now`.
    pub fn ready(&mut self, now: Instant) {
        self.first_start = false;
        self.ready_since = Some(now);
    }

    /// The current start ended with `exit` at `now`: whether, and after
    /// how long, the next one comes. The verdict depends on the kind of
    /// exit, never on the text of a failure's cause.
    pub fn exited(&mut self, exit: &ChildExit, now: Instant) -> Verdict {
        let ready_for = self
            .ready_since
            .take()
            .map(|since| now.saturating_duration_since(since));
        if std::mem::replace(&mut self.first_start, false) && !self.restart_on_start_failure {
            return Verdict::NoRestart(NoRestart::FailedToStart);
        }
        let decision = self.pacing.decide(
            &self.config,
            self.restart,
            exit,
            &mut self.attempt,
            ready_for,
            now,
        );
        match decision {
            Decision::Keep(why) => Verdict::NoRestart(why),
            Decision::GiveUp { reason } => Verdict::NoRestart(NoRestart::GaveUp { reason }),
            Decision::Restart { attempt, delay } => Verdict::Restart { attempt, delay },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::machine::{ChildPlan, Command, Input, Machine};
    use crate::{Backoff, Intensity};

    /// One start of the child: whether it became ready, how long it ran,
    /// and how it ended.
    #[derive(Debug, Clone)]
    struct Run {
        ready: bool,
        ran_ms: u64,
        failed: bool,
    }

    fn run() -> impl Strategy<Value = Run> {
        (any::<bool>(), 0u64..15_000, any::<bool>()).prop_map(|(ready, ran_ms, failed)| Run {
            ready,
            ran_ms,
            failed,
        })
    }

    fn policy() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Permanent),
            Just(RestartPolicy::Transient),
            Just(RestartPolicy::Temporary),
        ]
    }

    fn start_of(out: &[Command<u32>]) -> Option<u64> {
        out.iter().find_map(|c| match c {
            Command::Start { generation, .. } => Some(*generation),
            _ => None,
        })
    }

    fn verdict_of(out: &[Command<u32>]) -> Option<Verdict> {
        out.iter().find_map(|c| match c {
            Command::Verdict { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
    }

    proptest! {
        /// Fed the same starts, a `Solo` gives the verdicts a supervisor
        /// with that one child gives: same restarts, attempts, delays
        /// (jitter from the same seed), resets, give-ups and reasons.
        #[test]
        fn solo_decides_as_a_supervisor_with_one_child(
            restart in policy(),
            on_start_failure in any::<bool>(),
            max_restarts in 0u32..5,
            within_s in 1u64..30,
            jitter in prop_oneof![Just(0.0), Just(0.1), Just(0.5)],
            seed in any::<u64>(),
            runs in proptest::collection::vec(run(), 1..24),
        ) {
            let config = SupervisorConfig::default()
                .with_intensity(Intensity::new(max_restarts, Duration::from_secs(within_s)))
                .with_backoff(
                    Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(5))
                        .with_jitter(jitter),
                )
                .with_seed(seed);
            let mut now = Instant::now();
            let mut machine: Machine<u32> = Machine::new(config.clone(), now);
            machine.handle(Input::StartAll, now);
            let plan = ChildPlan {
                id: "child".into(),
                restart,
                shutdown: Duration::from_secs(5),
                restart_on_start_failure: on_start_failure,
            };
            let out = machine.handle(Input::Add { plan, ticket: 0 }, now);
            let mut generation = start_of(&out).expect("the first start");
            let mut solo = Solo::new(config, restart, on_start_failure).expect("a valid config");

            for run in runs {
                if run.ready {
                    let id = "child".to_owned();
                    machine.handle(Input::Ready { id, generation }, now);
                    solo.ready(now);
                }
                now += Duration::from_millis(run.ran_ms);
                let exit = if run.failed {
                    ChildExit::Failed { cause: "boom".into() }
                } else {
                    ChildExit::Normal
                };
                let id = "child".to_owned();
                let out = machine.handle(Input::Exited { id, generation, exit: exit.clone() }, now);
                let expected = verdict_of(&out).expect("one verdict per exit");
                // The solo is not given the cause's text (a standalone pod
                // writes none): the verdict does not depend on it.
                let untold = match exit {
                    ChildExit::Failed { .. } => ChildExit::Failed { cause: String::new() },
                    ChildExit::Normal => ChildExit::Normal,
                };
                let verdict = solo.exited(&untold, now);
                prop_assert_eq!(&verdict, &expected);
                let Verdict::Restart { delay, .. } = verdict else {
                    break;
                };
                now += delay;
                let mut out = out;
                if let Some(token) = out.iter().find_map(|c| match c {
                    Command::Schedule { token, .. } => Some(*token),
                    _ => None,
                }) {
                    out = machine.handle(Input::Timer { token }, now);
                }
                generation = start_of(&out).expect("the restart");
            }
        }
    }

    #[test]
    fn an_invalid_config_is_refused_as_the_supervisor_refuses_it() {
        let config = SupervisorConfig::default().with_intensity(Intensity::new(1, Duration::ZERO));
        let error = Solo::new(config, RestartPolicy::Permanent, false).unwrap_err();
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "intensity.within",
                ..
            }
        ));
    }
}
