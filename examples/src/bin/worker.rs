//! `worker`: the scriptable child process of the process-runtime tests and
//! the demo (see `examples::worker`); `--help` lists its options.
//!
//! `cargo run -p examples --bin worker -- --announce stdout`

fn main() {
    examples::worker::run(std::env::args().skip(1).collect())
}
