//! Past one machine: a deployment config (or one pod's) as Kubernetes
//! manifests, built from the typed API structs of `k8s-openapi` (feature
//! `kubernetes`), never from string templates.
//!
//! What each pod group becomes:
//!
//! - **A process pod** runs `podrun` (the project's pod runner) as its
//!   container's main process, in an image that holds it and the program
//!   ([`ExportOptions::image`]). The pod's config goes in a `ConfigMap`,
//!   mounted at `/etc/podrun`; the runner supervises the child with the
//!   configured probes, restart policy, backoff and stop signal, reaps
//!   orphans as PID 1, and serves `/readyz` and `/livez`.
//! - **A container pod** is the container itself: its image, command, args
//!   and ports, with a `Service` for its published ports; restarts are the
//!   kubelet's.
//!
//! Mapped in both: `replicas`; `permanent` → a `Deployment`, `transient` →
//! a `Job` restarting `OnFailure`, `temporary` → a `Job` that restarts
//! `Never`; the readiness probe (for a process pod, every kind through the
//! runner's `/readyz`: podrun probes from inside the container, where a
//! program bound to 127.0.0.1 answers, and sees notify and stdout; for a
//! container, tcp → `tcpSocket` and http → `httpGet` on the container's
//! port); `timeout_ready` → a `startupProbe` budget; liveness → the
//! runner's `/livez`; `timeout_ctrl` → `terminationGracePeriodSeconds`;
//! env; labels and annotations naming the pod and the config. Names become
//! DNS labels (two groups with the same one are refused). What has no equivalent is a
//! warning in [`Export::warnings`] (and a comment at the top of the YAML),
//! never dropped silently; an in-process runtime is an error.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime_actor::PortSpec;
use serde_json::Value;

use crate::config::{PlacementKind, ProbeConfig, RestartKind, RuntimeSpec};
use crate::deployment::DeploymentsConfig;
use crate::PodConfig;

/// Where the runner's config is mounted in a process pod's container.
const CONFIG_DIR: &str = "/etc/podrun";

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The image process pods run in: it holds `podrun` and the program.
    /// Required when the config has a process pod.
    pub image: Option<String>,
    /// The runner's path in that image; `podrun` (in `PATH`) by default.
    pub runner: String,
    /// The port the runner serves `/readyz` and `/livez` on; 8086.
    pub runner_port: u16,
    /// The namespace of every object; none (the current one) by default.
    pub namespace: Option<String>,
    /// Where the config came from, for the annotations.
    pub origin: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            image: None,
            runner: "podrun".into(),
            runner_port: 8086,
            namespace: None,
            origin: "code".into(),
        }
    }
}

/// One exported object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Manifest {
    /// A process pod's config, for its runner.
    ConfigMap(ConfigMap),
    /// A `permanent` pod group.
    Deployment(Deployment),
    /// A `transient` or `temporary` pod group.
    Job(Job),
    /// A container pod group's published ports.
    Service(Service),
}

impl Manifest {
    /// Its `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::ConfigMap(_) => "ConfigMap",
            Manifest::Deployment(_) => "Deployment",
            Manifest::Job(_) => "Job",
            Manifest::Service(_) => "Service",
        }
    }

    /// Its `metadata.name`.
    pub fn name(&self) -> &str {
        let meta = match self {
            Manifest::ConfigMap(o) => &o.metadata,
            Manifest::Deployment(o) => &o.metadata,
            Manifest::Job(o) => &o.metadata,
            Manifest::Service(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }

    fn to_value(&self) -> Value {
        let value = match self {
            Manifest::ConfigMap(o) => serde_json::to_value(o),
            Manifest::Deployment(o) => serde_json::to_value(o),
            Manifest::Job(o) => serde_json::to_value(o),
            Manifest::Service(o) => serde_json::to_value(o),
        };
        // The typed structs always serialize.
        value.unwrap_or(Value::Null)
    }

    /// Reads one object back from its JSON form, by its `kind`.
    pub fn from_value(value: Value) -> Result<Manifest, String> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let parsed = match kind.as_str() {
            "ConfigMap" => serde_json::from_value(value).map(Manifest::ConfigMap),
            "Deployment" => serde_json::from_value(value).map(Manifest::Deployment),
            "Job" => serde_json::from_value(value).map(Manifest::Job),
            "Service" => serde_json::from_value(value).map(Manifest::Service),
            other => return Err(format!("not a kind this export writes: `{other}`")),
        };
        parsed.map_err(|e| format!("{kind}: {e}"))
    }
}

