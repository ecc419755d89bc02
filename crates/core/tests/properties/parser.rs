//! The DAG loader never panics: on arbitrary bytes and text, on real DAG files (every YAML file of `dags/`) with
//! lines deleted, duplicated, swapped, replaced and inserted, and on every file of the `dag_parser` fuzz corpus.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::harness;

/// Fields the loader knows, so that inserted lines reach the checks behind the field names.
const KEYS: &str = "\
    dag_id description schedule start_date end_date catchup timezone tags params default_args tasks groups id \
    kind depends_on trigger_rule command script env cwd retries retry_delay retry_exponential_backoff \
    max_retry_delay execution_timeout queue pool priority_weight weight_rule pool_slots expand expand_kwargs \
    partial max_map_length branch short_circuit skip_on_exit_code inputs outputs op_kwargs callable requirements \
    mode poke_interval timeout soft_fail sensor max_active_runs max_active_tasks dagrun_timeout access_control \
    on_failure on_retry depends_on_past wait_for_downstream source sql steps checks type default minimum enum \
    $ref <<";

/// Values at the edges of what the fields accept.
const VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "-1",
    "0",
    "4294967296",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    ".nan",
    ".inf",
    "true",
    "yes",
    "[]",
    "{}",
    "[a, b",
    "{a: 1",
    "\"{{ ds }}\"",
    "\"{{\"",
    "'{% for x in %}'",
    "\"{{ params.n | nope }}\"",
    "\"@daily\"",
    "@daily",
    "\"*/0 * * * *\"",
    "\"0 0 30 2 *\"",
    "\"61 25 * * *\"",
    "2026-02-30",
    "9999-12-31T23:59:59",
    "0001-01-01",
    "\"-1s\"",
    "99999999999999999h",
    "0s",
    "1.5.2m",
    "Europe/Paris",
    "Mars/Olympus",
    "*nope",
    "&a x",
    "!!binary aGVsbG8=",
    "!!int x",
    "|",
    ">-",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "[[[[[[[[]]]]]]]]",
    "{output: extract}",
    "{output: nope}",
    "[extract, extract]",
    "[self]",
    "{type: integer, minimum: 5, maximum: 1}",
    "{type: nope}",
    "{$ref: \"#/nope\"}",
    "[[1, 2], [3]]",
    "{name: x}",
    "- - - -",
    "? complex",
    "'''",
    "\t",
    "a: b: c",
];

/// One change to a DAG file, at a line chosen by index.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// The value of a `key: value` line, key and indentation kept.
    SetValue(Index, String),
    /// A `key: value` line after a line, at its indentation.
    InsertField(Index, String, String),
    /// A line of anything.
    Replace(Index, String),
    /// Cut the file at a character.
    Truncate(Index),
}

/// The indentation of a line, counting a list item's `- ` as indentation.
fn indentation(line: &str) -> String {
    let spaces = line.len() - line.trim_start().len();
    let dash = usize::from(line.trim_start().starts_with("- ")) * 2;
    " ".repeat(spaces + dash)
}

fn apply(source: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match edit {
            Edit::Delete(at) => {
                lines.remove(at.index(n));
            }
            Edit::Duplicate(at) => {
                let line = lines[at.index(n)].clone();
                lines.insert(at.index(n), line);
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::SetValue(at, value) => {
                let line = &mut lines[at.index(n)];
                if let Some(colon) = line.find(": ").or_else(|| line.ends_with(':').then(|| line.len() - 1)) {
                    line.truncate(colon);
                    line.push_str(": ");
                    line.push_str(value);
                }
            }
            Edit::InsertField(at, key, value) => {
                let at = at.index(n);
                let line = format!("{}{key}: {value}", indentation(&lines[at]));
                lines.insert(at + 1, line);
            }
            Edit::Replace(at, line) => lines[at.index(n)] = line.clone(),
            Edit::Truncate(at) => {
                let text = lines.join("\n");
                let cut = text.char_indices().nth(at.index(text.chars().count() + 1)).map_or(text.len(), |(i, _)| i);
                lines = text[..cut].lines().map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => select(KEYS.split_whitespace().collect::<Vec<_>>()).prop_map(str::to_owned), 1 => "[a-z_]{1,12}"]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(VALUES).prop_map(str::to_owned),
        2 => "[a-z0-9_.]{0,12}",
        1 => "\"[ !#-\\[\\]-~]{0,24}\"",
        1 => "[ -~]{0,24}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        6 => (any::<Index>(), value()).prop_map(|(at, value)| Edit::SetValue(at, value)),
        5 => (any::<Index>(), key(), value()).prop_map(|(at, key, value)| Edit::InsertField(at, key, value)),
        1 => (any::<Index>(), "[ -~]{0,40}").prop_map(|(at, line)| Edit::Replace(at, line)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Every YAML file below `dags/`, read once: a DAG added there is mutated too.
fn dag_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, files: &mut Vec<(String, String)>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for path in entries.map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path()) {
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                files.push((path.display().to_string(), text));
            }
        }
    }
    let mut files = Vec::new();
    walk(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dags"), &mut files);
    files.sort();
    assert!(files.len() > 5, "the example DAGs are in dags/");
    files
}

#[test]
fn every_dag_file_loads_and_is_usable() {
    for (name, source) in dag_files() {
        assert!(sluice_core::load_dag(&name, &source).is_ok(), "{name} loads");
        harness::dag_file(source.as_bytes());
    }
}

#[test]
fn the_corpus_does_not_panic() {
    crate::replay_corpus("dag_parser", harness::dag_file);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    crate::at_depths(harness::dag_file, |depth| {
        vec![
            format!("dag_id: x\ntasks: {}{}", "[".repeat(depth), "]".repeat(depth)),
            format!("dag_id: x\ntasks: {}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
            format!("dag_id: x\ntasks:\n{}", (0..depth).map(|i| format!("{}- \n", " ".repeat(i))).collect::<String>()),
            format!(
                "dag_id: x\nparams:\n{}",
                (0..depth).map(|i| format!("{}a{i}:\n", " ".repeat(i))).collect::<String>()
            ),
            format!("dag_id: x\nparams: {{p: {{default: {}1{}}}}}\ntasks: []", "[".repeat(depth), "]".repeat(depth)),
        ]
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn mutated_dag_files_do_not_panic(
        file in select(dag_files()),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        harness::dag_file(apply(&file.1, &edits).as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        harness::dag_file(&bytes);
    }

    #[test]
    fn yaml_shaped_text_does_not_panic(text in "([a-z_]{1,8}|[:\\-\\[\\]{},&*!|>'\"#%@` \n]|  |\\{\\{|\\}\\}){0,80}") {
        harness::dag_file(text.as_bytes());
    }
}
