//! A file of deployments as a library type, under the pod config loader's
//! rules: formats, keys named in errors, limits per deployment and in all.

use pod_actor::deployment::DeploymentsConfig;
use pod_actor::{ConfigError, ConfigFormat, RuntimeSpec};

const TWO: &str = r#"
[[deployment]]
name = "encoder"
replicas = 3
[deployment.pod]
runtime = { kind = "in-process", name = "encoder" }
placement = "shared"

[[deployment]]
name = "redis"
replicas = 1
[deployment.pod]
name = "cache"
timeout_ready = 5000
[deployment.pod.runtime]
kind = "process"
command = "redis-server"
args = ["--port", "6380"]
"#;

fn error(text: &str, format: ConfigFormat) -> String {
    match DeploymentsConfig::from_str(text, format, "deployments") {
        Ok(config) => panic!("expected an error, loaded {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn deployments_load_in_file_order_with_their_pods() {
    let config = DeploymentsConfig::from_str(TWO, ConfigFormat::Toml, "two.toml").unwrap();
    let names: Vec<_> = config.deployments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["encoder", "redis"]);
    assert_eq!(config.deployments[0].replicas, 3);
    // A pod's name defaults to its deployment's, and is kept when given.
    assert_eq!(config.deployments[0].pod.name, "encoder");
    assert_eq!(config.deployments[1].pod.name, "cache");
    assert!(matches!(
        config.deployments[1].pod.runtime,
        RuntimeSpec::Process { .. }
    ));

    let yaml = "deployment:\n  - name: a\n    replicas: 2\n    pod:\n      runtime: {kind: in-process, name: a}\n";
    let json = r#"{"deployment": [{"name": "a", "replicas": 2, "pod": {"runtime": {"kind": "in-process", "name": "a"}}}]}"#;
    let from_yaml = DeploymentsConfig::from_str(yaml, ConfigFormat::Yaml, "a.yaml").unwrap();
    let from_json = DeploymentsConfig::from_str(json, ConfigFormat::Json, "a.json").unwrap();
    assert_eq!(from_yaml, from_json);
}

#[test]
fn errors_name_the_deployment_key() {
    let pod = "[deployment.pod]\nruntime = { kind = \"in-process\", name = \"a\" }\n";
    let entry = |body: &str| format!("[[deployment]]\n{body}{pod}");
    for (text, key, says) in [
        (entry("name = \"a\"\n"), "deployment[0].replicas", "missing"),
        (entry("replicas = 1\n"), "deployment[0].name", "missing"),
        (entry("name = \"\"\nreplicas = 1\n"), "deployment[0].name", "must not be empty"),
        (entry("name = \"a\"\nreplicas = -1\n"), "deployment[0].replicas", "whole number"),
        (entry("name = \"a\"\nreplicas = 1.5\n"), "deployment[0].replicas", "whole number"),
        (entry("name = \"a\"\nreplicas = 5000\n"), "deployment[0].replicas", "at most 4096"),
        (entry("name = \"a\"\nreplicas = 1\ncolour = 1\n"), "deployment[0].colour", "unknown key"),
        (
            format!("{}{}", entry("name = \"a\"\nreplicas = 1\n"), entry("name = \"a\"\nreplicas = 1\n")),
            "deployment[1].name",
            "`a` names two deployments",
        ),
        (
            format!("{}{}", entry("name = \"a\"\nreplicas = 3000\n"), entry("name = \"b\"\nreplicas = 3000\n")),
            "deployment[1].replicas",
            "brings the pods of all deployments to 6000, over the limit of 4096",
        ),
        (
            "[[deployment]]\nname = \"a\"\nreplicas = 1\n[deployment.pod]\nruntime = { kind = \"in-process\", name = \"a\" }\ntimeout_ctrl = 0\n".into(),
            "deployment[0].pod.timeout_ctrl",
            "must be positive",
        ),
        ("colour = 1\n".into(), "`colour`", "expected `deployment`"),
        ("deployment = 1\n".into(), "`deployment`", "list of tables"),
        ("deployment = []\n".into(), "`deployment`", "at least one"),
    ] {
        let message = error(&text, ConfigFormat::Toml);
        assert!(message.contains(key) && message.contains(says), "{key} / {says}: {message}");
    }
}

#[test]
fn the_loaders_limits_and_repeated_keys_hold() {
    let deep = format!("x = {}1{}\n", "[".repeat(100), "]".repeat(100));
    assert!(error(&deep, ConfigFormat::Toml).contains("nesting depth"));
    let repeated = r#"{"deployment": [{"name": "a", "name": "b", "replicas": 1, "pod": {}}]}"#;
    assert!(error(repeated, ConfigFormat::Json).contains("duplicate key"));
    let loaded = DeploymentsConfig::from_file("/nonexistent/deployments.toml");
    assert!(matches!(loaded, Err(ConfigError::Load { .. })));
}
