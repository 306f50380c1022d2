//! The runtimes in place on this thread, by lane: their owner's requests go
//! straight into their queue, with no message through their actor's
//! mailbox.
//!
//! A runtime in place ([`Placement::Current`](crate::Placement::Current))
//! runs on its owner's thread, and its owner calls it from there. The
//! queue it shares with its actor is `!Send` (an `Rc`); the owner's handle
//! must stay `Send`, so it keeps the lane's number and finds the queue here,
//! on the thread they share. From another thread it finds nothing, and the
//! request goes through the mailbox as before. The actor opens its lane at
//! the first request that came through the mailbox: a runtime nobody calls
//! costs none.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU64;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A lane's number: unique in the process, never reused; never zero, so
/// that a handle's `Option<Lane>` takes no more room than the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lane(NonZeroU64);

thread_local! {
    static LANES: RefCell<HashMap<Lane, Rc<dyn Any>, BuildHasherDefault<LaneHasher>>> =
        RefCell::new(HashMap::default());
}

impl Lane {
    /// A new lane, for a runtime about to start on this thread.
    pub(crate) fn next() -> Lane {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let next = NEXT.fetch_add(1, Ordering::Relaxed);
        // 2^64 lanes would take centuries to open.
        Lane(NonZeroU64::new(next).unwrap_or(NonZeroU64::MAX))
    }

    /// Opens the lane to `queue`, on this thread, until [`Lane::close`].
    pub(crate) fn open<T: 'static>(self, queue: Rc<T>) {
        // A thread that is ending has no lanes: requests take the mailbox.
        let _ = LANES.try_with(|lanes| lanes.borrow_mut().insert(self, queue));
    }

    /// The queue behind this lane, when it is open on this thread.
    pub(crate) fn find<T: 'static>(self) -> Option<Rc<T>> {
        let queue = LANES
            .try_with(|lanes| lanes.borrow().get(&self).cloned())
            .ok()
            .flatten()?;
        queue.downcast().ok()
    }

    /// Closes the lane. The queue is dropped here, after the registry let
    /// go of it: its drop runs the program's code (requests still queued),
    /// which may open or use lanes itself.
    pub(crate) fn close(self) {
        let queue = LANES
            .try_with(|lanes| {
                let mut lanes = lanes.borrow_mut();
                let queue = lanes.remove(&self);
                // A thread that ran many runtimes at once gives the room
                // back as they end.
                let (len, capacity) = (lanes.len(), lanes.capacity());
                if capacity > 64 && len * 4 < capacity {
                    lanes.shrink_to(len * 2);
                }
                queue
            })
            .ok()
            .flatten();
        drop(queue);
    }
}

/// Lanes are numbered in order, so their number needs no hashing, only
/// spreading over all 64 bits: the map's probes read the hash's top bits,
/// which small numbers leave at zero. One multiplication by 2^64 / φ
/// (Fibonacci hashing) spreads them.
#[derive(Default)]
struct LaneHasher(u64);

impl Hasher for LaneHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_finds_its_queue_on_its_thread_only_until_closed() {
        let lane = Lane::next();
        assert!(lane.find::<String>().is_none());
        lane.open(Rc::new(String::from("queue")));
        assert_eq!(
            lane.find::<String>().as_deref().map(String::as_str),
            Some("queue")
        );
        // Another type behind the same number is not found.
        assert!(lane.find::<u32>().is_none());
        std::thread::spawn(move || assert!(lane.find::<String>().is_none()))
            .join()
            .unwrap();
        lane.close();
        assert!(lane.find::<String>().is_none());
        assert_ne!(Lane::next(), lane);
    }

    /// Consecutive lanes hash to distinct top bits, which the map's probes
    /// compare first.
    #[test]
    fn consecutive_lanes_spread_over_the_top_bits() {
        let tops: std::collections::HashSet<u64> = (1..=128_u64)
            .map(|n| {
                let mut hasher = LaneHasher::default();
                hasher.write_u64(n);
                hasher.finish() >> 57
            })
            .collect();
        assert!(tops.len() > 64, "{} distinct top 7 bits", tops.len());
    }

    /// The registry gives its room back as lanes close.
    #[test]
    fn the_registry_shrinks_as_lanes_close() {
        let lanes: Vec<Lane> = (0..10_000).map(|_| Lane::next()).collect();
        for lane in &lanes {
            lane.open(Rc::new(0_u64));
        }
        let full = LANES.with(|l| l.borrow().capacity());
        assert!(full >= 10_000);
        for lane in lanes {
            lane.close();
        }
        let after = LANES.with(|l| l.borrow().capacity());
        assert!(
            after <= 128,
            "capacity {after} after all closed (was {full})"
        );
    }

    /// A queue whose drop uses the lanes (the program's code may) is
    /// dropped outside the registry's borrow.
    #[test]
    fn closing_drops_the_queue_outside_the_registry() {
        struct UsesLanes(Lane);
        impl Drop for UsesLanes {
            fn drop(&mut self) {
                assert!(self.0.find::<String>().is_some());
                self.0.close();
            }
        }
        let (outer, inner) = (Lane::next(), Lane::next());
        inner.open(Rc::new(String::from("inner")));
        outer.open(Rc::new(UsesLanes(inner)));
        outer.close();
        assert!(inner.find::<String>().is_none());
    }
}
