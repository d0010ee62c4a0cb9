//! Kubernetes label and field selectors, as used by the `labelSelector` and
//! `fieldSelector` query parameters of list and watch requests.
//!
//! Decisions:
//!
//! * Both selectors are parsed into a canonical form: requirements are
//!   sorted and duplicates dropped, `==` is stored as `=`, and `in`/`notin`
//!   value sets are sorted sets. Two selectors that mean the same thing
//!   textually therefore compare equal, and `Display` prints the canonical
//!   text, which parses back to an equal value.
//! * Label selectors follow the Kubernetes grammar: a comma-separated AND of
//!   `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (..)`, `k notin (..)`, `k>n`
//!   and `k<n`. As in Kubernetes, `k=` means "equals the empty value", an
//!   empty item in a value list (`k in (a,)`) is the empty value, and an
//!   empty list (`k in ()`) is an error. `in` and `notin` are only keywords
//!   in operator position, so `in` and `notin` remain usable as label keys.
//! * `>` and `<` take a valid label value that parses as an `i64` (so no
//!   negative numbers, as in Kubernetes); label values that are not integers
//!   never match them.
//! * Keys are validated as qualified names and values as label values; the
//!   lexer accepts any run of non-special characters as a word, so garbage is
//!   reported by that validation with the offending text quoted.
//! * Field selectors support only `metadata.name` and `metadata.namespace`
//!   with `=`, `==` and `!=`. Values are unescaped with `\\`, `\,` and `\=`;
//!   as in Kubernetes an unescaped `=` or an unknown escape in a value is an
//!   error. Whitespace around field names and values is ignored (object
//!   names and namespaces never contain it). Unlike Kubernetes, empty terms
//!   (`a=b,,c=d` or a trailing comma) are rejected rather than skipped, to
//!   match the label selector's treatment of trailing commas.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::names;

/// An error parsing a label or field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    pub message: String,
}

impl SelectorError {
    fn new(message: impl Into<String>) -> Self {
        SelectorError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SelectorError {}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// A parsed label selector; `Default` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted and deduplicated; all must match.
    requirements: Vec<Requirement>,
}

/// One comma-separated term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Requirement {
    key: String,
    op: Operator,
}

/// The test a requirement applies to the value of its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operator {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    GreaterThan(i64),
    LessThan(i64),
}

impl LabelSelector {
    /// Parses the text form of a label selector; blank text selects all.
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut parser = Parser {
            tokens: lex(text),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if parser.peek() == &Token::End {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.next() {
                Token::End => break,
                // The next `requirement()` call rejects a trailing comma.
                Token::Comma => {}
                other => return Err(unexpected(&other, "',' or end of string")),
            }
        }
        requirements.sort();
        requirements.dedup();
        Ok(LabelSelector { requirements })
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals(want) => value == Some(want),
            // Absent keys satisfy `!=` and `notin`.
            Operator::NotEquals(want) => value != Some(want),
            Operator::In(set) => value.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
            Operator::GreaterThan(n) => as_int(value).is_some_and(|v| v > *n),
            Operator::LessThan(n) => as_int(value).is_some_and(|v| v < *n),
        }
    }
}

/// A label value as an integer, if it is one.
fn as_int(value: Option<&String>) -> Option<i64> {
    value.and_then(|v| v.parse().ok())
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match &self.op {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals(v) => write!(f, "{key}={v}"),
            Operator::NotEquals(v) => write!(f, "{key}!={v}"),
            Operator::In(set) => write!(f, "{key} in ({})", join(set)),
            Operator::NotIn(set) => write!(f, "{key} notin ({})", join(set)),
            Operator::GreaterThan(n) => write!(f, "{key}>{n}"),
            Operator::LessThan(n) => write!(f, "{key}<{n}"),
        }
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// A lexical token of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A run of characters that are neither whitespace nor operators.
    Word(String),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    Greater,
    Less,
    Comma,
    Open,
    Close,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Not => f.write_str("'!'"),
            Token::NotEquals => f.write_str("'!='"),
            Token::Equals => f.write_str("'='"),
            Token::DoubleEquals => f.write_str("'=='"),
            Token::Greater => f.write_str("'>'"),
            Token::Less => f.write_str("'<'"),
            Token::Comma => f.write_str("','"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::End => f.write_str("end of string"),
        }
    }
}

