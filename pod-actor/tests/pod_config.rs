//! Loading, overriding and validating `PodConfig`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pod_actor::{
    BackoffConfig, ConfigError, ConfigFormat, HealthConfig, PlacementKind, PodConfig, PodRole,
    RestartConfig, RestartKind, RuntimeSpec,
};
use proptest::prelude::*;
use supervisor::{RestartPolicy, Strategy};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn echo() -> RuntimeSpec {
    RuntimeSpec::InProcess {
        name: "echo".into(),
    }
}

const MINIMAL: &str = r#"
name = "encoder"
runtime = { kind = "in-process", name = "echo" }
"#;

fn expected_full() -> PodConfig {
    PodConfig {
        name: "encoder".into(),
        role: PodRole::Head,
        timeout_ready: 30_000,
        timeout_ctrl: 5_000,
        env: BTreeMap::from([
            ("MODEL_PATH".to_owned(), "/models/encoder".to_owned()),
            ("lower_case".to_owned(), "kept as written".to_owned()),
        ]),
        runtime: echo(),
        restart: RestartConfig {
            policy: RestartKind::Transient,
            on_start_failure: true,
            max_restarts: 7,
            within: 20_000,
            backoff: BackoffConfig {
                initial: 250,
                multiplier: 1.5,
                max: 8_000,
                jitter: 0.25,
                reset_after: 60_000,
            },
        },
        health: Some(HealthConfig {
            interval: 2_000,
            timeout: 500,
            failure_threshold: 2,
        }),
        placement: PlacementKind::Shared,
    }
}

// ===== valid configs =====

#[test]
fn full_config_is_the_same_in_every_format() {
    for file in ["full.toml", "full.yaml", "full.json"] {
        let config = PodConfig::from_file_with_env(fixture(file), &no_env())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config, expected_full(), "{file}");
    }
}

#[test]
fn env_names_keep_their_case() {
    let config = PodConfig::from_file_with_env(fixture("full.yaml"), &no_env()).unwrap();
    let env = config.runtime_env();
    assert_eq!(env.get("MODEL_PATH"), Some("/models/encoder"));
    assert_eq!(env.get("model_path"), None);
    assert_eq!(env.get("lower_case"), Some("kept as written"));
    assert_eq!(env.len(), 2);
}

#[test]
fn minimal_config_gets_jina_defaults() {
    let config = PodConfig::from_file_with_env(fixture("minimal.toml"), &no_env()).unwrap();
    assert_eq!(config, PodConfig::new("encoder", echo()));
    assert_eq!(config.role, PodRole::Worker);
    assert_eq!(config.timeout_ready, 600_000);
    assert_eq!(config.timeout_ready(), Some(Duration::from_secs(600)));
    assert_eq!(config.timeout_ctrl, 60_000);
    assert_eq!(config.timeout_ctrl(), Duration::from_secs(60));
    assert!(config.env.is_empty());
    assert!(config.runtime_env().is_empty());
    assert_eq!(config.placement, PlacementKind::Auto);
    assert_eq!(config.health, None);
    let restart = &config.restart;
    assert_eq!(restart.policy, RestartKind::Permanent);
    assert!(!restart.on_start_failure);
    assert_eq!(restart.max_restarts, 5);
    assert_eq!(restart.within, 10_000);
    assert_eq!(restart.backoff, BackoffConfig::default());
    assert_eq!(restart.backoff.initial, 100);
    assert_eq!(restart.backoff.multiplier, 2.0);
    assert_eq!(restart.backoff.max, 30_000);
    assert_eq!(restart.backoff.jitter, 0.1);
    assert_eq!(restart.backoff.reset_after, 10_000);
    assert_eq!(config.restart_policy(), RestartPolicy::Permanent);
    assert!(config.validate().is_ok());
}

#[test]
fn restart_defaults_match_the_supervisor() {
    let config = PodConfig::new("encoder", echo());
    assert_eq!(
        config.supervisor_config(),
        supervisor::SupervisorConfig::default()
    );
}

#[test]
fn empty_health_table_enables_default_checks() {
    let text = format!("{MINIMAL}\n[health]\n");
    let config = PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "t", &no_env()).unwrap();
    assert_eq!(config.health, Some(HealthConfig::default()));
    assert_eq!(
        HealthConfig::default(),
        HealthConfig {
            interval: 10_000,
            timeout: 1_000,
            failure_threshold: 3,
        }
    );
}

