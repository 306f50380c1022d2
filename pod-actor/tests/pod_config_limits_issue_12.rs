//! Hostile config texts that used to take the process down (issue 12): each
//! now ends in a `ConfigError::Limit` naming the limit and where it was
//! passed, quickly and without a stack overflow or a large allocation.

use std::collections::HashMap;

use pod_actor::{ConfigError, ConfigFormat, PodConfig};

const HEAD: &str = "name: a\nruntime: { kind: in-process, name: x }\n";

fn load(text: &str, format: ConfigFormat) -> Result<PodConfig, ConfigError> {
    PodConfig::from_str_with_env(text, format, "hostile", &HashMap::new())
}

fn limit_of(result: Result<PodConfig, ConfigError>) -> (&'static str, String) {
    match result {
        Err(ConfigError::Limit { limit, at, .. }) => (limit, at),
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn yaml_nested_two_thousand_levels_deep_is_refused() {
    let block: String = (0..2000)
        .map(|i| format!("{}- \n", " ".repeat(i % 3)))
        .collect();
    let dashes = format!("{HEAD}extra:\n{}x\n", "- ".repeat(2000));
    // Flow collections past 256 levels stop YAML's scanner first (a load
    // error of its own); below that, the limit speaks.
    let flow = format!("{HEAD}extra: {}1{}\n", "[".repeat(200), "]".repeat(200));
    let indented: String = (0..500)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    for text in [dashes, flow, format!("{HEAD}{indented}")] {
        let (limit, at) = limit_of(load(&text, ConfigFormat::Yaml));
        assert_eq!(limit, "nesting depth");
        assert!(at.starts_with("line "), "{at}");
    }
    // Not deep at all: a flat list, whatever its length.
    assert!(!matches!(
        load(&format!("{HEAD}{block}"), ConfigFormat::Yaml),
        Err(ConfigError::Limit { .. })
    ));
}

/// Text the scan once mistook for a string or a comment, hiding the deep
/// nesting after it: a quote inside a plain scalar, and a `#` glued to a
/// word (YAML comments start only after blank space).
#[test]
fn a_stray_quote_or_hash_does_not_hide_deep_yaml() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let quote = format!("{HEAD}note: he said \"hi\nextra: {deep}\n");
    let single = format!("{HEAD}note: it's\nextra: {deep}\n");
    let hash = format!("{HEAD}extra: [a#, {deep}]\n");
    for text in [quote, single, hash] {
        let (limit, at) = limit_of(load(&text, ConfigFormat::Yaml));
        assert_eq!(limit, "nesting depth");
        assert!(at == "line 4" || at == "line 3", "{at}");
    }
    // Real strings and comments still hide what they contain.
    let fine = format!(
        "{HEAD}note: \"{}\"\nother: '{}' # {}\n",
        "[".repeat(2000),
        "{".repeat(2000),
        "[".repeat(2000)
    );
    assert!(!matches!(
        load(&fine, ConfigFormat::Yaml),
        Err(ConfigError::Limit { .. })
    ));
}

#[test]
fn deep_toml_and_json_are_refused() {
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let toml = format!("name = \"a\"\nextra = {deep}\n");
    assert_eq!(limit_of(load(&toml, ConfigFormat::Toml)).0, "nesting depth");
    let json = format!("{{\"name\": \"a\", \"extra\": {deep}}}");
    assert_eq!(limit_of(load(&json, ConfigFormat::Json)).0, "nesting depth");
}

#[test]
fn a_yaml_alias_bomb_is_refused_before_it_expands() {
    let mut bomb = String::from(HEAD);
    bomb.push_str("l0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..12 {
        let prev = format!("*l{}", i - 1);
        bomb.push_str(&format!("l{i}: &l{i} [{}]\n", vec![prev; 9].join(", ")));
    }
    let (limit, at) = limit_of(load(&bomb, ConfigFormat::Yaml));
    assert_eq!(limit, "YAML anchors and aliases");
    assert_eq!(at, "line 3");
}

#[test]
fn a_text_over_the_size_limit_is_refused() {
    let text = format!("name = \"a\"\n#{}\n", "x".repeat(256 << 10));
    assert_eq!(limit_of(load(&text, ConfigFormat::Toml)).0, "size in bytes");
}

#[test]
fn an_override_of_fifteen_thousand_segments_is_refused() {
    let name = format!("POD__{}", vec!["A"; 15_000].join("__"));
    let env: HashMap<_, _> = [(name, "1".to_owned())].into_iter().collect();
    let text = "name = \"a\"\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n";
    match PodConfig::from_str_with_env(text, ConfigFormat::Toml, "hostile", &env) {
        Err(ConfigError::Load { message, .. }) => {
            assert!(message.contains("15000 key segments"), "{message}");
            assert!(message.contains("at most 16"), "{message}");
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn an_http_probe_url_cannot_forge_a_request_line() {
    // As written in TOML (its escapes): CR LF, NUL, a space.
    for (url, says) in [
        (
            r#""http://127.0.0.1:8080/\r\nX-Evil: 1""#,
            "control characters",
        ),
        (r#""http://a/\u0000""#, "NUL"),
        (r#""http://a/b c""#, "not a URL"),
    ] {
        let text = format!(
            "name = \"a\"\n[runtime]\nkind = \"process\"\ncommand = \"/bin/true\"\n[runtime.probe]\nkind = \"http\"\nurl = {url}\n"
        );
        match load(&text, ConfigFormat::Toml) {
            Err(ConfigError::Invalid { key, reason, .. }) => {
                assert_eq!(key, "runtime.probe.url");
                assert!(reason.contains(says), "{reason}");
            }
            other => panic!("{url:?}: expected an invalid url, got {other:?}"),
        }
    }
}

#[test]
fn durations_are_whole_milliseconds_never_rounded_or_zeroed() {
    for (value, expected) in [
        ("1.5", "must be a whole number, got 1.5"),
        ("nan", "must be a whole number, got NaN"),
        ("inf", "must be a whole number, got inf"),
    ] {
        let text = format!(
            "name = \"a\"\ntimeout_ctrl = {value}\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n"
        );
        match load(&text, ConfigFormat::Toml) {
            Err(ConfigError::Invalid { key, reason, .. }) => {
                assert_eq!(key, "timeout_ctrl");
                assert!(reason.contains(expected), "{value}: {reason}");
            }
            other => panic!("{value}: expected an invalid value, got {other:?}"),
        }
    }
    let text = "name = \"a\"\n[restart.backoff]\ninitial = 0.5\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n";
    assert!(matches!(
        load(text, ConfigFormat::Toml),
        Err(ConfigError::Invalid { key, .. }) if key == "restart.backoff.initial"
    ));
    // A whole float is the whole number it is.
    let text =
        "name = \"a\"\ntimeout_ctrl = 2000.0\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n";
    assert_eq!(load(text, ConfigFormat::Toml).unwrap().timeout_ctrl, 2000);
}

#[test]
fn a_key_given_twice_is_refused_in_json_as_in_toml_and_yaml() {
    let json = r#"{"name": "a", "runtime": {"kind": "in-process", "name": "x", "name": "y"}}"#;
    match load(json, ConfigFormat::Json) {
        Err(ConfigError::Load { message, .. }) => {
            assert!(
                message.contains("duplicate key `runtime.name`"),
                "{message}"
            );
            assert!(message.contains("line 1"), "{message}");
        }
        other => panic!("expected a duplicate key error, got {other:?}"),
    }
    let toml = "name = \"a\"\nname = \"b\"\n[runtime]\nkind = \"in-process\"\nname = \"x\"\n";
    assert!(load(toml, ConfigFormat::Toml).is_err());
    let yaml = "name: a\nname: b\nruntime: { kind: in-process, name: x }\n";
    assert!(load(yaml, ConfigFormat::Yaml).is_err());
    // Arrays of objects are walked too.
    let json =
        r#"{"name": "a", "runtime": {"kind": "in-process", "name": "x"}, "x": [{"k": 1, "k": 2}]}"#;
    match load(json, ConfigFormat::Json) {
        Err(ConfigError::Load { message, .. }) => {
            assert!(message.contains("duplicate key `x[0].k`"), "{message}");
        }
        other => panic!("expected a duplicate key error, got {other:?}"),
    }
}

#[test]
fn an_endless_file_is_refused_without_being_read_whole() {
    // /dev/zero has no end; a config named after it is read up to the limit.
    let dir = std::env::temp_dir().join(format!("pod-zero-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("zero.toml");
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let result = PodConfig::from_file_with_env(&path, &HashMap::new());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(limit_of(result).0, "size in bytes");
}
