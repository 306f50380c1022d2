//! The documented way to stop a service that runs pods: close the pods,
//! then let the actix System stop. And what happens when a System stops
//! under pods that were not closed (issue 10, item 5).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, Context, Handler, System};
use futures::channel::oneshot;
use pod_actor::{
    Close, PlacementKind, Pod, PodError, PodEvent, Start, SubscribeEvents, WaitStartSuccess,
};
use support::{config, Script, Setup};

fn dedicated(name: &str) -> pod_actor::PodConfig {
    let mut config = config(name);
    config.placement = PlacementKind::Dedicated;
    config
}

#[test]
fn closing_pods_after_the_server_returns_runs_their_teardown() {
    let script = Script::new(Setup::Ok);
    let (server_stops, server_stopped) = oneshot::channel::<()>();
    let factory = support::factory(&script);
    let report = System::new().block_on(async move {
        let pod = Pod::new(dedicated("encoder"), factory).start();
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        // Stands for `HttpServer::run().await`, which returns after SIGINT
        // or SIGTERM while the System still runs.
        let _ = server_stops.send(());
        let _ = server_stopped.await;
        pod.send(Close::default()).await.unwrap()
        // The System stops when this block (main) returns.
    });
    assert!(report.graceful(), "{report:?}");
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
    assert_eq!(script.live(), 0);
}

/// Forwards pod events from another System's thread.
struct Forward(std::sync::mpsc::Sender<PodEvent>);

impl Actor for Forward {
    type Context = Context<Self>;
}

impl Handler<PodEvent> for Forward {
    type Result = ();
    fn handle(&mut self, event: PodEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

#[test]
fn a_system_stopped_under_a_pod_ends_it_as_arbiter_stopped_without_restarting() {
    let script = Script::new(Setup::Ok);
    let (tx, events) = std::sync::mpsc::channel();
    // The subscriber lives in a System of its own, which outlives the pod's.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let system = System::new();
        system.block_on(async move {
            let _ = addr_tx.send((Forward(tx).start(), System::current()));
        });
        let _ = system.run();
    });
    let (forward, watcher_system) = addr_rx.recv().unwrap();
    // Pods hold subscribers weakly: keep this one alive.
    let subscriber = forward.clone();
    let factory = support::factory(&script);
    let system = System::new();
    // Kept past the System's end, so only the System stop ends the pod.
    let _pod = system.block_on(async move {
        let pod = Pod::new(dedicated("encoder"), factory).start();
        pod.send(SubscribeEvents(forward.recipient()))
            .await
            .unwrap();
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        // What actix-web's `system_exit()` does on a signal.
        System::current().stop();
        pod
    });
    let _ = system.run();
    let mut seen = Vec::new();
    let terminated = loop {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(PodEvent::Terminated { error }) => break error,
            Ok(event) => seen.push(event),
            Err(e) => panic!("no Terminated event ({e}); saw {seen:?}"),
        }
    };
    assert!(
        matches!(terminated, Some(PodError::ArbiterStopped)),
        "{terminated:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, PodEvent::Restarting { .. } | PodEvent::Failed { .. })),
        "{seen:?}"
    );
    // No graceful stop could run: that is why pods are closed first.
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 0);
    drop(subscriber);
    watcher_system.stop();
    watcher.join().unwrap();
}
