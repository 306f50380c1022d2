//! How the loader reads a config, so that errors inside `runtime` name
//! their full key.
//!
//! `runtime` and `runtime.probe` are internally tagged by `kind`, and serde
//! reads an internally tagged value into a buffer before it looks at the
//! fields, so an error inside it loses its key (a bad `runtime.args[2]`
//! came out as "... for key `runtime`", a missing `runtime.probe.kind` as a
//! missing `runtime.kind`, a string runtime as "expected internally tagged
//! enum RuntimeSpec") and its values are held to stricter rules than the
//! rest of the file.
//!
//! The loader therefore checks each `kind` against the accepted values,
//! rewrites the table in its externally tagged shape
//! (`{process = {command = …}}`), and reads it through the twins below,
//! which the config deserializer follows key by key. The public types keep
//! their `kind`-tagged `Deserialize` for everyone else. serde's `remote`
//! derive checks each twin against its type, so a field added to one and
//! not the other does not compile; the defaults are checked by a test.

use std::collections::BTreeMap;

use ::config::{Map, Value, ValueKind};
use serde::Deserialize;

use super::{
    ChannelConfig, ConfigError, HealthConfig, NotifyAccessKind, PlacementKind, PodConfig, PodRole,
    ProbeConfig, RestartConfig, RuntimeSpec,
};

/// [`PodConfig`] as the loader reads it.
#[derive(Deserialize)]
#[serde(remote = "PodConfig", deny_unknown_fields)]
struct PodConfigTwin {
    name: String,
    #[serde(default)]
    role: PodRole,
    #[serde(default = "super::default_timeout_ready")]
    timeout_ready: i64,
    #[serde(default = "super::default_timeout_ctrl")]
    timeout_ctrl: u64,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(with = "RuntimeTwin")]
    runtime: RuntimeSpec,
    #[serde(default)]
    restart: RestartConfig,
    #[serde(default)]
    health: Option<HealthConfig>,
    #[serde(default)]
    placement: PlacementKind,
}

const RUNTIME_KINDS: &[&str] = &["in-process", "process", "container"];
const PROBE_KINDS: &[&str] = &["notify", "stdout", "tcp", "http", "none"];
/// The kinds without fields.
const UNIT_KINDS: &[&str] = &["notify", "none"];

/// The keys whose values are tables when present. serde would read a
/// struct from an array by position (`health: [1]` as an interval of 1).
/// (`runtime` and `runtime.probe` are checked with their `kind`.)
const TABLE_KEYS: [&[&str]; 5] = [
    &["env"],
    &["restart"],
    &["restart", "backoff"],
    &["health"],
    &["runtime", "channel"],
];

#[derive(Deserialize)]
#[serde(remote = "RuntimeSpec", rename_all = "kebab-case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // as `RuntimeSpec`, which it reads
enum RuntimeTwin {
    InProcess {
        name: String,
    },
    Process {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default)]
        clean_env: bool,
        #[serde(default, with = "ProbeTwin")]
        probe: ProbeConfig,
        #[serde(default)]
        watchdog: Option<u64>,
        #[serde(default)]
        notify_access: NotifyAccessKind,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        group: Option<String>,
        #[serde(default)]
        groups: Option<Vec<String>>,
        #[serde(default)]
        umask: Option<String>,
        #[serde(default = "super::default_stop_signal")]
        stop_signal: String,
        #[serde(default = "super::default_output_lines")]
        output_lines: u64,
        #[serde(default)]
        channel: Option<ChannelConfig>,
    },
    Container {
        #[serde(default)]
        image: Option<String>,
        #[serde(default)]
        rootfs: Option<String>,
        #[serde(default)]
        command: Option<String>,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default, with = "ProbeTwin")]
        probe: ProbeConfig,
        #[serde(default)]
        ports: Vec<String>,
        #[serde(default)]
        volumes: Vec<String>,
        #[serde(default)]
        network: Option<String>,
        #[serde(default)]
        memory: Option<String>,
        #[serde(default)]
        cpus: Option<String>,
        #[serde(default)]
        pids_limit: Option<u64>,
        #[serde(default)]
        ulimits: Vec<String>,
        #[serde(default)]
        user: Option<String>,
        #[serde(default = "super::default_engine")]
        engine: String,
        #[serde(default)]
        engine_args: Vec<String>,
        #[serde(default = "super::default_stop_signal")]
        stop_signal: String,
        #[serde(default = "super::default_output_lines")]
        output_lines: u64,
        #[serde(default)]
        channel: Option<ChannelConfig>,
    },
}

