//! A pod's events as a [`Stream`], for code without an actor of its own (a
//! server-sent events endpoint, a test).

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::SendError;
use actix::{Actor, Addr, Context, Handler, Recipient};
use futures::channel::mpsc;
use futures::Stream;
use runtime_actor::Runtime;

use crate::messages::{PodEvent, SubscribeEvents};
use crate::pod::Pod;

/// Every [`PodEvent`] of one pod from the moment it was made, as a
/// [`Stream`] that ends after [`PodEvent::Terminated`] (at once for a pod
/// that had already terminated; with nothing for one whose actor is gone).
///
/// Made by [`PodEvents::of`]. It keeps its subscription alive (pods hold
/// subscribers weakly); dropping it unsubscribes. Unbounded, like an actor's
/// mailbox: read it, or drop it.
///
/// ```
/// # use actix::Actor;
/// # use futures::StreamExt;
/// # use pod_actor::{Close, Pod, PodConfig, PodEvent, PodEvents, RuntimeSpec, Start};
/// # use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
/// # struct Echo;
/// # impl Runtime for Echo {
/// #     type Request = u64;
/// #     type Response = u64;
/// #     async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> { Ok(()) }
/// #     async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> { Ok(n) }
/// # }
/// # #[actix::main]
/// # async fn main() {
/// let config = PodConfig::new("echo", RuntimeSpec::InProcess { name: "echo".into() });
/// let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
/// let mut events = PodEvents::of(&pod);
/// pod.send(Start).await.unwrap().unwrap();
/// assert!(matches!(events.next().await, Some(PodEvent::Starting { generation: 0 })));
/// assert!(matches!(events.next().await, Some(PodEvent::Started(_))));
/// pod.send(Close::default()).await.unwrap();
/// assert!(matches!(events.next().await, Some(PodEvent::Terminated { error: None })));
/// assert!(events.next().await.is_none());
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a stream does nothing unless read"]
pub struct PodEvents {
    events: mpsc::UnboundedReceiver<PodEvent>,
    _forwarder: Addr<Forwarder>,
    ended: bool,
}

impl PodEvents {
    /// Subscribes to `pod`'s events.
    pub fn of<R: Runtime>(pod: &Addr<Pod<R>>) -> PodEvents {
        PodEvents::with(&pod.clone().recipient())
    }

    /// Subscribes through a pod's [`SubscribeEvents`] recipient.
    pub(crate) fn with(pod: &Recipient<SubscribeEvents>) -> PodEvents {
        let (to, events) = mpsc::unbounded();
        let forwarder = Forwarder { to }.start();
        // A pod that is gone has nothing more to say: the stream ends.
        let gone = match pod.try_send(SubscribeEvents(forwarder.clone().recipient())) {
            Ok(()) => false,
            Err(SendError::Closed(_)) => true,
            // A busy mailbox: queued past its capacity, as do_send does.
            Err(SendError::Full(subscribe)) => {
                pod.do_send(subscribe);
                false
            }
        };
        PodEvents {
            events,
            _forwarder: forwarder,
            ended: gone,
        }
    }
}

impl Stream for PodEvents {
    type Item = PodEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<PodEvent>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut self.events).poll_next(cx);
        if let Poll::Ready(Some(PodEvent::Terminated { .. })) = &next {
            self.ended = true;
        }
        next
    }
}

#[derive(Debug)]
struct Forwarder {
    to: mpsc::UnboundedSender<PodEvent>,
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

impl Handler<PodEvent> for Forwarder {
    type Result = ();

    fn handle(&mut self, event: PodEvent, _: &mut Context<Self>) {
        let _ = self.to.unbounded_send(event);
    }
}
