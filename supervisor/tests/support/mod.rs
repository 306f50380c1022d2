//! Shared helpers: a scripted test child that logs the protocol calls it
//! receives, and an event probe.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use pod_supervisor::{
    AddChild, ChildExit, ChildReporter, ChildSpec, ChildStopped, ChildVerdict, RestartChild,
    StartChild, StopChild, Subscribe, Supervisor, SupervisorConfig, SupervisorEvent, Verdict,
};
use tokio::sync::mpsc;

/// The order in which children saw `start:`, `restart:` and `stop:` calls.
#[derive(Clone, Default, Debug)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    /// Returns the entries so far and clears the log.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A child that follows the protocol and does what the test tells it.
#[derive(Debug)]
pub(crate) struct TestChild {
    name: String,
    log: Log,
    verdicts: Log,
    reporter: Option<ChildReporter>,
    auto_ready: bool,
    hang_on_stop: bool,
}

impl Actor for TestChild {
    type Context = Context<Self>;
}

impl TestChild {
    fn started(&mut self, entry: String, reporter: ChildReporter) {
        self.log.push(entry);
        if self.auto_ready {
            reporter.ready();
        }
        self.reporter = Some(reporter);
    }
}

impl Handler<StartChild> for TestChild {
    type Result = ();

    fn handle(&mut self, msg: StartChild, _: &mut Context<Self>) {
        self.started(format!("start:{}", self.name), msg.reporter);
    }
}

impl Handler<RestartChild> for TestChild {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, _: &mut Context<Self>) {
        self.started(format!("restart:{}", self.name), msg.reporter);
    }
}

impl Handler<StopChild> for TestChild {
    type Result = ResponseFuture<ChildStopped>;

    fn handle(&mut self, msg: StopChild, _: &mut Context<Self>) -> Self::Result {
        self.log.push(format!("stop:{}", self.name));
        self.verdicts
            .push(format!("stop:{}:{:?}", self.name, msg.reason));
        self.reporter = None;
        if self.hang_on_stop {
            Box::pin(futures::future::pending())
        } else {
            Box::pin(async { ChildStopped::Gracefully })
        }
    }
}

impl Handler<ChildVerdict> for TestChild {
    type Result = ();

    fn handle(&mut self, msg: ChildVerdict, _: &mut Context<Self>) {
        let entry = match msg.verdict {
            Verdict::Restart { attempt, .. } => format!("restart#{attempt}"),
            Verdict::NoRestart(why) => format!("no-restart:{why:?}"),
            other => format!("{other:?}"),
        };
        self.verdicts
            .push(format!("verdict:{}@{}:{entry}", self.name, msg.generation));
    }
}

/// Tells a test child to report an exit.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Exit(pub(crate) ChildExit);

impl Handler<Exit> for TestChild {
    type Result = ();

    fn handle(&mut self, Exit(exit): Exit, _: &mut Context<Self>) {
        if let Some(reporter) = &self.reporter {
            reporter.exited(exit);
        }
    }
}

/// Tells a test child that was not ready at once to report ready.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct BecomeReady;

impl Handler<BecomeReady> for TestChild {
    type Result = ();

    fn handle(&mut self, _: BecomeReady, _: &mut Context<Self>) {
        if let Some(reporter) = &self.reporter {
            reporter.ready();
        }
    }
}

/// Builds a test child.
#[derive(Debug)]
pub(crate) struct ChildBuilder {
    name: String,
    log: Log,
    verdicts: Log,
    auto_ready: bool,
    hang_on_stop: bool,
}

pub(crate) fn child(name: &str, log: &Log) -> ChildBuilder {
    ChildBuilder {
        name: name.to_owned(),
        log: log.clone(),
        verdicts: Log::default(),
        auto_ready: true,
        hang_on_stop: false,
    }
}

impl ChildBuilder {
    pub(crate) fn manual_ready(mut self) -> Self {
        self.auto_ready = false;
        self
    }

