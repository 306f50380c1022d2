//! The floor of a pod's start in actix: two bare actors doing what a pod and
//! its runtime do at a start, and nothing else.
//!
//! An outer actor (the pod's part), told `Go`, starts an inner one (the
//! runtime's part), which tells it `Ready` from `started`. `Wait` is
//! answered at once once ready, or its reply channel is kept until then, as
//! a pod keeps the channel of a `WaitStartSuccess` that has to wait. The
//! caller sends `Go` and `Wait` together and awaits both, as `started_pod`
//! sends `Start` and `WaitStartSuccess`.

use std::time::{Duration, Instant};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};

#[derive(Message)]
#[rtype(result = "()")]
struct Go;

#[derive(Message)]
#[rtype(result = "()")]
struct Ready;

#[derive(Message)]
#[rtype(result = "()")]
struct Wait;

struct Inner {
    outer: Addr<Outer>,
}

impl Actor for Inner {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.outer.do_send(Ready);
    }
}

#[derive(Default)]
struct Outer {
    inner: Option<Addr<Inner>>,
    ready: bool,
    waiter: Option<OneshotSender<()>>,
}

impl Actor for Outer {
    type Context = Context<Self>;
}

impl Handler<Go> for Outer {
    type Result = ();

    fn handle(&mut self, _: Go, ctx: &mut Context<Self>) {
        let outer = ctx.address();
        self.inner = Some(Inner { outer }.start());
    }
}

impl Handler<Ready> for Outer {
    type Result = ();

    fn handle(&mut self, _: Ready, _: &mut Context<Self>) {
        self.ready = true;
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.send(());
        }
    }
}

/// `Wait`'s answer: given now, or its channel kept by the outer actor.
struct WaitAnswer(bool);

impl MessageResponse<Outer, Wait> for WaitAnswer {
    fn handle(self, ctx: &mut Context<Outer>, tx: Option<OneshotSender<()>>) {
        let Some(tx) = tx else {
            return;
        };
        if self.0 {
            let _ = tx.send(());
        } else {
            // Filed through a message to itself: a response has no access
            // to its actor (a pod shares its waiters' list for that).
            ctx.notify(File(tx));
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct File(OneshotSender<()>);

impl Handler<File> for Outer {
    type Result = ();

    fn handle(&mut self, File(tx): File, _: &mut Context<Self>) {
        if self.ready {
            let _ = tx.send(());
        } else {
            self.waiter = Some(tx);
        }
    }
}

impl Handler<Wait> for Outer {
    type Result = WaitAnswer;

    fn handle(&mut self, _: Wait, _: &mut Context<Self>) -> WaitAnswer {
        WaitAnswer(self.ready)
    }
}

/// One start of the two bare actors, until `Wait` is answered; both are
/// dropped before it returns.
pub(super) async fn two_actor_start() -> Duration {
    let begun = Instant::now();
    let outer = Outer::default().start();
    let (go, wait) = tokio::join!(outer.send(Go), outer.send(Wait));
    go.expect("the outer actor runs");
    wait.expect("the outer actor answers Wait");
    begun.elapsed()
}
