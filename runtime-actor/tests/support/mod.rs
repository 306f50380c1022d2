//! Shared helpers: a scriptable runtime and a watcher that forwards events.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Arbiter, Context, Handler, Recipient};
use runtime_actor::{
    FailureCause, Placement, Runtime, RuntimeActor, RuntimeConfig, RuntimeContext, RuntimeError,
    RuntimeEvent, RuntimeFactory, RuntimeHandle,
};
use tokio::sync::mpsc;

/// What the scripted runtime does in `setup` and `teardown`.
#[derive(Debug, Clone)]
pub enum Step {
    Ok,
    Fail,
    Panic,
    /// Sleep on the tokio clock for this long, then succeed.
    Sleep(Duration),
    /// Report progress extending the deadline by `.0`, then sleep `.1`.
    ExtendThenSleep(Duration, Duration),
    /// Never finish (an await that never resolves).
    Pending,
    /// Block the thread until the gate is opened.
    Block(Gate),
}

/// A one-shot latch that releases blocked runtime threads.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
}

/// Requests the scripted runtime understands.
#[derive(Debug, Clone)]
pub enum Req {
    Echo(u32),
    Panic,
    Fail,
    Fatal,
    Sleep(Duration),
    /// Answer with the environment variable's value.
    Env(&'static str),
    /// Fail the runtime from a spawned task, then answer.
    FailFromTask,
}

/// Counts the calls the scripted runtimes receive.
#[derive(Debug, Default)]
pub struct Calls {
    pub built: AtomicUsize,
    pub setups: AtomicUsize,
    pub handled: AtomicUsize,
    pub health: AtomicUsize,
    pub teardowns: AtomicUsize,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub setup: Step,
    pub teardown: Step,
    pub health: Result<(), RuntimeError>,
    pub health_panics: bool,
    pub calls: Arc<Calls>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            setup: Step::Ok,
            teardown: Step::Ok,
            health: Ok(()),
            health_panics: false,
            calls: Arc::default(),
        }
    }
}

pub struct Scripted {
    script: Script,
    env_value: Option<String>,
    reporter: Option<runtime_actor::FailureReporter>,
    env: runtime_actor::RuntimeEnv,
}

async fn run_step(step: &Step, ctx: Option<&mut RuntimeContext>) -> Result<(), RuntimeError> {
    match step {
        Step::Ok => Ok(()),
        Step::Fail => Err(RuntimeError::new("model file missing")),
        Step::Panic => panic!("scripted panic on line {}", line!()),
        Step::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Step::ExtendThenSleep(extend, d) => {
            if let Some(ctx) = ctx {
                ctx.extend_deadline(*extend, "loading weights");
            }
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Step::Pending => std::future::pending().await,
        Step::Block(gate) => {
            gate.wait();
            Ok(())
        }
    }
}

impl Runtime for Scripted {
    type Request = Req;
    type Response = String;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        self.script.calls.setups.fetch_add(1, Ordering::SeqCst);
        self.reporter = Some(ctx.failure_reporter());
        self.env = ctx.env().clone();
        let step = self.script.setup.clone();
        run_step(&step, Some(ctx)).await
    }

    async fn handle(&mut self, req: Req) -> Result<String, RuntimeError> {
        self.script.calls.handled.fetch_add(1, Ordering::SeqCst);
        match req {
            Req::Echo(n) => Ok(n.to_string()),
            Req::Panic => panic!("handler exploded on line {}", line!()),
            Req::Fail => Err(RuntimeError::new("bad input")),
            Req::Fatal => Err(RuntimeError::fatal("device lost")),
            Req::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok("slept".into())
            }
            Req::Env(key) => Ok(self.env.get(key).unwrap_or("<unset>").to_owned()
                + "|"
                + self.env_value.as_deref().unwrap_or("<unset>")),
            Req::FailFromTask => {
                let reporter = self.reporter.clone().expect("setup ran");
                actix::spawn(async move {
                    reporter.fail(RuntimeError::new("background task failed"));
                });
                Ok("reported".into())
            }
        }
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        self.script.calls.health.fetch_add(1, Ordering::SeqCst);
        if self.script.health_panics {
            panic!("health probe exploded on line {}", line!());
        }
        self.script.health.clone()
    }

    async fn teardown(&mut self) {
        self.script.calls.teardowns.fetch_add(1, Ordering::SeqCst);
        let step = self.script.teardown.clone();
        let _ = run_step(&step, None).await;
    }
}