    /// Logs the verdicts and stop reasons the child receives into `log`.
    pub(crate) fn verdicts(mut self, log: &Log) -> Self {
        self.verdicts = log.clone();
        self
    }

    pub(crate) fn hang_on_stop(mut self) -> Self {
        self.hang_on_stop = true;
        self
    }

    pub(crate) fn spawn(self) -> (Addr<TestChild>, ChildSpec) {
        let name = self.name.clone();
        let addr = TestChild {
            name: self.name,
            log: self.log,
            verdicts: self.verdicts,
            reporter: None,
            auto_ready: self.auto_ready,
            hang_on_stop: self.hang_on_stop,
        }
        .start();
        let spec = ChildSpec::new(name, &addr);
        (addr, spec)
    }
}

pub(crate) fn failed(cause: &str) -> Exit {
    Exit(ChildExit::Failed {
        cause: cause.to_owned(),
    })
}

/// Forwards events into a channel the test reads.
#[derive(Debug)]
struct Probe(mpsc::UnboundedSender<SupervisorEvent>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<SupervisorEvent> for Probe {
    type Result = ();

    fn handle(&mut self, event: SupervisorEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

/// The events of one supervisor, read on the paused clock.
#[derive(Debug)]
pub(crate) struct Events(mpsc::UnboundedReceiver<SupervisorEvent>);

pub(crate) async fn subscribe(sup: &Addr<Supervisor>) -> Events {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    sup.send(Subscribe(probe.recipient())).await.unwrap();
    Events(rx)
}

/// Events about child `id` only (and supervisor-wide ones).
pub(crate) async fn subscribe_child(sup: &Addr<Supervisor>, id: &str) -> Events {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    sup.send(pod_supervisor::SubscribeChild {
        id: id.to_owned(),
        subscriber: probe.recipient(),
    })
    .await
    .unwrap();
    Events(rx)
}

impl Events {
    /// The next event; panics if none comes within an hour of virtual time.
    pub(crate) async fn next(&mut self) -> SupervisorEvent {
        tokio::time::timeout(Duration::from_secs(3600), self.0.recv())
            .await
            .expect("no supervisor event within an hour")
            .expect("event channel closed")
    }

    /// Skips events until one matches.
    pub(crate) async fn until(
        &mut self,
        pred: impl Fn(&SupervisorEvent) -> bool,
    ) -> SupervisorEvent {
        loop {
            let event = self.next().await;
            if pred(&event) {
                return event;
            }
        }
    }

    /// Events already delivered, without waiting.
    pub(crate) fn ready_now(&mut self) -> Vec<SupervisorEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.0.try_recv() {
            out.push(event);
        }
        out
    }
}

pub(crate) fn is_restarted(id: &str) -> impl Fn(&SupervisorEvent) -> bool + '_ {
    move |e| matches!(e, SupervisorEvent::ChildRestarted { id: i, .. } if i == id)
}

pub(crate) fn is_gave_up(e: &SupervisorEvent) -> bool {
    matches!(e, SupervisorEvent::GaveUp { .. })
}

/// Starts a supervisor and adds the children one by one, each ready before
/// the next; returns it with an event stream subscribed before any child.
pub(crate) async fn supervise(
    config: SupervisorConfig,
    children: Vec<ChildSpec>,
) -> (Addr<Supervisor>, Events) {
    let sup = Supervisor::new(config).unwrap().start();
    let events = subscribe(&sup).await;
    for spec in children {
        sup.send(AddChild(spec)).await.unwrap().unwrap();
    }
    (sup, events)
}

/// A supervisor, not yet started, whose initial children are `children` in
/// this order.
pub(crate) fn with_children(config: SupervisorConfig, children: Vec<ChildSpec>) -> Supervisor {
    children
        .into_iter()
        .try_fold(Supervisor::new(config).unwrap(), Supervisor::with_child)
        .unwrap()
}

/// Lets virtual time pass (auto-advanced: no wall-clock wait).
pub(crate) async fn idle(duration: Duration) {
    tokio::time::sleep(duration).await;
}
