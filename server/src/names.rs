//! Kubernetes' rules for names, in one place: DNS-1123 labels (object
//! names, namespaces), `generateName` prefixes, qualified names (label and
//! annotation keys: `[prefix/]name`) and label values. Each check returns
//! its problems in words (empty when the value is fine), so that admission
//! can put them in a `422` cause and selectors in a `400`.

/// Longest DNS-1123 label (names, namespaces, name part of qualified names).
pub const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (prefix of qualified names).
pub const SUBDOMAIN_MAX: usize = 253;

pub const LABEL_TOO_LONG: &str = "must be at most 63 characters long";
pub const LABEL_SHAPE: &str = "must use only lower-case letters, digits and '-', \
    and begin and end with a letter or digit (such as 'job-1')";

/// Problems of a DNS-1123 label (a name or namespace; empty = valid).
pub fn dns1123_label(value: &str) -> Vec<String> {
    if value.is_empty() {
        return vec!["must not be empty".to_string()];
    }
    let mut problems = Vec::new();
    if value.len() > LABEL_MAX {
        problems.push(LABEL_TOO_LONG.to_string());
    }
    if !label_shape_ok(value) {
        problems.push(LABEL_SHAPE.to_string());
    }
    problems
}

/// Whether `value` is a DNS-1123 label.
pub fn is_dns1123_label(value: &str) -> bool {
    dns1123_label(value).is_empty()
}

/// Validates a generateName prefix (may end with '-'); returns problems.
///
/// A trailing '-' is allowed because the server appends random characters.
/// Like Kubernetes, the prefix may be up to 63 characters: the name
/// generator is expected to shorten it so the full name still fits.
pub fn generate_name_prefix(value: &str) -> Vec<String> {
    match value.strip_suffix('-') {
        // Check "abc-" as "abca", which keeps "-" and "a--b-" honest.
        Some(head) if !head.is_empty() => dns1123_label(&format!("{head}a")),
        _ => dns1123_label(value),
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without the length limit.
pub fn label_shape_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, without the length limit.
fn name_part_shape_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

const NAME_PART_SHAPE: &str = "may use only letters, digits, '-', '_' and '.', \
    and must begin and end with a letter or digit";

/// Problems of a label or annotation key: `[prefix/]name`.
pub fn qualified_name(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("the prefix before '/' must not be empty".to_string());
            } else {
                if prefix.len() > SUBDOMAIN_MAX {
                    problems.push("the prefix must be at most 253 characters long".to_string());
                }
                if !prefix.split('.').all(label_shape_ok) {
                    problems.push(
                        "the prefix must be a DNS subdomain: dot-separated parts of lower-case \
                         letters, digits and '-', each beginning and ending with a letter or digit"
                            .to_string(),
                    );
                }
            }
            *name
        }
        _ => {
            problems.push(
                "may contain at most one '/', after an optional DNS subdomain prefix".to_string(),
            );
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("the name part must not be empty".to_string());
    } else {
        if name.len() > LABEL_MAX {
            problems.push("the name part must be at most 63 characters long".to_string());
        }
        if !name_part_shape_ok(name) {
            problems.push(format!("the name part {NAME_PART_SHAPE}"));
        }
    }
    problems
}

/// Problems of a label value (empty is fine).
pub fn label_value(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.is_empty() {
        return problems;
    }
    if value.len() > LABEL_MAX {
        problems.push(LABEL_TOO_LONG.to_string());
    }
    if !name_part_shape_ok(value) {
        problems.push(format!("a label value {NAME_PART_SHAPE}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxjob_api::constraints::DNS_LABEL;
    use proptest::prelude::*;

    /// Whether the document's pattern and `maxLength` (63) take `value`.
    fn stated(pattern: &str, value: &str) -> bool {
        let pattern = regex::Regex::new(pattern).expect("the document's pattern compiles");
        pattern.is_match(value) && value.chars().count() <= LABEL_MAX
    }

    proptest! {
        /// The document states a container's name as a pattern and a
        /// length (`mxjob_api::constraints`): a name the schema takes is one
        /// the server takes, and the other way round.
        #[test]
        fn document_label_pattern_takes_exactly_what_the_label_check_takes(
            value in prop_oneof![
                "[a-z0-9-]{0,3}",
                "[a-z0-9-]{60,66}",
                "[a-z0-9.-]{0,66}",
                "[a-zA-Z0-9._/é -]{0,66}",
            ]
        ) {
            prop_assert_eq!(stated(DNS_LABEL, &value), dns1123_label(&value).is_empty());
        }
    }

    #[test]
    fn dns1123_label_accepts_valid_labels() {
        for ok in ["a", "0", "job-1", "a-b-c", "123", &"a".repeat(63)] {
            assert!(dns1123_label(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn dns1123_label_rejects_bad_labels() {
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a_b",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!dns1123_label(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn dns1123_label_reports_length_and_shape_separately() {
        assert_eq!(dns1123_label(&"a".repeat(64)).len(), 1);
        assert_eq!(dns1123_label(&format!("-{}", "a".repeat(64))).len(), 2);
    }

    #[test]
    fn generate_name_prefix_allows_trailing_dash() {
        for ok in ["job-", "job", "a--", "mxnet-job-", "a-"] {
            assert!(generate_name_prefix(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn generate_name_prefix_rejects_bad_prefixes() {
        for bad in [
            "",
            "-",
            "-job-",
            "Job-",
            "job_-",
            "a.b-",
            &format!("{}-", "a".repeat(63)),
        ] {
            assert!(!generate_name_prefix(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_follow_kubernetes_rules() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "example.com/A_b.c-D",
            "x/y",
            &"a".repeat(63),
        ] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "/name",
            "prefix/",
            "a/b/c",
            "Example.com/name",
            "example..com/name",
            "bad key",
            "-app",
            "app_",
            &"a".repeat(64),
            &format!("{}/x", "a".repeat(254)),
        ] {
            assert!(!qualified_name(bad).is_empty(), "{bad}");
        }
    }
}
