//! Serde helpers for status types: a [`Duration`] as a number of
//! milliseconds (`"uptime_ms": 3024.98`), not serde's `{"secs", "nanos"}`;
//! and a [`SystemTime`] as whole milliseconds since the Unix epoch.
//!
//! Written as a float, so that microseconds survive (`0.011` for an
//! 11 µs start); read back to the nanosecond for any duration below about
//! 99 days (where the nanoseconds in an `f64` of milliseconds stop being
//! exact), to the microsecond well beyond. Use with
//! `#[serde(with = "pod_supervisor::millis")]`, or `millis::option` for an
//! `Option<Duration>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

fn to_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

fn from_ms<E: serde::de::Error>(ms: f64) -> Result<Duration, E> {
    // Whole milliseconds and the nanoseconds below them apart, so that a
    // whole number (a Unix time) reads back exactly.
    let whole = ms.trunc();
    if !ms.is_finite() || ms < 0.0 || whole > (u64::MAX / 1_000_000) as f64 {
        return Err(E::custom(format!(
            "a duration must be milliseconds from 0 to about 584 years, got {ms}"
        )));
    }
    let nanos = ((ms - whole) * 1e6).round() as u64;
    Ok(Duration::from_millis(whole as u64) + Duration::from_nanos(nanos))
}

/// Serializes a duration as milliseconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(to_ms(*d))
}

/// Reads milliseconds back into a duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_ms(f64::deserialize(d)?)
}

/// The same for an `Option<Duration>` (`null` when absent).
pub mod option {
    use super::*;

    /// Serializes an optional duration as milliseconds or `null`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&to_ms(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads milliseconds or `null` back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?.map(from_ms).transpose()
    }
}

/// An `Option<SystemTime>` as whole milliseconds since the Unix epoch
/// (`null` when absent).
pub mod since_epoch {
    use super::*;

    /// Serializes an optional time as whole Unix milliseconds or `null`.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t.map(|t| t.duration_since(UNIX_EPOCH)) {
            Some(Ok(since)) => s.serialize_some(&(since.as_millis() as u64)),
            // A clock set before 1970: said as such, not as a lie.
            Some(Err(_)) | None => s.serialize_none(),
        }
    }

    /// Reads Unix milliseconds or `null` back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            Some(ms) => {
                let since = from_ms(ms)?;
                UNIX_EPOCH
                    .checked_add(since)
                    .map(Some)
                    .ok_or_else(|| D::Error::custom(format!("a time out of range: {ms} ms")))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Times {
        #[serde(with = "super")]
        took: Duration,
        #[serde(with = "super::option")]
        uptime: Option<Duration>,
        #[serde(with = "super::since_epoch")]
        since: Option<SystemTime>,
    }

    #[test]
    fn durations_are_milliseconds_that_read_back_exactly() {
        let times = Times {
            took: Duration::from_nanos(11_234),
            uptime: Some(Duration::new(3, 24_980_782)),
            since: Some(UNIX_EPOCH + Duration::from_millis(1_795_000_000_123)),
        };
        let json = serde_json::to_string(&times).unwrap();
        assert_eq!(
            json,
            r#"{"took":0.011234,"uptime":3024.980782,"since":1795000000123}"#
        );
        assert_eq!(serde_json::from_str::<Times>(&json).unwrap(), times);
        let none = r#"{"took":0,"uptime":null,"since":null}"#;
        assert!(serde_json::from_str::<Times>(none).is_ok());
    }

    #[test]
    fn impossible_durations_are_refused() {
        for bad in [
            r#"{"took":-1,"uptime":null,"since":null}"#,
            r#"{"took":1e30,"uptime":null,"since":null}"#,
        ] {
            let err = serde_json::from_str::<Times>(bad).unwrap_err().to_string();
            assert!(err.contains("a duration must be milliseconds"), "{err}");
        }
    }
}
