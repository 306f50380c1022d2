//! The floor of a pod's start and call in actix: two bare actors doing what
//! a pod and its runtime do, and nothing else.
//!
//! An outer actor (the pod's part), told `Go`, starts an inner one (the
//! runtime's part), which tells it `Ready` from `started`. `Wait` is
//! answered at once once ready, or its reply channel is kept until then (in
//! a slot the outer actor shares with the answer), as a pod keeps the
//! channel of a `WaitStartSuccess` that has to wait. The caller sends
//! `GoAndWait`, both in one message, as a pod's `StartAndWait` is `Start`
//! and `WaitStartSuccess`.
//!
//! A `Hop` (a call) goes through the outer actor's mailbox into a queue
//! that a future of the inner actor's context serves, which answers the
//! caller straight back: a pod's `Call` through its lane to a runtime in
//! place, without the pod's and the runtime's own work.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

#[derive(Message)]
#[rtype(result = "()")]
struct Go;

#[derive(Message)]
#[rtype(result = "()")]
struct Ready;

#[derive(Message)]
#[rtype(result = "()")]
struct Wait;

#[derive(Message)]
#[rtype(result = "()")]
struct GoAndWait;

/// A call: answered with the number after it.
#[derive(Message)]
#[rtype(result = "u64")]
pub(super) struct Hop(pub(super) u64);

/// The calls handed to the inner actor, and the waker of the future that
/// serves them; closed when the outer actor goes, which ends the future
/// (and so lets the inner actor stop).
#[derive(Default)]
struct Queue {
    calls: RefCell<VecDeque<(u64, OneshotSender<u64>)>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Queue {
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

struct Inner {
    /// Held until `Ready` is told: the inner actor keeps no address of the
    /// outer one, which then stops once its caller lets go of it.
    outer: Option<Addr<Outer>>,
    queue: Rc<Queue>,
    /// Told when the inner actor, the last of the two, is gone.
    ended: Option<oneshot::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(ended) = self.ended.take() {
            let _ = ended.send(());
        }
    }
}

impl Actor for Inner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let queue = Rc::clone(&self.queue);
        ctx.spawn(actix::fut::wrap_future(poll_fn(move |cx| {
            while let Some((n, tx)) = queue.calls.borrow_mut().pop_front() {
                let _ = tx.send(n + 1);
            }
            if queue.closed.get() {
                return Poll::Ready(());
            }
            *queue.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })));
        if let Some(outer) = self.outer.take() {
            outer.do_send(Ready);
        }
    }
}

pub(super) struct Outer {
    inner: Option<Addr<Inner>>,
    queue: Rc<Queue>,
    ready: bool,
    /// The channel of a `Wait` that has to wait, shared with its answer.
    waiter: Rc<RefCell<Option<OneshotSender<()>>>>,
    ended: Option<oneshot::Sender<()>>,
}

impl Drop for Outer {
    fn drop(&mut self) {
        self.queue.closed.set(true);
        self.queue.wake();
    }
}

impl Actor for Outer {
    type Context = Context<Self>;
}

impl Handler<Go> for Outer {
    type Result = ();

    fn handle(&mut self, _: Go, ctx: &mut Context<Self>) {
        let inner = Inner {
            outer: Some(ctx.address()),
            queue: Rc::clone(&self.queue),
            ended: self.ended.take(),
        };
        self.inner = Some(inner.start());
    }
}

impl Handler<Ready> for Outer {
    type Result = ();

    fn handle(&mut self, _: Ready, _: &mut Context<Self>) {
        self.ready = true;
        if let Some(waiter) = self.waiter.borrow_mut().take() {
            let _ = waiter.send(());
        }
    }
}

/// `Wait`'s answer: given now, or its channel kept in the outer actor's
/// slot until `Ready`.
struct WaitAnswer {
    ready: bool,
    slot: Rc<RefCell<Option<OneshotSender<()>>>>,
}

impl WaitAnswer {
    fn give(self, tx: Option<OneshotSender<()>>) {
        let Some(tx) = tx else {
            return;
        };
        if self.ready {
            let _ = tx.send(());
        } else {
            *self.slot.borrow_mut() = Some(tx);
        }
    }
}

impl MessageResponse<Outer, Wait> for WaitAnswer {
    fn handle(self, _: &mut Context<Outer>, tx: Option<OneshotSender<()>>) {
        self.give(tx);
    }
}

impl MessageResponse<Outer, GoAndWait> for WaitAnswer {
    fn handle(self, _: &mut Context<Outer>, tx: Option<OneshotSender<()>>) {
        self.give(tx);
    }
}

impl Handler<Wait> for Outer {
    type Result = WaitAnswer;

    fn handle(&mut self, _: Wait, _: &mut Context<Self>) -> WaitAnswer {
        WaitAnswer {
            ready: self.ready,
            slot: Rc::clone(&self.waiter),
        }
    }
}

impl Handler<GoAndWait> for Outer {
    type Result = WaitAnswer;

    fn handle(&mut self, _: GoAndWait, ctx: &mut Context<Self>) -> WaitAnswer {
        <Self as Handler<Go>>::handle(self, Go, ctx);
        <Self as Handler<Wait>>::handle(self, Wait, ctx)
    }
}

/// `Hop`'s answer: the call queued for the inner actor with the caller's
/// reply channel, and the inner actor's future woken.
pub(super) struct Queued(u64, Rc<Queue>);

impl MessageResponse<Outer, Hop> for Queued {
    fn handle(self, _: &mut Context<Outer>, tx: Option<OneshotSender<u64>>) {
        let Some(tx) = tx else {
            return;
        };
        let Queued(n, queue) = self;
        queue.calls.borrow_mut().push_back((n, tx));
        queue.wake();
    }
}

impl Handler<Hop> for Outer {
    type Result = Queued;

    fn handle(&mut self, Hop(n): Hop, _: &mut Context<Self>) -> Queued {
        Queued(n, Rc::clone(&self.queue))
    }
}

/// Two bare actors, started.
pub(super) struct Floor {
    pub(super) outer: Addr<Outer>,
    ended: oneshot::Receiver<()>,
}

impl Floor {
    /// Lets go of the outer actor and waits until both are gone. Every
    /// clone of `outer` must be dropped first.
    pub(super) async fn end(self) {
        drop(self.outer);
        let _ = self.ended.await;
    }
}

/// The two bare actors started with `GoAndWait`, until it is answered.
pub(super) async fn started() -> Floor {
    let (ended_tx, ended) = oneshot::channel();
    let outer = Outer {
        inner: None,
        queue: Rc::default(),
        ready: false,
        waiter: Rc::default(),
        ended: Some(ended_tx),
    }
    .start();
    outer.send(GoAndWait).await.expect("the outer actor runs");
    Floor { outer, ended }
}

/// One start of the two bare actors, until they are ready; both are gone
/// (outside the time) before it returns.
pub(super) async fn two_actor_start() -> Duration {
    let begun = Instant::now();
    let floor = started().await;
    let took = begun.elapsed();
    floor.end().await;
    took
}
