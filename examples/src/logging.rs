//! The binaries' log: the pods' `tracing` events on stderr.

/// Sends `tracing` events to stderr, as much as `RUST_LOG` asks for
/// (`RUST_LOG=info` shows every pod's start, Started and close; warnings
/// and errors by default), and caught runtime panics to `tracing` as one
/// WARN line each instead of a panic report (any other panic keeps the
/// full report).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    runtime_actor::panics_to_tracing();
}
