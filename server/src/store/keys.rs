//! Key ranges, as every backend reads them.
//!
//! Keys compare as bytes (the order etcd uses), and the keys under a prefix
//! are the range from the prefix up to [`prefix_end`]. A paged list starts
//! just after the last key of the previous page ([`list_start`]). What a
//! range open at the top is written as differs by backend (SQLite compares
//! with `[0xff]`, which no UTF-8 key reaches; etcd's range end `"\0"` means
//! "to the end of the keyspace"), so [`prefix_end`] leaves that to them.

/// The smallest byte string above every string that starts with `prefix`:
/// the prefix with its last byte below 0xff incremented and what follows
/// it dropped. `None` when there is none (an empty prefix, or one of 0xff
/// bytes only): the range is open at the top.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where a list of the keys under a prefix starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start<'a> {
    /// At this key (the prefix itself), inclusive.
    At(&'a str),
    /// Just after this key (the last key of the previous page), exclusive.
    After(&'a str),
}

/// The start of a list under `prefix` that continues after `start_after`:
/// just after it when it lies at or beyond the prefix, at the prefix
/// otherwise (a continue key before the prefix adds nothing).
pub(crate) fn list_start<'a>(prefix: &'a str, start_after: Option<&'a str>) -> Start<'a> {
    match start_after {
        Some(after) if after >= prefix => Start::After(after),
        _ => Start::At(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_byte_string_after_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"\xff"), None);
    }

    #[test]
    fn a_list_starts_just_after_the_continue_key_or_at_the_prefix() {
        assert_eq!(list_start("/p/", None), Start::At("/p/"));
        assert_eq!(list_start("/p/", Some("/p/b")), Start::After("/p/b"));
        assert_eq!(list_start("/p/", Some("/p/")), Start::After("/p/"));
        assert_eq!(list_start("/p/", Some("/a")), Start::At("/p/"));
    }
}
