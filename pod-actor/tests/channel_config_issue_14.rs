//! The request channel's keys: `runtime.channel` opens one, its limits
//! load from files and `POD__` overrides, and values that could never work
//! are refused naming their key.

mod support;

use std::time::Duration;

use pod_actor::{ChannelConfig, PlacementKind, RuntimeSpec};
use runtime_actor::ChannelSpec;
use support::{assert_refused, load_toml};

const PROCESS: &str = "name = \"a\"\n[runtime]\nkind = \"process\"\ncommand = \"/bin/true\"\n";

fn channel(text: &str, env: &[(&str, &str)]) -> Option<ChannelConfig> {
    match load_toml(text, env)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .runtime
    {
        RuntimeSpec::Process { channel, .. } => channel,
        other => panic!("expected a process runtime, got {other:?}"),
    }
}

#[test]
fn no_channel_unless_asked_and_an_empty_table_takes_the_defaults() {
    assert_eq!(channel(PROCESS, &[]), None);
    let defaults = channel(&format!("{PROCESS}channel = {{}}\n"), &[]).unwrap();
    assert_eq!(defaults, ChannelConfig::default());
    assert_eq!(
        (defaults.max_frame, defaults.max_in_flight, defaults.timeout),
        (4 * 1024 * 1024, 1024, 60_000)
    );
    assert_eq!(defaults.spec(), ChannelSpec::default());
}

#[test]
fn limits_load_from_the_file_and_from_overrides() {
    let text = format!("{PROCESS}[runtime.channel]\nmax_frame = 65536\nmax_in_flight = 8\n");
    let loaded = channel(&text, &[]).unwrap();
    assert_eq!((loaded.max_frame, loaded.max_in_flight), (65_536, 8));
    assert_eq!(
        loaded.spec(),
        ChannelSpec::default()
            .max_frame(65_536)
            .max_in_flight(8)
            .timeout(Some(Duration::from_secs(60)))
    );
    // An override alone opens the channel; 0 waits for ever.
    let overridden = channel(PROCESS, &[("POD__RUNTIME__CHANNEL__TIMEOUT", "0")]).unwrap();
    assert_eq!(overridden.timeout, 0);
    assert_eq!(overridden.spec(), ChannelSpec::default().timeout(None));
    let overridden = channel(&text, &[("POD__RUNTIME__CHANNEL__MAX_IN_FLIGHT", "64")]).unwrap();
    assert_eq!(
        (overridden.max_frame, overridden.max_in_flight),
        (65_536, 64)
    );
}

#[test]
fn values_that_could_never_work_name_their_key() {
    let with = |body: &str| format!("{PROCESS}[runtime.channel]\n{body}\n");
    assert_refused(
        &with("max_frame = 9"),
        &[],
        "runtime.channel.max_frame",
        "must be from 10 to 1073741824 bytes, got 9",
    );
    assert_refused(
        &with("max_frame = 2147483648"),
        &[],
        "runtime.channel.max_frame",
        "got 2147483648",
    );
    assert_refused(
        &with("max_in_flight = 0"),
        &[],
        "runtime.channel.max_in_flight",
        "must be from 1 to 1048576, got 0",
    );
    assert_refused(
        &with("max_frame = 1.5"),
        &[],
        "runtime.channel.max_frame",
        "whole number",
    );
    assert_refused(
        &with("timeout = -1"),
        &[],
        "runtime.channel.timeout",
        "invalid type: 64-bit integer `-1`",
    );
    assert_refused(&with("max_frames = 10"), &[], "max_frames", "unknown field");
    assert_refused(
        &format!("{PROCESS}channel = 3\n"),
        &[],
        "runtime.channel",
        "table",
    );
    assert_refused(
        &format!("{PROCESS}channel = [1, 2]\n"),
        &[],
        "runtime.channel",
        "table",
    );
    assert_refused(
        PROCESS,
        &[("POD__RUNTIME__CHANNEL__MAX_IN_FLIGHT", "many")],
        "runtime.channel.max_in_flight",
        "in environment variable `POD__RUNTIME__CHANNEL__MAX_IN_FLIGHT`",
    );
}

#[test]
fn placement_auto_is_the_default_and_may_be_written_out() {
    let default = load_toml(PROCESS, &[]).unwrap();
    assert_eq!(default.placement, PlacementKind::Auto);
    let written = load_toml(&format!("placement = \"auto\"\n{PROCESS}"), &[]).unwrap();
    assert_eq!(written.placement, PlacementKind::Auto);
    assert_refused(
        &format!("placement = \"elsewhere\"\n{PROCESS}"),
        &[],
        "placement",
        "auto",
    );
}