/// The manifests of a config, and what could not be carried over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Export {
    /// In order: per pod group its ConfigMap, its Deployment or Job, its
    /// Service.
    pub manifests: Vec<Manifest>,
    /// What has no Kubernetes equivalent, one sentence each.
    pub warnings: Vec<String>,
}

impl Export {
    /// Every manifest as one YAML stream, the warnings as comments first.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for warning in &self.warnings {
            out.push_str(&format!("# warning: {warning}\n"));
        }
        for manifest in &self.manifests {
            out.push_str(&yaml(&manifest.to_value()));
            out.push('\n');
        }
        out
    }

    /// One YAML document per manifest, named `<kind>-<name>.yaml`.
    pub fn files(&self) -> Vec<(String, String)> {
        self.manifests
            .iter()
            .map(|m| {
                let name = format!("{}-{}.yaml", m.kind().to_lowercase(), m.name());
                (name, format!("{}\n", yaml(&m.to_value())))
            })
            .collect()
    }
}

/// Reads a YAML stream of manifests back into the typed structs.
///
/// # Errors
///
/// Text that is not YAML, or a document that is not a manifest of a kind
/// this module writes.
pub fn parse_yaml(text: &str) -> Result<Vec<Manifest>, String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    docs.iter()
        .map(|doc| Manifest::from_value(json(doc)))
        .collect()
}

