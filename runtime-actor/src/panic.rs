//! Turning panics in user code into [`FailureCause::Panicked`].
//!
//! A panic payload carries the message but not the location; only the panic
//! hook sees that. So the crate installs, once, a hook that records the
//! location of the last panic on the panicking thread and then hands over to
//! the hook that was installed before it, leaving what the process prints on a
//! panic unchanged.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::{FailureCause, PanicLocation};

thread_local! {
    static LAST_LOCATION: RefCell<Option<PanicLocation>> = const { RefCell::new(None) };
    /// How many runtime calls this thread is polling right now.
    static IN_RUNTIME: Cell<usize> = const { Cell::new(0) };
}

/// Whether the panic being raised on this thread will be caught by a
/// runtime and reported as [`FailureCause::Panicked`]: true while a call
/// into a [`Runtime`](crate::Runtime) is being polled.
///
/// For a panic hook of the embedding program: it can then say one line
/// about a runtime's panic (its pod reports it) and keep the full report
/// for panics nobody catches.
///
/// # Examples
///
/// ```
/// let default = std::panic::take_hook();
/// std::panic::set_hook(Box::new(move |info| {
///     if runtime_actor::panic_is_caught() {
///         eprintln!("a runtime panicked at {:?}; its pod reports it", info.location());
///     } else {
///         default(info);
///     }
/// }));
/// # let _ = std::panic::take_hook();
/// ```
#[must_use]
pub fn panic_is_caught() -> bool {
    depth() > 0
}

fn depth() -> usize {
    IN_RUNTIME.try_with(Cell::get).unwrap_or(0)
}

fn set_depth(depth: usize) {
    let _ = IN_RUNTIME.try_with(|d| d.set(depth));
}

/// Sends the panics that a runtime catches to `tracing` (a WARN event with
/// the message and the location, in the span of the code that panicked)
/// instead of the default report on stderr; panics nobody catches still get
/// the hook that was there before. Call it once, at the start of `main`;
/// later calls do nothing.
///
/// The pod reports the failure too (a WARN event with the cause), so a
/// service that logs through `tracing` sees one line per panic, not a
/// backtrace.
pub fn panics_to_tracing() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        install_hook();
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !panic_is_caught() {
                return previous(info);
            }
            record_location(info);
            let message = payload_message(info.payload());
            match info.location() {
                Some(at) => tracing::warn!(
                    panic = %message,
                    location = %format_args!("{}:{}:{}", at.file(), at.line(), at.column()),
                    "a runtime panicked; its pod catches it"
                ),
                None => tracing::warn!(panic = %message, "a runtime panicked; its pod catches it"),
            }
        }));
    });
}

fn record_location(info: &panic::PanicHookInfo<'_>) {
    let location = info.location().map(|l| PanicLocation {
        file: l.file().to_owned(),
        line: l.line(),
        column: l.column(),
    });
    // `try_with`: a panic while thread-locals are being destroyed must still
    // reach the previous hook.
    let _ = LAST_LOCATION.try_with(|last| *last.borrow_mut() = location);
}

fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            record_location(info);
            previous(info);
        }));
    });
}

/// Polls `fut` to completion, turning a panic in any poll into its cause.
/// The future is dropped under the same guard, as soon as it is done (or
/// has panicked): a panic in its `Drop` is caught as well.
pub(crate) fn catch_async<F: Future>(fut: F) -> Caught<F> {
    Caught::Polling { fut, outside: None }
}

pin_project! {
    /// The future of [`catch_async`]. A plain future rather than an `async`
    /// fn: an async fn would keep its argument and the pinned copy it polls
    /// side by side, so every runtime's serve loop (and each request's
    /// handler future inside it) would take twice its size.
    #[project = CaughtProj]
    #[project_replace = CaughtGone]
    pub(crate) enum Caught<F> {
        Polling {
            #[pin]
            fut: F,
            // The thread's depth before the first poll.
            outside: Option<usize>,
        },
        Done,
    }
}

