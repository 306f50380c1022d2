//! A service that runs out of file descriptors gets a typed error for each
//! pod that cannot start, never a panic (issue 12): 500 pods under an
//! open-file limit of 256, on dedicated arbiters (each needs descriptors)
//! and on a shared one (none needed), and 200 process pods under a limit of
//! 64 (each needs a notify socket and pipes), every child reaped after the
//! close. The `starve` helper runs them in a process of its own, so the
//! lowered limit touches nothing else.

use std::process::Command;

const STARVE: &str = env!("CARGO_BIN_EXE_starve");

/// `(started, failed, panics, first_error)` from starve's one line; it
/// also checks that starve left no child behind.
fn starve(placement: &str, pods: &str, limit: &str) -> (usize, usize, usize, String) {
    let output = Command::new(STARVE)
        .args([placement, pods, limit])
        .output()
        .expect("starve runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    let field = |name: &str| -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let number = |name: &str| field(name).parse::<usize>().unwrap_or(usize::MAX);
    let first_error = line
        .split_once("first_error=")
        .map(|(_, e)| e.to_owned())
        .unwrap_or_default();
    assert!(
        output.status.success(),
        "{placement}: {line}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(number("children_left"), 0, "{placement}: {line}");
    (
        number("started"),
        number("failed"),
        number("panics"),
        first_error,
    )
}

#[test]
fn dedicated_arbiters_that_cannot_be_made_fail_their_pods_with_the_os_reason() {
    let (started, failed, panics, first_error) = starve("dedicated", "500", "256");
    assert_eq!(panics, 0);
    assert_eq!(started + failed, 500);
    assert!(failed > 0, "the limit did not bite: {started} started");
    assert!(first_error.contains("Too many open files"), "{first_error}");
}

#[test]
fn a_shared_arbiter_starts_every_pod_under_the_same_limit() {
    let (started, failed, panics, first_error) = starve("shared", "500", "256");
    assert_eq!((started, failed, panics), (500, 0, 0), "{first_error}");
}

#[test]
fn process_pods_without_descriptors_fail_with_the_os_reason_and_leave_no_child() {
    let (started, failed, panics, first_error) = starve("process", "200", "64");
    assert_eq!(panics, 0);
    assert_eq!(started + failed, 200);
    assert!(failed > 0, "the limit did not bite: {started} started");
    assert!(started > 0, "no process pod started: {first_error}");
    // Which descriptor runs out first (the notify socket, a pipe, stdin's
    // /dev/null) depends on how the 200 starts interleave: any of them
    // names the program and the OS's reason.
    assert!(
        first_error.contains("cannot start `/bin/sleep`: ")
            && first_error.contains("Too many open files"),
        "{first_error}"
    );
}
