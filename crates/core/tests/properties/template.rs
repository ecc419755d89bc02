//! Rendering a task's template never panics: on random mixes of Jinja's delimiters, known and unknown names,
//! filters, tests and statements nested deep, on random text, and on every file of the `template` fuzz corpus.

use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::harness;

/// Names of the context in `harness::context`, with values of every JSON type behind them.
const KNOWN: &[&str] = &[
    "ds",
    "ts",
    "ds_nodash",
    "logical_date",
    "data_interval_end",
    "run_id",
    "dag_run.conf.full",
    "dag_run.conf.items",
    "params.n",
    "params.name",
    "params.nested.list",
    "params['nested']",
    "ti.try_number",
    "ti.map_index",
    "task_instance.dag_id",
    "var.value.bucket",
    "var.json.cfg.depth",
    "conn.db.host",
    "conn.db.port",
    "conn.db.extra_dejson.sslmode",
    "outputs.extract.rows",
    "outputs.count",
    "xcom.extract.path",
    "args.path",
    "ti.xcom_pull('extract')",
    "ti.xcom_pull(task_ids=['extract', 'count'])",
    "ti.xcom_pull(key='path')",
    "ti.xcom_pull(task_ids='extract', key='path', dag_id='other')",
    "ti.xcom_pull(1, 2, 3)",
    "dag.dag_id",
];

/// Names that are not in the context, or used in ways the values do not allow.
const UNKNOWN: &[&str] = &[
    "nope",
    "params.nope",
    "var.value.nope",
    "var.json.bucket",
    "conn.nope.host",
    "outputs.nope.rows",
    "ti.nope()",
    "ti.xcom_pull",
    "ds.nope",
    "params.n.x",
    "outputs.count[99]",
    "outputs.count[-1]",
    "loop.index",
    "self",
    "range",
    "namespace()",
    "undefined",
    "none",
    "x",
];

/// Literals at the edges of arithmetic, sizes and types.
const LITERALS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1.5",
    "1e308",
    "'a'",
    "''",
    "'%s %d'",
    "[]",
    "[1, 2]",
    "{}",
    "{'a': 1}",
    "none",
    "true",
    "(1, 2)",
    "'\\n'",
];

const FILTERS: &[&str] = &[
    "upper",
    "lower",
    "length",
    "first",
    "last",
    "int",
    "float",
    "string",
    "tojson",
    "trim",
    "list",
    "sort",
    "reverse",
    "unique",
    "abs",
    "round(-1)",
    "default('d')",
    "default(none, true)",
    "join(',')",
    "replace('a', '')",
    "truncate(3)",
    "indent(2)",
    "batch(0)",
    "slice(0)",
    "split",
    "title",
    "dictsort",
    "items",
    "map('upper')",
    "select('odd')",
    "selectattr('a')",
    "sum",
    "min",
    "max",
    "format(1)",
    "attr('a')",
    "pprint",
    "safe",
    "escape",
    "nope",
    "urlencode",
    "wordcount",
    "center(99999)",
    "int(base=1)",
    "groupby('a')",
    "chain",
];

