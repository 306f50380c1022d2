//! Shared helpers of the process tests: a watcher that forwards runtime
//! events to a channel, and reading the process table.
#![allow(dead_code)]

use std::time::Duration;

use actix::{Actor, Context, Handler};
use runtime_actor::{
    FailureCause, ProcessInfo, ProcessRequest, ProcessRuntime, ProcessSpec, RuntimeActor,
    RuntimeConfig, RuntimeEvent, RuntimeHandle,
};
use tokio::sync::mpsc;

struct Probe(mpsc::UnboundedSender<RuntimeEvent>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RuntimeEvent> for Probe {
    type Result = ();
    fn handle(&mut self, event: RuntimeEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

/// The events of one runtime, read on the real clock (the children run on
/// it).
pub(crate) struct Events(mpsc::UnboundedReceiver<RuntimeEvent>);

impl Events {
    /// The next event but `Process` (the child's pid, which most tests
    /// read from `Ready` or `Info`).
    pub(crate) async fn next(&mut self) -> RuntimeEvent {
        loop {
            match self.next_any().await {
                RuntimeEvent::Process { .. } => continue,
                event => return event,
            }
        }
    }

    /// The next event, whatever it is.
    pub(crate) async fn next_any(&mut self) -> RuntimeEvent {
        tokio::time::timeout(Duration::from_secs(30), self.0.recv())
            .await
            .expect("no event within 30 s")
            .expect("watcher gone")
    }

    /// An event but `Process` already delivered, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<RuntimeEvent> {
        loop {
            match self.0.try_recv().ok()? {
                RuntimeEvent::Process { .. } => continue,
                event => return Some(event),
            }
        }
    }

    pub(crate) async fn until_ready(&mut self) {
        loop {
            match self.next().await {
                RuntimeEvent::Ready { .. } => return,
                RuntimeEvent::Progressed { .. } => continue,
                other => panic!("expected Ready, got {other:?}"),
            }
        }
    }

    pub(crate) async fn until_failed(&mut self) -> FailureCause {
        loop {
            if let RuntimeEvent::Failed { cause, .. } = self.next().await {
                return cause;
            }
        }
    }

    pub(crate) async fn until_exited(&mut self) {
        while !matches!(self.next().await, RuntimeEvent::Exited { .. }) {}
    }
}

/// The process information of a process runtime that is running.
pub(crate) async fn info(runtime: &RuntimeHandle<ProcessRuntime>) -> ProcessInfo {
    runtime
        .call(ProcessRequest::Info)
        .await
        .unwrap()
        .into_info()
        .unwrap()
}

/// Spawns a process runtime with a watcher.
pub(crate) fn spawn(
    spec: ProcessSpec,
    config: RuntimeConfig,
) -> (RuntimeHandle<ProcessRuntime>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = Probe(tx).start().recipient();
    let handle = RuntimeActor::spawn(config.watcher(watcher), ProcessRuntime::factory(spec));
    (handle, Events(rx))
}

/// The state letter and parent of `pid`, from `/proc`.
fn stat(pid: u32) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: read after the last `)`.
    let mut fields = stat.rsplit(')').next()?.split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
}

/// Whether `pid` is a live process (a zombie or a vanished pid is not).
pub(crate) fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != "Z" && state != "X")
}

/// Waits (bounded) for a process that was signalled to disappear.
pub(crate) async fn gone(pid: u32) -> bool {
    within_5s(|| !alive(pid)).await
}

/// Waits (bounded) until `pid` is free: its process ended and was reaped
/// (a zombie still holds its pid).
pub(crate) async fn reaped(pid: u32) -> bool {
    within_5s(|| stat(pid).is_none()).await
}

/// Whether `done` held within 5 s, looked at every 10 ms.
async fn within_5s(done: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// This process's children: the live ones and the zombies.
pub(crate) fn children() -> (Vec<u32>, Vec<u32>) {
    children_of(std::process::id())
}

/// The children of `parent`: the live ones and the zombies.
pub(crate) fn children_of(parent: u32) -> (Vec<u32>, Vec<u32>) {
    let parent = parent.to_string();
    let (mut live, mut zombies) = (Vec::new(), Vec::new());
    let pids = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        match stat(pid) {
            Some((state, ppid)) if ppid == parent && state == "Z" => zombies.push(pid),
            Some((_, ppid)) if ppid == parent => live.push(pid),
            _ => {}
        }
    }
    (live, zombies)
}

/// A private directory (mode 0700, made by `mkdtemp`), removed when
/// dropped.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let template = std::env::temp_dir().join("pod-test-XXXXXX");
        TempDir(nix::unistd::mkdtemp(&template).unwrap())
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