/// Why a config cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// An in-process runtime is code linked into its owner: there is no
    /// program for a container to run.
    InProcess {
        /// The pod group.
        pod: String,
    },
    /// A process pod needs [`ExportOptions::image`].
    NoImage {
        /// The pod group.
        pod: String,
    },
    /// A container pod from a root filesystem directory has no image.
    Rootfs {
        /// The pod group.
        pod: String,
    },
    /// A process pod's program is probed on the port podrun serves on.
    RunnerPort {
        /// The pod group.
        pod: String,
        /// The port.
        port: u16,
    },
    /// The namespace is not a DNS label.
    Namespace {
        /// As given.
        namespace: String,
    },
    /// Two pod groups have the same name on Kubernetes.
    NameClash {
        /// The first group's own name.
        first: String,
        /// The second's.
        second: String,
        /// The name both would have.
        name: String,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::InProcess { pod } => write!(
                f,
                "pod `{pod}`: an in-process runtime (`runtime.kind = \"in-process\"`) is code of \
                 its owner and has no program to run in a container; run it as a process pod"
            ),
            ExportError::NoImage { pod } => write!(
                f,
                "pod `{pod}` is a process pod: give the image that holds podrun and its program \
                 (--image)"
            ),
            ExportError::Namespace { namespace } => write!(
                f,
                "namespace `{namespace}` is not a DNS label (lowercase letters, digits and \
                 `-`, starting with a letter, at most 63)"
            ),
            ExportError::RunnerPort { pod, port } => write!(
                f,
                "pod `{pod}` probes its program on port {port}, which podrun serves on; \
                 give podrun another port"
            ),
            ExportError::NameClash {
                first,
                second,
                name,
            } => write!(
                f,
                "pods `{first}` and `{second}` would both be named `{name}` on Kubernetes \
                 (lowercase letters, digits and `-`)"
            ),
            ExportError::Rootfs { pod } => write!(
                f,
                "pod `{pod}` runs a root filesystem directory (`runtime.rootfs`), which has no \
                 image to run on Kubernetes; build an image from it and set `runtime.image`"
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// Exports every deployment of `config`.
///
/// # Errors
///
/// The first pod group that cannot be exported, and why.
pub fn export_deployments(
    config: &DeploymentsConfig,
    options: &ExportOptions,
) -> Result<Export, ExportError> {
    check_namespace(options)?;
    let mut export = Export::default();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for deployment in &config.deployments {
        let name = dns_name(&deployment.name);
        if let Some(first) = names.insert(name.clone(), deployment.name.clone()) {
            return Err(ExportError::NameClash {
                first,
                second: deployment.name.clone(),
                name,
            });
        }
        let mut pod = deployment.pod.clone();
        pod.name = deployment.name.clone();
        group(&pod, deployment.replicas, options, &mut export)?;
    }
    Ok(export)
}

/// Exports one pod config as a group of `replicas`.
///
/// # Errors
///
/// Why the pod cannot be exported.
pub fn export_pod(
    config: &PodConfig,
    replicas: usize,
    options: &ExportOptions,
) -> Result<Export, ExportError> {
    check_namespace(options)?;
    let mut export = Export::default();
    group(config, replicas, options, &mut export)?;
    Ok(export)
}

fn check_namespace(options: &ExportOptions) -> Result<(), ExportError> {
    match &options.namespace {
        Some(ns) if dns_name(ns) != *ns || ns.is_empty() => Err(ExportError::Namespace {
            namespace: ns.clone(),
        }),
        _ => Ok(()),
    }
}

fn group(
    pod: &PodConfig,
    replicas: usize,
    options: &ExportOptions,
    export: &mut Export,
) -> Result<(), ExportError> {
    let name = dns_name(&pod.name);
    let warn = |export: &mut Export, text: String| {
        export.warnings.push(format!("pod `{}`: {text}", pod.name));
    };
    if name != pod.name {
        warn(
            export,
            format!("named `{name}` on Kubernetes (lowercase letters, digits and `-`, at most 63)"),
        );
    }
    let kind = match &pod.runtime {
        RuntimeSpec::InProcess { .. } => {
            return Err(ExportError::InProcess {
                pod: pod.name.clone(),
            })
        }
        RuntimeSpec::Process { .. } => "process",
        RuntimeSpec::Container { .. } => "container",
    };
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "pod-actor".to_owned(),
        ),
        ("pod-actor/pod".to_owned(), name.clone()),
    ]);
    let annotations = BTreeMap::from([
        ("pod-actor/pod".to_owned(), pod.name.clone()),
        ("pod-actor/config".to_owned(), options.origin.clone()),
        ("pod-actor/runtime".to_owned(), kind.to_owned()),
    ]);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: options.namespace.clone(),
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..ObjectMeta::default()
    };
    if pod.placement != PlacementKind::Auto {
        warn(
            export,
            "`placement` chooses a thread in the owner process; on Kubernetes every pod is a \
             process of its own"
                .into(),
        );
    }
    let env: Vec<EnvVar> = pod
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..EnvVar::default()
        })
        .collect();
    let grace = i64::try_from(pod.timeout_ctrl.div_ceil(1000)).unwrap_or(i64::MAX);
    let (container, volumes, service) = match &pod.runtime {
        RuntimeSpec::Process { probe, .. } => {
            let image = options.image.clone().ok_or_else(|| ExportError::NoImage {
                pod: pod.name.clone(),
            })?;
            // Absent keys, not nulls: the loader reads `null` as a value.
            let mut config = serde_json::to_value(pod).unwrap_or(Value::Null);
            strip_nulls(&mut config);
            let config = serde_json::to_string_pretty(&config).unwrap_or_default();
            export.manifests.push(Manifest::ConfigMap(ConfigMap {
                metadata: meta(format!("{name}-pod")),
                data: Some(BTreeMap::from([("pod.json".to_owned(), config)])),
                ..ConfigMap::default()
            }));
            let runner = i32::from(options.runner_port);
            let mut ports = vec![ContainerPort {
                name: Some("podrun".into()),
                container_port: runner,
                ..ContainerPort::default()
            }];
            // The program's own port, when the probe names one, is the
            // container's too; podrun's must not be it.
            let program_port = match probe {
                ProbeConfig::Tcp { address, .. } => Some(port_of(address)),
                ProbeConfig::Http { url, .. } => Some(http_target(url).0),
                _ => None,
            };
            if let Some(port) = program_port {
                if port == options.runner_port {
                    return Err(ExportError::RunnerPort {
                        pod: pod.name.clone(),
                        port,
                    });
                }
                push_port(&mut ports, port);
            }
            // Every probe through podrun: it probes from inside the
            // container, where a program bound to 127.0.0.1 answers, and
            // knows notify and stdout readiness, which the kubelet cannot.
            let readiness = match probe {
                ProbeConfig::None => None,
                _ => Some(http_probe(options.runner_port, "/readyz", 1000, 1000)),
            };
            let container = Container {
                name: "pod".into(),
                image: Some(image),
                command: Some(vec![
                    options.runner.clone(),
                    format!("{CONFIG_DIR}/pod.json"),
                    "--listen".into(),
                    format!("0.0.0.0:{}", options.runner_port),
                ]),
                env: (!env.is_empty()).then(|| env.clone()),
                ports: Some(ports),
                startup_probe: startup(readiness.as_ref(), pod.timeout_ready),
                readiness_probe: readiness,
                liveness_probe: Some(http_probe(options.runner_port, "/livez", 10_000, 1000)),
                volume_mounts: Some(vec![VolumeMount {
                    name: "pod-config".into(),
                    mount_path: CONFIG_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            };
            let volumes = vec![Volume {
                name: "pod-config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: format!("{name}-pod"),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }];
            (container, volumes, None)
        }
        RuntimeSpec::Container {
            image,
            rootfs,
            command,
            args,
            probe,
            ports,
            volumes,
            network,
            memory,
            cpus,
            pids_limit,
            ulimits,
            user,
            engine_args,
            stop_signal,
            channel,
            ..
        } => {
            let image = match (image, rootfs) {
                (Some(image), None) => image.clone(),
                _ => {
                    return Err(ExportError::Rootfs {
                        pod: pod.name.clone(),
                    })
                }
            };
            let published: Vec<PortSpec> = ports.iter().filter_map(|p| p.parse().ok()).collect();
            // A probe of a published host port checks the container's port.
            let inside = |port: u16| {
                published
                    .iter()
                    .find(|p| p.host_port == port && !p.udp)
                    .map_or(port, |p| p.container_port)
            };
            let readiness = match probe {
                ProbeConfig::Tcp {
                    address,
                    interval,
                    timeout,
                } => Some(tcp_probe(inside(port_of(address)), *interval, *timeout)),
                ProbeConfig::Http {
                    url,
                    interval,
                    timeout,
                } => {
                    let (port, path) = http_target(url);
                    Some(http_probe(inside(port), &path, *interval, *timeout))
                }
                ProbeConfig::None => None,
                other => {
                    warn(
                        export,
                        format!(
                            "readiness by {} needs podrun in the image to be seen; exported \
                             without a readiness probe",
                            probe_name(other)
                        ),
                    );
                    None
                }
            };
            let mut limits = BTreeMap::new();
            if let Some(memory) = memory {
                limits.insert("memory".to_owned(), Quantity(memory_quantity(memory)));
            }
            if let Some(cpus) = cpus {
                limits.insert("cpu".to_owned(), Quantity(cpus.clone()));
            }
            let unmapped = [
                ("volumes", !volumes.is_empty()),
                ("network", network.is_some()),
                ("pids_limit", pids_limit.is_some()),
                ("ulimits", !ulimits.is_empty()),
                ("user", user.is_some()),
                ("engine_args", !engine_args.is_empty()),
                ("channel", channel.is_some()),
            ];
            for (key, _) in unmapped.iter().filter(|(_, set)| *set) {
                warn(
                    export,
                    format!("`runtime.{key}` is for the local engine and has no equivalent here"),
                );
            }
            if stop_signal != "SIGTERM" && stop_signal != "TERM" && stop_signal != "15" {
                warn(
                    export,
                    format!(
                        "the kubelet stops a container with SIGTERM (or the image's \
                         STOPSIGNAL), not `{stop_signal}`"
                    ),
                );
            }
            warn(
                export,
                "restarts are the kubelet's (its own back-off, 10 s doubling to 5 min): \
                 `restart.max_restarts`, `within`, `backoff` and escalation are not carried"
                    .into(),
            );
            if pod.health.is_some() {
                warn(export, "`health` checks need podrun; not exported".into());
            }
            let container = Container {
                name: "pod".into(),
                image: Some(image),
                command: command.as_ref().map(|c| vec![c.clone()]),
                args: (!args.is_empty()).then(|| args.clone()),
                env: (!env.is_empty()).then(|| env.clone()),
                ports: (!published.is_empty()).then(|| {
                    let mut ports: Vec<ContainerPort> = Vec::new();
                    for p in &published {
                        let port = ContainerPort {
                            container_port: i32::from(p.container_port),
                            protocol: Some(protocol(p).into()),
                            ..ContainerPort::default()
                        };
                        if !ports.contains(&port) {
                            ports.push(port);
                        }
                    }
                    ports
                }),
                resources: (!limits.is_empty()).then(|| ResourceRequirements {
                    limits: Some(limits),
                    ..ResourceRequirements::default()
                }),
                startup_probe: startup(readiness.as_ref(), pod.timeout_ready),
                readiness_probe: readiness,
                ..Container::default()
            };
            let service = (!published.is_empty()).then(|| Service {
                metadata: meta(name.clone()),
                spec: Some(ServiceSpec {
                    selector: Some(BTreeMap::from([("pod-actor/pod".to_owned(), name.clone())])),
                    ports: Some(
                        published
                            .iter()
                            .map(|p| ServicePort {
                                name: Some(format!(
                                    "{}-{}",
                                    protocol(p).to_lowercase(),
                                    p.host_port
                                )),
                                port: i32::from(p.host_port),
                                target_port: Some(IntOrString::Int(i32::from(p.container_port))),
                                protocol: Some(protocol(p).into()),
                                ..ServicePort::default()
                            })
                            .collect(),
                    ),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            });
            (container, Vec::new(), service)
        }
        RuntimeSpec::InProcess { .. } => unreachable!("refused above"),
    };
    let restart = pod.restart.policy;
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: (!volumes.is_empty()).then_some(volumes),
            termination_grace_period_seconds: Some(grace),
            restart_policy: Some(
                match restart {
                    RestartKind::Permanent => "Always",
                    RestartKind::Transient => "OnFailure",
                    RestartKind::Temporary => "Never",
                }
                .into(),
            ),
            ..PodSpec::default()
        }),
    };
    let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
    export.manifests.push(match restart {
        RestartKind::Permanent => Manifest::Deployment(Deployment {
            metadata: meta(name.clone()),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "pod-actor/pod".to_owned(),
                        name.clone(),
                    )])),
                    ..LabelSelector::default()
                },
                template,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }),
        RestartKind::Transient | RestartKind::Temporary => Manifest::Job(Job {
            metadata: meta(name.clone()),
            spec: Some(JobSpec {
                completions: Some(replicas),
                parallelism: Some(replicas),
                backoff_limit: (restart == RestartKind::Temporary).then_some(0),
                template,
                ..JobSpec::default()
            }),
            ..Job::default()
        }),
    });
    if let Some(service) = service {
        export.manifests.push(Manifest::Service(service));
    }
    Ok(())
}

