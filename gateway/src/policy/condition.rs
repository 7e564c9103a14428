//! The Condition element: operators over the request's context keys, with
//! the `...IfExists` and `ForAnyValue:` / `ForAllValues:` forms, evaluated
//! as IAM documents it (operators and keys AND together, a key's policy
//! values OR together, negated operators match when the key is absent).

use std::net::IpAddr;

use serde_json::Value;

use super::context::Context;
use super::document::{MalformedPolicy, strings};
use super::wildcard::{arn_matches, matches};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const OPS: &[(&str, Op)] = &[
    ("StringEquals", Op::StringEquals),
    ("StringNotEquals", Op::StringNotEquals),
    ("StringEqualsIgnoreCase", Op::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Op::StringNotEqualsIgnoreCase),
    ("StringLike", Op::StringLike),
    ("StringNotLike", Op::StringNotLike),
    ("NumericEquals", Op::NumericEquals),
    ("NumericNotEquals", Op::NumericNotEquals),
    ("NumericLessThan", Op::NumericLessThan),
    ("NumericLessThanEquals", Op::NumericLessThanEquals),
    ("NumericGreaterThan", Op::NumericGreaterThan),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
    ("DateEquals", Op::DateEquals),
    ("DateNotEquals", Op::DateNotEquals),
    ("DateLessThan", Op::DateLessThan),
    ("DateLessThanEquals", Op::DateLessThanEquals),
    ("DateGreaterThan", Op::DateGreaterThan),
    ("DateGreaterThanEquals", Op::DateGreaterThanEquals),
    ("Bool", Op::Bool),
    ("IpAddress", Op::IpAddress),
    ("NotIpAddress", Op::NotIpAddress),
    ("ArnEquals", Op::ArnEquals),
    ("ArnLike", Op::ArnLike),
    ("ArnNotEquals", Op::ArnNotEquals),
    ("ArnNotLike", Op::ArnNotLike),
    ("Null", Op::Null),
];

impl Op {
    /// Negated operators: true when no policy value matches (and when the
    /// key is absent).
    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NumericNotEquals
                | Op::DateNotEquals
                | Op::NotIpAddress
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// The plain form: single-valued keys (any request value may match).
    Single,
    ForAnyValue,
    ForAllValues,
}

/// A policy value, parsed once for its operator.
#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Text(String),
    Number(f64),
    /// Unix seconds (fractions kept).
    Date(f64),
    Bool(bool),
    Cidr(IpAddr, u8),
}

/// One `operator: {key: values}` pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub set: SetOp,
    pub if_exists: bool,
    /// Lower-cased context key (`aws:sourceip`).
    pub key: String,
    values: Vec<Operand>,
}

fn bad(at: &str, msg: impl std::fmt::Display) -> MalformedPolicy {
    MalformedPolicy(format!("{at}: {msg}"))
}

