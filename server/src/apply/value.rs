//! JSON values as field paths see them.
//!
//! Field paths carry values: the key fields of associative list items
//! (`k:{"name":"mxnet"}`) and the items of sets (`v:"finalizer"`). Sets of
//! paths are sorted, and conflict messages print paths, so values need the
//! total order, the equality and the texts Kubernetes uses:
//!
//! * Order: numbers, then strings, booleans, lists, objects and null last.
//!   Integers and floats compare by magnitude, so `1` equals `1.0` (the
//!   merge and the comparison of old and new objects use the same rule).
//! * Display text (in conflict paths such as `[name="mxnet"]`): strings
//!   quoted the way Go's `%q` quotes them, numbers in Go's `%v` style.
//! * JSON text (inside `k:` and `v:` elements): compact, object keys sorted,
//!   `<`, `>` and `&` escaped as `\u003c`…, floats as Go writes them, so the
//!   bytes match what kube-apiserver stores.

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// The rank of a value's kind in the order of values.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (integer(a), integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (float(a), float(b));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn integer(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn float(n: &Number) -> f64 {
    n.as_f64().unwrap_or(0.0)
}

/// The total order of values.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let c = compare(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => compare_objects(x, y),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_objects(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    let mut xs: Vec<_> = x.iter().collect();
    let mut ys: Vec<_> = y.iter().collect();
    xs.sort_by(|a, b| a.0.cmp(b.0));
    ys.sort_by(|a, b| a.0.cmp(b.0));
    for ((xk, xv), (yk, yv)) in xs.iter().zip(&ys) {
        let c = xk.cmp(yk).then_with(|| compare(xv, yv));
        if c != Ordering::Equal {
            return c;
        }
    }
    xs.len().cmp(&ys.len())
}

/// Equality under the order: `1` and `1.0` are equal.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(l, r)| equal(l, r))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// Go's shortest float text, with an exponent when `use_exponent(exp)`;
/// `pad` writes the exponent with at least two digits (`%v`) or not (JSON).
fn go_float(f: f64, use_exponent: impl Fn(i32) -> bool, pad: bool) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && use_exponent(exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        if pad {
            format!("{mantissa}e{sign}{:02}", exponent.abs())
        } else {
            format!("{mantissa}e{sign}{}", exponent.abs())
        }
    } else {
        format!("{f}")
    }
}

fn number_text(n: &Number, json: bool) -> String {
    match integer(n) {
        Some(i) if !n.is_f64() => i.to_string(),
        _ if json => go_float(float(n), |e| !(-6..21).contains(&e), false),
        _ => go_float(float(n), |e| !(-4..21).contains(&e), true),
    }
}

/// A string quoted as Go's `%q` does: printable characters kept, the usual
/// backslash escapes, `\x`/`\u`/`\U` for the rest.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, near enough: no controls, and no spaces but ' '.
pub(crate) fn printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}

/// The text of a value in a path (`value.ToString` in Kubernetes).
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n, false),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(display).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            fields
                .iter()
                .map(|(k, v)| format!("{k}={}", display(v)))
                .collect()
        }
    }
}

/// A JSON string as Kubernetes writes it (HTML-safe escaping).
pub(crate) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Compact JSON as Kubernetes writes it: keys sorted, HTML-safe strings.
pub(crate) fn json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n, true)),
        Value::String(s) => json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                json(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_magnitude_across_kinds() {
        assert!(equal(&json!(1), &json!(1.0)));
        assert_eq!(compare(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(compare(&json!(1.5), &json!(1)), Ordering::Greater);
        assert_eq!(compare(&json!(1), &json!("1")), Ordering::Less);
        assert_eq!(compare(&json!("a"), &json!(true)), Ordering::Less);
        assert_eq!(compare(&json!({}), &Value::Null), Ordering::Less);
    }

    #[test]
    fn display_follows_go() {
        assert_eq!(display(&json!("mxnet")), "\"mxnet\"");
        assert_eq!(display(&json!("a\"b\n")), "\"a\\\"b\\n\"");
        assert_eq!(display(&json!(80)), "80");
        assert_eq!(display(&json!(1.5)), "1.5");
        assert_eq!(display(&json!(1e21)), "1e+21");
        assert_eq!(display(&json!(0.00001)), "1e-05");
        assert_eq!(display(&json!("é")), "\"é\"");
        assert_eq!(display(&json!("\u{1}")), "\"\\x01\"");
    }

    #[test]
    fn json_text_is_html_safe_and_sorted() {
        let mut out = String::new();
        json(&json!({"protocol": "TCP", "containerPort": 80}), &mut out);
        assert_eq!(out, r#"{"containerPort":80,"protocol":"TCP"}"#);
        out.clear();
        json(&json!("a<b&c>"), &mut out);
        assert_eq!(out, r#""a\u003cb\u0026c\u003e""#);
        out.clear();
        json(&json!(1e-7), &mut out);
        assert_eq!(out, "1e-7");
    }
}
