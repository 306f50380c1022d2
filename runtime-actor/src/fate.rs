//! How one generation ends: its failure cause, and the failures reported
//! to it from outside its request path; and, for a runtime in place, what
//! its owner sent through the mailbox and not yet delivered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::Waker;

use futures::task::AtomicWaker;

use crate::error::FailureCause;
use crate::monitor::{lock, Outcomes};

/// One generation's failure and outcome, shared by all who record, report or
/// read them: the actor, its report, its handles, each reply, and every
/// [`FailureReporter`](crate::FailureReporter). One allocation a generation
/// for all of it.
///
/// A reporter hands its cause to the actor through here rather than through
/// the actor's mailbox: a generation then makes no address of its own actor
/// (two allocations and a boxed recipient in actix) for reporters that most
/// runtimes never use.
#[derive(Debug, Default)]
pub(crate) struct Fate {
    /// The failure that ended (or is ending) the generation; the first one
    /// recorded stands.
    cause: OnceLock<FailureCause>,
    /// The first failure reported from outside, until the actor takes it.
    /// Boxed: most generations never have one, and every one holds a fate.
    reported: Mutex<Option<Box<FailureCause>>>,
    /// Whether `reported` holds one: read on every poll of the actor's
    /// serve loop, where the lock would cost more.
    has_report: AtomicBool,
    /// The actor's task, woken by a report.
    actor: AtomicWaker,
    /// Readiness and exit, settled by the report for the handles.
    pub(crate) outcome: Outcomes,
    /// In place: how many of the owner's requests and checks are on their
    /// way through the mailbox, plus [`STOP_MAILED`] once the owner sent a
    /// stop. While it is not zero, the owner's next ones follow them there
    /// instead of overtaking them through the lane.
    mailed: AtomicUsize,
}

/// In [`Fate::mailed`]: the owner sent a stop or a kill, for good.
const STOP_MAILED: usize = 1 << (usize::BITS - 1);

impl Fate {
    pub(crate) fn get(&self) -> Option<&FailureCause> {
        self.cause.get()
    }

    /// Records `cause` unless a failure is recorded already (then gives it
    /// back).
    pub(crate) fn set(&self, cause: FailureCause) -> Result<(), FailureCause> {
        self.cause.set(cause)
    }

    pub(crate) fn get_or_init(&self, cause: impl FnOnce() -> FailureCause) -> &FailureCause {
        self.cause.get_or_init(cause)
    }

    /// Reports a failure from outside the request path, from any thread. The
    /// first report stands; the actor acts on it when it next runs, and one
    /// that has ended never takes it.
    pub(crate) fn report(&self, cause: FailureCause) {
        {
            let mut reported = lock(&self.reported);
            if reported.is_some() || self.has_report.load(Ordering::Acquire) {
                return;
            }
            *reported = Some(Box::new(cause));
        }
        self.has_report.store(true, Ordering::Release);
        self.actor.wake();
    }

    /// Whether a failure was reported.
    pub(crate) fn was_reported(&self) -> bool {
        self.has_report.load(Ordering::Acquire)
    }

    /// The actor's task, to be woken by a report. A task's waker does not
    /// change, so the actor registers it once, before it first looks.
    pub(crate) fn watch(&self, actor: &Waker) {
        self.actor.register(actor);
    }

    /// Whether the owner's next request may take the lane: nothing it sent
    /// through the mailbox is still on its way, and it sent no stop.
    pub(crate) fn lane_clear(&self) -> bool {
        self.mailed.load(Ordering::Acquire) == 0
    }

    /// The owner sends a request or a check through the mailbox (counted
    /// before it is sent, and until its handler runs).
    pub(crate) fn mailing(&self) {
        self.mailed.fetch_add(1, Ordering::AcqRel);
    }

    /// The actor's handler took one the owner sent through the mailbox.
    pub(crate) fn delivered(&self) {
        self.mailed.fetch_sub(1, Ordering::AcqRel);
    }

    /// The owner sent a stop or a kill: its requests take the mailbox from
    /// now on, behind it.
    pub(crate) fn stop_mailed(&self) {
        self.mailed.fetch_or(STOP_MAILED, Ordering::AcqRel);
    }

    /// Takes the reported failure, if there is one.
    pub(crate) fn take_report(&self) -> Option<FailureCause> {
        if !self.has_report.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.reported).take().map(|cause| *cause)
    }
}
