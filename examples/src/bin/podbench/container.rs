//! The container row: a container pod's start against a raw `podman run` of
//! the same root filesystem, until the same ready line; only where podman
//! can run a container.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use actix::Actor;
use pod_actor::{Close, ConfigFormat, Pod, PodConfig, Start, WaitStartSuccess};
use runtime_actor::ProcessRuntime;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{median, micros, paired, Row};

const READY: &str = "ready and listening";

/// A root filesystem of a static busybox, with this executable and its
/// libraries mounted read-only; removed when dropped.
struct Rootfs {
    dir: PathBuf,
    volumes: Vec<String>,
    engine_args: Vec<String>,
}

impl Rootfs {
    fn build() -> Result<Rootfs, String> {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no busybox (Debian's busybox-static)")?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = std::env::temp_dir().join(format!("podbench-rootfs-{}", std::process::id()));
        let mut rootfs = Rootfs {
            dir: dir.clone(),
            volumes: Vec::new(),
            engine_args: Vec::new(),
        };
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "run"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::copy(busybox, dir.join("bin/busybox")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).map_err(|e| e.to_string())?;
        let mut volumes = vec![format!("{}:/bin/podbench:ro", exe.display())];
        let ldd = std::process::Command::new("ldd")
            .arg(&exe)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                volumes.push(format!("{path}:{path}:ro"));
            }
        }
        // crun refuses hybrid cgroup hosts; runc runs everywhere podman does.
        let runc = std::process::Command::new("runc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runc {
            rootfs.engine_args = vec!["--runtime".to_owned(), "runc".to_owned()];
        }
        rootfs.volumes = volumes;
        Ok(rootfs)
    }

    fn config(&self) -> PodConfig {
        let quote = |items: &[String]| {
            items
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            r#"
name = "bench-container"
timeout_ready = 30000
timeout_ctrl = 5000
[runtime]
kind = "container"
rootfs = "{rootfs}"
command = "/bin/podbench"
args = ["worker", "--announce", "stdout"]
volumes = [{volumes}]
engine_args = [{engine_args}]
probe = {{ kind = "stdout", pattern = "{READY}" }}
"#,
            rootfs = self.dir.display(),
            volumes = quote(&self.volumes),
            engine_args = quote(&self.engine_args),
        );
        PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "podbench", &Default::default())
            .unwrap()
    }

    /// `podman run` of the same root filesystem and command, with the same
    /// limits the pod passes (this host may refuse podman's defaults).
    fn raw_args(&self, name: &str) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--rm", "--name", name, "--pull=never"]
            .map(str::to_owned)
            .to_vec();
        for (flag, resource, cap) in [
            (
                "nofile",
                nix::sys::resource::Resource::RLIMIT_NOFILE,
                u64::MAX,
            ),
            ("nproc", nix::sys::resource::Resource::RLIMIT_NPROC, 32_768),
        ] {
            if let Ok((soft, hard)) = nix::sys::resource::getrlimit(resource) {
                args.push("--ulimit".into());
                args.push(format!("{flag}={}:{}", soft.min(cap), hard.min(cap)));
            }
        }
        for volume in &self.volumes {
            args.push("--volume".into());
            args.push(volume.clone());
        }
        args.extend(self.engine_args.iter().cloned());
        args.push("--rootfs".into());
        args.push(self.dir.display().to_string());
        args.extend(["/bin/podbench", "worker", "--announce", "stdout"].map(str::to_owned));
        args
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn pod_start(config: PodConfig) -> Duration {
    let begun = Instant::now();
    let pod = Pod::<ProcessRuntime>::from_process_config(config)
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let took = begun.elapsed();
    pod.send(Close::default()).await.unwrap();
    took
}

async fn raw_run(rootfs: &Rootfs, n: u64) -> Duration {
    let name = format!("podbench-raw-{}-{n}", std::process::id());
    let begun = Instant::now();
    let mut child = tokio::process::Command::new("podman")
        .args(rootfs.raw_args(&name))
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

/// Whether podman runs a container of `rootfs` here.
async fn engine_works(rootfs: &Rootfs) -> Result<(), String> {
    let mut args = rootfs.raw_args(&format!("podbench-check-{}", std::process::id()));
    let tail = args.len() - 4;
    args.truncate(tail);
    args.extend(["/bin/sh", "-c", "echo ok"].map(str::to_owned));
    let out = tokio::process::Command::new("podman")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("podman: {e}"))?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "ok" => Ok(()),
        _ => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

pub(super) async fn container_rows(n: usize, rows: &mut Vec<Row>) {
    let rootfs = match Rootfs::build() {
        Ok(rootfs) => rootfs,
        Err(e) => {
            eprintln!("podbench: the container row is skipped: {e}");
            return;
        }
    };
    if let Err(e) = engine_works(&rootfs).await {
        eprintln!(
            "podbench: the container row is skipped: podman cannot run a container here: {e}"
        );
        return;
    }
    let config = rootfs.config();
    let mut run = 0;
    let (ours, raw) = paired(
        1,
        n,
        || pod_start(config.clone()),
        || {
            run += 1;
            raw_run(&rootfs, run)
        },
    )
    .await;
    rows.push(Row {
        figure: "container pod start -> Started (stdout probe)",
        unit: "us",
        ours: micros(median(ours)),
        baseline_name: "podman run of the same rootfs until the ready line",
        baseline: micros(median(raw)),
        aim: "<= 1.1x",
    });
}
