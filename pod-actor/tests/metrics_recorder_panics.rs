//! A metrics recorder is the program's code, run where a call is answered:
//! one that panics costs no caller its answer and no runtime its life.

use actix::Actor;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use pod_actor::{Call, Close, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, WaitStartSuccess};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Everything does nothing but the call latency histogram, which panics.
struct Panicking;

struct Explodes;

impl metrics::HistogramFn for Explodes {
    fn record(&self, _: f64) {
        panic!("the recorder's own bug");
    }
}

impl Recorder for Panicking {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match key.name() {
            "pod_call_seconds" => Histogram::from_arc(std::sync::Arc::new(Explodes)),
            _ => Histogram::noop(),
        }
    }
}

struct Echo;

impl Runtime for Echo {
    type Request = u32;
    type Response = u32;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, n: u32) -> Result<u32, RuntimeError> {
        Ok(n)
    }
}

#[actix::test]
async fn a_recorder_that_panics_costs_no_caller_its_answer() {
    metrics::set_global_recorder(Panicking).unwrap();
    pod_actor::metrics::enable();
    let mut config = PodConfig::new(
        "measured",
        RuntimeSpec::InProcess {
            name: "echo".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    for n in 0..3 {
        let answer = pod.send(Call::<Echo>(n)).await;
        assert!(matches!(answer, Ok(Ok(m)) if m == n), "{answer:?}");
    }
    let _ = pod.send(Close::default()).await;
}