#[test]
fn zero_or_negative_timeout_ready_waits_for_ever() {
    for value in ["-1", "0", "-600000"] {
        let text = format!("timeout_ready = {value}\n{MINIMAL}");
        let config =
            PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "t", &no_env()).unwrap();
        assert_eq!(config.timeout_ready(), None, "{value}");
    }
}

#[test]
fn supervisor_config_follows_restart() {
    let config = expected_full();
    let sup = config.supervisor_config();
    assert_eq!(sup.strategy, Strategy::OneForOne);
    assert_eq!(sup.intensity.max_restarts, 7);
    assert_eq!(sup.intensity.within, Duration::from_secs(20));
    assert_eq!(sup.backoff.initial, Duration::from_millis(250));
    assert_eq!(sup.backoff.multiplier, 1.5);
    assert_eq!(sup.backoff.max, Duration::from_secs(8));
    assert_eq!(sup.backoff.jitter, 0.25);
    assert_eq!(sup.backoff.reset_after, Duration::from_secs(60));
    assert!(sup.validate().is_ok());
    assert_eq!(config.restart_policy(), RestartPolicy::Transient);
}

#[test]
fn restart_kinds_map_to_policies() {
    let table = [
        (RestartKind::Permanent, RestartPolicy::Permanent),
        (RestartKind::Transient, RestartPolicy::Transient),
        (RestartKind::Temporary, RestartPolicy::Temporary),
    ];
    for (kind, policy) in table {
        assert_eq!(RestartPolicy::from(kind), policy);
    }
}

#[test]
fn format_follows_the_extension() {
    let cases = [
        ("a.toml", Some(ConfigFormat::Toml)),
        ("a.yaml", Some(ConfigFormat::Yaml)),
        ("a.YML", Some(ConfigFormat::Yaml)),
        ("a.json", Some(ConfigFormat::Json)),
        ("a.ini", None),
        ("toml", None),
    ];
    for (path, format) in cases {
        assert_eq!(ConfigFormat::from_path(Path::new(path)), format, "{path}");
    }
}

// ===== roles and serde names =====

#[test]
fn role_display_and_serde_names_agree() {
    let roles = [
        (PodRole::Worker, "worker"),
        (PodRole::Head, "head"),
        (PodRole::Gateway, "gateway"),
    ];
    for (role, name) in roles {
        assert_eq!(role.to_string(), name);
        let text = format!("role = \"{name}\"\n{MINIMAL}");
        let config =
            PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "t", &no_env()).unwrap();
        assert_eq!(config.role, role);
        let value = config::Config::try_from(&config).unwrap();
        assert_eq!(value.get_string("role").unwrap(), name);
    }
    assert_eq!(PodRole::default(), PodRole::Worker);
}

#[test]
fn serialized_config_loads_back() {
    let config = expected_full();
    let value = config::Config::try_from(&config).unwrap();
    assert_eq!(value.get_string("runtime.kind").unwrap(), "in-process");
    assert_eq!(value.get_string("placement").unwrap(), "shared");
    assert_eq!(value.get_string("restart.policy").unwrap(), "transient");
    let back: PodConfig = value.try_deserialize().unwrap();
    assert_eq!(back, config);
}

// ===== environment overrides =====

#[test]
fn overrides_reach_top_level_and_nested_keys() {
    let overrides = env(&[
        ("POD__TIMEOUT_READY", "5000"),
        ("POD__RESTART__MAX_RESTARTS", "9"),
        ("POD__RESTART__BACKOFF__INITIAL", "0"),
        ("POD__RESTART__BACKOFF__MULTIPLIER", "3.5"),
        ("POD__RESTART__ON_START_FAILURE", "true"),
        ("pod__role", "gateway"),
        ("POD__HEALTH__INTERVAL", "750"),
        ("OTHER__TIMEOUT_CTRL", "1"),
    ]);
    let config = PodConfig::from_file_with_env(fixture("minimal.toml"), &overrides).unwrap();
    assert_eq!(config.timeout_ready, 5_000);
    assert_eq!(config.timeout_ctrl, 60_000);
    assert_eq!(config.restart.max_restarts, 9);
    assert_eq!(config.restart.backoff.initial, 0);
    assert_eq!(config.restart.backoff.multiplier, 3.5);
    assert!(config.restart.on_start_failure);
    assert_eq!(config.role, PodRole::Gateway);
    assert_eq!(
        config.health,
        Some(HealthConfig {
            interval: 750,
            ..HealthConfig::default()
        })
    );
}