#[derive(Deserialize)]
#[serde(remote = "ProbeConfig", rename_all = "lowercase", deny_unknown_fields)]
enum ProbeTwin {
    Notify,
    Stdout {
        pattern: String,
    },
    Tcp {
        address: String,
        #[serde(default = "super::default_probe_interval")]
        interval: u64,
        #[serde(default = "super::default_probe_timeout")]
        timeout: u64,
    },
    Http {
        url: String,
        #[serde(default = "super::default_probe_interval")]
        interval: u64,
        #[serde(default = "super::default_probe_timeout")]
        timeout: u64,
    },
    None,
}

/// Reads a parsed config `table` (`origin` names it in errors).
pub(super) fn read(mut table: Map<String, Value>, origin: &str) -> Result<PodConfig, ConfigError> {
    let invalid = |(key, reason): (String, String)| ConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        reason,
    };
    for path in TABLE_KEYS {
        if let Some(value) = super::lookup(&mut table, path) {
            // An empty `health:` is no health checks; the others have
            // defaults only when absent.
            let nil_is_none = *path == ["health"];
            let accepted = match value.kind {
                ValueKind::Table(_) => true,
                ValueKind::Nil => nil_is_none,
                _ => false,
            };
            if !accepted {
                return Err(invalid((
                    path.join("."),
                    format!("must be a table, got {}", describe(value)),
                )));
            }
        }
    }
    if let Some(runtime) = table.get_mut("runtime") {
        let mut tagged = retag(runtime, "runtime", RUNTIME_KINDS).map_err(invalid)?;
        // The probe is tagged the same way, one level down.
        if let ValueKind::Table(outer) = &mut tagged.kind {
            for fields in outer.values_mut() {
                let ValueKind::Table(fields) = &mut fields.kind else {
                    continue;
                };
                if let Some(probe) = fields.get_mut("probe") {
                    *probe = retag(probe, "runtime.probe", PROBE_KINDS).map_err(invalid)?;
                }
            }
        }
        *runtime = tagged;
    }
    PodConfigTwin::deserialize(Value::from(table)).map_err(|e| ConfigError::Load {
        origin: origin.to_owned(),
        message: message(&e),
    })
}

/// `value` (a table tagged by `kind`) in the externally tagged shape: the
/// kind as the only key, the other fields under it; a kind without fields
/// as a plain string.
fn retag(value: &Value, key: &str, kinds: &[&str]) -> Result<Value, (String, String)> {
    let expected = || {
        let names: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
        names.join(", ")
    };
    let ValueKind::Table(fields) = &value.kind else {
        return Err((
            key.to_owned(),
            format!(
                "must be a table with a `kind` ({}), got {}",
                expected(),
                describe(value)
            ),
        ));
    };
    let kind_key = format!("{key}.kind");
    let kind = match fields.get("kind").map(|kind| &kind.kind) {
        None => {
            return Err((
                kind_key,
                format!("is missing; expected one of {}", expected()),
            ));
        }
        Some(ValueKind::String(kind)) if kinds.contains(&kind.as_str()) => kind.clone(),
        Some(_) => {
            let got = fields.get("kind").map_or_else(String::new, describe);
            return Err((
                kind_key,
                format!("must be one of {}, got {got}", expected()),
            ));
        }
    };
    let mut rest = fields.clone();
    rest.remove("kind");
    let inner = if UNIT_KINDS.contains(&kind.as_str()) {
        // The deserializer would not look at the fields of a kind that
        // has none, so they are refused here.
        if let Some(field) = rest.keys().next() {
            return Err((
                format!("{key}.{field}"),
                format!("is not a field of kind `{kind}`, which has none"),
            ));
        }
        ValueKind::String(kind)
    } else {
        let mut outer = Map::new();
        outer.insert(kind, Value::new(None, ValueKind::Table(rest)));
        ValueKind::Table(outer)
    };
    Ok(Value::new(None, inner))
}

/// A value as an error message shows it: `string "x"`, `integer 3`, and
/// where it came from when that was not the file (`from environment
/// variable `POD__RUNTIME``).
fn describe(value: &Value) -> String {
    let what = match &value.kind {
        ValueKind::Nil => "nothing".to_owned(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(n) => format!("integer {n}"),
        ValueKind::I128(n) => format!("integer {n}"),
        ValueKind::U64(n) => format!("integer {n}"),
        ValueKind::U128(n) => format!("integer {n}"),
        ValueKind::Float(n) => format!("number {n}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".to_owned(),
        ValueKind::Array(_) => "an array".to_owned(),
    };
    match value.origin() {
        Some(origin) => format!("{what} from {origin}"),
        None => what,
    }
}

/// The deserializer's message, in the words of a config file.
fn message(error: &::config::ConfigError) -> String {
    match error {
        ::config::ConfigError::NotFound(key) => format!("missing key `{key}`"),
        other => other.to_string(),
    }
}
