//! Process pods that serve requests over their request channel (fd 3): round
//! trips in and out of order, pipelining, a child that dies, breaks the
//! protocol, closes its end or stops reading, a child written in Python,
//! and a deployment of process replicas that loses one under load.

use actix::{Actor, Addr};
use futures::future::{join_all, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pod_actor::deployment::{Deployment, GetDeploymentStatus, Route, StartDeployment};
use pod_actor::typed::{Bytes, Codec, CodecError, Direction, TypedCall, TypedRoute};
use pod_actor::{
    Call, CallError, ChannelConfig, Close, Pod, PodConfig, RestartKind, RuntimeSpec, Start,
    WaitStartSuccess,
};
use runtime_actor::{FailureCause, ProcessRequest, ProcessResponse, ProcessRuntime};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const PYTHON_CHILD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/children/channel_echo.py"
);

type ProcessPod = Addr<Pod<ProcessRuntime>>;

fn config(name: &str, runtime: RuntimeSpec, channel: ChannelConfig) -> PodConfig {
    let mut runtime = runtime;
    if let RuntimeSpec::Process { channel: c, .. } = &mut runtime {
        *c = Some(channel);
    }
    let mut config = PodConfig::new(name, runtime);
    config.timeout_ready = 20_000;
    config.timeout_ctrl = 2_000;
    config
}

fn worker(name: &str, channel: ChannelConfig) -> PodConfig {
    config(name, RuntimeSpec::process(WORKER), channel)
}

async fn started(config: PodConfig) -> (ProcessPod, u32) {
    let pod = Pod::from_process_config(config).unwrap().start();
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    (pod, started.pid.unwrap())
}