#[test]
fn overrides_win_over_the_file() {
    let overrides = env(&[
        ("POD__RESTART__BACKOFF__MAX", "9000"),
        ("POD__NAME", "007"),
        ("POD__RUNTIME__NAME", "other"),
    ]);
    let config = PodConfig::from_file_with_env(fixture("full.json"), &overrides).unwrap();
    assert_eq!(config.restart.backoff.max, 9_000);
    assert_eq!(config.restart.backoff.initial, 250);
    // Strings are kept as written, not parsed as numbers.
    assert_eq!(config.name, "007");
    assert_eq!(
        config.runtime,
        RuntimeSpec::InProcess {
            name: "other".into()
        }
    );
}

#[test]
fn env_overrides_keep_variable_names_verbatim() {
    let overrides = env(&[
        ("POD__ENV__MODEL_PATH", "/elsewhere"),
        ("POD__ENV__Mixed_Case", "1.50"),
    ]);
    let config = PodConfig::from_file_with_env(fixture("full.toml"), &overrides).unwrap();
    let env = config.runtime_env();
    assert_eq!(env.get("MODEL_PATH"), Some("/elsewhere"));
    assert_eq!(env.get("Mixed_Case"), Some("1.50"));
    assert_eq!(env.get("lower_case"), Some("kept as written"));
    assert_eq!(env.len(), 3);
}

#[test]
fn override_of_the_wrong_type_names_key_and_variable() {
    let overrides = env(&[("POD__RESTART__MAX_RESTARTS", "many")]);
    let err =
        PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "t", &overrides).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Load { .. }), "{text}");
    assert!(text.contains("`restart.max_restarts`"), "{text}");
    assert!(text.contains("POD__RESTART__MAX_RESTARTS"), "{text}");
    assert!(text.contains("\"many\""), "{text}");
}

#[test]
fn out_of_range_override_is_invalid() {
    let overrides = env(&[("POD__RESTART__BACKOFF__JITTER", "2")]);
    let err =
        PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "t", &overrides).unwrap_err();
    assert_eq!(err.key(), Some("restart.backoff.jitter"), "{err}");
}

#[test]
fn unknown_override_key_is_rejected() {
    for name in ["POD__COLOUR", "POD__RESTART__COLOUR", "POD__X[99999999999]"] {
        let overrides = env(&[(name, "1")]);
        let err =
            PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "t", &overrides).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{name}: {err}");
    }
    let overrides = env(&[("POD__RESTART__", "1")]);
    let err =
        PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "t", &overrides).unwrap_err();
    assert!(err.to_string().contains("does not name a key"), "{err}");
}

/// The parent runs this test binary again with a `POD__` variable set for
/// the child only, so nothing is set in this process.
#[test]
fn process_environment_is_read_only_without_an_explicit_map() {
    const CHILD: &str = "PODCONFIG_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let explicit =
            PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "t", &no_env()).unwrap();
        assert_eq!(explicit.timeout_ctrl, 60_000);
        let file = PodConfig::from_file_with_env(fixture("minimal.toml"), &no_env()).unwrap();
        assert_eq!(file.timeout_ctrl, 60_000);
        let process = PodConfig::from_str(MINIMAL, ConfigFormat::Toml, "t").unwrap();
        assert_eq!(process.timeout_ctrl, 1_234);
        let file = PodConfig::from_file(fixture("minimal.toml")).unwrap();
        assert_eq!(file.timeout_ctrl, 1_234);
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process_environment_is_read_only_without_an_explicit_map",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("POD__TIMEOUT_CTRL", "1234")
        .status()
        .unwrap();
    assert!(status.success());
}

// ===== malformed configs =====