impl<F: Future> Future for Caught<F> {
    type Output = Result<F::Output, FailureCause>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outside = match self.as_mut().project() {
            CaughtProj::Polling { outside, .. } => *outside.get_or_insert_with(|| {
                install_hook();
                clear_location();
                depth()
            }),
            // Each caller awaits it once; it is never polled again.
            CaughtProj::Done => return Poll::Pending,
        };
        // Each poll of user code is marked, for `panic_is_caught`. No drop
        // guard unmarks it: a guard adds a landing pad to every panic's
        // unwinding (0.7 µs of a 15 µs restart); the mark is reset after
        // the poll, panic or not.
        set_depth(outside + 1);
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            let CaughtProj::Polling { fut, .. } = self.as_mut().project() else {
                return Poll::Pending;
            };
            let output = std::task::ready!(fut.poll(cx));
            self.as_mut().project_replace(Caught::Done);
            Poll::Ready(output)
        }));
        let polled = match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => {
                let cause = cause_of(payload);
                // What the panic left of the future goes under the guard
                // too; a second panic there adds nothing to the first.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                    self.as_mut().project_replace(Caught::Done);
                }));
                Poll::Ready(Err(cause))
            }
        };
        set_depth(outside);
        polled
    }
}

/// Runs the program's code outside a runtime's calls, catching a panic in it.
///
/// For code of the program's own types that the library runs on its own
/// behalf: a caller's callback run where a runtime gives its answer, the
/// drop of what a runtime held when it ended, or a request's `Clone`, `Drop`
/// or an answer's `Deserialize` while a pod or a deployment handles them. A
/// panic there is not taken for a runtime's ([`panic_is_caught`] is false
/// while it runs): it is caught and comes back as its message, so that the
/// actor running the code serves on.
///
/// # Errors
///
/// The panic's message, when `code` panicked.
#[inline]
pub fn catch_outside<T>(code: impl FnOnce() -> T) -> Result<T, String> {
    let outside = depth();
    set_depth(0);
    let caught = panic::catch_unwind(AssertUnwindSafe(code));
    set_depth(outside);
    caught.map_err(|payload| payload_message(&*payload))
}

/// Forgets a location left by a panic someone else caught, so that a later
/// payload raised without the hook (`resume_unwind`) is not given it.
pub(crate) fn clear_location() {
    LAST_LOCATION.with(|last| last.borrow_mut().take());
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

fn cause_of(payload: Box<dyn Any + Send>) -> FailureCause {
    FailureCause::Panicked {
        message: payload_message(&*payload),
        location: LAST_LOCATION.with(|last| last.borrow_mut().take()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catch_reports_message_and_location() {
        let line = line!() + 1;
        let cause = catch_async(async { panic!("boom {}", 7) })
            .await
            .unwrap_err();
        match cause {
            FailureCause::Panicked { message, location } => {
                assert_eq!(message, "boom 7");
                let location = location.expect("hook saw the panic");
                assert!(location.file.ends_with("panic.rs"), "{location}");
                assert_eq!(location.line, line);
            }
            other => panic!("unexpected cause {other:?}"),
        }
    }

    #[tokio::test]
    async fn non_string_payload_is_named() {
        let cause = catch_async(async { std::panic::panic_any(42_u8) })
            .await
            .unwrap_err();
        assert!(
            matches!(cause, FailureCause::Panicked { ref message, .. } if message == "<non-string panic payload>")
        );
    }

    #[test]
    fn the_guard_adds_a_few_words_to_the_future_it_guards_not_a_copy() {
        let guarded = async {
            let buffer = [7_u8; 1024];
            std::future::ready(()).await;
            buffer.iter().map(|&b| usize::from(b)).sum::<usize>()
        };
        let alone = std::mem::size_of_val(&guarded);
        let caught = catch_async(guarded);
        assert!(
            std::mem::size_of_val(&caught) <= alone + 32,
            "{} bytes around a future of {alone}",
            std::mem::size_of_val(&caught)
        );
    }

    #[tokio::test]
    async fn polls_of_user_code_are_marked_and_unmarked_even_by_a_panic() {
        assert!(!panic_is_caught());
        assert!(catch_async(async { panic_is_caught() }).await.unwrap());
        assert!(!panic_is_caught());
        let _ = catch_async(async { panic!("unwinds through the mark") }).await;
        assert!(!panic_is_caught());
    }

    #[tokio::test]
    async fn no_panic_passes_the_value_through() {
        assert_eq!(catch_async(async { 5 }).await.unwrap(), 5);
    }
}