/// Characters that end a word.
fn is_special(c: char) -> bool {
    c.is_whitespace() || "!=<>,()".contains(c)
}

/// Splits selector text into tokens, always ending with `Token::End`.
fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.next_if_eq(&'=').is_some() => Token::NotEquals,
            '!' => Token::Not,
            '=' if chars.next_if_eq(&'=').is_some() => Token::DoubleEquals,
            '=' => Token::Equals,
            '>' => Token::Greater,
            '<' => Token::Less,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            first => {
                let mut word = String::from(first);
                while let Some(c) = chars.next_if(|c| !is_special(*c)) {
                    word.push(c);
                }
                Token::Word(word)
            }
        };
        tokens.push(token);
    }
    tokens.push(Token::End);
    tokens
}

fn unexpected(found: &Token, expected: &str) -> SelectorError {
    SelectorError::new(format!(
        "unable to parse requirement: found {found}, expected: {expected}"
    ))
}

/// A recursive-descent parser over the token list.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.pos += 1;
        token
    }

    /// `!key`, `key`, or `key <operator> <values>`.
    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let key = match self.next() {
            Token::Not => {
                let key = self.key()?;
                return match self.peek() {
                    Token::Comma | Token::End => Ok(Requirement {
                        key,
                        op: Operator::DoesNotExist,
                    }),
                    other => Err(unexpected(other, "',' or end of string after '!key'")),
                };
            }
            Token::Word(word) => checked_key(word)?,
            other => return Err(unexpected(&other, "'!' or a label key")),
        };
        let op = match self.peek().clone() {
            Token::Comma | Token::End => Operator::Exists,
            Token::Equals | Token::DoubleEquals => {
                self.next();
                Operator::Equals(self.exact_value(&key)?)
            }
            Token::NotEquals => {
                self.next();
                Operator::NotEquals(self.exact_value(&key)?)
            }
            Token::Word(w) if w == "in" || w == "notin" => {
                self.next();
                let set = self.value_set(&key)?;
                if w == "in" {
                    Operator::In(set)
                } else {
                    Operator::NotIn(set)
                }
            }
            Token::Greater => {
                self.next();
                Operator::GreaterThan(self.integer(&key)?)
            }
            Token::Less => {
                self.next();
                Operator::LessThan(self.integer(&key)?)
            }
            other => {
                return Err(unexpected(
                    &other,
                    "'=', '==', '!=', 'in', 'notin', '>', '<', ',' or end of string",
                ))
            }
        };
        Ok(Requirement { key, op })
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Token::Word(word) => checked_key(word),
            other => Err(unexpected(&other, "a label key")),
        }
    }

    /// The value after `=`, `==` or `!=`; missing means the empty value.
    fn exact_value(&mut self, key: &str) -> Result<String, SelectorError> {
        match self.peek().clone() {
            Token::Word(word) => {
                self.next();
                checked_value(key, word)
            }
            Token::Comma | Token::End => Ok(String::new()),
            other => Err(unexpected(&other, "a label value")),
        }
    }

    /// `( v1, v2, ... )`, non-empty; an empty item is the empty value.
    fn value_set(&mut self, key: &str) -> Result<BTreeSet<String>, SelectorError> {
        match self.next() {
            Token::Open => {}
            other => return Err(unexpected(&other, "'('")),
        }
        if self.peek() == &Token::Close {
            return Err(SelectorError::new(format!(
                "for 'in', 'notin' operators, values set can't be empty (key {key:?})"
            )));
        }
        let mut set = BTreeSet::new();
        loop {
            let value = match self.peek().clone() {
                Token::Word(word) => {
                    self.next();
                    word
                }
                Token::Comma | Token::Close => String::new(),
                other => return Err(unexpected(&other, "a label value, ',' or ')'")),
            };
            set.insert(checked_value(key, value)?);
            match self.next() {
                Token::Comma => {}
                Token::Close => return Ok(set),
                other => return Err(unexpected(&other, "',' or ')'")),
            }
        }
    }

    /// The integer after `>` or `<`.
    fn integer(&mut self, key: &str) -> Result<i64, SelectorError> {
        let word = match self.next() {
            Token::Word(word) => checked_value(key, word)?,
            other => return Err(unexpected(&other, "an integer value")),
        };
        word.parse().map_err(|_| {
            SelectorError::new(format!(
                "for 'gt', 'lt' operators, the value must be an integer: {word:?} (key {key:?})"
            ))
        })
    }
}