fn probe_name(probe: &ProbeConfig) -> &'static str {
    match probe {
        ProbeConfig::Notify => "notify",
        ProbeConfig::Stdout { .. } => "a stdout line",
        ProbeConfig::Tcp { .. } => "tcp",
        ProbeConfig::Http { .. } => "http",
        _ => "this probe",
    }
}

fn protocol(port: &PortSpec) -> &'static str {
    if port.udp {
        "UDP"
    } else {
        "TCP"
    }
}

fn push_port(ports: &mut Vec<ContainerPort>, port: u16) {
    let port = i32::from(port);
    if !ports.iter().any(|p| p.container_port == port) {
        ports.push(ContainerPort {
            container_port: port,
            ..ContainerPort::default()
        });
    }
}

fn seconds(ms: u64) -> i32 {
    i32::try_from(ms.div_ceil(1000).max(1)).unwrap_or(i32::MAX)
}

fn tcp_probe(port: u16, interval: u64, timeout: u64) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(seconds(interval)),
        timeout_seconds: Some(seconds(timeout)),
        ..Probe::default()
    }
}

fn http_probe(port: u16, path: &str, interval: u64, timeout: u64) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(i32::from(port)),
            path: Some(path.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(seconds(interval)),
        timeout_seconds: Some(seconds(timeout)),
        ..Probe::default()
    }
}

