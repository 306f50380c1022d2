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
    /// What the setups of later generations (1 and up) do, if not `setup`.
    pub later: Option<Setup>,
    /// Generations below this fail their setup, whatever `setup` says.
    pub fail_first: u32,
    pub healthy: AtomicBool,
    pub teardowns: AtomicU32,
    /// Runtimes built, and dropped: equal once nothing is left running.
    pub built: AtomicU32,
    pub dropped: AtomicU32,
}

impl Script {
    pub fn new(setup: Setup) -> Arc<Script> {
        Arc::new(Script::plain(setup, None, 0))
    }

    pub fn failing_first(n: u32) -> Arc<Script> {
        Arc::new(Script::plain(Setup::Ok, None, n))
    }

    /// The first generation's setup does `first`, every later one `later`.
    pub fn then(first: Setup, later: Setup) -> Arc<Script> {
        Arc::new(Script::plain(first, Some(later), 0))
    }

    fn plain(setup: Setup, later: Option<Setup>, fail_first: u32) -> Script {
        Script {
            setup,
            later,
            fail_first,
            healthy: AtomicBool::new(true),
            teardowns: AtomicU32::new(0),
            built: AtomicU32::new(0),
            dropped: AtomicU32::new(0),
        }
    }

    /// Runtimes built and not yet dropped.
    pub fn live(&self) -> u32 {
        self.built.load(Ordering::SeqCst) - self.dropped.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
pub enum Req {
    Echo(u32),
    Panic,
    Sleep(Duration),
    Env(&'static str),
    /// Block the runtime's thread until the gate opens.
    Block(Gate),
    /// Stop the actix System the runtime runs in.
    StopSystem,
}

/// A latch that releases a blocked runtime thread.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }

    pub fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
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
        let setup = match self.script.later {
            Some(later) if ctx.generation() > 0 => later,
            _ => self.script.setup,
        };
        match setup {
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
            Req::Block(gate) => {
                gate.wait();
                Ok("unblocked".into())
            }
            Req::StopSystem => {
                actix::System::current().stop();
                Ok("stopping".into())
            }
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

impl Drop for Scripted {
    fn drop(&mut self) {
        self.script.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn factory(script: &Arc<Script>) -> RuntimeFactory<Scripted> {
    let script = Arc::clone(script);
    RuntimeFactory::new(move |env| {
        script.built.fetch_add(1, Ordering::SeqCst);
        Scripted {
            script: Arc::clone(&script),
            env: env.clone(),
        }
    })
}

/// Lets (paused) time pass.
pub async fn idle_for(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Lets paused time pass until `done` holds; panics after an hour.
pub async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..360_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within an hour of paused time");
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

pub async fn subscribe_started<R: Runtime>(pod: &Addr<Pod<R>>) -> Inbox<Started> {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    pod.send(Subscribe(probe.clone().recipient()))
        .await
        .unwrap();
    Inbox { probe, rx }
}

pub async fn subscribe_events<R: Runtime>(pod: &Addr<Pod<R>>) -> Inbox<PodEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    pod.send(SubscribeEvents(probe.clone().recipient()))
        .await
        .unwrap();
    Inbox { probe, rx }
}

/// Runs the test `name` of this test binary again in a child process, with
/// `marker` (and `extra`) in its environment, and returns the child's
/// stdout; the calling test fails if the child did not exit cleanly. For a
/// test whose failure may be an abort (a stack overflow, a refused
/// allocation), which would otherwise take the whole runner down: the
/// test does its work when it finds `marker` set.
pub fn rerun_in_child(name: &str, marker: &str, extra: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture"])
        .env(marker, "1")
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child running {name} ended with {}:\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// Loads a TOML pod config with these `POD__` overrides.
pub fn load_toml(text: &str, env: &[(&str, &str)]) -> Result<PodConfig, pod_actor::ConfigError> {
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    PodConfig::from_str_with_env(text, pod_actor::ConfigFormat::Toml, "pod.toml", &env)
}

/// Asserts that the error for `text` names `key` and says `then`.
pub fn assert_refused(text: &str, env: &[(&str, &str)], key: &str, then: &str) {
    let message = match load_toml(text, env) {
        Ok(config) => panic!("expected an error, loaded {config:?}"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains(key), "`{key}` not in: {message}");
    assert!(message.contains(then), "`{then}` not in: {message}");
}
