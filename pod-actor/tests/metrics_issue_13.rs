//! The pods' metrics: nothing registered until the program enables them;
//! then, from a pod's next event on, its state, failures by cause, restarts
//! and call latency, under its name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use pod_actor::{Call, Close, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, WaitStartSuccess};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Every value recorded, by the metric's name and labels.
#[derive(Default, Clone)]
struct Values(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

struct Cell(Arc<AtomicU64>);

impl metrics::CounterFn for Cell {
    fn increment(&self, by: u64) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.0.store(value as u64, Ordering::SeqCst);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Values {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let value = Arc::clone(self.0.lock().unwrap().entry(name).or_default());
        Arc::new(Cell(value))
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map(|v| v.load(Ordering::SeqCst))
    }
}

impl Recorder for Values {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

struct Flaky;

impl Runtime for Flaky {
    type Request = bool;
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, fail: bool) -> Result<(), RuntimeError> {
        if fail {
            return Err(RuntimeError::fatal("lost the model"));
        }
        Ok(())
    }
}

#[actix::test]
async fn metrics_start_when_enabled_and_name_the_pod() {
    let values = Values::default();
    metrics::set_global_recorder(values.clone()).unwrap();
    let mut config = PodConfig::new(
        "early",
        RuntimeSpec::InProcess {
            name: "flaky".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.restart.backoff.initial = 0;
    config.restart.backoff.jitter = 0.0;
    let pod = Pod::new(config, RuntimeFactory::new(|_| Flaky)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    pod.send(Call::<Flaky>(false)).await.unwrap().unwrap();
    assert!(
        values.0.lock().unwrap().is_empty(),
        "nothing before enable()"
    );

    // Enabled while the pod runs: its next event (this failure) counts.
    pod_actor::metrics::enable();
    let _ = pod.send(Call::<Flaky>(true)).await.unwrap();
    let mut restarted = false;
    for _ in 0..200 {
        if pod.send(Call::<Flaky>(false)).await.unwrap().is_ok() {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(restarted);
    assert_eq!(
        values.get("pod_failures_total{pod=early,cause=error}"),
        Some(1)
    );
    assert_eq!(values.get("pod_restarts_total{pod=early}"), Some(1));
    assert_eq!(values.get("pod_startup_seconds{pod=early}"), Some(1));
    assert_eq!(values.get("pod_call_seconds{pod=early}"), Some(1));
    assert_eq!(values.get("pod_state{pod=early,state=running}"), Some(1));
    pod.send(Close::default()).await.unwrap();
    assert_eq!(values.get("pod_state{pod=early,state=running}"), Some(0));
    assert_eq!(values.get("pod_state{pod=early,state=terminated}"), Some(1));
}