/// The readiness probe, tried every second for `timeout_ready` before the
/// kubelet gives up on the start; none when the pod waits for ever.
fn startup(readiness: Option<&Probe>, timeout_ready: i64) -> Option<Probe> {
    let budget = u64::try_from(timeout_ready).ok().filter(|&ms| ms > 0)?;
    let mut probe = readiness?.clone();
    probe.period_seconds = Some(1);
    probe.failure_threshold = Some(seconds(budget));
    Some(probe)
}

/// The port of a probe address (`host:port`, `:port` or `port`).
fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80)
}

/// The port and path of a probe URL (`http://host[:port]/path`).
fn http_target(url: &str) -> (u16, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    // The fragment is the client's; the kubelet sends path and query.
    let path = path.split('#').next().unwrap_or("/").to_owned();
    let port = match authority.rsplit_once(':') {
        Some((_, port)) => port.parse().unwrap_or(80),
        None => 80,
    };
    (port, path)
}

/// podman's binary units (`512m`) as Kubernetes quantities (`512Mi`).
fn memory_quantity(memory: &str) -> String {
    let lower = memory.to_ascii_lowercase();
    let (number, unit) = lower.split_at(lower.trim_end_matches(char::is_alphabetic).len());
    match unit.trim_end_matches('b') {
        "k" => format!("{number}Ki"),
        "m" => format!("{number}Mi"),
        "g" => format!("{number}Gi"),
        "" => number.to_owned(),
        _ => memory.to_owned(),
    }
}

