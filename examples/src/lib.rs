//! Reference consumers of the pod crates.
//!
//! The binaries show the crates at work: `demo` (the README's main command)
//! runs a runtime through its lifecycle, a panic and a restart included;
//! `worker` is a scriptable child process for process pods, and `parent` a
//! process that owns one, for the tests.
//! The deployment actor they use lives in `pod_actor::deployment`.

pub mod fmt;
pub mod logging;
pub mod metrics;
pub mod rootfs;
pub mod worker;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
