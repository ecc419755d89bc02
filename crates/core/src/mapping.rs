//! Dynamic task mapping: one task instance per element of a list, as Airflow's `expand` and `expand_kwargs`.
//!
//! A mapped task is created with one placeholder instance (`map_index` -1). When its trigger rule is met, the
//! scheduler asks [`map_length`] how many instances the lists make and replaces the placeholder with instances
//! 0..n (or skips it when a list is empty, as Airflow does). Each instance's arguments are not stored: they are
//! recomputed from the same lists by [`mapped_args`] when the instance is rendered, so they cannot disagree.
//!
//! A list is written in the DAG file or is the output of an upstream task. Such an output is checked when that task
//! succeeds ([`check_mapped_outputs`]): one that is not a list, or longer than `max_map_length`, fails the
//! upstream task's try with a message saying which mapped task needed a list, as Airflow fails the task that pushed
//! an unmappable value; nothing is expanded from it.
//!
//! Several arguments in `expand` map over their cross product, the last argument varying fastest (Airflow's order).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dag::Dag;
use crate::spec::TaskSpec;

/// Airflow's `[core] max_map_length`.
pub const DEFAULT_MAX_MAP_LENGTH: usize = 1024;

/// Where a mapped argument's values come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MapSource {
    /// Written in the DAG file.
    Literal(Vec<Value>),
    /// The output of an upstream task, which must be a list (of objects, for `expand_kwargs`).
    Output { output: String },
}

/// The mapping form of [`MapSource`], read on its own so that unknown keys are reported by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputForm {
    output: String,
}

impl<'de> Deserialize<'de> for MapSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of values, or {output: <upstream task id>}")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<MapSource, A::Error> {
                Vec::<Value>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(MapSource::Literal)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MapSource, A::Error> {
                let form = OutputForm::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MapSource::Output { output: form.output })
            }
        }
        d.deserialize_any(V)
    }
}

impl MapSource {
    /// The upstream task whose output this is, if any.
    pub fn upstream(&self) -> Option<&str> {
        match self {
            MapSource::Literal(_) => None,
            MapSource::Output { output } => Some(output),
        }
    }
}

/// `expand:` — argument name → values, in the order of the file (it decides the order of the cross product).
///
/// It is written as a mapping, and stored as a list of `[name, values]` pairs: a JSON object read into a
/// `serde_json::Value` forgets the order of its keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MapArgs(pub Vec<(String, MapSource)>);

impl MapArgs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for MapArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapArgs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of argument names to lists or {output: <upstream task id>}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MapArgs, A::Error> {
                let mut args = Vec::new();
                while let Some(entry) = map.next_entry::<String, MapSource>()? {
                    push_arg(&mut args, entry)?;
                }
                Ok(MapArgs(args))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<MapArgs, A::Error> {
                let mut args = Vec::new();
                while let Some(entry) = seq.next_element::<(String, MapSource)>()? {
                    push_arg(&mut args, entry)?;
                }
                Ok(MapArgs(args))
            }
        }
        fn push_arg<E: de::Error>(
            args: &mut Vec<(String, MapSource)>,
            (name, source): (String, MapSource),
        ) -> Result<(), E> {
            if args.iter().any(|(n, _)| *n == name) {
                return Err(E::custom(format!("argument `{name}` is expanded twice")));
            }
            args.push((name, source));
            Ok(())
        }
        d.deserialize_any(V)
    }
}

/// Why a mapped task cannot be expanded, or an output cannot be mapped over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("task `{mapped}` expands over the output of `{upstream}`, which must be a list{of_objects}; got {got}")]
    NotAList { mapped: String, upstream: String, of_objects: &'static str, got: String },
    #[error(
        "task `{mapped}` would be expanded into {length} instances, more than its max_map_length of {max} \
         (set `max_map_length` on it to allow more)"
    )]
    TooLong { mapped: String, length: usize, max: usize },
    #[error("task `{mapped}` expands over the output of `{upstream}`, which has none")]
    NoOutput { mapped: String, upstream: String },
    #[error(
        "instance {map_index} of task `{mapped}` no longer exists: its lists now make {length} instances \
         (an upstream task ran again with a shorter output; clear the whole task to expand it again)"
    )]
    Gone { mapped: String, map_index: usize, length: usize },
}

