//! A deployment routes a request by cloning it for each replica it tries,
//! and lets it go once answered, in its own context: a request type whose
//! `Clone` panics gets an answer that says so, one whose `Drop` panics keeps
//! its answer, and the deployment serves on.

use actix::Actor;
use pod_actor::deployment::{Deployment, GetDeploymentStatus, Route, StartDeployment};
use pod_actor::{CallError, PlacementKind, Pod, PodConfig, PodError, RuntimeSpec};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// A request whose `Clone` panics when `clone_panics`, and whose `Drop`
/// panics when `drop_panics` (once served, the copy the replica got is
/// dropped quietly).
#[derive(Debug)]
struct Touchy {
    n: u32,
    clone_panics: bool,
    drop_panics: bool,
}

impl Clone for Touchy {
    fn clone(&self) -> Self {
        if self.clone_panics {
            panic!("this request cannot be copied");
        }
        Touchy {
            n: self.n,
            clone_panics: false,
            drop_panics: false,
        }
    }
}

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.drop_panics {
            panic!("this request cannot be let go");
        }
    }
}

struct Echo;

impl Runtime for Echo {
    type Request = Touchy;
    type Response = u32;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, req: Touchy) -> Result<u32, RuntimeError> {
        Ok(req.n)
    }
}

fn touchy(n: u32, clone_panics: bool, drop_panics: bool) -> Route<Echo> {
    Route(Touchy {
        n,
        clone_panics,
        drop_panics,
    })
}

#[actix::test]
async fn a_request_whose_clone_or_drop_panics_is_answered_and_the_deployment_serves_on() {
    let mut template = PodConfig::new(
        "template",
        RuntimeSpec::InProcess {
            name: "echo".into(),
        },
    );
    template.placement = PlacementKind::Shared;
    let build =
        |config: PodConfig| Ok::<_, PodError>(Pod::new(config, RuntimeFactory::new(|_| Echo)));
    let deployment = Deployment::new("touchy", 2, template, build).start();
    deployment.send(StartDeployment).await.unwrap().unwrap();

    let copied = deployment.send(touchy(1, true, false)).await.unwrap();
    assert!(
        matches!(&copied, Err(CallError::RequestPanicked { message }) if message.contains("cannot be copied")),
        "{copied:?}"
    );
    let dropped = deployment.send(touchy(2, false, true)).await.unwrap();
    assert_eq!(dropped.ok(), Some(2), "served, then let go");
    // Served on, by every replica.
    for n in 3..7 {
        let answer = deployment.send(touchy(n, false, false)).await.unwrap();
        assert_eq!(answer.ok(), Some(n));
    }
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    assert_eq!(status.replicas.len(), 2, "{status:?}");
}
