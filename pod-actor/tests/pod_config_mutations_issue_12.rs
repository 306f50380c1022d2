//! The loader never panics nor aborts, whatever it is given (issue 12):
//! valid configs in TOML, YAML and JSON, mutated thousands of times (bytes
//! flipped, brackets and dashes repeated, lines duplicated or cut, anchors
//! and huge numbers spliced in), each load ending in a config or an error.
//!
//! An abort (a stack overflow in a parser, say) would kill the test runner,
//! so the mutations run in a child process: this test runs its own binary
//! again, and fails if that child does not exit cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pod_actor::{ConfigFormat, PodConfig};

mod support;

const CHILD: &str = "POD_CONFIG_MUTATIONS_CHILD";
const ROUNDS: u64 = 3_000;

#[test]
fn mutated_configs_never_panic_or_abort_the_loader() {
    if std::env::var_os(CHILD).is_some() {
        mutate_and_load();
        return;
    }
    let stdout = support::rerun_in_child(
        "mutated_configs_never_panic_or_abort_the_loader",
        CHILD,
        &[],
    );
    assert!(stdout.contains("loaded every mutation"), "{stdout}");
}

/// What a mutation does to a text.
fn mutate(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = |rng: &mut fastrand::Rng, len: usize| rng.usize(..=len);
    for _ in 0..rng.usize(1..4) {
        let len = bytes.len();
        match rng.u8(0..9) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                bytes[i] = rng.u8(..);
            }
            1 if len > 0 => {
                bytes.remove(rng.usize(..len));
            }
            2 => {
                let open = rng
                    .choice(["[", "{", "- ", "a:\n  ", "[x]\n"])
                    .unwrap_or("[");
                let count = rng.usize(1..3000);
                let i = at(rng, len);
                let splice = open.repeat(count);
                bytes.splice(i..i, splice.into_bytes());
            }
            3 => {
                let token = rng
                    .choice([
                        "&a ",
                        "*a",
                        "1e400",
                        "99999999999999999999999999",
                        "-0",
                        "nan",
                        "\"\\u0000\"",
                        "\0",
                        "\r\n",
                        "'",
                        "\"",
                        "=",
                        ":",
                        "__",
                        "ß💥",
                    ])
                    .unwrap_or("x");
                let i = at(rng, len);
                bytes.splice(i..i, token.bytes());
            }
            4 if len > 0 => {
                let i = rng.usize(..len);
                bytes.truncate(i);
            }
            5 if len > 0 => {
                // Duplicate a slice: repeated keys, repeated tables.
                let start = rng.usize(..len);
                let end = (start + rng.usize(1..200)).min(len);
                let piece = bytes[start..end].to_vec();
                let i = at(rng, len);
                bytes.splice(i..i, piece);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn mutate_and_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let seeds = [
        ("full.toml", ConfigFormat::Toml),
        ("full.yaml", ConfigFormat::Yaml),
        ("full.json", ConfigFormat::Json),
        ("process.toml", ConfigFormat::Toml),
    ];
    let mut rng = fastrand::Rng::with_seed(12);
    let mut slowest = Duration::ZERO;
    let (mut ok, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        for (file, format) in seeds {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let mutated = mutate(&text, &mut rng);
            // Overrides are mutated too, now and then.
            let mut env = HashMap::new();
            if rng.u8(0..8) == 0 {
                let name = format!("POD__{}", mutate("RESTART__BACKOFF__INITIAL", &mut rng));
                env.insert(name, mutate("250", &mut rng));
            }
            let begun = Instant::now();
            match PodConfig::from_str_with_env(&mutated, format, file, &env) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty(), "round {round}");
                    refused += 1;
                }
            }
            slowest = slowest.max(begun.elapsed());
        }
    }
    println!("loaded every mutation: {ok} accepted, {refused} refused, slowest {slowest:?}");
}
