//! The container row: a container pod's start against a raw `podman run` of
//! the same root filesystem, until the same ready line; only where podman
//! can run a container.

use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use examples::rootfs::Rootfs;
use pod_actor::{ConfigFormat, PodConfig};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{median_row, paired, process_pod_start, Row};

const READY: &str = "ready and listening";

fn config(rootfs: &Rootfs) -> PodConfig {
    let text = format!(
        r#"
name = "bench-container"
timeout_ready = 30000
timeout_ctrl = 5000
[runtime]
{runtime}command = "/bin/podbench"
args = ["worker", "--announce", "stdout"]
probe = {{ kind = "stdout", pattern = "{READY}" }}
"#,
        runtime = rootfs.runtime_toml(),
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "podbench", &Default::default())
        .unwrap()
}

/// `podman run` of the same root filesystem and command, with the same
/// limits the pod passes (this host may refuse podman's defaults), until
/// the ready line; then removed, outside the time.
async fn raw_run(rootfs: Rc<Rootfs>, n: u64) -> Duration {
    let name = format!("podbench-raw-{}-{n}", std::process::id());
    let begun = Instant::now();
    let mut child = tokio::process::Command::new("podman")
        .args(rootfs.run_args())
        .args(["--name", &name])
        .args(["/bin/podbench", "worker", "--announce", "stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(READY) {
            break;
        }
    }
    let took = begun.elapsed();
    let _ = tokio::process::Command::new("podman")
        .args(["rm", "--force", "--time", "0", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let _ = child.wait().await;
    took
}

pub(super) async fn container_rows(n: usize, rows: &mut Vec<Row>) {
    let built = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| Rootfs::build(&exe, "/bin/podbench"));
    let rootfs = match built.and_then(|rootfs| rootfs.check_engine().map(|()| rootfs)) {
        Ok(rootfs) => rootfs,
        Err(e) => {
            eprintln!("podbench: the container row is skipped: {e}");
            return;
        }
    };
    let config = config(&rootfs);
    // Shared with each sample's task.
    let rootfs = Rc::new(rootfs);
    let mut run = 0;
    let (ours, raw) = paired(
        1,
        n,
        || process_pod_start(config.clone()),
        || {
            run += 1;
            raw_run(Rc::clone(&rootfs), run)
        },
    )
    .await;
    rows.push(median_row(
        "container pod start -> Started (stdout probe)",
        "podman run of the same rootfs until the ready line",
        "<= 1.1x",
        (ours, raw),
    ));
}
