//! Task groups: ids, dependencies on and of groups, merged settings, and errors located inside groups.

use std::collections::BTreeMap;

use super::errors;
use crate::spec::DagSpec;
use crate::{Dag, load_dag};

const GROUPED: &str = r#"dag_id: grouped
default_args: {retries: 1, env: {A: dag}}
tasks:
  - id: start
    command: [echo, start]
groups:
  - id: etl
    description: Extract and load
    depends_on: [start]
    default_args: {retries: 2, queue: etl, env: {B: etl}}
    tasks:
      - id: extract
        command: [echo]
      - id: load
        depends_on: [extract, clean]
        command: [echo]
        env: {C: task}
    groups:
      - id: clean
        depends_on: [extract]
        default_args: {retries: 3, env: {B: clean}}
        tasks:
          - id: dedupe
            command: [echo]
          - id: fill
            depends_on: [dedupe]
            retries: 5
            command: [echo]
  - id: report
    depends_on: [etl]
    tasks:
      - id: send
        command: [echo]
      - id: archive
        depends_on: [etl.clean.fill]
        command: [echo]
"#;

fn grouped() -> Dag {
    load_dag("grouped.yaml", GROUPED).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn tasks_in_groups_get_prefixed_ids_and_their_group() {
    let dag = grouped();
    assert_eq!(
        dag.task_ids(),
        ["start", "etl.extract", "etl.load", "etl.clean.dedupe", "etl.clean.fill", "report.send", "report.archive"]
    );
    let groups: Vec<(&str, Option<&str>, &str)> =
        dag.groups().iter().map(|g| (g.id.as_str(), g.parent.as_deref(), g.label())).collect();
    assert_eq!(groups, [("etl", None, "etl"), ("etl.clean", Some("etl"), "clean"), ("report", None, "report")]);
    assert_eq!(dag.group("etl").and_then(|g| g.description.as_deref()), Some("Extract and load"));
    assert_eq!(dag.group_of("etl.clean.fill"), Some("etl.clean"));
    assert_eq!(dag.group_of("etl.load"), Some("etl"));
    assert_eq!(dag.group_of("start"), None);
    assert_eq!(dag.group_tasks("etl"), ["etl.extract", "etl.load", "etl.clean.dedupe", "etl.clean.fill"]);
    assert!(dag.group_tasks("et").is_empty());
}

#[test]
fn names_resolve_from_the_inside_out_and_groups_stand_for_their_roots_and_leaves() {
    let dag = grouped();
    // A group's depends_on reaches its roots only; a dependency on a group waits for its leaves.
    assert_eq!(dag.upstream("etl.extract"), ["start"]);
    assert_eq!(dag.upstream("etl.clean.dedupe"), ["etl.extract"]);
    assert_eq!(dag.upstream("etl.load"), ["etl.extract", "etl.clean.fill"]);
    assert_eq!(dag.upstream("report.send"), ["etl.load"]);
    assert_eq!(dag.upstream("report.archive"), ["etl.load", "etl.clean.fill"]);
    assert_eq!(dag.group_roots("etl"), ["etl.extract"]);
    assert_eq!(dag.group_leaves("etl"), ["etl.load"]);
    assert_eq!(dag.group_roots("report"), ["report.send", "report.archive"]);
    assert_eq!(dag.group_leaves("etl.clean"), ["etl.clean.fill"]);
    assert_eq!(dag.leaves(), ["report.send", "report.archive"]);
}

const SCOPES: &str = r#"dag_id: scopes
tasks:
  - id: extract
    command: [echo]
groups:
  - id: g
    tasks:
      - id: extract
        command: [echo]
      - id: load
        depends_on: [extract]
        command: [echo]
  - id: h
    tasks:
      - id: use
        depends_on: [extract, g.load]
        command: [echo]
  - id: outer
    groups:
      - id: inner
        tasks:
          - id: deep
            depends_on: [mid, inner2.x]
            command: [echo]
      - id: inner2
        tasks:
          - id: x
            command: [echo]
    tasks:
      - id: mid
        command: [echo]
"#;

#[test]
fn a_name_is_looked_up_next_to_its_writer_then_outwards() {
    let dag = load_dag("scopes.yaml", SCOPES).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(dag.upstream("g.load"), ["g.extract"]);
    assert_eq!(dag.upstream("h.use"), ["extract", "g.load"]);
    assert_eq!(dag.upstream("outer.inner.deep"), ["outer.inner2.x", "outer.mid"]);
    // Another group's task is only reached by its full id.
    assert_eq!(
        errors(&SCOPES.replace("[extract, g.load]", "[extract, load]")),
        ["dag.yaml:16:31: task `h.use` depends on `load`, which is not a task or task group of this DAG"]
    );
}

#[test]
fn a_collapsed_group_is_one_node_of_the_graph() {
    let dag = grouped();
    let drawn = |collapsed: &[&str]| {
        let graph = dag.collapsed_graph(collapsed);
        let nodes: Vec<String> = graph.node_weights().cloned().collect();
        let mut edges: Vec<(String, String)> =
            graph.raw_edges().iter().map(|e| (graph[e.source()].clone(), graph[e.target()].clone())).collect();
        edges.sort();
        (nodes, edges)
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let (nodes, edges) = drawn(&["etl"]);
    assert_eq!(nodes, ["start", "etl", "report.send", "report.archive"]);
    assert_eq!(edges, [pair("etl", "report.archive"), pair("etl", "report.send"), pair("start", "etl")]);
    assert_eq!(drawn(&["etl", "etl.clean"]), drawn(&["etl"]));
    let (nodes, edges) = drawn(&["etl.clean"]);
    assert_eq!(nodes, ["start", "etl.extract", "etl.load", "etl.clean", "report.send", "report.archive"]);
    assert!(edges.contains(&pair("etl.extract", "etl.clean")) && edges.contains(&pair("etl.clean", "etl.load")));
    assert!(edges.contains(&pair("etl.clean", "report.archive")));
    assert_eq!(drawn(&[]).0, dag.task_ids());
}

#[test]
fn default_args_merge_task_over_group_over_enclosing_group_over_dag() {
    let dag = grouped();
    let resolved = |id: &str| dag.resolved_task(id).unwrap_or_else(|| panic!("{id}"));
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let extract = resolved("etl.extract");
    assert_eq!((extract.retries, extract.queue.as_str()), (2, "etl"));
    assert_eq!(extract.env, env(&[("A", "dag"), ("B", "etl")]));
    let load = resolved("etl.load");
    assert_eq!(load.env, env(&[("A", "dag"), ("B", "etl"), ("C", "task")]));
    let dedupe = resolved("etl.clean.dedupe");
    assert_eq!((dedupe.retries, dedupe.queue.as_str()), (3, "etl"));
    assert_eq!(dedupe.env, env(&[("A", "dag"), ("B", "clean")]));
    assert_eq!(resolved("etl.clean.fill").retries, 5);
    let send = resolved("report.send");
    assert_eq!((send.retries, send.queue.as_str()), (1, "default"));
    assert_eq!(resolved("start").env, env(&[("A", "dag")]));
}

#[test]
fn a_grouped_dag_round_trips_through_json() {
    let dag = grouped();
    let json = serde_json::to_string(&dag.spec).expect("to json");
    let back: DagSpec = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, dag.spec);
    let rebuilt = Dag::from_spec(back).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rebuilt.topological_order(), dag.topological_order());
    assert_eq!(rebuilt.groups(), dag.groups());
    assert_eq!(rebuilt.group_leaves("etl"), ["etl.load"]);
    assert_eq!(rebuilt.resolved_task("etl.clean.dedupe"), dag.resolved_task("etl.clean.dedupe"));
    let stored: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(stored["groups"][1], serde_json::json!({"id": "etl.clean", "parent": "etl"}));
    assert_eq!(stored["tasks"][3]["group"], "etl.clean");
}

