//! What a successful task skips downstream: a branch task's choice and a short-circuit task's false output.
//!
//! A branch names the tasks it follows by id, or a task group by its id, which stands for the group's roots.
//!
//! This follows Airflow 3's `SkipMixin.skip_all_except` (branches) and `ShortCircuitOperator`. A branch skips the
//! direct downstream tasks it did not choose, except those that are also downstream of a chosen one (the "empty
//! branch" of a diamond: `branch → join` beside `branch → a → join` keeps `join` when `a` is chosen); the trigger
//! rules of the tasks further down then decide, so a skip propagates to an `all_success` task and not to a
//! `none_failed_min_one_success` join. Airflow accepts any task id of the DAG and ignores those not downstream;
//! Sluice refuses them, since such a choice is always a mistake that would otherwise skip every branch silently.

use std::collections::BTreeSet;

use serde_json::Value;

use chrono::{DateTime, Utc};

use crate::dag::Dag;
use crate::schedule::{DataInterval, Timetable};

/// Why a task's output cannot say what to skip: the try fails with this message, and nothing is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipError {
    #[error(
        "branch task `{task}` must output a task id, a list of task ids or null (to follow no branch), got {output}"
    )]
    NotTaskIds { task: String, output: String },
    #[error(
        "branch task `{task}` chose `{chosen}`, which is not directly downstream of it (its downstream tasks: {})",
        downstream.join(", ")
    )]
    NotDownstream { task: String, chosen: String, downstream: Vec<String> },
}

/// Whether a `latest_only` task lets its direct downstream tasks run, as Airflow's LatestOnlyOperator decides: for a
/// run triggered by hand always; else when `now` falls in the interval after the run's (the run is the latest one
/// due), or when no interval follows (the schedule's last run).
pub fn latest_only_proceeds(timetable: &Timetable, manual: bool, interval: &DataInterval, now: DateTime<Utc>) -> bool {
    if manual {
        return true;
    }
    timetable.following(interval).is_none_or(|next| next.start < now && now <= next.end)
}

/// The tasks to mark skipped, by id, once `task_id` succeeded with `output`; empty for a task that neither
/// branches nor short-circuits.
pub fn skipped_after(dag: &Dag, task_id: &str, output: Option<&Value>) -> Result<Vec<String>, SkipError> {
    let Some(task) = dag.task(task_id) else { return Ok(Vec::new()) };
    let output = output.unwrap_or(&Value::Null);
    if task.branch {
        return branch_skips(dag, task_id, output);
    }
    if task.short_circuit && !truthy(output) {
        let skipped = if task.ignore_downstream_trigger_rules.unwrap_or(true) {
            dag.descendants(task_id)
        } else {
            dag.downstream(task_id)
        };
        return Ok(skipped.into_iter().map(str::to_owned).collect());
    }
    Ok(Vec::new())
}

fn branch_skips(dag: &Dag, task_id: &str, output: &Value) -> Result<Vec<String>, SkipError> {
    let not_ids = || SkipError::NotTaskIds { task: task_id.to_owned(), output: output.to_string() };
    let chosen: Vec<&str> = match output {
        Value::Null => Vec::new(),
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().map(|v| v.as_str().ok_or_else(not_ids)).collect::<Result<_, _>>()?,
        _ => return Err(not_ids()),
    };
    // A task group's id stands for its roots, as in Airflow.
    let chosen: Vec<&str> = chosen
        .into_iter()
        .flat_map(|id| if dag.group(id).is_some() { dag.group_roots(id) } else { vec![id] })
        .collect();
    let downstream = dag.downstream(task_id);
    let mut followed: BTreeSet<&str> = BTreeSet::new();
    for id in chosen {
        if !downstream.contains(&id) {
            return Err(SkipError::NotDownstream {
                task: task_id.to_owned(),
                chosen: id.to_owned(),
                downstream: downstream.iter().map(|d| (*d).to_owned()).collect(),
            });
        }
        followed.insert(id);
        followed.extend(dag.descendants(id));
    }
    Ok(downstream.into_iter().filter(|d| !followed.contains(d)).map(str::to_owned).collect())
}

