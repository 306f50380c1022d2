//! A file of deployments: `[[deployment]]` entries, each a name, a number of
//! replicas and the pod config they share.

use std::collections::HashSet;
use std::path::Path;

use config::{Map, Value, ValueKind};

use crate::config::{parse_text, read_file, ConfigError, ConfigFormat, PodConfig};
use crate::deployment::MAX_REPLICAS;

/// Deployments read from one file, with the rules of [`PodConfig`]'s loader
/// (size and nesting limits, no repeated keys, errors that name the full
/// key) and the checks a deployment needs: names present and distinct, at
/// most [`Deployment::MAX_REPLICAS`](crate::deployment::Deployment::MAX_REPLICAS)
/// pods in each and in all.
///
/// In TOML:
///
/// ```toml
/// [[deployment]]
/// name = "encoder"
/// replicas = 3
/// [deployment.pod]            # a PodConfig; `name` defaults to the deployment's
/// runtime = { kind = "in-process", name = "encoder" }
///
/// [[deployment]]
/// name = "redis"
/// replicas = 1
/// [deployment.pod.runtime]
/// kind = "process"
/// command = "redis-server"
/// args = ["--port", "6380", "--supervised", "systemd"]
/// ```
///
/// `POD__` overrides do not apply here: which deployment they would change
/// is not said by their names.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeploymentsConfig {
    /// The deployments, in file order (the order they start in).
    pub deployments: Vec<DeploymentConfig>,
}

/// One deployment of a [`DeploymentsConfig`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// Its name; replicas are named `NAME/rep-N`.
    pub name: String,
    /// How many replicas it starts with.
    pub replicas: usize,
    /// The pod config its replicas share (its `restart` section configures
    /// the shared supervisor).
    pub pod: PodConfig,
}

impl DeploymentsConfig {
    /// Loads a file; the format is taken from its extension.
    ///
    /// # Errors
    ///
    /// [`ConfigError`], naming the file and the key: a deployment's keys as
    /// `deployment[1].replicas`, its pod's as `deployment[1].pod.timeout_ready`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let (text, format, origin) = read_file(path.as_ref())?;
        Self::from_str(&text, format, &origin)
    }

    /// Loads a text; `origin` names it in errors.
    ///
    /// # Errors
    ///
    /// As for [`from_file`](Self::from_file), except reading.
    pub fn from_str(text: &str, format: ConfigFormat, origin: &str) -> Result<Self, ConfigError> {
        let mut table = parse_text(text, format, origin)?;
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            reason,
        };
        if let Some(unknown) = table.keys().find(|key| *key != "deployment") {
            return Err(invalid(
                unknown.clone(),
                "unknown key, expected `deployment`".into(),
            ));
        }
        let entries = match table.remove("deployment").map(|v| v.kind) {
            Some(ValueKind::Array(entries)) if !entries.is_empty() => entries,
            Some(ValueKind::Array(_)) | None => {
                return Err(invalid(
                    "deployment".into(),
                    "must list at least one deployment".into(),
                ))
            }
            Some(_) => {
                return Err(invalid(
                    "deployment".into(),
                    "must be a list of tables (`[[deployment]]`)".into(),
                ))
            }
        };
        let mut deployments = Vec::with_capacity(entries.len());
        let mut names = HashSet::new();
        let mut total = 0usize;
        for (index, entry) in entries.into_iter().enumerate() {
            let at = |key: &str| format!("deployment[{index}].{key}");
            let ValueKind::Table(mut entry) = entry.kind else {
                return Err(invalid(
                    format!("deployment[{index}]"),
                    "must be a table".into(),
                ));
            };
            if let Some(unknown) = entry
                .keys()
                .find(|key| !["name", "replicas", "pod"].contains(&key.as_str()))
            {
                return Err(invalid(
                    at(unknown),
                    "unknown key, expected `name`, `replicas` or `pod`".into(),
                ));
            }
            let name = match entry.remove("name").map(|v| v.kind) {
                Some(ValueKind::String(name)) if !name.trim().is_empty() => name,
                Some(ValueKind::String(_)) => {
                    return Err(invalid(at("name"), "must not be empty".into()))
                }
                Some(_) => return Err(invalid(at("name"), "must be a string".into())),
                None => return Err(invalid(at("name"), "missing".into())),
            };
            if !names.insert(name.clone()) {
                return Err(invalid(
                    at("name"),
                    format!("`{name}` names two deployments"),
                ));
            }
            let replicas = match entry.remove("replicas").map(|v| v.kind) {
                Some(ValueKind::I64(n)) if n >= 0 => n as u64,
                Some(ValueKind::U64(n)) => n,
                Some(ValueKind::U128(n)) => u64::try_from(n).unwrap_or(u64::MAX),
                Some(ValueKind::I128(n)) if n >= 0 => u64::try_from(n).unwrap_or(u64::MAX),
                Some(_) => {
                    return Err(invalid(
                        at("replicas"),
                        "must be a whole number from 0".into(),
                    ))
                }
                None => return Err(invalid(at("replicas"), "missing".into())),
            };
            let replicas = usize::try_from(replicas).unwrap_or(usize::MAX);
            if replicas > MAX_REPLICAS {
                return Err(invalid(
                    at("replicas"),
                    format!("must be at most {MAX_REPLICAS}, got {replicas}"),
                ));
            }
            total = total.saturating_add(replicas);
            if total > MAX_REPLICAS {
                return Err(invalid(
                    at("replicas"),
                    format!("brings the pods of all deployments to {total}, over the limit of {MAX_REPLICAS}"),
                ));
            }
            let mut pod: Map<String, Value> = match entry.remove("pod").map(|v| v.kind) {
                Some(ValueKind::Table(pod)) => pod,
                Some(_) => return Err(invalid(at("pod"), "must be a table".into())),
                None => return Err(invalid(at("pod"), "missing".into())),
            };
            pod.entry("name".into())
                .or_insert_with(|| Value::from(name.as_str()));
            let pod = PodConfig::from_table(pod, origin).map_err(|e| match e {
                ConfigError::Invalid {
                    origin,
                    key,
                    reason,
                    ..
                } => ConfigError::Invalid {
                    origin,
                    key: at(&format!("pod.{key}")),
                    reason,
                },
                ConfigError::Load { origin, message } => ConfigError::Load {
                    origin,
                    message: format!("in `{}`: {message}", at("pod")),
                },
                other => other,
            })?;
            deployments.push(DeploymentConfig {
                name,
                replicas,
                pod,
            });
        }
        Ok(DeploymentsConfig { deployments })
    }
}
