//! A call the pod refuses is dropped unserved, and dropping a request runs
//! the program's code: one whose `Drop` panics leaves the pod serving.

use actix::Actor;
use pod_actor::WaitStartSuccess;
use pod_actor::{Call, CallError, Close, PlacementKind, Pod, PodConfig, RuntimeSpec, Start};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// A request that panics when it is dropped, unless it was answered.
#[derive(Debug)]
struct Fragile {
    answered: bool,
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if !self.answered {
            panic!("a request dropped unanswered");
        }
    }
}

struct Echo;

impl Runtime for Echo {
    type Request = Fragile;
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, mut req: Fragile) -> Result<(), RuntimeError> {
        req.answered = true;
        Ok(())
    }
}

#[actix::test]
async fn a_refused_request_that_panics_when_dropped_leaves_the_pod_serving() {
    let mut config = PodConfig::new(
        "fragile",
        RuntimeSpec::InProcess {
            name: "echo".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
    // Before the start: refused, and its request dropped in the pod.
    let refused = pod.send(Call::<Echo>(Fragile { answered: false })).await;
    assert!(
        matches!(refused, Ok(Err(CallError::NotReady))),
        "{refused:?}"
    );
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let served = pod.send(Call::<Echo>(Fragile { answered: false })).await;
    assert!(matches!(served, Ok(Ok(()))), "{served:?}");
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
}