/// A DNS-1123 label: lowercase letters, digits and `-`, at most 63.
fn dns_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    // A Service's name must start with a letter (DNS-1035).
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "pod-");
    }
    out.truncate(63);
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        "pod".into()
    } else {
        out
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

// ===== YAML, through yaml-rust2 (already the config reader's) =====

/// One YAML document (`---` first) for a JSON value. Written here rather
/// than by yaml-rust2's emitter, which leaves strings such as `0b1` or
/// `1_000` plain (YAML 1.1 readers, kubectl's among them, take them for
/// numbers) and writes block scalars some readers cannot read back: a
/// string is plain only when no reader can take it for anything else,
/// a block only when it is plain text, and double-quoted otherwise.
fn yaml(value: &Value) -> String {
    let mut out = String::from("---");
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_map(map, 0, &mut out);
        }
        Value::Array(items) if !items.is_empty() => {
            // emit_value indents a sequence by two under its parent.
            let mut nested = String::new();
            emit_value(value, 0, &mut nested);
            out.push_str(&nested);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, 0));
        }
    }
    out
}

fn emit_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let mut first = true;
    for (key, value) in map {
        if !first {
            out.push('\n');
        }
        first = false;
        out.push_str(&pad);
        // A key is never a block scalar, and an implicit key is at most
        // 1024 characters: longer ones are explicit (`? key` / `: value`).
        let text = if key.contains('\n') {
            quoted(key)
        } else {
            string(key, indent)
        };
        if text.chars().count() > 1000 {
            out.push_str("? ");
            out.push_str(&text);
            out.push('\n');
            out.push_str(&pad);
        } else {
            out.push_str(&text);
        }
        out.push(':');
        emit_value(value, indent, out);
    }
}

/// After `key:` or `-`: a nested block on the next lines, or ` scalar`.
fn emit_value(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_map(map, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            let pad = " ".repeat(indent + 2);
            for item in items {
                out.push('\n');
                out.push_str(&pad);
                out.push('-');
                match item {
                    // The map's first key on the dash's line, the others
                    // under it.
                    Value::Object(map) if !map.is_empty() => {
                        out.push(' ');
                        let mut nested = String::new();
                        emit_map(map, indent + 4, &mut nested);
                        out.push_str(nested.trim_start());
                    }
                    other => emit_value(other, indent + 2, out),
                }
            }
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
        }
    }
}