/// Each file under `tests/configs/bad/`, whether it fails to load or fails
/// validation (then with the key), and fragments of the message.
const BAD: &[(&str, Option<&str>, &[&str])] = &[
    (
        "empty_command.toml",
        Some("runtime.command"),
        &["invalid `runtime.command`", "must not be empty"],
    ),
    (
        "http_probe_without_scheme.yaml",
        Some("runtime.probe.url"),
        &["invalid `runtime.probe.url`", "must be an http:// URL"],
    ),
    (
        "unknown_probe_kind.toml",
        Some("runtime.probe.kind"),
        &[
            "got string \"grpc\"",
            "`notify`, `stdout`, `tcp`, `http`, `none`",
        ],
    ),
    (
        "empty_name.toml",
        Some("name"),
        &["invalid `name`", "must not be empty"],
    ),
    (
        "unknown_key.toml",
        None,
        &["unknown field `colour`", "expected one of"],
    ),
    (
        "unknown_nested_key.yaml",
        None,
        &["unknown field `max_restart`", "for key `restart`"],
    ),
    (
        "wrong_type.toml",
        None,
        &["string \"soon\"", "for key `timeout_ctrl`"],
    ),
    (
        "negative_within.json",
        None,
        &["integer `-5`", "for key `restart.within`"],
    ),
    (
        "multiplier_below_one.toml",
        Some("restart.backoff.multiplier"),
        &[
            "invalid `restart.backoff.multiplier`",
            "must be at least 1, got 0.5",
        ],
    ),
    (
        "nan_multiplier.toml",
        Some("restart.backoff.multiplier"),
        &["must be finite, got NaN"],
    ),
    (
        "jitter_above_one.yaml",
        Some("restart.backoff.jitter"),
        &["must be between 0 and 1, got 1.5"],
    ),
    (
        "max_below_initial.json",
        Some("restart.backoff.max"),
        &["must be at least `restart.backoff.initial` (500), got 100"],
    ),
    (
        "zero_failure_threshold.toml",
        Some("health.failure_threshold"),
        &["must be at least 1, got 0"],
    ),
    ("unknown_role.yaml", None, &["boss", "for key `role`"]),
    (
        "unknown_runtime_kind.toml",
        Some("runtime.kind"),
        &["got string \"vm\"", "one of `in-process`, `process`"],
    ),
    (
        "unknown_runtime_key.toml",
        None,
        &["unknown field `path`", "for key `runtime`"],
    ),
    (
        "empty_runtime_name.toml",
        Some("runtime.name"),
        &["must not be empty"],
    ),
    ("syntax.toml", None, &["line 1"]),
    ("syntax.yaml", None, &["did not find expected", "line 3"]),
    ("syntax.json", None, &["line 1"]),
    ("nul_in_name.json", Some("name"), &["must not contain NUL"]),
    (
        "huge_number.json",
        Some("timeout_ctrl"),
        &["too large", "one year"],
    ),
    ("huge_float.toml", Some("timeout_ctrl"), &["too large"]),
    (
        "huge_integer.toml",
        None,
        &["for key `timeout_ctrl` at line 2 is out of range"],
    ),
    (
        "over_a_year.yaml",
        Some("timeout_ready"),
        &["too large", "got 31536000001"],
    ),
    (
        "zero_timeout_ctrl.yaml",
        Some("timeout_ctrl"),
        &["must be positive"],
    ),
    ("missing_runtime.toml", None, &["missing", "runtime"]),
    (
        "subscript_key.json",
        None,
        &["unknown field `x[99999999999]`"],
    ),
    (
        "equals_in_env_name.yaml",
        Some("env.A=B"),
        &["must not contain `=`"],
    ),
    ("unknown_extension.ini", None, &["unknown file extension"]),
];

#[test]
fn malformed_configs_are_rejected_with_the_key() {
    let dir = fixture("bad");
    let mut seen = 0;
    for (file, key, fragments) in BAD {
        let path = dir.join(file);
        assert!(path.exists(), "missing fixture {file}");
        let err = match PodConfig::from_file_with_env(&path, &no_env()) {
            Ok(config) => panic!("{file} loaded: {config:?}"),
            Err(err) => err,
        };
        let text = err.to_string();
        assert_eq!(err.origin(), path.display().to_string(), "{file}: {text}");
        assert_eq!(err.key(), *key, "{file}: {text}");
        match key {
            Some(_) => assert!(matches!(err, ConfigError::Invalid { .. }), "{file}"),
            None => assert!(matches!(err, ConfigError::Load { .. }), "{file}"),
        }
        let prefix = if key.is_some() {
            "invalid `"
        } else {
            "cannot load "
        };
        assert!(text.starts_with(prefix), "{file}: {text}");
        for fragment in *fragments {
            assert!(
                text.contains(fragment),
                "{file}: {fragment:?} not in {text:?}"
            );
        }
        seen += 1;
    }
    // Every file in the directory is covered by the table.
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(seen, on_disk);
}

