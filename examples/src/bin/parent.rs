//! `parent`: starts one process runtime running the given command, prints the
//! child's pid on stdout once it is ready, and then waits for ever.
//!
//! `cargo run -p examples --bin parent -- /path/to/worker --announce none`
//!
//! The test that kills a pod's parent with SIGKILL runs it, kills it, and
//! checks by pid that the child did not survive. It never ends by itself.

use std::io::Write;
use std::process::ExitCode;

use runtime_actor::{
    ProcessRequest, ProcessResponse, ProcessRuntime, ProcessSpec, RuntimeActor, RuntimeConfig,
};

#[actix::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("usage: parent COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let spec = ProcessSpec::new(command)
        .args(args)
        .probe(runtime_actor::ReadinessProbe::None);
    let runtime = RuntimeActor::spawn(RuntimeConfig::new("parent"), ProcessRuntime::factory(spec));
    if let Err(e) = runtime.ready().await {
        eprintln!("parent: the child did not start: {e}");
        return ExitCode::FAILURE;
    }
    match runtime.call(ProcessRequest::Info).await {
        Ok(ProcessResponse::Info(info)) => {
            println!("{}", info.pid);
            let _ = std::io::stdout().flush();
        }
        Ok(other) => {
            eprintln!("parent: expected the process information, got {other:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("parent: {e}");
            return ExitCode::FAILURE;
        }
    }
    std::future::pending::<ExitCode>().await
}