#[test]
fn a_dag_may_hold_all_its_tasks_in_groups() {
    let source = "dag_id: only\ngroups:\n  - id: g\n    tasks:\n      - id: a\n        command: [echo]\n";
    let dag = load_dag("only.yaml", source).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(dag.task_ids(), ["g.a"]);
    assert_eq!(errors("dag_id: none\n"), ["dag.yaml:1:1: missing field `tasks`"]);
}

#[test]
fn a_stored_spec_with_inconsistent_groups_is_refused() {
    let refused = |change: fn(&mut DagSpec)| -> Vec<String> {
        let mut spec = grouped().spec;
        change(&mut spec);
        Dag::from_spec(spec).expect_err("inconsistent").into_iter().map(|e| e.message).collect()
    };
    assert_eq!(refused(|s| s.tasks[1].group = Some("nope".into())), ["task `etl.extract`: unknown group `nope`"]);
    assert_eq!(
        refused(|s| s.tasks[6].id = "archive".into()),
        ["task `archive`: the id of a task in `report` starts with `report.`"]
    );
    assert_eq!(
        refused(|s| s.groups.swap(0, 1)),
        ["group `etl.clean`: its parent `etl` is not a group listed before it"]
    );
    assert_eq!(
        refused(|s| s.groups[1].parent = None),
        ["invalid group id \"etl.clean\": use letters, digits, `_` and `-`, at most 250 characters"]
    );
}