const OPERATORS: &[&str] =
    &["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "and", "or", "in", "not in"];

/// Delimiters and block ends out of place.
const STRAYS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{-",
    "-}}",
    "{% raw %}",
    "{% endraw %}",
    "{",
    "}",
    "{% endif %}",
    "{% endfor %}",
    "{% else %}",
    "{% break %}",
    "{% continue %}",
    "'",
    "\"",
];

/// An expression: names, literals, filters, operators, calls, subscripts and conditions, nested. Each compound is
/// in parentheses, so that most are valid; one arm in ten leaves them out and lets precedence fall where it may.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => select(KNOWN).prop_map(str::to_owned),
        1 => select(UNKNOWN).prop_map(str::to_owned),
        2 => select(LITERALS).prop_map(str::to_owned),
        1 => "[a-z_]{1,6}",
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let compound = prop_oneof![
            3 => (inner.clone(), select(FILTERS)).prop_map(|(e, f)| format!("{e} | {f}")),
            3 => (inner.clone(), select(OPERATORS), inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            1 => inner.clone().prop_map(|e| format!("not {e}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            1 => (inner.clone(), inner.clone(), inner.clone()).prop_map(|(a, b, c)| format!("{a} if {b} else {c}")),
            1 => (select(vec!["range", "dict", "lipsum", "cycler", "joiner", "namespace", "debug"]), inner.clone())
                .prop_map(|(f, e)| format!("{f}({e})")),
            1 => (inner, select(vec!["defined", "none", "odd", "number", "string", "sameas(1)", "nope"]))
                .prop_map(|(e, t)| format!("{e} is {t}")),
        ];
        (compound, 0..10).prop_map(|(e, bare)| if bare == 0 { e } else { format!("({e})") })
    })
}

/// A template: text, expressions and statements nested, now and then a block left open or closed twice.
fn template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        2 => "[a-z $|.\n]{0,12}",
        4 => expression().prop_map(|e| format!("{{{{ {e} }}}}")),
    ];
    leaf.prop_recursive(5, 64, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 1..4).prop_map(|parts| parts.concat()),
            2 => (expression(), inner.clone(), inner.clone())
                .prop_map(|(e, a, b)| format!("{{% if {e} %}}{a}{{% else %}}{b}{{% endif %}}")),
            2 => (expression(), inner.clone())
                .prop_map(|(e, body)| format!("{{% for x in {e} %}}{body}{{{{ x }}}}{{% endfor %}}")),
            1 => (expression(), inner.clone()).prop_map(|(e, body)| format!("{{% set y = {e} %}}{body}{{{{ y }}}}")),
            1 => inner.clone().prop_map(|body| format!("{{% macro m(a) %}}{body}{{% endmacro %}}{{{{ m(1) }}}}")),
            1 => (select(FILTERS), inner.clone())
                .prop_map(|(f, body)| format!("{{% filter {f} %}}{body}{{% endfilter %}}")),
            1 => (expression(), inner.clone()).prop_map(|(e, body)| format!("{{% with z = {e} %}}{body}{{% endwith %}}")),
            // A block left open, or closed twice.
            1 => (expression(), inner.clone()).prop_map(|(e, body)| format!("{{% if {e} %}}{body}")),
            1 => inner.prop_map(|body| format!("{body}{{% endfor %}}{{% endif %}}")),
        ]
    })
}

#[test]
fn the_corpus_does_not_panic() {
    crate::replay_corpus("template", harness::template);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    crate::at_depths(harness::template, |depth| {
        vec![
            format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth)),
            format!("{{{{ {}1{} }}}}", "[".repeat(depth), "]".repeat(depth)),
            format!("{{{{ 1{} }}}}", " | upper".repeat(depth)),
            format!("{{{{ {}1 }}}}", "not ".repeat(depth)),
            format!("{}x{}", "{% if true %}".repeat(depth), "{% endif %}".repeat(depth)),
            format!("{}x{}", "{% for a in [1] %}".repeat(depth), "{% endfor %}".repeat(depth)),
            format!("{{{{ params{} }}}}", ".nested".repeat(depth)),
            format!("{{{{ range{} }}}}", "(1)".repeat(depth)),
            format!("{{{{ {}1 }}}}", "- ".repeat(depth)),
            format!("{{% set y = 1{} %}}{{{{ y }}}}", " ~ 1".repeat(depth)),
        ]
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn random_templates_do_not_panic(text in template()) {
        harness::template(text.as_bytes());
    }

    #[test]
    fn a_stray_delimiter_does_not_panic(text in template(), at in any::<Index>(), stray in select(STRAYS)) {
        let at = text.char_indices().nth(at.index(text.chars().count() + 1)).map_or(text.len(), |(i, _)| i);
        harness::template(format!("{}{stray}{}", &text[..at], &text[at..]).as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_text_does_not_panic(text in "([{}%#\\-]|\\{\\{|\\}\\}|\\{%|%\\}| |[a-z.()|'\"]){0,60}") {
        harness::template(text.as_bytes());
    }
}
