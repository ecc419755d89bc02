//! A guard in front of minijinja against expressions that would overflow the stack.
//!
//! minijinja's parser limits nesting (parentheses, lists, blocks), but it builds a chain — `x | f | f …`,
//! `x.a.a …`, `x(1)(1) …`, `1 + 1 + …`, `- - - 1` — in a loop, into an expression tree as deep as the chain is long,
//! and then walks that tree recursively. A chain of a few thousand links overflows a thread's stack, and a stack
//! overflow aborts the whole process (the server, as it loads a DAG file or renders a try) instead of failing the
//! template. So a tag that holds more operators than any real template needs is refused before minijinja sees it.
//!
//! The count is coarse on purpose: every operator character outside string literals (the `.` of a number too) and
//! every operator word, over the whole tag. It over-counts, which only has to stay far above what anyone writes and
//! far below the depth that overflows (about 6,000 links on a 2 MiB stack in a debug build).

/// The most operators one tag (`{{ … }}` or `{% … %}`) may hold.
pub(crate) const MAX_OPERATORS: usize = 1000;

/// Characters that start or are an operator, a filter, a test, an attribute, a subscript or a call.
const OPERATOR_CHARS: &[u8] = b"|.[(+-*/%~<>=!";

/// Words that chain expressions.
const OPERATOR_WORDS: [&str; 6] = ["and", "or", "not", "is", "in", "if"];

/// Refuses a template with a tag of more than [`MAX_OPERATORS`] operators, naming the tag's line.
pub(crate) fn check(source: &str) -> Result<(), String> {
    let bytes = source.as_bytes();
    let mut at = 0;
    while let Some(open) = find(bytes, at, b"{") {
        let close: &[u8] = match bytes.get(open + 1) {
            Some(b'{') => b"}}",
            Some(b'%') => b"%}",
            Some(b'#') => {
                // A comment ends at its first `#}`, as minijinja reads it.
                at = find(bytes, open + 2, b"#}").map_or(bytes.len(), |end| end + 2);
                continue;
            }
            _ => {
                at = open + 1;
                continue;
            }
        };
        let (end, operators) = scan_tag(bytes, open + 2, close);
        if operators > MAX_OPERATORS {
            let line = bytes[..open].iter().filter(|b| **b == b'\n').count() + 1;
            return Err(format!(
                "the tag on template line {line} chains more than {MAX_OPERATORS} operators, filters, attributes or \
                 calls; split it with `{{% set %}}`"
            ));
        }
        at = end;
    }
    Ok(())
}

/// Where the tag that starts at `start` ends, and how many operators it holds. As minijinja's lexer, the tag ends
/// at `close` outside string literals and with every bracket closed; a tag that never ends runs to the end.
fn scan_tag(bytes: &[u8], start: usize, close: &[u8]) -> (usize, usize) {
    let (mut i, mut depth, mut operators) = (start, 0i64, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if depth == 0 && bytes[i..].starts_with(close) {
            return (i + close.len(), operators);
        }
        match b {
            b'"' | b'\'' => {
                i = string_end(bytes, i);
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let word_end = bytes[i..].iter().position(|c| !c.is_ascii_alphanumeric() && *c != b'_');
                let word_end = word_end.map_or(bytes.len(), |n| i + n);
                operators += usize::from(OPERATOR_WORDS.iter().any(|w| w.as_bytes() == &bytes[i..word_end]));
                i = word_end;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        operators += usize::from(OPERATOR_CHARS.contains(&b));
        i += 1;
    }
    (bytes.len(), operators)
}

/// The index after the string literal that opens at `start`; a backslash escapes the next character.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|n| from + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(link: &str, n: usize) -> String {
        format!("{{{{ x{} }}}}", link.repeat(n))
    }

    #[test]
    fn long_chains_are_refused_with_their_line() {
        for link in [" | f", ".a", "(1)", "[0]", " + 1", " ~ 1", " and 1", " is odd"] {
            assert_eq!(check(&chain(link, MAX_OPERATORS)), Ok(()), "{link}");
            let err = check(&format!("a\n{}", chain(link, MAX_OPERATORS + 1))).expect_err(link);
            assert!(err.starts_with("the tag on template line 2 chains more than 1000 operators"), "{err}");
        }
        let block = format!("{{% set y = 1{} %}}", " ~ 1".repeat(MAX_OPERATORS + 1));
        assert!(check(&block).is_err());
        assert!(check(&format!("{{{{ {}1 }}}}", "-".repeat(MAX_OPERATORS + 1))).is_err());
    }

    #[test]
    fn only_what_is_inside_tags_counts() {
        let many = "|".repeat(3 * MAX_OPERATORS);
        let rows = [
            // Text, comments and strings are not expressions.
            format!("echo {many} {{{{ ds }}}}"),
            format!("{{# {many} #}}{{{{ ds }}}}"),
            format!("{{{{ '{many}' ~ \"{many}\" }}}}"),
            format!("{{{{ 'it\\'s {many}' }}}}"),
            // Each tag counts on its own.
            chain(" | f", MAX_OPERATORS).repeat(3),
        ];
        for template in rows {
            assert_eq!(check(&template), Ok(()), "{}", &template[..40]);
        }
    }

    #[test]
    fn a_tag_ends_where_minijinja_ends_it() {
        // `}}` inside a dict literal does not end the tag: the chain after it is still counted.
        let nested = format!("{{{{ {{'a': {{'b': 1}}}}{} }}}}", ".a".repeat(MAX_OPERATORS + 1));
        assert!(check(&nested).is_err());
        // A tag that never ends counts to the end of the template.
        assert!(check(&format!("{{{{ ({}", " | f".repeat(MAX_OPERATORS + 1))).is_err());
    }
}