/// Python's truth value of a JSON value, as Airflow's ShortCircuitOperator tests the callable's result.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::{DagSpec, TaskSpec};

    fn task(id: &str, deps: &[&str]) -> TaskSpec {
        let mut t = TaskSpec::new(id);
        t.command = Some(vec!["true".into()]);
        t.depends_on = deps.iter().map(|d| (*d).to_owned()).collect();
        t
    }

    /// branch → a → join, branch → b → join, branch → join (an empty branch), join → end.
    fn diamond(configure: impl FnOnce(&mut TaskSpec)) -> Dag {
        let mut branch = task("branch", &[]);
        configure(&mut branch);
        let tasks = vec![
            branch,
            task("a", &["branch"]),
            task("b", &["branch"]),
            task("join", &["a", "b", "branch"]),
            task("end", &["join"]),
        ];
        Dag::from_spec(DagSpec::new("d", tasks)).expect("valid DAG")
    }

    #[test]
    fn a_branch_skips_the_direct_downstream_tasks_it_did_not_choose() {
        let dag = diamond(|t| t.branch = true);
        let skipped = |output: Value| skipped_after(&dag, "branch", Some(&output));
        // `join` is downstream of the chosen `a`, so it is not skipped although `branch` did not name it.
        assert_eq!(skipped(json!("a")), Ok(vec!["b".to_owned()]));
        assert_eq!(skipped(json!(["a", "b"])), Ok(vec![]));
        assert_eq!(skipped(json!("join")), Ok(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(skipped(Value::Null), Ok(vec!["a".to_owned(), "b".to_owned(), "join".to_owned()]));
        assert_eq!(skipped_after(&dag, "branch", None), skipped(Value::Null));
    }

    #[test]
    fn a_branch_choice_that_is_not_downstream_is_an_error() {
        let dag = diamond(|t| t.branch = true);
        let err = skipped_after(&dag, "branch", Some(&json!(["a", "end"]))).expect_err("end is two steps away");
        assert_eq!(
            err.to_string(),
            "branch task `branch` chose `end`, which is not directly downstream of it (its downstream tasks: a, b, join)"
        );
        let err = skipped_after(&dag, "branch", Some(&json!({"a": 1}))).expect_err("not ids");
        assert!(err.to_string().contains(r#"got {"a":1}"#), "{err}");
        assert!(skipped_after(&dag, "branch", Some(&json!(["a", 3]))).is_err());
    }

    #[test]
    fn a_false_short_circuit_skips_everything_downstream_or_only_the_direct_tasks() {
        let dag = diamond(|t| t.short_circuit = true);
        for falsy in [json!(false), json!(0), json!(""), json!([]), json!({}), Value::Null] {
            let skipped = skipped_after(&dag, "branch", Some(&falsy)).expect("a short circuit never fails");
            assert_eq!(skipped, ["a", "b", "join", "end"], "{falsy}");
        }
        for truthy in [json!(true), json!(1), json!("false"), json!([0]), json!({"go": false})] {
            assert_eq!(skipped_after(&dag, "branch", Some(&truthy)), Ok(vec![]), "{truthy}");
        }
        let dag = diamond(|t| {
            t.short_circuit = true;
            t.ignore_downstream_trigger_rules = Some(false);
        });
        assert_eq!(skipped_after(&dag, "branch", Some(&json!(false))), Ok(vec!["a".into(), "b".into(), "join".into()]));
    }

    #[test]
    fn a_branch_may_choose_a_task_group_by_its_roots() {
        let source = "dag_id: g\ntasks:\n  - {id: choose, branch: true, script: \"true\"}\n  - {id: other, depends_on: [choose], script: \"true\"}\ngroups:\n  - id: side\n    depends_on: [choose]\n    tasks:\n      - {id: a, script: \"true\"}\n      - {id: b, script: \"true\"}\n      - {id: c, depends_on: [a, b], script: \"true\"}\n";
        let dag = crate::load_dag("g.yaml", source).expect("valid DAG");
        assert_eq!(skipped_after(&dag, "choose", Some(&json!("side"))), Ok(vec!["other".to_owned()]));
        assert_eq!(skipped_after(&dag, "choose", Some(&json!("other"))), Ok(vec!["side.a".into(), "side.b".into()]));
    }

    #[test]
    fn other_tasks_skip_nothing() {
        let dag = diamond(|_| {});
        assert_eq!(skipped_after(&dag, "branch", Some(&json!(false))), Ok(vec![]));
        assert_eq!(skipped_after(&dag, "nope", None), Ok(vec![]));
    }
}