/// Each row: a file and the errors expected, with their locations in the nested YAML.
#[test]
fn errors_inside_groups_are_located() {
    let head = "dag_id: x\ntasks:\n  - id: top\n    command: [echo]\ngroups:\n  - id: g\n";
    let rows: &[(&str, &[&str])] = &[
        (
            "    tasks:\n      - id: a\n        depends_on: [topp]\n        command: [echo]\n",
            &["9:22: task `g.a` depends on `topp`, which is not a task or task group of this DAG, did you mean `top`?"],
        ),
        (
            "    tasks:\n      - id: a\n        depends_on: [g]\n        command: [echo]\n",
            &["9:22: task `g.a` depends on `g`, a group it is in"],
        ),
        (
            "    depends_on: [g.a]\n    tasks:\n      - id: a\n        command: [echo]\n",
            &["7:18: group `g` depends on `g.a`, which is inside it"],
        ),
        (
            "    depends_on: [g]\n    tasks:\n      - id: a\n        command: [echo]\n",
            &["7:18: group `g` depends on itself"],
        ),
        (
            "    tasks:\n      - id: a.b\n        command: [echo]\n",
            &["8:13: invalid task id \"a.b\" in group `g`: an id in a group may not contain `.`"],
        ),
        (
            "    groups:\n      - id: in.ner\n        tasks:\n          - id: a\n            command: [echo]\n",
            &["8:13: invalid group id \"in.ner\": use letters, digits, `_` and `-`, at most 250 characters"],
        ),
        (
            "    tasks:\n      - id: a\n        command: [echo]\n  - id: g\n    tasks:\n      - id: b\n        command: [echo]\n",
            &["10:9: duplicate group id `g` (first defined on line 6)"],
        ),
        (
            "    tasks:\n      - id: a\n        command: [echo]\n  - id: top\n    tasks:\n      - id: b\n        command: [echo]\n",
            &["10:9: group id `top` is also the id of a task: they share one namespace"],
        ),
        ("    description: nothing yet\n", &["6:9: group `g` has no tasks"]),
        (
            "    tasks:\n      - id: a\n        group: g\n        command: [echo]\n",
            &["9:9: task `a`: a task is put in a group by writing it in the group's `tasks`"],
        ),
        ("    tasks: 3\n", &["6:9: group `g` has no tasks", "7:12: `tasks` must be a list of tasks"]),
        (
            "    retires: 2\n    dependson: [top]\n    tasks:\n      - id: a\n        command: [echo]\n",
            &[
                "7:5: unknown field `retires`; `retries` is a task setting: put it under `default_args` or on a task",
                "8:5: unknown field `dependson`, did you mean `depends_on`?",
            ],
        ),
        (
            "    default_args: {retries: -1}\n    tasks:\n      - id: a\n        command: [echo]\n",
            &["7:29: invalid value: integer `-1`, expected u32"],
        ),
        (
            "    default_args: {env: {A: \"{{ ds }\"}}\n    tasks:\n      - id: a\n        command: [echo]\n",
            &["7:29: template error in group `g` default_args.env.A: syntax error: unexpected `}`, expected end of \
               variable block"],
        ),
        (
            "    groups:\n      - id: inner\n        tasks:\n          - id: a\n            kind: command\n",
            &["10:17: task `g.inner.a` needs either `command` (a list of arguments) or `script` (a bash script)"],
        ),
        (
            "    depends_on: [b]\n    tasks:\n      - id: a\n        command: [echo]\n  - id: b\n    depends_on: [g]\n    tasks:\n      - id: c\n        command: [echo]\n",
            &["9:9: cycle: g.a -> b.c -> g.a"],
        ),
    ];
    for (body, expected) in rows {
        let got: Vec<String> = errors(&format!("{head}{body}"))
            .into_iter()
            .map(|e| e.strip_prefix("dag.yaml:").map(str::to_owned).unwrap_or(e))
            .collect();
        assert_eq!(got, *expected, "{body}");
    }
}

#[test]
fn the_example_dag_waits_for_the_whole_group() {
    let source = include_str!("../../../../../dags/examples/task_group.yaml");
    let dag = load_dag("task_group.yaml", source).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(dag.upstream("report"), ["transform.enrich", "transform.checks.rows", "transform.checks.schema"]);
    assert_eq!(dag.upstream("transform.clean"), ["start"]);
    assert_eq!(dag.upstream("transform.checks.rows"), ["transform.clean"]);
}
