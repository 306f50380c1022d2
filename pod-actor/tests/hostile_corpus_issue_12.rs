//! The hostile corpus (issue 12): every file in `tests/corpus/hostile` and
//! every override in `tests/corpus/overrides` ends in the error written
//! beside it in `EXPECTED`, with no panic, no abort and at most 64 MiB of
//! heap.
//!
//! The corpus runs in a child process whose data segment (`RLIMIT_DATA`:
//! heap and anonymous mappings) may grow at most 64 MiB past what it held
//! at the start: a file that took more would abort the child on a failed
//! allocation, not the test runner, and the test reports it. The peak
//! and the slowest load are printed for `RELIABILITY.md`; they are not
//! asserted (the machine's load would make a timed assertion flaky).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};
use pod_actor::{ConfigError, ConfigFormat, PodConfig};

mod support;

const CHILD: &str = "POD_HOSTILE_CORPUS_CHILD";
/// The memory a load may take beyond what the child holds when it starts.
const CAP: u64 = 64 << 20;

/// A field of `/proc/self/status`, in KiB (`VmData`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap()
}

#[test]
fn every_hostile_input_gives_its_error_within_the_memory_cap() {
    if std::env::var_os(CHILD).is_some() {
        run_corpus();
        return;
    }
    let stdout = support::rerun_in_child(
        "every_hostile_input_gives_its_error_within_the_memory_cap",
        CHILD,
        // One malloc arena, so that the cap is not spent on reservations.
        &[("MALLOC_ARENA_MAX", "1")],
    );
    let summary = stdout.lines().find(|line| line.starts_with("corpus: "));
    let Some(summary) = summary else {
        panic!("the child did not run the corpus:\n{stdout}");
    };
    println!("{summary}");
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

/// One line of an `EXPECTED` file: what the error must be.
struct Expected {
    /// `load`, `limit` or `invalid`.
    kind: String,
    /// The key of an invalid value, the name of a limit, or `-`.
    key: String,
    /// A fragment of the message (may be empty).
    fragment: String,
}

fn expectations(file: &Path) -> Vec<(String, Expected)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "malformed line: {line:?}");
            let expected = Expected {
                kind: fields[1].to_owned(),
                key: fields[2].to_owned(),
                fragment: fields[3].to_owned(),
            };
            (fields[0].to_owned(), expected)
        })
        .collect()
}

/// How `error` differs from `expected`, if it does.
fn mismatch(error: &ConfigError, expected: &Expected) -> Option<String> {
    let (kind, key) = match error {
        ConfigError::Load { .. } => ("load", "-".to_owned()),
        ConfigError::Limit { limit, .. } => ("limit", (*limit).to_owned()),
        ConfigError::Invalid { key, .. } => ("invalid", key.clone()),
        _ => ("other", "-".to_owned()),
    };
    let message = error.to_string();
    let leaked = [
        "internally tagged",
        "variant constructor",
        "RuntimeSpec",
        "ProbeConfig",
    ]
    .into_iter()
    .find(|internal| message.contains(internal));
    if kind != expected.kind || key != expected.key || !message.contains(&expected.fragment) {
        Some(format!(
            "got {kind} `{key}`: {message}; expected {} `{}` with {:?}",
            expected.kind, expected.key, expected.fragment
        ))
    } else {
        leaked.map(|internal| format!("{internal} leaked into: {message}"))
    }
}

fn run_corpus() {
    let cap = status_kib("VmData") * 1024 + CAP;
    setrlimit(Resource::RLIMIT_DATA, cap, cap).unwrap();
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut count = 0;
    let mut measure = |name: &str, load: &mut dyn FnMut() -> Result<PodConfig, ConfigError>| {
        let start = Instant::now();
        let result = load();
        let took = start.elapsed();
        if took > slowest.0 {
            slowest = (took, name.chars().take(48).collect());
        }
        count += 1;
        result
    };

    let dir = corpus("hostile");
    for (file, expected) in expectations(&dir.join("EXPECTED")) {
        let path = dir.join(&file);
        match measure(&file, &mut || {
            PodConfig::from_file_with_env(&path, &HashMap::new())
        }) {
            Ok(config) => failures.push(format!("{file}: loaded {config:?}")),
            Err(error) => {
                if let Some(why) = mismatch(&error, &expected) {
                    failures.push(format!("{file}: {why}"));
                }
            }
        }
    }

    // Texts at the size limit, built here rather than checked in: one long
    // YAML flow collection, whose tokens the YAML scanner holds until it
    // closes (about 130 bytes each), in the shapes that cost it most.
    let room = 256 << 10;
    let generated = [
        (
            "a flow map of pairs",
            format!("[{}]", "x: y,".repeat(room / 5 - 1)),
        ),
        ("a flow list", format!("[{}]", "x,".repeat(room / 2 - 1))),
        (
            "a nested flow list",
            format!("a: [[{}]]", "x,".repeat(room / 2 - 5)),
        ),
        (
            "a flow key",
            format!("? [{}]\n: 1\n", "x,".repeat(room / 2 - 6)),
        ),
    ];
    for (name, text) in generated {
        match measure(name, &mut || {
            PodConfig::from_str_with_env(&text, ConfigFormat::Yaml, name, &HashMap::new())
        }) {
            Err(ConfigError::Limit {
                limit: "values", ..
            }) => {}
            other => failures.push(format!("{name}: expected the values limit, got {other:?}")),
        }
    }

    let dir = corpus("overrides");
    let base = dir.join("base.toml");
    for (variable, expected) in expectations(&dir.join("EXPECTED")) {
        let (name, value) = variable.split_once('=').unwrap();
        let value = value.replace("\\n", "\n").replace("\\0", "\0");
        let name = name.to_owned();
        let env = HashMap::from([(name.clone(), value)]);
        match measure(&name, &mut || PodConfig::from_file_with_env(&base, &env)) {
            Ok(config) => failures.push(format!("{name}: loaded {config:?}")),
            Err(error) => {
                if let Some(why) = mismatch(&error, &expected) {
                    let name: String = name.chars().take(48).collect();
                    failures.push(format!("{name}: {why}"));
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {count} inputs did not give their error:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "corpus: {count} inputs under a {} MiB cap, peak resident {} KiB, slowest {:?} ({})",
        CAP >> 20,
        status_kib("VmHWM"),
        slowest.0,
        slowest.1
    );
}
