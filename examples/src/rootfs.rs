//! A root filesystem for container pods without any registry: a static
//! busybox as `/bin/sh` and a few applets, with a host executable and the
//! libraries it loads mounted read-only (as `volumes`). The container tests
//! and podbench's container row run the project's own binaries in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A root filesystem directory, removed when dropped.
#[derive(Debug)]
pub struct Rootfs {
    dir: PathBuf,
    volumes: Vec<String>,
    engine_args: Vec<String>,
}

impl Rootfs {
    /// Builds one in a new private directory under the temporary one, with
    /// `exe` to be mounted at `at` (an absolute path inside).
    ///
    /// # Errors
    ///
    /// No busybox on this host (Debian's `busybox-static`), or the
    /// directory or `ldd` failing, in words.
    pub fn build(exe: &Path, at: &str) -> Result<Rootfs, String> {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no busybox (Debian's busybox-static) on this host")?;
        let dir = private_dir()?;
        // From here on, dropped on any error.
        let mut rootfs = Rootfs {
            dir,
            volumes: Vec::new(),
            engine_args: Vec::new(),
        };
        let root = &rootfs.dir;
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "run"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::copy(busybox, root.join("bin/busybox")).map_err(|e| e.to_string())?;
        for applet in ["sh", "sleep", "echo", "cat"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .map_err(|e| e.to_string())?;
        }
        rootfs.volumes.push(format!("{}:{at}:ro", exe.display()));
        let ldd = Command::new("ldd")
            .arg(exe)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)".
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                rootfs.volumes.push(format!("{path}:{path}:ro"));
            }
        }
        // crun refuses hosts with a hybrid cgroup layout; runc runs wherever
        // podman does.
        let runc = Command::new("runc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runc {
            rootfs.engine_args = vec!["--runtime".into(), "runc".into()];
        }
        Ok(rootfs)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The `volumes` a pod needs: the executable and its libraries.
    pub fn volumes(&self) -> &[String] {
        &self.volumes
    }

    /// The `engine_args` a pod needs here (`--runtime runc` where runc is).
    pub fn engine_args(&self) -> &[String] {
        &self.engine_args
    }

    /// Runs `podman run --rm` of this root filesystem (with the owner's
    /// `nofile` and `nproc` limits, as a pod passes them) and `command`:
    /// whether podman can run a container here, or why not.
    ///
    /// # Errors
    ///
    /// podman's own words when it cannot.
    pub fn check_engine(&self) -> Result<(), String> {
        let out = Command::new("podman")
            .args(self.run_args())
            .args(["/bin/sh", "-c", "echo ok"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("podman: {e}"))?;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "ok" => Ok(()),
            _ => Err(format!(
                "podman cannot run a container here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// `run --rm` and the options a pod of this root filesystem gets, up to
    /// the command: for a raw `podman run` beside a pod.
    pub fn run_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--pull=never".into()];
        args.extend(self.engine_args.iter().cloned());
        // The limits a pod passes where its config gives none.
        for ulimit in runtime_actor::ContainerSpec::owner_ulimits() {
            args.push("--ulimit".into());
            args.push(ulimit);
        }
        for volume in &self.volumes {
            args.push("--volume".into());
            args.push(volume.clone());
        }
        args.push("--rootfs".into());
        args.push(self.dir.display().to_string());
        args
    }

    /// The `[runtime]` lines of a container pod of this root filesystem:
    /// `kind`, `rootfs`, `volumes` and `engine_args` (TOML).
    pub fn runtime_toml(&self) -> String {
        format!(
            "kind = \"container\"\nrootfs = {:?}\nvolumes = {}\nengine_args = {}\n",
            self.dir.display().to_string(),
            toml_list(&self.volumes),
            toml_list(&self.engine_args),
        )
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn toml_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// A new directory only this process uses, under the temporary one.
fn private_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0u32..100 {
        let dir = base.join(format!(
            "pod-rootfs-{}-{}-{attempt}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot create a private directory for a root filesystem".into())
}
