//! Config errors point at the full dotted key, never at a serde internal
//! (issue 12): inside `runtime` and `runtime.probe` as well as outside.

use std::collections::HashMap;

use pod_actor::{ConfigError, ConfigFormat, PodConfig};

fn load(text: &str) -> Result<PodConfig, ConfigError> {
    PodConfig::from_str_with_env(text, ConfigFormat::Toml, "pod.toml", &HashMap::new())
}

fn message(text: &str) -> String {
    match load(text) {
        Ok(config) => panic!("expected an error, loaded {config:?}"),
        Err(error) => error.to_string(),
    }
}

const PROCESS: &str = "name = \"a\"\n[runtime]\nkind = \"process\"\ncommand = \"/bin/true\"\n";

/// The message for `text`, which must name `key` (and say `then`).
fn names(text: &str, key: &str, then: &str) {
    let message = message(text);
    assert!(
        message.contains(&format!("`{key}`")),
        "`{key}` not in: {message}"
    );
    assert!(message.contains(then), "`{then}` not in: {message}");
    for internal in [
        "internally tagged",
        "RuntimeSpec",
        "ProbeConfig",
        "variant constructor",
    ] {
        assert!(!message.contains(internal), "{internal} leaked: {message}");
    }
}

#[test]
fn errors_inside_runtime_name_the_full_key() {
    names(
        &format!("{PROCESS}args = [\"a\", \"b\", [3]]\n"),
        "runtime.args[2]",
        "expected a string",
    );
    names(
        &format!("{PROCESS}watchdog = \"soon\"\n"),
        "runtime.watchdog",
        "string \"soon\"",
    );
    names(
        &format!("{PROCESS}[runtime.probe]\nkind = \"tcp\"\naddress = \"x\"\ninterval = \"x\"\n"),
        "runtime.probe.interval",
        "expected an integer",
    );
    names(
        &format!("{PROCESS}[runtime.probe]\nkind = \"tcp\"\n"),
        "runtime.probe.address",
        "missing",
    );
    names(&format!("{PROCESS}colour = 1\n"), "colour", "unknown field");
}

#[test]
fn a_missing_or_unknown_kind_lists_the_accepted_values() {
    names(
        &format!("{PROCESS}[runtime.probe]\naddress = \"x\"\n"),
        "runtime.probe.kind",
        "is missing; expected one of `notify`, `stdout`, `tcp`, `http`, `none`",
    );
    names(
        &format!("{PROCESS}[runtime.probe]\nkind = \"smoke\"\n"),
        "runtime.probe.kind",
        "got string \"smoke\"",
    );
    names(
        "name = \"a\"\n[runtime]\nname = \"x\"\n",
        "runtime.kind",
        "`in-process`, `process`",
    );
    names(
        "name = \"a\"\n[runtime]\nkind = \"thread\"\n",
        "runtime.kind",
        "got string \"thread\"",
    );
    names(
        "name = \"a\"\n[runtime]\nkind = 3\n",
        "runtime.kind",
        "got integer 3",
    );
    names(
        "name = \"a\"\nruntime = \"x\"\n",
        "runtime",
        "must be a table with a `kind`",
    );
    names(
        "name = \"a\"\nplacement = \"moon\"\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n",
        "placement",
        "expected one of `auto`, `dedicated`, `shared`",
    );
    names(
        "name = \"a\"\nrole = \"boss\"\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n",
        "role",
        "expected one of `worker`, `head`, `gateway`",
    );
    names(
        "name = \"a\"\n[restart]\npolicy = \"often\"\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n",
        "restart.policy",
        "expected one of `permanent`, `transient`, `temporary`",
    );
}

#[test]
fn a_toml_number_out_of_range_names_its_key_and_line() {
    names(
        "name = \"a\"\ntimeout_ready = 99999999999999999999999\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n",
        "timeout_ready",
        "at line 2 is out of range",
    );
    names(
        &format!("{PROCESS}args = [\"a\", 1e999]\n"),
        "runtime.args[1]",
        "at line 5 is out of range",
    );
}

/// The same text reads the same through the loader and through the public
/// `Deserialize` (here with serde_json): the loader's twins keep the
/// defaults of the types they read.
#[test]
fn the_loader_and_serde_agree_on_every_kind() {
    let runtimes = [
        r#"{"kind": "in-process", "name": "x"}"#.to_owned(),
        r#"{"kind": "process", "command": "c"}"#.to_owned(),
        r#"{"kind": "process", "command": "c", "args": ["a"], "cwd": "/", "clean_env": true, "watchdog": 5}"#.to_owned(),
    ]
    .into_iter()
    .chain(
        [
            r#"{"kind": "notify"}"#,
            r#"{"kind": "none"}"#,
            r#"{"kind": "stdout", "pattern": "up"}"#,
            r#"{"kind": "tcp", "address": "127.0.0.1:1"}"#,
            r#"{"kind": "http", "url": "http://127.0.0.1:1/", "interval": 7, "timeout": 9}"#,
        ]
        .map(|probe| format!(r#"{{"kind": "process", "command": "c", "probe": {probe}}}"#)),
    );
    for runtime in runtimes {
        for rest in [
            "",
            r#", "restart": {}, "health": {}, "placement": "shared", "role": "head""#,
        ] {
            let text = format!(r#"{{"name": "a", "runtime": {runtime}{rest}}}"#);
            let loaded =
                PodConfig::from_str_with_env(&text, ConfigFormat::Json, "t", &HashMap::new())
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
            let derived: PodConfig =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(loaded, derived, "{text}");
        }
    }
}