pub fn factory(script: Script) -> RuntimeFactory<Scripted> {
    RuntimeFactory::new(move |env| {
        script.calls.built.fetch_add(1, Ordering::SeqCst);
        Scripted {
            script: script.clone(),
            env_value: env.get("MODEL").map(str::to_owned),
            reporter: None,
            env: env.clone(),
        }
    })
}

/// A watcher that forwards every event it receives to a channel.
pub struct Probe(mpsc::UnboundedSender<RuntimeEvent>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RuntimeEvent> for Probe {
    type Result = ();

    fn handle(&mut self, event: RuntimeEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

pub struct Events(mpsc::UnboundedReceiver<RuntimeEvent>);

impl Events {
    /// The next event; panics if none comes within a minute of (possibly
    /// paused) tokio time.
    pub async fn next(&mut self) -> RuntimeEvent {
        tokio::time::timeout(Duration::from_secs(60), self.0.recv())
            .await
            .expect("no runtime event within 60 s")
            .expect("watcher gone")
    }

    /// Whether an event is already queued.
    pub fn try_next(&mut self) -> Option<RuntimeEvent> {
        self.0.try_recv().ok()
    }

    pub async fn ready(&mut self) -> u64 {
        match self.next().await {
            RuntimeEvent::Ready { generation, .. } => generation,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    pub async fn failed(&mut self) -> FailureCause {
        match self.next().await {
            RuntimeEvent::Failed { cause, .. } => cause,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    pub async fn exited(&mut self) -> Option<FailureCause> {
        match self.next().await {
            RuntimeEvent::Exited { cause, .. } => cause,
            other => panic!("expected Exited, got {other:?}"),
        }
    }
}

pub fn watcher() -> (Recipient<RuntimeEvent>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Probe(tx).start().recipient(), Events(rx))
}

/// Spawns a scripted runtime on the test's own arbiter, so a paused clock
/// drives everything: no other thread can make progress behind its back.
pub fn spawn_here(script: Script, config: RuntimeConfig) -> (RuntimeHandle<Scripted>, Events) {
    let (watcher, events) = watcher();
    let config = config.placement(Placement::Shared(Arbiter::current()));
    (
        RuntimeActor::spawn(config.watcher(watcher), factory(script)),
        events,
    )
}

/// Spawns a scripted runtime on this arbiter, placed as `placement` says:
/// `Current` (in place, the actor keeps its own deadline) or
/// `Shared(Arbiter::current())` (watched by a monitor task).
pub fn spawn_at(
    placement: Placement,
    script: Script,
    config: RuntimeConfig,
) -> (RuntimeHandle<Scripted>, Events) {
    let (watcher, events) = watcher();
    let config = config.placement(placement);
    (
        RuntimeActor::spawn(config.watcher(watcher), factory(script)),
        events,
    )
}

/// Spawns a scripted runtime on a dedicated arbiter.
pub fn spawn_dedicated(script: Script, config: RuntimeConfig) -> (RuntimeHandle<Scripted>, Events) {
    let (watcher, events) = watcher();
    let config = config.placement(Placement::Dedicated);
    (
        RuntimeActor::spawn(config.watcher(watcher), factory(script)),
        events,
    )
}

pub fn config() -> RuntimeConfig {
    RuntimeConfig::new("test-pod")
}

/// Asserts that `cause` is a panic whose message starts with `prefix` and
/// ends with the line it was raised on, and that the recorded location is
/// that line of this file.
pub fn assert_panicked(cause: &FailureCause, prefix: &str) {
    let FailureCause::Panicked { message, location } = cause else {
        panic!("expected a panic cause, got {cause:?}");
    };
    assert!(message.starts_with(prefix), "message {message:?}");
    let line: u32 = message.rsplit(' ').next().unwrap().parse().unwrap();
    let location = location.as_ref().expect("panic location recorded");
    assert!(
        location.file.ends_with("support/mod.rs"),
        "panic located at {location}"
    );
    assert_eq!(location.line, line, "panic located at {location}");
}
