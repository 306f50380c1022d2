//! Seeded races of issue 10 with real child processes: a worker pod that
//! keeps exiting and being restarted is closed, or dropped, at a random
//! moment (during a start, while ready, in the backoff, during a restart).
//! Every close is answered, and in the end no child process and no zombie
//! is left. One test in this file, so that the process table is its own.

mod support;

use std::time::Duration;

use actix::Actor;
use pod_actor::{Close, ConfigFormat, Pod, PodConfig, Start};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const SEEDS: u64 = 16;

fn config(seed: u64, rng: &mut fastrand::Rng) -> PodConfig {
    let text = format!(
        r#"
name = "racing-{seed}"
timeout_ready = 20000
timeout_ctrl = 2000

[restart]
policy = "permanent"
max_restarts = 1000
within = 60000

[restart.backoff]
initial = {backoff}
jitter = 0.0

[runtime]
kind = "process"
command = "{WORKER}"
args = ["--announce", "stdout", "--startup-delay-ms", "{delay}", "--exit-after-ms", "{exit}"]

[runtime.probe]
kind = "stdout"
pattern = "ready and listening"
"#,
        backoff = [0, 5, 20][rng.usize(..3)],
        delay = rng.u64(0..15),
        exit = rng.u64(5..30),
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "test", &Default::default()).unwrap()
}

#[actix::test]
async fn closing_a_restarting_process_pod_at_any_moment_leaves_no_process() {
    for seed in 0..SEEDS {
        let mut rng = fastrand::Rng::with_seed(seed);
        let pod = Pod::from_process_config(config(seed, &mut rng))
            .unwrap()
            .start();
        pod.send(Start).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.u64(0..80))).await;
        if rng.bool() {
            drop(pod);
        } else {
            let report = tokio::time::timeout(Duration::from_secs(30), pod.send(Close::default()))
                .await
                .unwrap_or_else(|_| panic!("seed {seed}: the close hung"))
                .unwrap();
            assert!(!report.stuck, "seed {seed}: {report:?}");
        }
    }
    for _ in 0..1000 {
        if support::children() == (Vec::new(), Vec::new()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("left behind (live, zombies): {:?}", support::children());
}
