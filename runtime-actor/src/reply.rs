//! Where one request's answer goes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::{FailureCause, RequestError};
use crate::fate::Fate;

/// The answer's way back to whoever asked, given exactly once.
///
/// It carries the runtime's answer or a refusal; or, when the request is
/// dropped unanswered (the runtime failed or was stopped with it queued or in
/// flight, or its actor was already gone), [`RequestError::Exited`] with the
/// runtime's failure cause. The actor records that cause before anything it
/// queued is dropped, so the answer is given from the drop itself: no task
/// waits for the exit, and none sits between the runtime and the caller.
pub(crate) struct Reply<T> {
    to: To<T>,
    fate: Arc<Fate>,
}

enum To<T> {
    /// An answer awaited as a future.
    Channel(oneshot::Sender<Result<T, RequestError>>),
    /// An answer handed on where it arrives (into an actix reply channel,
    /// with the owner's own mapping). A panic in it is the caller's, caught
    /// and logged: it does not fail the runtime.
    Callback(Box<dyn FnOnce(Result<T, RequestError>) + Send>),
    /// Nobody waits (a request sent with `do_send`), or it was given.
    Nobody,
}

impl<T> Reply<T> {
    /// Records `cause`, the failure this reply's request caused, as the
    /// runtime's (unless one is recorded already), before the answer goes.
    ///
    /// The answer can reach its caller before the runtime's owner hears of
    /// the failure (a runtime on another arbiter tells it through a
    /// monitor); a caller who then asks the owner finds the runtime failed
    /// all the same ([`RuntimeHandle::failure`](crate::RuntimeHandle::failure)).
    pub(crate) fn record_failure(&self, cause: &FailureCause) {
        let _ = self.fate.set(cause.clone());
    }

    pub(crate) fn channel(tx: oneshot::Sender<Result<T, RequestError>>, fate: Arc<Fate>) -> Self {
        Reply {
            to: To::Channel(tx),
            fate,
        }
    }

    /// A reply awaited as a future, and that future. Every reply is given,
    /// if only by its drop; should the sender vanish without one all the
    /// same, the future gives what the drop would have.
    pub(crate) fn awaited(
        fate: Arc<Fate>,
    ) -> (
        Self,
        impl Future<Output = Result<T, RequestError>> + 'static,
    )
    where
        T: 'static,
    {
        let (tx, answer) = oneshot::channel();
        let reply = Reply::channel(tx, Arc::clone(&fate));
        let answered = async move {
            answer.await.unwrap_or_else(|_| {
                Err(RequestError::Exited {
                    cause: fate.get().cloned(),
                })
            })
        };
        (reply, answered)
    }

    #[inline]
    pub(crate) fn callback(
        answer: impl FnOnce(Result<T, RequestError>) + Send + 'static,
        fate: Arc<Fate>,
    ) -> Self {
        Reply {
            to: To::Callback(Box::new(answer)),
            fate,
        }
    }

    /// A reply nobody waits for: the request is still served.
    pub(crate) fn nobody(fate: Arc<Fate>) -> Self {
        Reply {
            to: To::Nobody,
            fate,
        }
    }

    /// Gives the answer.
    pub(crate) fn send(mut self, answer: Result<T, RequestError>) {
        self.give(answer);
    }

    fn give(&mut self, answer: Result<T, RequestError>) {
        match std::mem::replace(&mut self.to, To::Nobody) {
            To::Channel(tx) => {
                let _ = tx.send(answer);
            }
            To::Callback(answer_to) => {
                if let Err(panic) = crate::panic::catch_outside(move || answer_to(answer)) {
                    tracing::error!(%panic, "a request's answer callback panicked; its answer is lost");
                }
            }
            To::Nobody => {}
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if matches!(self.to, To::Nobody) {
            return;
        }
        let cause = self.fate.get().cloned();
        self.give(Err(RequestError::Exited { cause }));
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match self.to {
            To::Channel(_) => "channel",
            To::Callback(_) => "callback",
            To::Nobody => "nobody",
        };
        f.debug_struct("Reply").field("to", &to).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureCause;

    fn fate() -> Arc<Fate> {
        Arc::new(Fate::default())
    }

    #[test]
    fn an_answer_is_given_once_and_the_drop_adds_nothing() {
        let (tx, mut rx) = oneshot::channel::<Result<u8, RequestError>>();
        Reply::channel(tx, fate()).send(Ok(7));
        assert!(matches!(rx.try_recv(), Ok(Ok(7))));
    }

    #[test]
    fn a_reply_dropped_unanswered_says_why_the_runtime_ended() {
        let ended = fate();
        let _ = ended.set(FailureCause::Lost);
        let (tx, answer) = std::sync::mpsc::channel();
        drop(Reply::<u8>::callback(
            move |a| tx.send(a).expect("receiver kept"),
            Arc::clone(&ended),
        ));
        match answer.try_recv() {
            Ok(Err(RequestError::Exited { cause })) => {
                assert!(matches!(cause, Some(FailureCause::Lost)), "{cause:?}")
            }
            other => panic!("expected Exited, got {other:?}"),
        }
        assert!(answer.try_recv().is_err(), "answered once");
    }

    #[test]
    fn a_reply_dropped_after_a_graceful_stop_names_no_cause() {
        let (tx, mut rx) = oneshot::channel::<Result<u8, RequestError>>();
        drop(Reply::channel(tx, fate()));
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(RequestError::Exited { cause: None }))
        ));
    }
}