impl TaskSpec {
    /// Whether the task has one instance per element of a list.
    pub fn is_mapped(&self) -> bool {
        !self.expand.is_empty() || self.expand_kwargs.is_some()
    }

    /// The upstream tasks whose outputs the task expands over.
    pub fn map_upstreams(&self) -> impl Iterator<Item = &str> {
        self.map_sources().filter_map(MapSource::upstream)
    }

    /// Where the lists come from: `expand` in order, then `expand_kwargs`.
    pub fn map_sources(&self) -> impl Iterator<Item = &MapSource> {
        self.expand.0.iter().map(|(_, source)| source).chain(&self.expand_kwargs)
    }

    /// Names the task whose output the `k`th of [`Self::map_sources`] is (a task group's loader gives full ids).
    pub(crate) fn set_map_upstream(&mut self, k: usize, task_id: String) {
        let mut sources = self.expand.0.iter_mut().map(|(_, source)| source).chain(&mut self.expand_kwargs);
        if let Some(MapSource::Output { output }) = sources.nth(k) {
            *output = task_id;
        }
    }

    fn max_map_length(&self) -> usize {
        self.max_map_length.map_or(DEFAULT_MAX_MAP_LENGTH, |max| usize::try_from(max).unwrap_or(usize::MAX))
    }
}

/// The lists a mapped task expands over, in `expand` order (`expand_kwargs` is one list), read from `outputs`
/// (upstream task id → output; a mapped upstream's outputs as one list in `map_index` order).
fn lists<'a>(task: &'a TaskSpec, outputs: &'a BTreeMap<String, Value>) -> Result<Vec<&'a [Value]>, MapError> {
    task.map_sources()
        .map(|source| match source {
            MapSource::Literal(values) => Ok(values.as_slice()),
            MapSource::Output { output } => match outputs.get(output) {
                Some(Value::Array(values)) => Ok(values.as_slice()),
                Some(other) => Err(not_a_list(task, output, other)),
                None => Err(MapError::NoOutput { mapped: task.id.clone(), upstream: output.clone() }),
            },
        })
        .collect()
}

fn not_a_list(task: &TaskSpec, upstream: &str, got: &Value) -> MapError {
    let mut got = got.to_string();
    if got.len() > 200 {
        got = format!("{}…", got.chars().take(200).collect::<String>());
    }
    let of_objects = if task.expand_kwargs.is_some() { " of objects" } else { "" };
    MapError::NotAList { mapped: task.id.clone(), upstream: upstream.to_owned(), of_objects, got }
}

/// How many instances a mapped task expands into (0: the task is skipped).
pub fn map_length(task: &TaskSpec, outputs: &BTreeMap<String, Value>) -> Result<usize, MapError> {
    let length = lists(task, outputs)?.iter().map(|list| list.len()).product();
    let max = task.max_map_length();
    if length > max {
        return Err(MapError::TooLong { mapped: task.id.clone(), length, max });
    }
    Ok(length)
}

