//! Limits as operators write them: `200/s`, `6000/min`, `50MiB/s`,
//! `1.5GB/s`, `256KiB`. Kept as text in configuration (so `dooz config`
//! prints what was written) and parsed once into numbers.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RateError(String);

/// Requests per period, e.g. `200/s` or `10/min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRate {
    pub count: u32,
    pub per: Duration,
}

/// Bytes per second, e.g. `50MiB/s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRate(pub u64);

/// A size, e.g. `256KiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

fn period(unit: &str) -> Option<Duration> {
    match unit.trim() {
        "s" | "sec" | "second" => Some(Duration::from_secs(1)),
        "m" | "min" | "minute" => Some(Duration::from_secs(60)),
        "h" | "hour" => Some(Duration::from_secs(3600)),
        _ => None,
    }
}

/// `512`, `256KiB`, `1.5 GB`, `50MiB`: binary (KiB, MiB, GiB, TiB) and
/// decimal (kB/KB, MB, GB, TB) units, `B` or nothing for bytes.
fn parse_size(text: &str) -> Result<u64, RateError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| RateError(format!("{text:?}: expected a number, e.g. 50MiB")))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => {
            return Err(RateError(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
            )));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(RateError(format!("{text:?}: out of range")));
    }
    Ok(bytes as u64)
}

impl RequestRate {
    pub fn parse(text: &str) -> Result<Self, RateError> {
        let (n, unit) = text.split_once('/').ok_or_else(|| {
            RateError(format!(
                "{text:?}: expected requests per period, e.g. 200/s"
            ))
        })?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| RateError(format!("{text:?}: expected a whole number of requests")))?;
        if count == 0 {
            return Err(RateError(format!(
                "{text:?}: a limit of zero refuses everything; leave the limit out for none"
            )));
        }
        let per = period(unit)
            .ok_or_else(|| RateError(format!("{text:?}: the period is s, min or h")))?;
        Ok(Self { count, per })
    }

    /// Time between two requests at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }

    /// Requests per second (for gauges).
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl ByteRate {
    pub fn parse(text: &str) -> Result<Self, RateError> {
        let (size, unit) = text.split_once('/').ok_or_else(|| {
            RateError(format!("{text:?}: expected bytes per second, e.g. 50MiB/s"))
        })?;
        if period(unit) != Some(Duration::from_secs(1)) {
            return Err(RateError(format!(
                "{text:?}: bandwidth is given per second, e.g. 50MiB/s"
            )));
        }
        Ok(Self(parse_size(size)?))
    }
}

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, RateError> {
        Ok(Self(parse_size(text)?))
    }
}

/// The shortest exact form: `50MiB` rather than `52428800B`.
fn size_text(n: u64) -> String {
    for (unit, scale) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= scale && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}B")
}

impl fmt::Display for RequestRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            60 => "min",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl fmt::Display for ByteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", size_text(self.0))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&size_text(self.0))
    }
}

macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_serde!(RequestRate);
text_serde!(ByteRate);
text_serde!(ByteSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_operators_write_them() {
        assert_eq!(
            RequestRate::parse("200/s").unwrap(),
            RequestRate {
                count: 200,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(
            RequestRate::parse("10/min").unwrap().per,
            Duration::from_secs(60)
        );
        assert_eq!(ByteRate::parse("50MiB/s").unwrap(), ByteRate(50 << 20));
        assert_eq!(ByteRate::parse("1.5GB/s").unwrap(), ByteRate(1_500_000_000));
        assert_eq!(ByteRate::parse("100 KiB/s").unwrap(), ByteRate(100 << 10));
        assert_eq!(ByteSize::parse("256KiB").unwrap(), ByteSize(256 << 10));
        for bad in ["", "0/s", "-1/s", "5/fortnight", "200", "x/s"] {
            assert!(RequestRate::parse(bad).is_err(), "{bad}");
        }
        for bad in ["50MiB", "50MiB/min", "0B/s", "5XB/s", "NaN/s", "/s"] {
            assert!(ByteRate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_print_as_they_parse() {
        for text in ["200/s", "10/min", "3/h"] {
            assert_eq!(RequestRate::parse(text).unwrap().to_string(), text);
        }
        for text in ["50MiB/s", "1GiB/s", "1500B/s"] {
            assert_eq!(ByteRate::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(ByteRate::parse("1MB/s").unwrap().to_string(), "1000000B/s");
    }
}
