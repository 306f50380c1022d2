//! The process runtime's identity, stop signal, notify access and output
//! keys, the probe targets checked by a real parser, and every list and
//! number of the process runtime settable through `POD__` overrides.

mod support;

use pod_actor::{NotifyAccessKind, PodConfig, RuntimeSpec};
use support::{assert_refused, load_toml};

const PROCESS: &str = "name = \"a\"\n[runtime]\nkind = \"process\"\ncommand = \"/bin/true\"\n";

fn load(text: &str) -> PodConfig {
    load_toml(text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn process(config: &PodConfig) -> &RuntimeSpec {
    assert!(matches!(config.runtime, RuntimeSpec::Process { .. }));
    &config.runtime
}

#[test]
fn the_defaults_are_systemds() {
    let config = load(PROCESS);
    let RuntimeSpec::Process {
        notify_access,
        user,
        group,
        groups,
        umask,
        stop_signal,
        output_lines,
        ..
    } = process(&config)
    else {
        unreachable!()
    };
    assert_eq!(*notify_access, NotifyAccessKind::Main);
    assert_eq!((user, group, groups, umask), (&None, &None, &None, &None));
    assert_eq!(stop_signal, "SIGTERM");
    assert_eq!(*output_lines, 20);
    assert_eq!(config.runtime, RuntimeSpec::process("/bin/true"));
}

#[test]
fn identity_and_stop_keys_load() {
    let config = load(&format!(
        "{PROCESS}notify_access = \"all\"\nuser = \"postgres\"\ngroup = \"postgres\"\n\
         groups = [\"ssl-cert\", \"100\"]\numask = \"0027\"\nstop_signal = \"INT\"\n\
         output_lines = 50\n"
    ));
    let RuntimeSpec::Process {
        notify_access,
        user,
        groups,
        umask,
        stop_signal,
        output_lines,
        ..
    } = process(&config)
    else {
        unreachable!()
    };
    assert_eq!(*notify_access, NotifyAccessKind::All);
    assert_eq!(user.as_deref(), Some("postgres"));
    assert_eq!(
        groups.as_deref(),
        Some(&["ssl-cert".to_owned(), "100".to_owned()][..])
    );
    assert_eq!(umask.as_deref(), Some("0027"));
    assert_eq!(stop_signal, "INT");
    assert_eq!(*output_lines, 50);
    assert!(config.runtime.process_spec().is_some());
}

#[test]
fn bad_identity_and_stop_values_name_their_key() {
    let cases = [
        (
            "notify_access = \"some\"",
            "runtime.notify_access",
            "`main`, `exec`, `all`",
        ),
        ("umask = \"27\"", "runtime.umask", "leading 0"),
        ("umask = \"0999\"", "runtime.umask", "octal"),
        ("umask = \"00000\"", "runtime.umask", "octal"),
        ("umask = 23", "runtime.umask", "read as decimal"),
        (
            "stop_signal = \"SIGFOO\"",
            "runtime.stop_signal",
            "must name a signal",
        ),
        (
            "stop_signal = \"0\"",
            "runtime.stop_signal",
            "must name a signal",
        ),
        (
            "stop_signal = \"99\"",
            "runtime.stop_signal",
            "must name a signal",
        ),
        (
            "output_lines = 20000",
            "runtime.output_lines",
            "at most 10000",
        ),
        ("output_lines = 2.5", "runtime.output_lines", "whole number"),
        ("user = \"\"", "runtime.user", "empty"),
        ("group = \"a\\u0000b\"", "runtime.group", "NUL"),
        ("groups = [\"ok\", \"\"]", "runtime.groups[1]", "empty"),
    ];
    for (line, key, then) in cases {
        assert_refused(&format!("{PROCESS}{line}\n"), &[], key, then);
    }
}

#[test]
fn what_the_runtime_would_refuse_is_refused_at_load() {
    let cases = [
        (
            "umask = 0o22",
            "runtime.umask",
            "got 18 (a number without quotes is read as decimal)",
        ),
        (
            "stop_signal = \"SIGSTOP\"",
            "runtime.stop_signal",
            "ends a process by default",
        ),
        (
            "stop_signal = \"CHLD\"",
            "runtime.stop_signal",
            "ends a process by default",
        ),
        ("user = \"4294967295\"", "runtime.user", "below 4294967295"),
        ("user = \"+0\"", "runtime.user", "digits only"),
        ("group = \"-1\"", "runtime.group", "digits only"),
        (
            "groups = [\"4294967295\"]",
            "runtime.groups",
            "below 4294967295",
        ),
    ];
    for (line, key, then) in cases {
        assert_refused(&format!("{PROCESS}{line}\n"), &[], key, then);
    }
}

#[test]
fn umasks_take_a_lone_zero() {
    for text in ["0", "00", "0000", "077", "0777"] {
        load(&format!("{PROCESS}umask = \"{text}\"\n"));
    }
}

#[test]
fn signals_are_taken_by_name_short_name_or_number() {
    for name in [
        "SIGINT", "sigint", "INT", "int", "2", "KILL", "SIGHUP", "QUIT",
    ] {
        let config = load(&format!("{PROCESS}stop_signal = \"{name}\"\n"));
        assert!(config.runtime.process_spec().is_some(), "{name}");
    }
}

#[test]
fn probe_targets_that_can_never_answer_are_refused() {
    let tcp = |address: &str| {
        format!("{PROCESS}[runtime.probe]\nkind = \"tcp\"\naddress = \"{address}\"\n")
    };
    let http = |url: &str| format!("{PROCESS}[runtime.probe]\nkind = \"http\"\nurl = \"{url}\"\n");
    for (text, key, then) in [
        (tcp("39501"), "runtime.probe.address", "no port"),
        (tcp(":39501"), "runtime.probe.address", "no host"),
        (tcp("127.0.0.1:0"), "runtime.probe.address", "1 to 65535"),
        (tcp("::1:80"), "runtime.probe.address", "brackets"),
        (http("https://localhost/"), "runtime.probe.url", "http://"),
        (http("http://:80/"), "runtime.probe.url", "host"),
        (http("http://localhost:0/"), "runtime.probe.url", "port 0"),
        (
            http("http://localhost/a b"),
            "runtime.probe.url",
            "not a URL",
        ),
    ] {
        assert_refused(&text, &[], key, then);
    }
    // A URL without a port asks port 80; a bracketed IPv6 host is fine.
    load(&http("http://localhost/"));
    load(&tcp("[::1]:8080"));
    load(&tcp("localhost:8080"));
}

#[test]
fn lists_and_numbers_of_the_process_runtime_take_overrides() {
    let args = |config: &PodConfig| match &config.runtime {
        RuntimeSpec::Process { args, .. } => args.clone(),
        _ => unreachable!(),
    };
    let words = load_toml(PROCESS, &[("POD__RUNTIME__ARGS", "--port 6380  --save ''")]).unwrap();
    assert_eq!(args(&words), ["--port", "6380", "--save", "''"]);
    let json = load_toml(
        PROCESS,
        &[("POD__RUNTIME__ARGS", r#"["--save", "", "a b"]"#)],
    )
    .unwrap();
    assert_eq!(args(&json), ["--save", "", "a b"]);
    let over = load_toml(
        &format!("{PROCESS}args = [\"x\"]\n"),
        &[("POD__RUNTIME__ARGS", "y z")],
    )
    .unwrap();
    assert_eq!(args(&over), ["y", "z"], "an override replaces the list");

    let config = load_toml(
        &format!("{PROCESS}[runtime.probe]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n"),
        &[
            ("POD__RUNTIME__GROUPS", "adm 100"),
            ("POD__RUNTIME__OUTPUT_LINES", "5"),
            ("POD__RUNTIME__WATCHDOG", "250"),
            ("POD__RUNTIME__STOP_SIGNAL", "INT"),
            ("POD__RUNTIME__PROBE__INTERVAL", "50"),
            ("POD__RUNTIME__PROBE__TIMEOUT", "70"),
        ],
    )
    .unwrap();
    let RuntimeSpec::Process {
        groups,
        output_lines,
        watchdog,
        stop_signal,
        probe,
        ..
    } = &config.runtime
    else {
        unreachable!()
    };
    assert_eq!(
        groups.as_deref(),
        Some(&["adm".to_owned(), "100".to_owned()][..])
    );
    assert_eq!((*output_lines, *watchdog), (5, Some(250)));
    assert_eq!(stop_signal, "INT");
    assert_eq!(
        *probe,
        pod_actor::ProbeConfig::Tcp {
            address: "127.0.0.1:1".into(),
            interval: 50,
            timeout: 70,
        }
    );

    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__ARGS", "[\"unclosed\"")],
        "POD__RUNTIME__ARGS",
        "JSON array of strings",
    );
    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__ARGS", "[1, 2]")],
        "POD__RUNTIME__ARGS",
        "JSON array of strings",
    );
    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__OUTPUT_LINES", "many")],
        "runtime.output_lines",
        "many",
    );
    // The limits of a file hold for an override too.
    let many = vec!["a"; 10_001].join(" ");
    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__ARGS", &many)],
        "POD__RUNTIME__ARGS",
        "at most 10000",
    );
    let long = "a".repeat(300 << 10);
    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__ARGS", &long)],
        "POD__RUNTIME__ARGS",
        "bytes long",
    );
}
