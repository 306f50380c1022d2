//! A deployment of process replicas, one of which fails its start: the
//! others are closed and no worker process is left.

use actix::Actor;
use pod_actor::deployment::{Deployment, DeploymentError, StartDeployment};
use pod_actor::{Pod, PodConfig, RuntimeSpec};

#[actix::test]
async fn a_process_replica_failing_at_start_leaves_no_process_running() {
    let worker = env!("CARGO_BIN_EXE_worker");
    let mut template = PodConfig::new(
        "template",
        RuntimeSpec::process(worker).with_args(["--announce", "notify"]),
    );
    template.timeout_ctrl = 2000;
    let build = |mut config: PodConfig| {
        if config.name.ends_with("rep-2") {
            if let RuntimeSpec::Process { args, .. } = &mut config.runtime {
                args.extend(["--startup-delay-ms".into(), "100".into()]);
                args.extend(["--fail-startup".into(), "4".into()]);
            }
        }
        Pod::from_process_config(config)
    };
    let deployment = Deployment::new("workers", 3, template, build).start();
    match deployment.send(StartDeployment).await.unwrap() {
        Err(DeploymentError::Replica { pod, error }) => {
            assert_eq!(pod, "workers/rep-2");
            assert!(error.to_string().contains("exited with code 4"), "{error}");
        }
        other => panic!("expected the replica's failure, got {other:?}"),
    }
    let me = std::process::id().to_string();
    let workers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            let state = fields.next().unwrap_or("Z");
            stat.contains("(worker)") && state != "Z" && fields.next() == Some(me.as_str())
        })
        .collect();
    assert!(
        workers.is_empty(),
        "worker processes left running: {workers:?}"
    );
}
