//! "Did you mean" suggestions for misspelt names (fields, task ids, trigger rules, timezones).

/// Levenshtein distance between two strings, by characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo (a third of the word's length, at
/// least 1 from three characters on, or the same word in another case).
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = if len < 3 { 0 } else { (len / 3).max(1) };
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(word) { 0 } else { edit_distance(word, c) };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `", did you mean `x`?"` or nothing.
pub(crate) fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map_or_else(String::new, |c| format!(", did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let rows = [("", "", 0), ("abc", "abc", 0), ("retires", "retries", 2), ("kitten", "sitting", 3), ("", "ab", 2)];
        for (a, b, d) in rows {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn suggestions() {
        let fields = ["retries", "retry_delay", "queue", "depends_on"];
        assert_eq!(closest("retires", fields), Some("retries"));
        assert_eq!(closest("depend_on", fields), Some("depends_on"));
        assert_eq!(closest("Queue", fields), Some("queue"));
        assert_eq!(closest("banana", fields), None);
        assert_eq!(closest("c", ["a", "b"]), None);
        assert_eq!(hint("qeue", fields), ", did you mean `queue`?");
    }
}