#[test]
fn missing_file_is_a_load_error() {
    let err = PodConfig::from_file_with_env(fixture("nope.toml"), &no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Load { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot load "), "{err}");
}

#[test]
fn validate_checks_configs_built_in_code() {
    let mut config = PodConfig::new("encoder", echo());
    config.restart.backoff.multiplier = 0.5;
    let err = config.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `restart.backoff.multiplier` in pod config: must be at least 1, got 0.5"
    );

    let mut config = PodConfig::new("enc\u{7}oder", echo());
    assert_eq!(config.validate().unwrap_err().key(), Some("name"));
    config.name = "encoder".into();
    config.env.insert(String::new(), "x".into());
    assert_eq!(config.validate().unwrap_err().key(), Some("env"));
    config.env.clear();
    config.env.insert("A".into(), "nul\0".into());
    assert_eq!(config.validate().unwrap_err().key(), Some("env.A"));
    config.env.clear();
    config.restart.within = 0;
    assert_eq!(config.validate().unwrap_err().key(), Some("restart.within"));
    config.restart.within = 1;
    config.health = Some(HealthConfig {
        timeout: 0,
        ..HealthConfig::default()
    });
    assert_eq!(config.validate().unwrap_err().key(), Some("health.timeout"));
    config.health = None;
    config.timeout_ready = i64::MIN;
    assert!(config.validate().is_ok());
    assert_eq!(config.timeout_ready(), None);
}

#[test]
fn first_problem_wins() {
    let mut config = PodConfig::new("", echo());
    config.timeout_ctrl = 0;
    assert_eq!(config.validate().unwrap_err().key(), Some("name"));
}

#[test]
fn errors_are_send_sync_and_std_errors() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<ConfigError>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PodConfig>();
}

// ===== never panic =====

const FORMATS: [ConfigFormat; 3] = [ConfigFormat::Toml, ConfigFormat::Yaml, ConfigFormat::Json];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        for format in FORMATS {
            let _ = PodConfig::from_str_with_env(&text, format, "prop", &no_env());
        }
    }

    #[test]
    fn config_like_text_never_panics(
        text in "[a-z_\\[\\]{}=:\"',.\\n \\t0-9#-]{0,200}",
    ) {
        for format in FORMATS {
            let _ = PodConfig::from_str_with_env(&text, format, "prop", &no_env());
        }
    }

    #[test]
    fn arbitrary_overrides_never_panic(
        pairs in proptest::collection::hash_map("(POD__|pod__)?[A-Za-z_\\[\\].0-9]{0,20}", ".{0,12}", 0..6),
    ) {
        let _ = PodConfig::from_str_with_env(MINIMAL, ConfigFormat::Toml, "prop", &pairs);
    }

    #[test]
    fn every_valid_timeout_loads(ready in any::<i64>(), ctrl in 1u64..=31_536_000_000) {
        let text = format!("timeout_ready = {ready}\ntimeout_ctrl = {ctrl}\n{MINIMAL}");
        let result = PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "prop", &no_env());
        if ready > 31_536_000_000 {
            let err = result.unwrap_err();
            prop_assert_eq!(err.key(), Some("timeout_ready"));
        } else {
            let config = result.unwrap();
            prop_assert_eq!(config.timeout_ctrl(), Duration::from_millis(ctrl));
            prop_assert_eq!(config.timeout_ready().is_none(), ready <= 0);
        }
    }
}

#[test]
fn a_process_runtime_is_described_fully_in_the_config() {
    let config = PodConfig::from_file_with_env(fixture("process.toml"), &HashMap::new()).unwrap();
    let spec = config.runtime.process_spec().expect("a process runtime");
    assert_eq!(spec.command(), std::path::Path::new("redis-server"));
    let debug = format!("{spec:?}");
    for part in [
        "\"--port\", \"6390\", \"--save\", \"\"",
        "cwd: Some(\"/tmp\")",
        "inherit_env: false",
        "address: \"127.0.0.1:6390\", interval: 50ms, timeout: 1s",
        "watchdog: Some(3s)",
    ] {
        assert!(debug.contains(part), "{part} missing from {debug}");
    }
    let in_process = PodConfig::new("x", RuntimeSpec::InProcess { name: "x".into() });
    assert!(in_process.runtime.process_spec().is_none());
}
