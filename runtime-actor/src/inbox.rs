//! Runtime events delivered into a queue the owner reads itself.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use crate::messages::RuntimeEvent;
use crate::monitor::lock;

/// A queue of [`RuntimeEvent`]s for an owner that reads them from a future
/// of its own (an actix actor: a future in its context) rather than as
/// messages.
///
/// Give it to each generation with
/// [`RuntimeConfig::inbox`](crate::RuntimeConfig::inbox); one inbox serves
/// every generation of an owner, in the order the events were told. Telling
/// an event costs no allocation once the queue has grown, and no address of
/// the owner: a runtime holds no address of its owner through it, so it
/// keeps nothing alive, and an owner that is gone simply reads no more.
/// Clones share the queue.
#[derive(Clone, Default)]
pub struct EventInbox(Arc<Inbox>);

#[derive(Default)]
struct Inbox {
    /// Held only to push or pop one event.
    events: Mutex<Events>,
    /// The reader's task, woken by each event.
    reader: AtomicWaker,
}

/// The unread events, oldest first. The first is kept inline: most of the
/// time an owner has one event or none to read, and a queue that grew would
/// keep its buffer for the owner's whole life.
#[derive(Default)]
struct Events {
    first: Option<RuntimeEvent>,
    /// Those behind the first; its buffer is let go once it is read empty.
    rest: VecDeque<RuntimeEvent>,
}

impl Events {
    fn push(&mut self, event: RuntimeEvent) {
        match self.first {
            None => self.first = Some(event),
            Some(_) => self.rest.push_back(event),
        }
    }

    fn pop(&mut self) -> Option<RuntimeEvent> {
        let event = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        Some(event)
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl EventInbox {
    /// An empty inbox.
    pub fn new() -> Self {
        EventInbox::default()
    }

    /// The oldest event not yet read; when there is none, the task of `cx`
    /// is woken by the next one.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<RuntimeEvent> {
        if let Some(event) = self.pop() {
            return Poll::Ready(event);
        }
        self.0.reader.register(cx.waker());
        // An event told between the pop and the registration woke nobody.
        match self.pop() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }

    pub(crate) fn tell(&self, event: RuntimeEvent) {
        lock(&self.0.events).push(event);
        self.0.reader.wake();
    }

    fn pop(&self) -> Option<RuntimeEvent> {
        lock(&self.0.events).pop()
    }
}

impl fmt::Debug for EventInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventInbox")
            .field("unread", &lock(&self.0.events).len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures::task::{waker, ArcWake};

    use super::*;

    fn ready(generation: u64) -> RuntimeEvent {
        RuntimeEvent::Ready {
            generation,
            setup: Duration::ZERO,
            pid: None,
        }
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn events_are_read_in_the_order_told_and_a_drained_queue_lets_its_buffer_go() {
        let inbox = EventInbox::new();
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        for generation in 0..5 {
            inbox.tell(ready(generation));
        }
        assert_eq!(lock(&inbox.0.events).len(), 5);
        for generation in 0..5 {
            match inbox.poll_next(&mut cx) {
                Poll::Ready(event) => assert_eq!(event.generation(), generation),
                Poll::Pending => panic!("event {generation} not read"),
            }
        }
        assert!(inbox.poll_next(&mut cx).is_pending());
        assert_eq!(lock(&inbox.0.events).rest.capacity(), 0);
    }

    #[test]
    fn an_event_wakes_the_reader_that_found_none() {
        let inbox = EventInbox::new();
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        assert!(inbox.poll_next(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        // Told from another thread, as a dedicated runtime's monitor would.
        let teller = inbox.clone();
        std::thread::spawn(move || teller.tell(ready(7)))
            .join()
            .expect("the telling thread");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(matches!(inbox.poll_next(&mut cx), Poll::Ready(e) if e.generation() == 7));
    }
}