/// Sends `text` to the child; its answer as text.
fn call(
    pod: &ProcessPod,
    text: impl Into<String>,
) -> impl std::future::Future<Output = Result<String, CallError>> {
    let sent = pod.send(Call(ProcessRequest::call(text.into())));
    async move {
        match sent.await.expect("the pod is gone")? {
            ProcessResponse::Reply(bytes) => Ok(String::from_utf8(bytes.to_vec()).unwrap()),
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

/// The cause a request in flight was answered with.
fn exit_cause(answer: Result<String, CallError>) -> FailureCause {
    match answer {
        Err(CallError::RuntimeExited { cause: Some(cause) }) => cause,
        other => panic!("expected RuntimeExited with a cause, got {other:?}"),
    }
}

fn temporary(mut config: PodConfig) -> PodConfig {
    config.restart.policy = RestartKind::Temporary;
    config
}

#[actix::test]
async fn answers_come_back_in_any_order_matched_to_their_requests() {
    let (pod, _) = started(worker("order", ChannelConfig::default())).await;
    assert_eq!(call(&pod, "hello").await.unwrap(), "hello");
    match call(&pod, "fail not today").await {
        Err(CallError::Runtime(e)) => assert_eq!(e.message(), "not today"),
        other => panic!("expected the child's error answer, got {other:?}"),
    }
    let mut slow = Box::pin(call(&pod, "sleep 300 slow"));
    let fast = call(&pod, "fast");
    assert_eq!(fast.await.unwrap(), "fast");
    assert!(
        (&mut slow).now_or_never().is_none(),
        "the slow answer came first"
    );
    assert_eq!(slow.await.unwrap(), "slow");
    // Bytes, not text: every byte value goes through.
    let all: Vec<u8> = (0..=255).collect();
    let echoed = pod
        .send(Call(ProcessRequest::call(all.clone())))
        .await
        .unwrap()
        .unwrap()
        .into_reply()
        .unwrap();
    assert_eq!(echoed.as_ref(), all.as_slice());
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

#[actix::test]
async fn a_request_over_max_frame_is_refused_typed_and_never_sent() {
    let channel = ChannelConfig {
        max_frame: 1024,
        ..ChannelConfig::default()
    };
    let (pod, _) = started(worker("too-large", channel)).await;
    let before = call(&pod, "count").await.unwrap();
    match call(&pod, "x".repeat(1016)).await {
        Err(CallError::TooLarge {
            size: 1016,
            limit: 1015,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The largest that fits goes through; the child saw nothing else.
    assert_eq!(
        call(&pod, "y".repeat(1015)).await.unwrap(),
        "y".repeat(1015)
    );
    let after: u64 = call(&pod, "count").await.unwrap().parse().unwrap();
    assert_eq!(after, before.parse::<u64>().unwrap() + 2);
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

#[actix::test]
async fn a_call_to_a_pod_without_a_channel_says_so() {
    let mut config = PodConfig::new("no-channel", RuntimeSpec::process(WORKER));
    config.timeout_ctrl = 2_000;
    let (pod, _) = started(config).await;
    match call(&pod, "hello").await {
        Err(CallError::Runtime(e)) => assert_eq!(
            e.message(),
            "this process pod has no request channel (runtime.channel)"
        ),
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

#[actix::test]
async fn ten_thousand_pipelined_requests_are_all_answered() {
    let channel = ChannelConfig {
        max_in_flight: 10_000,
        ..ChannelConfig::default()
    };
    let (pod, _) = started(worker("pipelined", channel)).await;
    let answers = join_all((0..10_000).map(|i| call(&pod, format!("request {i}")))).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), format!("request {i}"));
    }
    assert_eq!(call(&pod, "count").await.unwrap(), "10000");
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

#[actix::test]
async fn requests_in_flight_when_the_child_is_killed_each_get_its_exit() {
    let (pod, pid) = started(temporary(worker("killed", ChannelConfig::default()))).await;
    let in_flight: Vec<_> = (0..5)
        .map(|i| call(&pod, format!("sleep 60000 {i}")))
        .collect();
    // Read after the five: they have reached the child.
    assert_eq!(call(&pod, "pid").await.unwrap(), pid.to_string());
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    for answer in join_all(in_flight).await {
        match exit_cause(answer) {
            FailureCause::Exited { signal, .. } => assert_eq!(signal, Some(9)),
            other => panic!("expected the kill, got {other}"),
        }
    }
    assert!(matches!(
        call(&pod, "after").await,
        Err(CallError::Closed | CallError::NotReady)
    ));
}

#[actix::test]
async fn a_malformed_or_oversized_frame_fails_the_pod_saying_what_was_wrong() {
    for (request, says) in [
        (
            "malformed",
            "a frame of 3 bytes, fewer than the 9 of its id and kind",
        ),
        (
            "oversized",
            "a frame of 4294967295 bytes, over runtime.channel.max_frame (4194304)",
        ),
    ] {
        let (pod, pid) = started(temporary(worker(request, ChannelConfig::default()))).await;
        let waiting = call(&pod, "sleep 60000 never");
        let cause = exit_cause(call(&pod, request).await).to_string();
        assert!(
            cause.contains("broke the request channel's protocol"),
            "{cause}"
        );
        assert!(cause.contains(says), "{cause}");
        assert_eq!(exit_cause(waiting.await).to_string(), cause);
        assert!(support::gone(pid).await, "the child {pid} still runs");
    }
}

#[actix::test]
async fn a_child_that_closes_its_channel_fails_and_one_that_closes_stdout_serves_on() {
    let (pod, pid) = started(temporary(worker("stdout", ChannelConfig::default()))).await;
    assert_eq!(call(&pod, "close-stdout").await.unwrap(), "stdout closed");
    assert_eq!(call(&pod, "still here").await.unwrap(), "still here");
    assert!(pod.send(Close::default()).await.unwrap().graceful());
    assert!(support::gone(pid).await);

    let (pod, pid) = started(temporary(worker("closes", ChannelConfig::default()))).await;
    let waiting = call(&pod, "sleep 60000 never");
    let cause = exit_cause(call(&pod, "close").await).to_string();
    assert!(
        cause.contains("the child closed its end of the request channel"),
        "{cause}"
    );
    assert_eq!(exit_cause(waiting.await).to_string(), cause);
    assert!(support::gone(pid).await, "the child {pid} still runs");
}

#[actix::test]
async fn a_child_that_stops_reading_gets_busy_answers_not_unbounded_memory() {
    let channel = ChannelConfig {
        max_in_flight: 8,
        timeout: 0,
        ..ChannelConfig::default()
    };
    let mut config = worker("stalled", channel);
    config.timeout_ctrl = 500;
    let (pod, pid) = started(config).await;
    let stall = call(&pod, "stall");
    // Frames larger than the socket's buffer: the pod's writer blocks.
    let big = "x".repeat(256 * 1024);
    let mut answers = (0..20)
        .map(|_| call(&pod, big.clone()))
        .collect::<FuturesUnordered<_>>();
    // The stall and 7 more are in flight; the other 13 are refused at once.
    let mut busy = 0;
    while busy < 13 {
        match answers.next().await.unwrap() {
            Err(CallError::Busy { limit: 8 }) => busy += 1,
            other => panic!("expected Busy, got {other:?}"),
        }
    }
    // A close waits timeout_ctrl for the answers, then kills: every request
    // is still answered.
    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.graceful(), "{report:?}");
    let mut in_flight = 0;
    while let Some(answer) = answers.next().await {
        assert!(
            matches!(answer, Err(CallError::RuntimeExited { .. })),
            "{answer:?}"
        );
        in_flight += 1;
    }
    assert_eq!(in_flight, 7);
    assert!(matches!(stall.await, Err(CallError::RuntimeExited { .. })));
    assert!(support::gone(pid).await);
}

#[actix::test]
async fn a_child_that_stops_reading_still_gets_end_of_file_and_a_graceful_close() {
    let channel = ChannelConfig {
        timeout: 200,
        ..ChannelConfig::default()
    };
    let mut config = worker("stalled-timeouts", channel);
    config.timeout_ctrl = 500;
    let (pod, pid) = started(config).await;
    assert!(matches!(
        call(&pod, "stall").await,
        Err(CallError::TimedOut { .. })
    ));
    // Frames larger than the socket's buffer: the writer is stuck in one.
    let big = "x".repeat(256 * 1024);
    for answer in join_all((0..6).map(|_| call(&pod, big.clone()))).await {
        assert!(
            matches!(answer, Err(CallError::TimedOut { .. })),
            "{answer:?}"
        );
    }
    // Nothing waits for those frames: the close shuts the channel down at
    // once, and SIGTERM ends the child well within timeout_ctrl.
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    assert!(support::gone(pid).await);
}

/// Debian's python3, or the first on `PATH`.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[actix::test]
async fn a_child_written_in_python_from_the_protocol_alone_serves_the_pod() {
    let runtime = RuntimeSpec::process(python()).with_args([PYTHON_CHILD]);
    let mut config = config("python", runtime, ChannelConfig::default());
    if let RuntimeSpec::Process { probe, .. } = &mut config.runtime {
        *probe = pod_actor::ProbeConfig::Stdout {
            pattern: "channel_echo ready".into(),
        };
    }
    let (pod, pid) = started(config).await;
    assert_eq!(call(&pod, "hello").await.unwrap(), "HELLO");
    match call(&pod, "fail from python").await {
        Err(CallError::Runtime(e)) => assert_eq!(e.message(), "from python"),
        other => panic!("expected the error answer, got {other:?}"),
    }
    let mut later = Box::pin(call(&pod, "later 300 late"));
    assert_eq!(call(&pod, "now").await.unwrap(), "NOW");
    assert!((&mut later).now_or_never().is_none());
    assert_eq!(later.await.unwrap(), "late");
    let answers = join_all((0..1000).map(|i| call(&pod, format!("n{i}")))).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), format!("N{i}"));
    }
    // It exits at the end of file (or at the stop signal right after).
    assert!(pod.send(Close::default()).await.unwrap().graceful());
    assert!(support::gone(pid).await);
}

#[actix::test]
async fn a_close_sends_end_of_file_before_the_stop_signal() {
    let dir = support::TempDir::new();
    let report = dir.path("sigterm");
    for _ in 0..5 {
        let _ = std::fs::remove_file(&report);
        let runtime = RuntimeSpec::process(python()).with_args([PYTHON_CHILD]);
        let mut config = config("eof", runtime, ChannelConfig::default());
        config
            .env
            .insert("SIGTERM_REPORT".into(), report.display().to_string());
        if let RuntimeSpec::Process { probe, .. } = &mut config.runtime {
            *probe = pod_actor::ProbeConfig::Stdout {
                pattern: "channel_echo ready".into(),
            };
        }
        let (pod, pid) = started(config).await;
        assert_eq!(call(&pod, "x").await.unwrap(), "X");
        assert!(pod.send(Close::default()).await.unwrap().graceful());
        assert!(support::gone(pid).await);
        assert_eq!(std::fs::read_to_string(&report).unwrap(), "eof first");
    }
}

#[actix::test]
async fn answers_written_right_before_the_child_exits_all_reach_their_callers() {
    for round in 0..5 {
        let (pod, pid) = started(temporary(worker("burst", ChannelConfig::default()))).await;
        // Tasks of their own: a call waits in this test's future for room in
        // the pod's mailbox until it is polled.
        let held: Vec<_> = (0..200).map(|_| actix::spawn(call(&pod, "hold"))).collect();
        let mut holding = 0;
        for _ in 0..1000 {
            holding = call(&pod, "held").await.unwrap().parse().unwrap();
            if holding == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(holding, 200);
        let last = call(&pod, "release-and-exit 0").await;
        assert_eq!(last.unwrap(), "released", "round {round}");
        for answer in join_all(held).await {
            assert_eq!(answer.unwrap().unwrap(), "released", "round {round}");
        }
        assert!(support::gone(pid).await);
    }
}

#[actix::test]
async fn a_deployment_of_process_replicas_answers_every_request_while_one_is_killed() {
    let template = worker("template", ChannelConfig::default());
    let deployment = Deployment::new("echo", 3, template, Pod::from_process_config).start();
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    let victim = status.replicas[1].pid.unwrap();

    let sent = 3000;
    let mut answers = (0..sent)
        .map(|i| {
            let routed = deployment.send(Route::<ProcessRuntime>(ProcessRequest::call(format!(
                "sleep 2 {i}"
            ))));
            async move { (i, routed.await.unwrap()) }
        })
        .collect::<FuturesUnordered<_>>();
    let mut answered = 0;
    while let Some((i, answer)) = answers.next().await {
        match answer {
            Ok(ProcessResponse::Reply(bytes)) => assert_eq!(bytes, format!("{i}").as_bytes()),
            other => panic!("request {i} got {other:?}"),
        }
        answered += 1;
        // Under load, with requests in flight on every replica.
        if answered == 300 {
            kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
        }
    }
    assert_eq!(answered, sent);
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    assert!(
        status.replicas[1].restarts >= 1 || status.replicas[1].pid != Some(victim),
        "{status:?}"
    );
    deployment
        .send(pod_actor::deployment::CloseDeployment)
        .await
        .unwrap();
    assert!(support::gone(victim).await);
}

#[actix::test]
async fn typed_requests_go_as_json_and_answers_come_back_typed() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    let (pod, _) = started(worker("typed", ChannelConfig::default())).await;
    let point = Point { x: 3, y: -4 };
    // The worker echoes: the answer is the request, decoded.
    let request = TypedCall::<Point>::new(&point).unwrap();
    let echoed: Point = pod.send(request).await.unwrap().unwrap();
    assert_eq!(echoed, point);
    // An answer that is not a `Vec<u32>`: the error says which way it failed.
    let request = TypedCall::<Vec<u32>>::new(&point).unwrap();
    match pod.send(request).await.unwrap() {
        Err(e @ CallError::Codec(_)) => {
            assert_eq!(e.to_string(), "the child's answer cannot be decoded");
            let source = std::error::Error::source(&e).unwrap();
            assert_eq!(source.to_string(), "cannot decode as json");
            let serde = source.source().unwrap().to_string();
            assert!(serde.contains("invalid type: map"), "{serde}");
        }
        other => panic!("expected a decoding error, got {other:?}"),
    }
    // A request JSON cannot hold is refused when it is made.
    let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    match TypedCall::<u8>::new(&bad) {
        Err(e) => {
            assert_eq!(e.direction(), Direction::Encode);
            assert_eq!(e.to_string(), "cannot encode as json");
        }
        Ok(request) => panic!("expected an encoding error, got {request:?}"),
    }
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

/// A codec of our own: JSON text behind a `P:` prefix.
struct Prefixed;

impl Codec for Prefixed {
    fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Bytes, CodecError> {
        let json = serde_json::to_string(value)
            .map_err(|e| CodecError::new(Direction::Encode, "prefixed", e))?;
        Ok(Bytes::from(format!("P:{json}")))
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let json = bytes
            .strip_prefix(b"P:")
            .ok_or_else(|| CodecError::msg(Direction::Decode, "prefixed", "no P: prefix"))?;
        serde_json::from_slice(json).map_err(|e| CodecError::new(Direction::Decode, "prefixed", e))
    }
}

#[actix::test]
async fn a_codec_of_the_users_own_goes_through_and_encoding_errors_convert() {
    let (pod, _) = started(worker("codec", ChannelConfig::default())).await;
    // The worker echoes the prefixed text, which decodes back.
    let request = TypedCall::<Vec<u32>, Prefixed>::new(&[1, 2, 3]).unwrap();
    assert_eq!(pod.send(request).await.unwrap().unwrap(), [1, 2, 3]);
    // An answer without the prefix names what was wrong.
    match Prefixed::decode::<Vec<u32>>(b"[1]") {
        Err(e) => {
            assert_eq!(e.to_string(), "cannot decode as prefixed");
            assert_eq!(
                std::error::Error::source(&e).unwrap().to_string(),
                "no P: prefix"
            );
        }
        Ok(value) => panic!("decoded {value:?}"),
    }
    // `?` turns an encoding error into a CallError.
    async fn ask(pod: &ProcessPod) -> Result<u8, CallError> {
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let request = TypedCall::<u8>::new(&bad)?;
        pod.send(request).await.map_err(|_| CallError::Closed)?
    }
    match ask(&pod).await {
        Err(e @ CallError::Codec(_)) => {
            assert_eq!(e.to_string(), "request not sent: it cannot be encoded")
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
    assert!(pod.send(Close::default()).await.unwrap().graceful());
}

#[actix::test]
async fn typed_requests_reach_a_python_child_and_a_deployment_of_them() {
    use std::collections::BTreeMap;
    let runtime = RuntimeSpec::process(python()).with_args([PYTHON_CHILD]);
    let mut template = config("python", runtime, ChannelConfig::default());
    if let RuntimeSpec::Process { probe, .. } = &mut template.runtime {
        *probe = pod_actor::ProbeConfig::Stdout {
            pattern: "channel_echo ready".into(),
        };
    }
    let deployment = Deployment::new("upper", 2, template, Pod::from_process_config).start();
    deployment.send(StartDeployment).await.unwrap().unwrap();
    for i in 0..10 {
        let request: BTreeMap<String, i32> = [("count".to_owned(), i)].into();
        // The Python child answers the JSON text in upper case.
        let answer: BTreeMap<String, i32> = deployment
            .send(TypedRoute::<BTreeMap<String, i32>>::new(&request).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, [("COUNT".to_owned(), i)].into());
    }
    deployment
        .send(pod_actor::deployment::CloseDeployment)
        .await
        .unwrap();
}

/// A typed answer whose `Deserialize` panics.
#[derive(Debug)]
struct Unreadable;

impl<'de> serde::Deserialize<'de> for Unreadable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("this answer cannot be read")
    }
}

#[actix::test]
async fn a_typed_answer_whose_deserialize_panics_is_answered_and_the_deployment_serves_on() {
    let template = worker("reader", ChannelConfig::default());
    let deployment = Deployment::new("readers", 1, template, Pod::from_process_config).start();
    deployment.send(StartDeployment).await.unwrap().unwrap();
    // The worker echoes the request; reading the echo panics.
    let answer = deployment
        .send(TypedRoute::<Unreadable>::new(&[1u32]).unwrap())
        .await
        .unwrap();
    assert!(
        matches!(&answer, Err(CallError::RequestPanicked { message }) if message.contains("cannot be read")),
        "{answer:?}"
    );
    let echoed = deployment
        .send(TypedRoute::<Vec<u32>>::new(&[1u32, 2]).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, [1, 2]);
    deployment
        .send(pod_actor::deployment::CloseDeployment)
        .await
        .unwrap();
}

mod support;
