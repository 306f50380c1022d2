use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use actix::{Message, Recipient, WeakRecipient};

/// Recipients held weakly, each at most once, dropped once their actor is
/// gone. Adding one costs `O(1)`, whatever the number already there.
///
/// One word until the first subscriber: most pods have none, and a pod is
/// moved whole several times as actix starts it.
pub(crate) struct Subscribers<M: Message + Send>(Option<Box<List<M>>>)
where
    M::Result: Send;

struct List<M: Message + Send>
where
    M::Result: Send,
{
    list: Vec<(u64, WeakRecipient<M>)>,
    known: HashSet<u64>,
}

impl<M: Message + Send + Clone> Subscribers<M>
where
    M::Result: Send,
{
    pub(crate) fn new() -> Self {
        Subscribers(None)
    }

    /// Adds `recipient`; `false` when it was already there.
    pub(crate) fn add(&mut self, recipient: &Recipient<M>) -> bool {
        let key = identity(recipient);
        let subscribers = self.0.get_or_insert_with(|| {
            Box::new(List {
                list: Vec::new(),
                known: HashSet::new(),
            })
        });
        if !subscribers.known.insert(key) {
            return false;
        }
        subscribers.list.push((key, recipient.downgrade()));
        true
    }

    /// Sends `message` to every live subscriber, forgetting the dead ones.
    pub(crate) fn send(&mut self, message: &M) {
        let Some(subscribers) = &mut self.0 else {
            return;
        };
        let known = &mut subscribers.known;
        subscribers.list.retain(|(key, weak)| match weak.upgrade() {
            Some(subscriber) if subscriber.connected() => {
                subscriber.do_send(message.clone());
                true
            }
            _ => {
                known.remove(key);
                false
            }
        });
    }
}

impl<M: Message + Send> fmt::Debug for Subscribers<M>
where
    M::Result: Send,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.as_ref().map_or(0, |s| s.list.len());
        f.debug_struct("Subscribers").field("len", &len).finish()
    }
}

/// Which actor mailbox a recipient addresses. actix hashes a recipient as
/// the address of its channel, which lives as long as any handle to it
/// (weak ones included), so the key cannot be reused while it is stored.
fn identity<M: Message + Send>(recipient: &Recipient<M>) -> u64
where
    M::Result: Send,
{
    let mut hasher = Identity::default();
    recipient.hash(&mut hasher);
    hasher.0
}

#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
