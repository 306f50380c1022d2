//! The demo: a runtime that is started, called, made to panic, started again
//! as the next generation, and stopped, with every lifecycle event printed.
//!
//! `cargo run --release -p examples --bin demo`
//!
//! It ends by itself and exits 0 when every step behaved as the library
//! promises (non-zero otherwise), so CI runs it.

use std::process::ExitCode;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use runtime_actor::{
    FailureCause, RequestError, Runtime, RuntimeActor, RuntimeConfig, RuntimeContext, RuntimeEnv,
    RuntimeError, RuntimeEvent, RuntimeFactory,
};
use tokio::sync::mpsc;

/// A tiny "executor": counts words, and panics on the word `crash`.
struct WordCounter {
    served: u64,
}

impl Runtime for WordCounter {
    type Request = String;
    type Response = usize;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        ctx.extend_deadline(Duration::from_secs(5), "warming up");
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }

    async fn handle(&mut self, text: String) -> Result<usize, RuntimeError> {
        if text.contains("crash") {
            panic!("asked to crash after {} requests", self.served);
        }
        self.served += 1;
        Ok(text.split_whitespace().count())
    }

    async fn teardown(&mut self) {
        println!("  teardown: served {} requests", self.served);
    }
}

/// Prints every event and forwards it to the demo script.
struct Watcher(mpsc::UnboundedSender<RuntimeEvent>);

impl Actor for Watcher {
    type Context = Context<Self>;
}

impl Handler<RuntimeEvent> for Watcher {
    type Result = ();

    fn handle(&mut self, event: RuntimeEvent, _: &mut Context<Self>) {
        match &event {
            RuntimeEvent::Progressed {
                generation, note, ..
            } => println!("[gen {generation}] progress: {note}"),
            RuntimeEvent::Ready {
                generation, setup, ..
            } => {
                println!("[gen {generation}] ready after {setup:?}")
            }
            RuntimeEvent::Failed { generation, cause } => {
                println!("[gen {generation}] FAILED: {cause}")
            }
            RuntimeEvent::Exited { generation, cause } => match cause {
                Some(cause) => println!("[gen {generation}] exited: {cause}"),
                None => println!("[gen {generation}] exited on request"),
            },
            other => println!("{other:?}"),
        }
        let _ = self.0.send(event);
    }
}

async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<RuntimeEvent>,
    wanted: impl Fn(&RuntimeEvent) -> bool,
) -> Result<RuntimeEvent, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(event)) if wanted(&event) => return Ok(event),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return Err("an expected event did not come".into()),
        }
    }
}

async fn run() -> Result<(), String> {
    let (tx, mut events) = mpsc::unbounded_channel();
    let watcher = Watcher(tx).start().recipient::<RuntimeEvent>();
    let factory = RuntimeFactory::new(|_: &RuntimeEnv| WordCounter { served: 0 });
    let config = RuntimeConfig::new("word-counter").start_timeout(Some(Duration::from_secs(1)));

    println!("starting generation 0 on its own arbiter");
    let runtime = RuntimeActor::spawn(config.clone().watcher(watcher.clone()), factory.clone());
    wait_for(&mut events, |e| matches!(e, RuntimeEvent::Ready { .. })).await?;
    for text in ["hello pods", "one two three", "actors all the way down"] {
        let words = runtime
            .call(text.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        println!("  {text:?} -> {words} words");
    }

    println!("injecting a panic");
    match runtime.call("please crash".to_owned()).await {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Panicked { message, location }),
        }) => println!(
            "  the caller got an answer: panicked at {} with {message:?}",
            location.map_or("?".into(), |l| l.to_string())
        ),
        other => return Err(format!("expected the panic as an answer, got {other:?}")),
    }
    wait_for(&mut events, |e| matches!(e, RuntimeEvent::Exited { .. })).await?;

    println!("starting generation 1");
    let runtime = RuntimeActor::spawn(config.generation(1).watcher(watcher), factory);
    wait_for(&mut events, |e| matches!(e, RuntimeEvent::Ready { .. })).await?;
    let words = runtime
        .call("still counting".to_owned())
        .await
        .map_err(|e| e.to_string())?;
    println!("  \"still counting\" -> {words} words");

    let report = runtime.stop(Duration::from_secs(5)).await;
    println!(
        "stopped: {} in {:?}",
        if report.graceful() {
            "graceful"
        } else {
            "forced"
        },
        report.took
    );
    wait_for(&mut events, |e| matches!(e, RuntimeEvent::Exited { .. })).await?;
    if !report.graceful() {
        return Err("the stop was forced".into());
    }
    Ok(())
}

#[actix::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("demo finished: every request was answered");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
