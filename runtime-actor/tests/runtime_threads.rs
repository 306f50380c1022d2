//! Dedicated arbiters are stopped and joined: no thread outlives its runtime.
//!
//! Alone in its test binary, because it counts the process's threads.

mod support;

use std::time::Duration;

use support::{config, spawn_dedicated, Req, Script};

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("a Linux /proc")
        .count()
}

#[actix::test]
async fn no_arbiter_thread_is_left_after_a_thousand_start_stop_cycles() {
    let script = Script::default();
    // One warm-up cycle, so lazily created threads are in the baseline.
    for _ in 0..1 {
        let (runtime, mut events) = spawn_dedicated(script.clone(), config());
        events.ready().await;
        runtime.stop(Duration::from_secs(5)).await;
        events.exited().await;
    }
    let baseline = thread_count();

    for generation in 0..1000 {
        let (runtime, mut events) =
            spawn_dedicated(script.clone(), config().generation(generation));
        events.ready().await;
        assert_eq!(runtime.call(Req::Echo(1)).await.unwrap(), "1");
        let report = runtime.stop(Duration::from_secs(5)).await;
        assert!(report.graceful(), "{report:?}");
        events.exited().await;
    }

    // `Exited` comes after the arbiter thread was joined; the short-lived
    // joiner threads may still be returning, so give them a bounded moment.
    let mut count = thread_count();
    for _ in 0..500 {
        if count <= baseline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        count = thread_count();
    }
    assert!(
        count <= baseline,
        "{count} threads, {baseline} before the cycles"
    );
}
