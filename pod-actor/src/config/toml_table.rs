//! TOML text to a config table, with errors that name the key and line.
//!
//! The config crate's TOML reader drops the spans the parser keeps, so a
//! value it cannot hold (an integer past `i64`, a float that overflows)
//! comes out as "number too large to fit in target type" with no key and
//! no line. This reader walks the same parse tree and says where.

use std::borrow::Cow;

use ::config::{Map, Value, ValueKind};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `text` as a table; the error says what is wrong, at which key and line.
pub(super) fn parse(text: &str) -> Result<Map<String, Value>, String> {
    let document = DeTable::parse(text).map_err(|e| e.to_string())?;
    table(text, "", document.into_inner())
}

fn table(text: &str, path: &str, table: DeTable<'_>) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (key, value) in table {
        let key = key.into_inner().into_owned();
        let path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        map.insert(key, value_at(text, &path, value)?);
    }
    Ok(map)
}

fn value_at(text: &str, path: &str, value: Spanned<DeValue<'_>>) -> Result<Value, String> {
    // Counted only for an error: counting for every value would make a
    // long array quadratic.
    let start = value.span().start;
    let line = || line_of(text, start);
    let kind = match value.into_inner() {
        DeValue::String(s) => ValueKind::String(Cow::into_owned(s)),
        DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => ValueKind::I64(n),
            Err(_) => {
                return Err(format!(
                    "the integer {n} for key `{path}` at line {} is out of range (at most {})",
                    line(),
                    i64::MAX
                ))
            }
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) if x.is_finite() || f.as_str().contains("inf") || f.as_str().contains("nan") => {
                ValueKind::Float(x)
            }
            _ => {
                return Err(format!(
                    "the number {} for key `{path}` at line {} is out of range",
                    f.as_str(),
                    line()
                ))
            }
        },
        DeValue::Boolean(b) => ValueKind::Boolean(b),
        DeValue::Datetime(d) => ValueKind::String(d.to_string()),
        DeValue::Array(items) => ValueKind::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| value_at(text, &format!("{path}[{i}]"), item))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => ValueKind::Table(table(text, path, t)?),
    };
    Ok(Value::new(None, kind))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