fn scalar(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => float(&n.to_string()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Words YAML 1.1 readers take for booleans or null.
const RESERVED_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

fn string(s: &str, indent: usize) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        return s.to_owned();
    }
    let block = s.contains('\n')
        && !s.ends_with('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars()
            .all(|c| c == '\n' || (!c.is_control() && !special(c)));
    if block {
        let pad = " ".repeat(indent + 2);
        let mut out = String::from("|-");
        for line in s.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
        return out;
    }
    quoted(s)
}

/// A double-quoted scalar, escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() || special(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters YAML readers refuse raw, or read as line breaks.
fn special(c: char) -> bool {
    matches!(
        c,
        '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// A float as YAML 1.1 readers (PyYAML) take it: a dot in the mantissa
/// and a sign in the exponent (`1e300` is a string to them).
fn float(text: &str) -> String {
    match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.to_owned()
            } else {
                format!("{mantissa}.0")
            };
            let exponent = if exponent.starts_with(['-', '+']) {
                exponent.to_owned()
            } else {
                format!("+{exponent}")
            };
            format!("{mantissa}e{exponent}")
        }
        None => text.to_owned(),
    }
}

fn json(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_a_reader_could_misread_are_quoted_and_read_back() {
        for s in [
            "0b1",
            "0o17",
            "1_000",
            "685_230.15",
            "0123",
            "0x1F",
            "1e3",
            ".inf",
            "yes",
            "Off",
            "~",
            "null",
            "<<",
            "a: b",
            "a #b",
            "  indented first\nsecond",
            "x\n\n\n",
            "bell\u{7}",
            "nel\u{85}",
            "ls\u{2028}",
            "quote\"back\\slash",
            "",
            "-",
            "- x",
            "plain/text-1.0",
            "{\n  \"json\": 1\n}",
            "\n  x",
            "\n \nx",
            "\n  ",
            "\u{fffe}",
            "a\nb",
            &"k".repeat(1500),
        ] {
            // As a value, in lists, and as a key.
            let value = serde_json::json!({ "k": s, "list": [s, { "n": s }], s: [s] });
            let text = yaml(&value);
            let docs = yaml_rust2::YamlLoader::load_from_str(&text)
                .unwrap_or_else(|e| panic!("{s:?}: {e}\n{text}"));
            assert_eq!(json(&docs[0]), value, "{s:?}\n{text}");
        }
        let numbers = serde_json::json!({ "big": 1e300, "small": 1e-7, "int": 42, "neg": -1.5 });
        let docs = yaml_rust2::YamlLoader::load_from_str(&yaml(&numbers)).unwrap();
        assert_eq!(json(&docs[0]), numbers);
        assert_eq!(float("1e300"), "1.0e+300");
        assert_eq!(string("plain/text-1.0", 0), "plain/text-1.0");
        assert_eq!(string("0b1", 0), "\"0b1\"");
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_name("Encoder_0"), "encoder-0");
        assert_eq!(dns_name("--x--"), "x");
        assert_eq!(dns_name("???"), "pod");
        assert_eq!(dns_name("0api"), "pod-0api");
        assert_eq!(dns_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn probe_targets_and_quantities() {
        assert_eq!(port_of("127.0.0.1:8080"), 8080);
        assert_eq!(port_of("39501"), 39501);
        assert_eq!(
            http_target("http://127.0.0.1:9000/health"),
            (9000, "/health".into())
        );
        assert_eq!(http_target("http://:80/"), (80, "/".into()));
        assert_eq!(
            http_target("http://127.0.0.1:9000?ready=1"),
            (9000, "/?ready=1".into())
        );
        assert_eq!(http_target("http://h:81/a?b=1#frag"), (81, "/a?b=1".into()));
        assert_eq!(memory_quantity("512m"), "512Mi");
        assert_eq!(memory_quantity("2G"), "2Gi");
        assert_eq!(memory_quantity("1048576"), "1048576");
    }
}