fn checked_key(key: String) -> Result<String, SelectorError> {
    let problems = names::qualified_name(&key);
    if problems.is_empty() {
        return Ok(key);
    }
    Err(SelectorError::new(format!(
        "invalid label key {key:?}: {}",
        problems.join("; ")
    )))
}

fn checked_value(key: &str, value: String) -> Result<String, SelectorError> {
    let problems = names::label_value(&value);
    if problems.is_empty() {
        return Ok(value);
    }
    Err(SelectorError::new(format!(
        "invalid label value {value:?} for key {key:?}: {}",
        problems.join("; ")
    )))
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// A parsed field selector over `metadata.name` and `metadata.namespace`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Sorted and deduplicated; all must match.
    requirements: Vec<FieldRequirement>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FieldRequirement {
    field: Field,
    negated: bool,
    value: String,
}

/// The fields an MXJob can be selected by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Name,
    Namespace,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Name => "metadata.name",
            Field::Namespace => "metadata.namespace",
        }
    }
}

impl FieldSelector {
    /// Parses the text form of a field selector; blank text selects all.
    pub fn parse(text: &str) -> Result<FieldSelector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        let mut requirements = Vec::new();
        for term in split_unescaped_commas(text) {
            if term.trim().is_empty() {
                return Err(SelectorError::new(format!(
                    "invalid field selector {text:?}: empty term"
                )));
            }
            let (lhs, negated, rhs) = split_term(term).ok_or_else(|| {
                SelectorError::new(format!(
                    "invalid field selector term {term:?}: expected field=value, \
                     field==value or field!=value"
                ))
            })?;
            let field = match lhs.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => {
                    return Err(SelectorError::new(format!(
                        "field label not supported: {other}"
                    )))
                }
            };
            let value = unescape(rhs.trim())?;
            requirements.push(FieldRequirement {
                field,
                negated,
                value,
            });
        }
        requirements.sort();
        requirements.dedup();
        Ok(FieldSelector { requirements })
    }

    /// Whether every requirement holds for an object with this
    /// `metadata.name` and `metadata.namespace` (empty if cluster-scoped).
    pub fn matches(&self, name: &str, namespace: &str) -> bool {
        self.requirements.iter().all(|r| {
            let actual = match r.field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (actual == r.value) != r.negated
        })
    }

    /// Whether this selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", r.field.as_str(), escape(&r.value))?;
        }
        Ok(())
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_unescaped_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Splits a term at its first unescaped operator: `(field, negated, value)`.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        match c {
            '\\' => escaped = true,
            '!' if rest.starts_with("!=") => return Some((&term[..i], true, &term[i + 2..])),
            '=' if rest.starts_with("==") => return Some((&term[..i], false, &term[i + 2..])),
            '=' => return Some((&term[..i], false, &term[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Resolves `\\`, `\,` and `\=`; rejects other escapes and bare `,`/`=`.
fn unescape(raw: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::new(format!(
                        "invalid escape sequence \"\\{e}\" in field selector value {raw:?}"
                    )))
                }
                None => {
                    return Err(SelectorError::new(format!(
                        "field selector value {raw:?} ends with an unfinished escape '\\'"
                    )))
                }
            },
            ',' | '=' => {
                return Err(SelectorError::new(format!(
                    "unescaped '{c}' in field selector value {raw:?}; write it as '\\{c}'"
                )))
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The inverse of `unescape`.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One row: selector text, an object's labels, whether it matches.
    type MatchRow<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    /// Asserts each (selector, labels, expected) row.
    fn check_matches(rows: &[MatchRow<'_>]) {
        for (text, pairs, expected) in rows {
            let selector =
                LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
            assert_eq!(
                selector.matches(&labels(pairs)),
                *expected,
                "selector {text:?} against {pairs:?}"
            );
        }
    }

    #[test]
    fn empty_and_blank_label_selectors_match_everything() {
        for text in ["", " ", "\t\n "] {
            let selector = LabelSelector::parse(text).unwrap();
            assert!(selector.is_empty());
            assert_eq!(selector, LabelSelector::default());
            assert!(selector.matches(&labels(&[])));
            assert!(selector.matches(&labels(&[("a", "b")])));
            assert_eq!(selector.to_string(), "");
        }
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn equality_operators_match_only_equal_values() {
        check_matches(&[
            ("a=b", &[("a", "b")], true),
            ("a=b", &[("a", "c")], false),
            ("a=b", &[], false),
            ("a==b", &[("a", "b")], true),
            ("a==b", &[("a", "c")], false),
            ("a==b", &[("x", "b")], false),
            ("a=", &[("a", "")], true),
            ("a=", &[("a", "b")], false),
            ("a=", &[], false),
        ]);
    }

    #[test]
    fn double_equals_is_the_same_as_equals() {
        assert_eq!(
            LabelSelector::parse("a==b").unwrap(),
            LabelSelector::parse("a=b").unwrap()
        );
    }

    #[test]
    fn not_equals_matches_other_values_and_absent_keys() {
        check_matches(&[
            ("a!=b", &[("a", "c")], true),
            ("a!=b", &[], true),
            ("a!=b", &[("x", "b")], true),
            ("a!=b", &[("a", "b")], false),
            ("a!=", &[("a", "")], false),
            ("a!=", &[("a", "x")], true),
        ]);
    }

    #[test]
    fn in_matches_listed_values_only() {
        check_matches(&[
            ("a in (x,y)", &[("a", "x")], true),
            ("a in (x,y)", &[("a", "y")], true),
            ("a in (x,y)", &[("a", "z")], false),
            ("a in (x,y)", &[], false),
            ("a in (x)", &[("a", "x")], true),
            ("a in (x,)", &[("a", "")], true),
            ("a in (x)", &[("a", "")], false),
        ]);
    }

    #[test]
    fn notin_matches_unlisted_values_and_absent_keys() {
        check_matches(&[
            ("a notin (x,y)", &[("a", "z")], true),
            ("a notin (x,y)", &[], true),
            ("a notin (x,y)", &[("b", "x")], true),
            ("a notin (x,y)", &[("a", "x")], false),
            ("a notin (x,y)", &[("a", "y")], false),
        ]);
    }

    #[test]
    fn exists_and_does_not_exist_test_key_presence() {
        check_matches(&[
            ("a", &[("a", "")], true),
            ("a", &[("a", "x")], true),
            ("a", &[("b", "x")], false),
            ("a", &[], false),
            ("!a", &[], true),
            ("!a", &[("b", "x")], true),
            ("!a", &[("a", "")], false),
            ("!a", &[("a", "x")], false),
        ]);
    }

    #[test]
    fn greater_and_less_than_compare_integer_values() {
        check_matches(&[
            ("a>1", &[("a", "2")], true),
            ("a>1", &[("a", "1")], false),
            ("a>1", &[("a", "0")], false),
            ("a>1", &[("a", "10")], true),
            ("a>1", &[("a", "x")], false),
            ("a>1", &[], false),
            ("a<10", &[("a", "9")], true),
            ("a<10", &[("a", "10")], false),
            ("a<10", &[("a", "11")], false),
            ("a<10", &[("a", "nine")], false),
            ("a<10", &[("a", "")], false),
            ("a<10", &[], false),
            ("a>007", &[("a", "8")], true),
        ]);
    }

    #[test]
    fn comma_separated_requirements_must_all_match() {
        let all = [("a", "1"), ("b", "x"), ("c", "5")];
        check_matches(&[
            ("a=1,b in (x,y),c>4,!d", &all, true),
            ("a=1,b in (x,y),c>5,!d", &all, false),
            ("a=1,b notin (x),c", &all, false),
            ("a=2,b", &all, false),
            ("a,b,c", &all, true),
            ("a,b,c,d", &all, false),
            ("a=1,a!=1", &all, false),
            ("a=1,a=1", &all, true),
        ]);
    }

    #[test]
    fn whitespace_around_tokens_is_ignored() {
        let rows = [
            ("a=b", " a = b "),
            ("a==b", "a == b"),
            ("a!=b", "a  !=\tb"),
            ("a in (x,y)", "  a   in(  x ,  y  )  "),
            ("a notin (x,y)", "a notin(x,y)"),
            ("!a", " ! a "),
            ("a>1,b<2", "a > 1 , b < 2"),
            ("a,b", " a , b "),
        ];
        for (tight, loose) in rows {
            assert_eq!(
                LabelSelector::parse(tight).unwrap(),
                LabelSelector::parse(loose).unwrap(),
                "{tight:?} vs {loose:?}"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        let bad = [
            ",",
            "a=b,",
            ",a=b",
            "a=b,,c=d",
            "a in",
            "a in (",
            "a in (x",
            "a in (x,y",
            "a in x,y)",
            "a in (x))",
            "a in ()",
            "a notin ()",
            "a in (x y)",
            "a in ((x))",
            "a notin",
            "a>",
            "a<",
            "a>x",
            "a<1.5",
            "a>-1",
            "a>99999999999999999999",
            "a=b=c",
            "a==b==c",
            "a=(b)",
            "a b",
            "!",
            "!a=b",
            "!a in (x)",
            "!!a",
            "=b",
            "(a)",
            ")",
            "a$=b",
            "Bad$Key=x",
            "a=b$",
            "a=-b",
            "-a",
            "a/",
            "/a",
            "a/b/c",
            "Upper.Case/x",
            "a=b c",
            "a in (x$)",
        ];
        assert!(bad.len() >= 15);
        for text in bad {
            assert!(
                LabelSelector::parse(text).is_err(),
                "{text:?} should be rejected, got {:?}",
                LabelSelector::parse(text)
            );
        }
    }

    #[test]
    fn label_errors_name_the_offending_text() {
        let rows = [
            ("Bad$Key=x", "invalid label key \"Bad$Key\""),
            (
                "a=bad$value",
                "invalid label value \"bad$value\" for key \"a\"",
            ),
            ("a in ()", "values set can't be empty"),
            ("a notin ()", "values set can't be empty"),
            ("a>x", "must be an integer: \"x\""),
            ("a=b,", "unable to parse requirement: found end of string"),
            (
                "a in (x",
                "unable to parse requirement: found end of string",
            ),
            ("a b", "unable to parse requirement: found \"b\""),
            ("a=(b)", "unable to parse requirement: found '('"),
            ("a/b/c", "at most one '/'"),
        ];
        for (text, needle) in rows {
            let err = LabelSelector::parse(text).unwrap_err();
            assert!(
                err.message.contains(needle),
                "{text:?}: {:?} should contain {needle:?}",
                err.message
            );
            assert_eq!(err.to_string(), err.message);
        }
    }

    #[test]
    fn qualified_keys_and_label_values_follow_kubernetes_limits() {
        let name63 = format!("a{}", "b".repeat(62));
        let name64 = format!("a{}", "b".repeat(63));
        let prefix253 = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        let prefix254 = format!("{prefix253}e");
        let good_keys = [
            "a".to_string(),
            "A1".into(),
            "a-b_c.d".into(),
            "example.com/a".into(),
            "k8s.io/Name_x".into(),
            "in".into(),
            "notin".into(),
            name63.clone(),
            format!("{prefix253}/{name63}"),
        ];
        for key in &good_keys {
            assert!(LabelSelector::parse(key).is_ok(), "key {key:?}");
        }
        let bad_keys = [
            name64.clone(),
            format!("{prefix254}/a"),
            "a_".into(),
            ".a".into(),
            "Example.com/a".into(),
            "-x.com/a".into(),
            "x..com/a".into(),
            "x_y.com/a".into(),
            "é".into(),
        ];
        for key in &bad_keys {
            assert!(LabelSelector::parse(key).is_err(), "key {key:?}");
        }
        for value in ["", "x", "X.y-z_0", name63.as_str()] {
            assert!(
                LabelSelector::parse(&format!("k={value}")).is_ok(),
                "{value:?}"
            );
        }
        for value in [name64.as_str(), "x-", "_x", "a/b", "é"] {
            assert!(
                LabelSelector::parse(&format!("k={value}")).is_err(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn keywords_are_keys_outside_operator_position() {
        check_matches(&[
            ("in", &[("in", "x")], true),
            ("in=x", &[("in", "x")], true),
            ("notin in (in)", &[("notin", "in")], true),
            ("in notin (notin)", &[("in", "notin")], false),
        ]);
    }

    #[test]
    fn display_is_canonical() {
        let rows = [
            ("b=1,a=2", "a=2,b=1"),
            ("a==b", "a=b"),
            (" a in ( y , x , y ) ", "a in (x,y)"),
            ("a notin (x,)", "a notin (,x)"),
            ("! a", "!a"),
            ("a>007", "a>7"),
            ("a<3,a<3", "a<3"),
            ("a=", "a="),
        ];
        for (text, canonical) in rows {
            assert_eq!(LabelSelector::parse(text).unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn label_display_round_trips() {
        let rows = [
            "",
            "a",
            "!a",
            "a=b",
            "a==b",
            "a!=b",
            "a=",
            "a!=",
            "a in (x,y,z)",
            "a in (,x)",
            "a notin (x)",
            "a>5",
            "a<0",
            "example.com/a=B,x.y/z notin (1,2),!c,d>3",
            "in in (notin),notin",
        ];
        for text in rows {
            let parsed = LabelSelector::parse(text).unwrap();
            let shown = parsed.to_string();
            assert_eq!(
                LabelSelector::parse(&shown).unwrap(),
                parsed,
                "{text:?} displayed as {shown:?}"
            );
            assert_eq!(LabelSelector::parse(&shown).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn empty_and_blank_field_selectors_match_everything() {
        for text in ["", "  "] {
            let selector = FieldSelector::parse(text).unwrap();
            assert!(selector.is_empty());
            assert_eq!(selector, FieldSelector::default());
            assert!(selector.matches("a", "ns"));
            assert!(selector.matches("", ""));
        }
        assert!(!FieldSelector::parse("metadata.name=a").unwrap().is_empty());
    }

    #[test]
    fn field_selectors_match_name_and_namespace() {
        let rows: &[(&str, &str, &str, bool)] = &[
            ("metadata.name=a", "a", "ns", true),
            ("metadata.name=a", "b", "ns", false),
            ("metadata.name==a", "a", "ns", true),
            ("metadata.name!=a", "a", "ns", false),
            ("metadata.name!=a", "b", "ns", true),
            ("metadata.namespace=ns", "a", "ns", true),
            ("metadata.namespace=ns", "a", "other", false),
            ("metadata.namespace!=ns", "a", "other", true),
            ("metadata.namespace=", "a", "", true),
            ("metadata.namespace=", "a", "ns", false),
            ("metadata.name=a,metadata.namespace=ns", "a", "ns", true),
            ("metadata.name=a,metadata.namespace=ns", "a", "x", false),
            ("metadata.name=a,metadata.namespace=ns", "b", "ns", false),
            ("metadata.name!=a,metadata.name!=b", "c", "ns", true),
            ("metadata.name!=a,metadata.name!=b", "b", "ns", false),
            (
                " metadata.name = a , metadata.namespace != x ",
                "a",
                "ns",
                true,
            ),
            ("metadata.name=a\\,b", "a,b", "ns", true),
            ("metadata.name=a\\=b", "a=b", "ns", true),
            ("metadata.name=a\\\\b", "a\\b", "ns", true),
            ("metadata.name=a!b", "a!b", "ns", true),
        ];
        for (text, name, namespace, expected) in rows {
            let selector =
                FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
            assert_eq!(
                selector.matches(name, namespace),
                *expected,
                "{text:?} against {name:?}/{namespace:?}"
            );
        }
    }

    #[test]
    fn malformed_field_selectors_are_rejected() {
        let rows = [
            ("spec.foo=x", "field label not supported: spec.foo"),
            (
                "metadata.labels=x",
                "field label not supported: metadata.labels",
            ),
            ("status.phase!=x", "field label not supported: status.phase"),
            ("=x", "field label not supported: "),
            ("metadata.name", "expected field=value"),
            ("metadata.name~x", "expected field=value"),
            ("metadata.name=a,", "empty term"),
            (",metadata.name=a", "empty term"),
            ("metadata.name=a,,metadata.namespace=b", "empty term"),
            ("metadata.name=a=b", "unescaped '='"),
            ("metadata.name===a", "unescaped '='"),
            ("metadata.name=a\\x", "invalid escape sequence"),
            ("metadata.name=a\\", "unfinished escape"),
            ("metadata.name\\=a", "expected field=value"),
        ];
        for (text, needle) in rows {
            let err = FieldSelector::parse(text).unwrap_err();
            assert!(
                err.message.contains(needle),
                "{text:?}: {:?} should contain {needle:?}",
                err.message
            );
        }
    }

    #[test]
    fn field_display_is_canonical_and_round_trips() {
        let rows = [
            ("", ""),
            ("metadata.name==a", "metadata.name=a"),
            (
                "metadata.namespace=ns,metadata.name!=a",
                "metadata.name!=a,metadata.namespace=ns",
            ),
            (
                "metadata.name=a\\,b\\=c\\\\d",
                "metadata.name=a\\,b\\=c\\\\d",
            ),
            ("metadata.name = x , metadata.name=x", "metadata.name=x"),
            ("metadata.namespace=", "metadata.namespace="),
        ];
        for (text, canonical) in rows {
            let parsed = FieldSelector::parse(text).unwrap();
            let shown = parsed.to_string();
            assert_eq!(shown, canonical, "{text:?}");
            assert_eq!(FieldSelector::parse(&shown).unwrap(), parsed, "{text:?}");
        }
    }

    #[test]
    fn selector_error_is_a_std_error() {
        let err: Box<dyn std::error::Error> =
            Box::new(FieldSelector::parse("spec.x=1").unwrap_err());
        assert_eq!(err.to_string(), "field label not supported: spec.x");
    }

    /// The document's patterns for the selectors (`mxjob_api::constraints`).
    static LABEL_PATTERN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(&LABEL_SELECTOR).expect("the pattern compiles"));
    static FIELD_PATTERN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(&FIELD_SELECTOR).expect("the pattern compiles"));

    /// Whether the document's pattern takes `text` exactly when the
    /// server's parser does.
    fn label_agrees(text: &str) -> bool {
        LABEL_PATTERN.is_match(text) == LabelSelector::parse(text).is_ok()
    }

    fn field_agrees(text: &str) -> bool {
        FIELD_PATTERN.is_match(text) == FieldSelector::parse(text).is_ok()
    }

    /// Strings that match `pattern`, its anchors taken off (proptest's
    /// generator takes none).
    fn matching(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let inner = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .expect("an anchored pattern");
        proptest::string::string_regex(inner).expect("the pattern generates")
    }

    /// Text made of pieces that are or border on a selector's tokens, so
    /// that both what parses and what does not are drawn.
    fn pieces(vocabulary: &'static [&'static str]) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(vocabulary), 0..10)
            .prop_map(|pieces| pieces.concat())
    }

    const LABEL_PIECES: &[&str] = &[
        "a",
        "B9",
        "x.io/y",
        "a/b/c",
        "Example.com/n",
        "-a",
        "a-",
        "a_b.c",
        "in",
        "notin",
        "ain",
        "=",
        "==",
        "!=",
        "!",
        "<",
        ">",
        ",",
        "(",
        ")",
        " ",
        "\t",
        "\u{a0}",
        "\u{2003}",
        "\u{feff}",
        "\u{85}",
        "5",
        "0",
        "-5",
        "+5",
        "9223372036854775807",
        "9223372036854775808",
        "0000000000000000000000000000000000000000000009223372036854775807",
        "00000000000000000000000000000000000000000000000000000000000000001",
        "é",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];

    const FIELD_PIECES: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "metadata.names",
        "spec.x",
        "=",
        "==",
        "!=",
        "!",
        ",",
        "\\",
        "\\,",
        "\\=",
        "\\\\",
        "\\n",
        " ",
        "\t",
        "\u{85}",
        "\u{feff}",
        "a",
        "é",
        "\n",
    ];

    use std::sync::LazyLock;

    use mxjob_api::constraints::{FIELD_SELECTOR, LABEL_SELECTOR};
    use proptest::prelude::*;

    proptest! {
        /// The document states the label selector grammar as a pattern:
        /// text the pattern takes is text the server parses, and the
        /// other way round.
        #[test]
        fn document_label_selector_pattern_takes_exactly_what_the_parser_takes(
            text in pieces(LABEL_PIECES)
        ) {
            prop_assert!(label_agrees(&text), "{:?}", text);
        }

        /// Generated from the pattern, a selector parses, unless a key's
        /// prefix is longer than 253 characters: the one bound the
        /// pattern leaves to the server.
        #[test]
        fn every_label_selector_the_document_generates_parses(
            text in matching(&LABEL_SELECTOR)
        ) {
            if let Err(e) = LabelSelector::parse(&text) {
                prop_assert!(
                    e.message.contains("the prefix must be at most 253 characters long")
                        && !e.message.contains("; "),
                    "{:?}: {}", text, e
                );
            }
        }

        /// The same for field selectors.
        #[test]
        fn document_field_selector_pattern_takes_exactly_what_the_parser_takes(
            text in pieces(FIELD_PIECES)
        ) {
            prop_assert!(field_agrees(&text), "{:?}", text);
        }

        #[test]
        fn every_field_selector_the_document_generates_parses(
            text in matching(&FIELD_SELECTOR)
        ) {
            prop_assert!(FieldSelector::parse(&text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn document_selector_patterns_agree_with_the_parsers_on_edge_cases() {
        let labels = [
            "",
            " ",
            "a",
            "!a",
            "! a",
            "a=",
            "a= ,b",
            "a==b",
            "a!=b",
            "a in (b)",
            "a in(b,)",
            "a in (,)",
            "a in ()",
            "a in ( )",
            "ain (b)",
            "in in (in)",
            "a notin (b c)",
            "a>9223372036854775807",
            "a>9223372036854775808",
            "a<01",
            "a>0",
            "a<00",
            "a>10",
            "a > 1000000000000000000",
            "a>-1",
            "a,",
            ",a",
            "a,,b",
            "x.io/y=z",
            "x..io/y",
            "a b",
            "a=b=c",
        ];
        for text in labels {
            assert!(label_agrees(text), "{text:?}");
        }
        let long_value = format!("a={}", "b".repeat(63));
        let too_long = format!("a={}", "b".repeat(64));
        let padded = format!("a>{}1", "0".repeat(62));
        let overlong = format!("a>{}1", "0".repeat(63));
        for text in [&long_value, &too_long, &padded, &overlong] {
            assert!(label_agrees(text), "{text:?}");
        }
        let fields = [
            "",
            "  ",
            "metadata.name=a",
            " metadata.namespace != b ",
            "metadata.name==",
            "metadata.name===a",
            "metadata.name=a\\,b\\=c\\\\",
            "metadata.name=a\\",
            "metadata.name=a\\ ",
            "metadata.name=a\\x",
            "metadata.name=a,",
            "metadata.name=a,,metadata.name=b",
            "metadata.name!x=y",
            "\u{feff}metadata.name=a",
            "\u{85}metadata.name=a\u{85}",
            "spec.x=1",
        ];
        for text in fields {
            assert!(field_agrees(text), "{text:?}");
        }
    }
}