pub(super) fn parse_conditions(v: &Value, at: &str) -> Result<Vec<Condition>, MalformedPolicy> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(at, "must be an object of operators"))?;
    let mut out = Vec::new();
    for (name, keys) in obj {
        let here = format!("{at}.{name}");
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else {
            (SetOp::Single, name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let op = OPS
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, o)| *o)
            .ok_or_else(|| bad(&here, "Unknown condition operator"))?;
        if op == Op::Null && (if_exists || set != SetOp::Single) {
            return Err(bad(&here, "Null takes no IfExists or set qualifier"));
        }
        let keys = keys
            .as_object()
            .ok_or_else(|| bad(&here, "must be an object of condition keys"))?;
        if keys.is_empty() {
            return Err(bad(&here, "must name at least one condition key"));
        }
        for (key, vals) in keys {
            let kat = format!("{here}.{key}");
            if !key.contains(':') {
                return Err(bad(&kat, "Unknown condition key (expected aws:… or s3:…)"));
            }
            let raw = scalar_strings(vals, &kat)?;
            let values = raw
                .iter()
                .map(|s| operand(op, s, &kat))
                .collect::<Result<_, _>>()?;
            out.push(Condition {
                op,
                set,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

/// Condition values may be strings, numbers or booleans, alone or in a list.
fn scalar_strings(v: &Value, at: &str) -> Result<Vec<String>, MalformedPolicy> {
    let one = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(a) => {
            if a.is_empty() {
                return Err(bad(at, "must not be empty"));
            }
            a.iter()
                .enumerate()
                .map(|(i, x)| one(x).ok_or_else(|| bad(&format!("{at}[{i}]"), "must be a scalar")))
                .collect()
        }
        other => one(other).map(|s| vec![s]).ok_or_else(|| {
            strings(other, at)
                .err()
                .unwrap_or_else(|| bad(at, "bad value"))
        }),
    }
}

fn operand(op: Op, s: &str, at: &str) -> Result<Operand, MalformedPolicy> {
    use Op::*;
    Ok(match op {
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => {
            Operand::Number(parse_number(s).ok_or_else(|| bad(at, format!("{s} is not a number")))?)
        }
        DateEquals
        | DateNotEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => Operand::Date(
            parse_date(s)
                .ok_or_else(|| bad(at, format!("{s} is not a date (ISO 8601 or epoch seconds)")))?,
        ),
        Bool | Null => Operand::Bool(
            parse_bool(s).ok_or_else(|| bad(at, format!("{s} is not true or false")))?,
        ),
        IpAddress | NotIpAddress => {
            let (ip, bits) = parse_cidr(s)
                .ok_or_else(|| bad(at, format!("{s} is not an IP address or CIDR")))?;
            Operand::Cidr(ip, bits)
        }
        _ => Operand::Text(s.to_owned()),
    })
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// ISO 8601 (RFC 3339, or a bare date) or Unix epoch seconds.
pub fn parse_date(s: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos() as f64 / 1e9);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() as f64)
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Condition {
    /// Whether the condition holds for this request.
    pub fn holds(&self, cx: &Context) -> bool {
        let got = cx.get(&self.key);
        if self.op == Op::Null {
            let absent = got.is_none_or(|v| v.is_empty());
            return self
                .values
                .iter()
                .any(|v| matches!(v, Operand::Bool(b) if *b == absent));
        }
        let Some(got) = got.filter(|v| !v.is_empty()) else {
            return match self.set {
                // ForAllValues over an empty set is vacuously true.
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => false,
                SetOp::Single => self.if_exists || self.op.negated(),
            };
        };
        let pred = |v: &str| self.value_holds(v, cx);
        match self.set {
            SetOp::ForAnyValue => got.iter().any(|v| pred(v)),
            SetOp::ForAllValues => got.iter().all(|v| pred(v)),
            SetOp::Single if self.op.negated() => got.iter().all(|v| pred(v)),
            SetOp::Single => got.iter().any(|v| pred(v)),
        }
    }

    /// One request value against the policy values: positive operators
    /// hold when any policy value matches, negated ones when none does.
    fn value_holds(&self, v: &str, cx: &Context) -> bool {
        let hit = self.values.iter().any(|p| self.positive(v, p, cx));
        hit != self.op.negated()
    }

    fn positive(&self, v: &str, p: &Operand, cx: &Context) -> bool {
        use Op::*;
        match (self.op, p) {
            (StringEquals | StringNotEquals, Operand::Text(t)) => v == cx.expand(t),
            (StringEqualsIgnoreCase | StringNotEqualsIgnoreCase, Operand::Text(t)) => {
                v.to_lowercase() == cx.expand(t).to_lowercase()
            }
            (StringLike | StringNotLike, Operand::Text(t)) => matches(&cx.expand(t), v, false),
            (ArnEquals | ArnLike | ArnNotEquals | ArnNotLike, Operand::Text(t)) => {
                arn_matches(&cx.expand(t), v)
            }
            (NumericEquals | NumericNotEquals, Operand::Number(n)) => {
                parse_number(v).is_some_and(|x| x == *n)
            }
            (NumericLessThan, Operand::Number(n)) => parse_number(v).is_some_and(|x| x < *n),
            (NumericLessThanEquals, Operand::Number(n)) => parse_number(v).is_some_and(|x| x <= *n),
            (NumericGreaterThan, Operand::Number(n)) => parse_number(v).is_some_and(|x| x > *n),
            (NumericGreaterThanEquals, Operand::Number(n)) => {
                parse_number(v).is_some_and(|x| x >= *n)
            }
            (DateEquals | DateNotEquals, Operand::Date(d)) => {
                parse_date(v).is_some_and(|x| x == *d)
            }
            (DateLessThan, Operand::Date(d)) => parse_date(v).is_some_and(|x| x < *d),
            (DateLessThanEquals, Operand::Date(d)) => parse_date(v).is_some_and(|x| x <= *d),
            (DateGreaterThan, Operand::Date(d)) => parse_date(v).is_some_and(|x| x > *d),
            (DateGreaterThanEquals, Operand::Date(d)) => parse_date(v).is_some_and(|x| x >= *d),
            (Bool, Operand::Bool(b)) => parse_bool(v) == Some(*b),
            (IpAddress | NotIpAddress, Operand::Cidr(net, bits)) => {
                v.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, *net, *bits))
            }
            _ => false,
        }
    }

    /// A condition that pins the caller to fixed values, so that a `*`
    /// principal under it is not public (Block Public Access's test).
    pub fn restricts_caller(&self) -> bool {
        let fixed = self.values.iter().all(|v| match v {
            Operand::Text(t) => !t.contains(['*', '?']),
            Operand::Cidr(_, bits) => *bits > 0,
            _ => false,
        });
        let positive = matches!(
            self.op,
            Op::StringEquals
                | Op::StringEqualsIgnoreCase
                | Op::StringLike
                | Op::ArnEquals
                | Op::ArnLike
                | Op::IpAddress
        );
        fixed
            && positive
            && !self.if_exists
            && self.set != SetOp::ForAllValues
            && matches!(
                self.key.as_str(),
                "aws:sourceip"
                    | "aws:principalarn"
                    | "aws:username"
                    | "aws:userid"
                    | "aws:principalaccount"
                    | "aws:sourcearn"
                    | "aws:sourceaccount"
                    | "aws:sourcevpc"
                    | "aws:sourcevpce"
            )
    }
}
