//! Value-by-value string steps — text cleanup, PII hashing and masking — as plain functions over `&str`, applied to
//! a column by [`map_strings`]. Missing values stay missing.

use polars::prelude::*;
use sha2::{Digest, Sha256};
use sluice_core::ops_spec::{TextCase, TextClean};

use crate::error::Result;
use crate::frame;

/// Replace column `name` by `f` of each value (numbers are first written as text).
pub(super) fn map_strings(df: &mut DataFrame, name: &str, f: impl Fn(&str) -> String) -> Result<()> {
    let mapped: StringChunked = frame::strings(df, name)?.iter().map(|v| v.map(&f)).collect();
    df.with_column(mapped.with_name(name.into()).into_series().into())?;
    Ok(())
}

/// Apply the cleanups in a fixed order: punctuation first, so that `"a - b"` collapses to `"a b"`, then
/// whitespace, trimming, and case.
pub(super) fn clean_text(value: &str, spec: &TextClean) -> String {
    let mut s: String =
        if spec.punctuation { value.chars().filter(|c| !c.is_ascii_punctuation()).collect() } else { value.to_owned() };
    if spec.whitespace {
        s = collapse_whitespace(&s);
    }
    if spec.trim {
        s = s.trim().to_owned();
    }
    match spec.case {
        Some(TextCase::Lower) => s.to_lowercase(),
        Some(TextCase::Upper) => s.to_uppercase(),
        None => s,
    }
}

/// Each run of whitespace (spaces, tabs, newlines) becomes one space; trimming the ends is the `trim` option.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if !c.is_whitespace() {
            out.push(c);
        } else if !in_run {
            out.push(' ');
        }
        in_run = c.is_whitespace();
    }
    out
}

/// SHA-256 of salt and value, hex. The salt keeps common values (emails, names) from being looked up in a table
/// of precomputed hashes.
pub(super) fn hash_value(value: &str, salt: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(value.as_bytes());
    hex::encode(hasher.finalize())
}

/// Every character but the last `keep_last` becomes `*`; the length is kept so formats stay recognisable.
pub(super) fn mask_value(value: &str, keep_last: usize) -> String {
    let n = value.chars().count();
    value.chars().enumerate().map(|(i, c)| if i + keep_last < n { '*' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(trim: bool, case: Option<TextCase>, punctuation: bool, whitespace: bool) -> TextClean {
        TextClean { columns: vec![], trim, case, punctuation, whitespace }
    }

    #[test]
    fn clean_text_table() {
        let rows = [
            (spec(true, None, false, false), "  Hello,  World! ", "Hello,  World!"),
            (spec(false, Some(TextCase::Lower), false, false), "MiXeD", "mixed"),
            (spec(false, Some(TextCase::Upper), false, false), "MiXeD", "MIXED"),
            (spec(false, None, true, false), "a-b, c!", "ab c"),
            (spec(false, None, false, true), "a \t b\n\nc", "a b c"),
            (spec(true, Some(TextCase::Lower), true, true), "  Dream - Island!! ", "dream island"),
            (spec(false, None, false, false), " as is ", " as is "),
        ];
        for (s, input, want) in rows {
            assert_eq!(clean_text(input, &s), want, "{input:?} with {s:?}");
        }
    }

    #[test]
    fn hash_is_salted_sha256() {
        // sha256("") is the well-known e3b0c442…
        assert!(hash_value("", "").starts_with("e3b0c44298fc1c149afbf4c8996fb924"));
        assert_eq!(hash_value("bob", "s1"), hash_value("bob", "s1"));
        assert_ne!(hash_value("bob", "s1"), hash_value("bob", "s2"));
        assert_eq!(hash_value("bob", "s1").len(), 64);
    }

    #[test]
    fn mask_keeps_the_tail() {
        assert_eq!(mask_value("0612345678", 2), "********78");
        assert_eq!(mask_value("ab", 5), "ab");
        assert_eq!(mask_value("été", 0), "***");
    }
}
