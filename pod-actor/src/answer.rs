//! Answers that a pod gives later, straight into the askers' reply channels.
//!
//! An actix handler hands the asker's reply channel only to the answer it
//! returns (a [`MessageResponse`]), never to the actor. An answer that has to
//! wait (for the start to be decided, for the pod to end) files that channel
//! in a list it shares with the pod, and the pod answers everyone on the list
//! when the time comes: no task, no future and no channel of our own sit in
//! between.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Message};

/// The askers who wait for one kind of answer, made for the first who has
/// to wait.
pub(crate) struct Waiters<T>(Option<Arc<WaitList<T>>>);

/// The askers' reply channels, locked only to file or take them: never
/// poisoned by a panic of ours, and a poisoned list is still a list.
type WaitList<T> = Mutex<Filed<T>>;

/// One asker's reply channel.
type Waiter<T> = OneshotSender<T>;

/// Most answers have one asker: the first is kept inline, and only a second
/// one allocates.
struct Filed<T> {
    first: Option<Waiter<T>>,
    rest: Vec<Waiter<T>>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters(None)
    }
}

impl<T> Default for Filed<T> {
    fn default() -> Self {
        Filed {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Waiters<T> {
    /// An answer that files its asker here, to be answered by
    /// [`Waiters::answer`].
    pub(crate) fn later(&mut self) -> Answer<T> {
        let list = self.0.get_or_insert_with(Arc::default);
        Answer(Given::Later(Arc::clone(list)))
    }

    /// Answers everyone filed so far with the answer `make` makes (the last
    /// one gets it, the others copies; made only when someone waits); later
    /// askers are filed anew.
    pub(crate) fn answer(&self, make: impl FnOnce() -> T)
    where
        T: Clone,
    {
        let Some(list) = &self.0 else {
            return;
        };
        // Taken out of the lock before anyone is answered.
        let Filed { first, rest } = std::mem::take(&mut *lock(list));
        let mut waiters = first.into_iter().chain(rest);
        let Some(mut waiter) = waiters.next() else {
            return;
        };
        let answer = make();
        for next in waiters {
            let _ = waiter.send(answer.clone());
            waiter = next;
        }
        let _ = waiter.send(answer);
    }
}

fn lock<T>(list: &WaitList<T>) -> MutexGuard<'_, Filed<T>> {
    list.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Files `waiter`, forgetting askers who stopped waiting: an answer that
/// takes long keeps no channel of an ask that timed out. The others are
/// swept only when their list is full, so that filing stays cheap however
/// many wait.
fn file<T>(list: &WaitList<T>, waiter: Waiter<T>) {
    let mut filed = lock(list);
    if filed.first.as_ref().is_some_and(OneshotSender::is_closed) {
        filed.first = None;
    }
    if filed.rest.len() == filed.rest.capacity() {
        filed.rest.retain(|w| !w.is_closed());
    }
    match filed.first {
        None => filed.first = Some(waiter),
        Some(_) => filed.rest.push(waiter),
    }
}

impl<T> fmt::Debug for Waiters<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.0.as_ref().map_or(0, |list| {
            let filed = lock(list);
            usize::from(filed.first.is_some()) + filed.rest.len()
        });
        f.debug_struct("Waiters")
            .field("waiting", &waiting)
            .finish()
    }
}

/// A pod's answer to a message it answers at once or later: to
/// [`WaitStartSuccess`](crate::WaitStartSuccess) and
/// [`StartAndWait`](crate::StartAndWait) when the start is decided, to
/// [`Close`](crate::Close) and [`Join`](crate::Join) when the pod has ended.
///
/// Given at once when the answer is known; otherwise the asker's reply
/// channel joins the pod's list of those who wait, and the pod answers into
/// it directly.
pub struct Answer<T>(Given<T>);

enum Given<T> {
    Now(T),
    Later(Arc<WaitList<T>>),
}

impl<T> Answer<T> {
    /// The answer, given at once.
    pub(crate) fn now(answer: T) -> Self {
        Answer(Given::Now(answer))
    }

    fn give(self, tx: Option<Waiter<T>>) {
        // Nobody asked for the answer (do_send): nothing to file.
        let Some(tx) = tx else {
            return;
        };
        match self.0 {
            Given::Now(answer) => {
                let _ = tx.send(answer);
            }
            Given::Later(list) => file(&list, tx),
        }
    }
}

impl<A, M, T> MessageResponse<A, M> for Answer<T>
where
    A: Actor,
    M: Message<Result = T>,
    T: 'static,
{
    fn handle(self, _: &mut A::Context, tx: Option<Waiter<T>>) {
        self.give(tx);
    }
}

impl<T: fmt::Debug> fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Given::Now(answer) => f.debug_tuple("Answer::Now").field(answer).finish(),
            Given::Later(_) => f.write_str("Answer::Later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[test]
    fn everyone_filed_is_answered_once_and_later_askers_wait_anew() {
        let mut waiters = Waiters::<u32>::default();
        let (a, mut a_rx) = oneshot::channel();
        let (b, mut b_rx) = oneshot::channel();
        waiters.later().give(Some(a));
        waiters.later().give(Some(b));
        waiters.answer(|| 7);
        assert_eq!(a_rx.try_recv(), Ok(7));
        assert_eq!(b_rx.try_recv(), Ok(7));
        let (c, mut c_rx) = oneshot::channel();
        waiters.later().give(Some(c));
        assert!(c_rx.try_recv().is_err(), "not answered yet");
        waiters.answer(|| 8);
        assert_eq!(c_rx.try_recv(), Ok(8));
    }

    #[test]
    fn askers_who_stopped_waiting_are_forgotten_as_others_are_filed() {
        let mut waiters = Waiters::<u32>::default();
        for _ in 0..3 {
            let (gone, _) = oneshot::channel();
            waiters.later().give(Some(gone));
        }
        let (kept, mut kept_rx) = oneshot::channel();
        waiters.later().give(Some(kept));
        assert_eq!(format!("{waiters:?}"), "Waiters { waiting: 1 }");
        waiters.answer(|| 1);
        assert_eq!(kept_rx.try_recv(), Ok(1));
    }

    #[test]
    fn no_answer_is_made_when_nobody_waits() {
        let mut waiters = Waiters::<u32>::default();
        waiters.answer(|| unreachable!("nobody was ever filed"));
        let (tx, mut rx) = oneshot::channel();
        waiters.later().give(Some(tx));
        waiters.answer(|| 5);
        assert_eq!(rx.try_recv(), Ok(5));
        waiters.answer(|| unreachable!("everyone was answered"));
    }

    #[test]
    fn an_answer_known_at_once_is_given_at_once_and_none_is_filed() {
        let mut waiters = Waiters::<u32>::default();
        let (tx, mut rx) = oneshot::channel();
        Answer::now(3).give(Some(tx));
        assert_eq!(rx.try_recv(), Ok(3));
        // Nobody waits for a do_send's answer: nothing is filed.
        waiters.later().give(None);
        assert_eq!(format!("{waiters:?}"), "Waiters { waiting: 0 }");
    }
}