/// The arguments of instance `map_index` of a mapped task: its `partial` ones, and one element of each list.
pub fn mapped_args(
    task: &TaskSpec,
    outputs: &BTreeMap<String, Value>,
    map_index: usize,
) -> Result<BTreeMap<String, Value>, MapError> {
    let mut args: BTreeMap<String, Value> = task.partial.clone();
    let lists = lists(task, outputs)?;
    let length: usize = lists.iter().map(|list| list.len()).product();
    if map_index >= length {
        return Err(MapError::Gone { mapped: task.id.clone(), map_index, length });
    }
    let mut rest = map_index;
    let mut picked: Vec<&Value> = vec![&Value::Null; lists.len()];
    // Every list is non-empty here, since their product is above `map_index`.
    for (slot, list) in picked.iter_mut().zip(&lists).rev() {
        if let Some(value) = list.get(rest % list.len()) {
            *slot = value;
        }
        rest /= list.len();
    }
    for ((name, _), value) in task.expand.0.iter().zip(&picked) {
        args.insert(name.clone(), (*value).clone());
    }
    if task.expand_kwargs.is_some()
        && let Some(Value::Object(kwargs)) = picked.last()
    {
        args.extend(kwargs.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(args)
}

/// Checks the output of `task_id`, which just succeeded, for every task that expands over it: a list (of objects
/// for `expand_kwargs`) no longer than the mapped task allows. An error fails the try that produced the output.
///
/// The instances of a mapped task are not checked: each outputs one element of the list its downstream tasks see.
pub fn check_mapped_outputs(dag: &Dag, task_id: &str, output: Option<&Value>) -> Result<(), MapError> {
    if dag.task(task_id).is_none_or(TaskSpec::is_mapped) {
        return Ok(());
    }
    for mapped in dag.downstream(task_id).into_iter().filter_map(|id| dag.task(id)) {
        let expand = mapped.expand.0.iter().map(|(_, source)| (source, false));
        let sources = expand.chain(mapped.expand_kwargs.iter().map(|source| (source, true)));
        for (_, kwargs) in sources.filter(|(source, _)| source.upstream() == Some(task_id)) {
            let output = output.unwrap_or(&Value::Null);
            let Value::Array(values) = output else { return Err(not_a_list(mapped, task_id, output)) };
            if kwargs && !values.iter().all(Value::is_object) {
                return Err(not_a_list(mapped, task_id, output));
            }
            let max = mapped.max_map_length();
            if values.len() > max {
                return Err(MapError::TooLong { mapped: mapped.id.clone(), length: values.len(), max });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::load_dag;

    const DAG: &str = r#"
dag_id: m
tasks:
  - {id: list, script: "true"}
  - id: each
    expand:
      size: [s, l]
      colour: {output: list}
    partial: {unit: cm}
    max_map_length: 6
    script: echo {{ args.size }}
  - id: kw
    expand_kwargs: {output: list}
    script: "true"
"#;

    fn dag() -> Dag {
        load_dag("m.yaml", DAG).expect("valid DAG")
    }

    #[test]
    fn a_cross_product_varies_the_last_argument_fastest() {
        let dag = dag();
        let each = dag.task("each").expect("each");
        let outputs = BTreeMap::from([("list".to_owned(), json!(["red", "green", "blue"]))]);
        assert_eq!(map_length(each, &outputs), Ok(6));
        let args: Vec<Value> = (0..6)
            .map(|i| {
                let args = mapped_args(each, &outputs, i).expect("args");
                json!([args["size"], args["colour"], args["unit"]])
            })
            .collect();
        let want = [["s", "red"], ["s", "green"], ["s", "blue"], ["l", "red"], ["l", "green"], ["l", "blue"]];
        assert_eq!(args, want.map(|[s, c]| json!([s, c, "cm"])).to_vec());
        let gone = mapped_args(each, &outputs, 6).expect_err("there are 6 instances");
        assert!(gone.to_string().contains("instance 6 of task `each` no longer exists"), "{gone}");
        assert_eq!(map_length(each, &BTreeMap::from([("list".to_owned(), json!([]))])), Ok(0));
        let long = BTreeMap::from([("list".to_owned(), json!([1, 2, 3, 4]))]);
        assert_eq!(map_length(each, &long), Err(MapError::TooLong { mapped: "each".into(), length: 8, max: 6 }));
    }

    #[test]
    fn expand_kwargs_gives_each_instance_one_set_of_arguments() {
        let dag = dag();
        let kw = dag.task("kw").expect("kw");
        let outputs = BTreeMap::from([("list".to_owned(), json!([{"a": 1}, {"a": 2, "b": true}]))]);
        assert_eq!(map_length(kw, &outputs), Ok(2));
        assert_eq!(
            mapped_args(kw, &outputs, 1),
            Ok(BTreeMap::from([("a".into(), json!(2)), ("b".into(), json!(true))]))
        );
    }

    #[test]
    fn the_task_that_outputs_a_list_is_checked_for_every_task_mapped_over_it() {
        let dag = dag();
        assert_eq!(check_mapped_outputs(&dag, "list", Some(&json!([{"a": 1}]))), Ok(()));
        let err = check_mapped_outputs(&dag, "list", Some(&json!({"a": 1}))).expect_err("not a list");
        assert_eq!(
            err.to_string(),
            r#"task `each` expands over the output of `list`, which must be a list; got {"a":1}"#
        );
        let err = check_mapped_outputs(&dag, "list", Some(&json!(["x"]))).expect_err("not objects for kw");
        assert!(
            err.to_string().contains("task `kw` expands over the output of `list`, which must be a list of objects")
        );
        let err = check_mapped_outputs(&dag, "list", Some(&json!([{}, {}, {}, {}, {}, {}, {}]))).expect_err("long");
        assert!(err.to_string().contains("7 instances, more than its max_map_length of 6"), "{err}");
        assert!(check_mapped_outputs(&dag, "list", None).is_err(), "no output is not a list");
        assert_eq!(check_mapped_outputs(&dag, "each", Some(&json!("one element"))), Ok(()), "a mapped instance");
    }

    #[test]
    fn mapping_errors_are_reported_at_their_line() {
        let source = "dag_id: m\ntasks:\n  - {id: a, script: \"true\"}\n  - id: b\n    expand:\n      x: {output: c}\n      y: [1, 2, 3]\n      bad-name: [1]\n    expand_kwargs: [1]\n    max_map_length: 2\n    script: \"true\"\n  - {id: c, partial: {x: 1}, script: \"true\"}\n";
        let errors: Vec<String> =
            load_dag("m.yaml", source).expect_err("invalid").iter().map(ToString::to_string).collect();
        let has = |text: &str| errors.iter().any(|e| e.contains(text));
        assert!(has("m.yaml:7:") && has("`expand.y` has 3 values, more than max_map_length 2"), "{errors:?}");
        assert!(has("m.yaml:8:") && has("invalid argument name \"bad-name\""), "{errors:?}");
        assert!(has("has both `expand` and `expand_kwargs`"), "{errors:?}");
        assert!(has("`expand_kwargs` must list objects"), "{errors:?}");
        assert!(has("task `c`: `partial` needs `expand` or `expand_kwargs`"), "{errors:?}");
        let unknown = "dag_id: m\ntasks:\n  - id: b\n    expand: {x: {output: nope}}\n    script: \"true\"\n";
        let errors = load_dag("m.yaml", unknown).expect_err("unknown task");
        assert!(errors[0].to_string().contains("reads the output of `nope`, which is not a task of this DAG"));
        let bad_shape = "dag_id: m\ntasks:\n  - id: b\n    expand: {x: 3}\n    script: \"true\"\n";
        let errors = load_dag("m.yaml", bad_shape).expect_err("not a list");
        assert!(errors[0].to_string().contains("a list of values, or {output: <upstream task id>}"), "{errors:?}");
    }

    #[test]
    fn inside_a_task_group_an_output_is_named_as_depends_on_names_tasks() {
        let source = "dag_id: g\ntasks:\n  - {id: top, script: \"true\"}\ngroups:\n  - id: files\n    tasks:\n      - {id: list, script: \"true\"}\n      - id: each\n        expand: {path: {output: list}, other: {output: top}}\n        script: \"true\"\n";
        let dag = load_dag("g.yaml", source).expect("valid DAG");
        let each = dag.task("files.each").expect("the mapped task");
        assert_eq!(each.map_upstreams().collect::<Vec<_>>(), ["files.list", "top"]);
        assert_eq!(dag.upstream("files.each"), ["top", "files.list"]);
    }

    #[test]
    fn expanding_over_an_output_makes_the_task_upstream_and_round_trips_through_json() {
        let dag = dag();
        assert_eq!(dag.upstream("each"), ["list"]);
        let json = serde_json::to_value(&dag.spec).expect("serialise");
        assert_eq!(json["tasks"][1]["expand"], json!([["size", ["s", "l"]], ["colour", {"output": "list"}]]));
        let back: crate::DagSpec = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, dag.spec);
        let names: Vec<&str> = back.tasks[1].expand.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["size", "colour"], "the file's order, which decides the cross product's");
    }
}
