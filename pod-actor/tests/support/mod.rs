//! Shared helpers: a scripted runtime, probes for `Started` and `PodEvent`,
//! and configs placed on the test's own arbiter so a paused clock drives all.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler};
use pod_actor::{
    HealthConfig, PlacementKind, Pod, PodConfig, PodEvent, RuntimeSpec, Started, Subscribe,
    SubscribeEvents,
};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
use tokio::sync::mpsc;

/// What the scripted runtime's setup does.
#[derive(Debug, Clone, Copy)]
pub enum Setup {
    Ok,
    Fail,
    Panic,
    Sleep(Duration),
}

/// Shared knobs and counters of the scripted runtimes of one test.
#[derive(Debug)]
pub struct Script {
    pub setup: Setup,
    /// Generations below this fail their setup, whatever `setup` says.
    pub fail_first: u32,
    pub healthy: AtomicBool,
    pub teardowns: AtomicU32,
}

impl Script {
    pub fn new(setup: Setup) -> Arc<Script> {
        Arc::new(Script {
            setup,
            fail_first: 0,
            healthy: AtomicBool::new(true),
            teardowns: AtomicU32::new(0),
        })
    }

    pub fn failing_first(n: u32) -> Arc<Script> {
        Arc::new(Script {
            setup: Setup::Ok,
            fail_first: n,
            healthy: AtomicBool::new(true),
            teardowns: AtomicU32::new(0),
        })
    }
}

#[derive(Debug, Clone)]
pub enum Req {
    Echo(u32),
    Panic,
    Sleep(Duration),
    Env(&'static str),
}

pub struct Scripted {
    script: Arc<Script>,
    env: runtime_actor::RuntimeEnv,
}

impl Runtime for Scripted {
    type Request = Req;
    type Response = String;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        if ctx.generation() < u64::from(self.script.fail_first) {
            return Err(RuntimeError::new(format!(
                "generation {} cannot load its model",
                ctx.generation()
            )));
        }
        match self.script.setup {
            Setup::Ok => Ok(()),
            Setup::Fail => Err(RuntimeError::new("model file missing")),
            Setup::Panic => panic!("executor __init__ raised"),
            Setup::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }

    async fn handle(&mut self, req: Req) -> Result<String, RuntimeError> {
        match req {
            Req::Echo(n) => Ok(n.to_string()),
            Req::Panic => panic!("request handler panicked"),
            Req::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok("slept".into())
            }
            Req::Env(key) => Ok(self.env.get(key).unwrap_or("<unset>").to_owned()),
        }
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        if self.script.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(RuntimeError::new("queue stalled"))
        }
    }

    async fn teardown(&mut self) {
        self.script.teardowns.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn factory(script: &Arc<Script>) -> RuntimeFactory<Scripted> {
    let script = Arc::clone(script);
    RuntimeFactory::new(move |env| Scripted {
        script: Arc::clone(&script),
        env: env.clone(),
    })
}

/// A config whose runtimes run on the test's own arbiter, with restarts
/// paced at 100 ms and no jitter (so timings are exact on the paused clock).
pub fn config(name: &str) -> PodConfig {
    let mut config = PodConfig::new(
        name,
        RuntimeSpec::InProcess {
            name: "scripted".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.restart.backoff.jitter = 0.0;
    config
}

pub fn with_health(mut config: PodConfig, interval_ms: u64, threshold: u32) -> PodConfig {
    config.health = Some(HealthConfig {
        interval: interval_ms,
        timeout: 100,
        failure_threshold: threshold,
    });
    config
}

pub fn pod(config: PodConfig, script: &Arc<Script>) -> Addr<Pod<Scripted>> {
    Pod::new(config, factory(script)).start()
}

/// Receives what an actor subscriber receives; keep it alive to stay
/// subscribed (pods hold subscribers weakly).
pub struct Probe<T>(mpsc::UnboundedSender<T>);

impl<T: Unpin + 'static> Actor for Probe<T> {
    type Context = Context<Self>;
}

impl Handler<Started> for Probe<Started> {
    type Result = ();
    fn handle(&mut self, msg: Started, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

impl Handler<PodEvent> for Probe<PodEvent> {
    type Result = ();
    fn handle(&mut self, msg: PodEvent, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

pub struct Inbox<T: Unpin + 'static> {
    pub probe: Addr<Probe<T>>,
    rx: mpsc::UnboundedReceiver<T>,
}

impl<T: std::fmt::Debug + Unpin + 'static> Inbox<T> {
    /// The next message, within an hour of (paused) tokio time.
    pub async fn next(&mut self) -> T {
        tokio::time::timeout(Duration::from_secs(3600), self.rx.recv())
            .await
            .expect("nothing received within an hour")
            .expect("probe gone")
    }

    pub fn try_next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

pub async fn subscribe_started(pod: &Addr<Pod<Scripted>>) -> Inbox<Started> {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    pod.send(Subscribe(probe.clone().recipient()))
        .await
        .unwrap();
    Inbox { probe, rx }
}

pub async fn subscribe_events(pod: &Addr<Pod<Scripted>>) -> Inbox<PodEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    pod.send(SubscribeEvents(probe.clone().recipient()))
        .await
        .unwrap();
    Inbox { probe, rx }
}
