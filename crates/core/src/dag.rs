//! A validated DAG: its spec, the task graph, and its timetable.
//!
//! A [`Dag`] only exists once validation passed, so the graph is acyclic, every `depends_on` names a task, the
//! schedule parsed and the timezone is known; its accessors therefore need no error handling.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono_tz::Tz;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::load::DagError;
use crate::load::validate::{self, Locator};
use crate::schedule::Timetable;
use crate::spec::{
    DEFAULT_MAX_ACTIVE_RUNS, DEFAULT_MAX_ACTIVE_TASKS, DagSpec, ResolvedTask, TaskGroup, TaskSpec, WeightRule,
};

#[derive(Debug, Clone)]
pub struct Dag {
    pub spec: DagSpec,
    /// One node per task (weight: task id), edges from upstream to downstream.
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
    timetable: Timetable,
    /// What follows from the tasks' settings, computed on first use.
    derived: OnceLock<Derived>,
}

/// Per-task figures the scheduler asks for on every task end, computed once per DAG version.
#[derive(Debug, Clone)]
struct Derived {
    resolved: HashMap<String, ResolvedTask>,
    /// Each task's priority after its `weight_rule`: a walk of the graph per task.
    priority_weights: HashMap<String, i64>,
    /// The tasks with `max_active_tis_per_dag` or `max_active_tis_per_dagrun`, in file order.
    limited: Vec<String>,
}

impl Dag {
    pub(crate) fn new(
        spec: DagSpec,
        graph: DiGraph<String, ()>,
        index: HashMap<String, NodeIndex>,
        timetable: Timetable,
    ) -> Dag {
        Dag { spec, graph, index, timetable, derived: OnceLock::new() }
    }

    /// Build from an already-parsed spec (used when reading a stored version back as JSON); validates as load_dag
    /// does but with line 0.
    pub fn from_spec(spec: DagSpec) -> Result<Dag, Vec<DagError>> {
        let file = spec.dag_id.clone();
        validate::check(spec, &file, &Locator::new(None, Vec::new(), Vec::new()), true, &[])
    }

    pub fn dag_id(&self) -> &str {
        &self.spec.dag_id
    }

    pub fn graph(&self) -> &DiGraph<String, ()> {
        &self.graph
    }

    pub fn task(&self, task_id: &str) -> Option<&TaskSpec> {
        self.spec.tasks.iter().find(|t| t.id == task_id)
    }

    /// Task ids in file order.
    pub fn task_ids(&self) -> Vec<&str> {
        self.spec.tasks.iter().map(|t| t.id.as_str()).collect()
    }

    /// The tasks `task_id` depends on, in file order (empty for an unknown task).
    pub fn upstream(&self, task_id: &str) -> Vec<&str> {
        self.neighbors(task_id, Direction::Incoming)
    }

    /// The tasks that depend on `task_id`, in file order (empty for an unknown task).
    pub fn downstream(&self, task_id: &str) -> Vec<&str> {
        self.neighbors(task_id, Direction::Outgoing)
    }

    /// Every task `task_id` depends on, directly or through others, in file order.
    pub fn ancestors(&self, task_id: &str) -> Vec<&str> {
        self.reachable(task_id, Direction::Incoming)
    }

    /// Every task that depends on `task_id`, directly or through others, in file order.
    pub fn descendants(&self, task_id: &str) -> Vec<&str> {
        self.reachable(task_id, Direction::Outgoing)
    }

    fn reachable(&self, task_id: &str, direction: Direction) -> Vec<&str> {
        let Some(&start) = self.index.get(task_id) else {
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for next in self.graph.neighbors_directed(node, direction) {
                if seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        seen.into_iter().map(|n| self.graph[n].as_str()).collect()
    }

    fn neighbors(&self, task_id: &str, direction: Direction) -> Vec<&str> {
        let Some(&node) = self.index.get(task_id) else {
            return Vec::new();
        };
        let mut nodes: Vec<NodeIndex> = self.graph.neighbors_directed(node, direction).collect();
        // Node indices follow file order; petgraph lists neighbours in reverse insertion order.
        nodes.sort();
        nodes.into_iter().map(|n| self.graph[n].as_str()).collect()
    }

    /// Every task after all of its upstream tasks; ties in file order.
    pub fn topological_order(&self) -> Vec<&str> {
        // Kahn's algorithm with the ready set ordered by file position, so the order is stable and readable.
        let mut indegree: Vec<usize> =
            self.graph.node_indices().map(|n| self.graph.neighbors_directed(n, Direction::Incoming).count()).collect();
        let mut ready: std::collections::BTreeSet<NodeIndex> =
            self.graph.node_indices().filter(|n| indegree[n.index()] == 0).collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(n) = ready.pop_first() {
            order.push(self.graph[n].as_str());
            for next in self.graph.neighbors_directed(n, Direction::Outgoing) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.insert(next);
                }
            }
        }
        order
    }

    /// Tasks with no downstream task, in file order: their states decide the run's outcome.
    pub fn leaves(&self) -> Vec<&str> {
        self.graph
            .node_indices()
            .filter(|n| self.graph.neighbors_directed(*n, Direction::Outgoing).next().is_none())
            .map(|n| self.graph[n].as_str())
            .collect()
    }

    /// Tasks with no upstream task, in file order.
    pub fn roots(&self) -> Vec<&str> {
        self.graph
            .node_indices()
            .filter(|n| self.graph.neighbors_directed(*n, Direction::Incoming).next().is_none())
            .map(|n| self.graph[n].as_str())
            .collect()
    }

    /// The task groups, parents before their children.
    pub fn groups(&self) -> &[TaskGroup] {
        &self.spec.groups
    }

    pub fn group(&self, group_id: &str) -> Option<&TaskGroup> {
        self.spec.groups.iter().find(|g| g.id == group_id)
    }

    /// The innermost group `task_id` is in.
    pub fn group_of(&self, task_id: &str) -> Option<&str> {
        self.task(task_id)?.group.as_deref()
    }

    /// The task's id within its group, as written in the file (the whole id of a task outside groups).
    pub fn task_label<'a>(&self, task_id: &'a str) -> &'a str {
        self.group_of(task_id).and_then(|g| task_id.strip_prefix(g)?.strip_prefix('.')).unwrap_or(task_id)
    }

    /// Every task in the group, directly or in a group inside it, in file order (empty for an unknown group).
    pub fn group_tasks(&self, group_id: &str) -> Vec<&str> {
        let prefix = format!("{group_id}.");
        self.spec
            .tasks
            .iter()
            .filter(|t| t.group.as_deref().is_some_and(|g| g == group_id || g.starts_with(&prefix)))
            .map(|t| t.id.as_str())
            .collect()
    }

    /// The group's tasks with no upstream task in the group, in file order: a group's `depends_on` applies to them.
    pub fn group_roots(&self, group_id: &str) -> Vec<&str> {
        self.group_ends(group_id, Direction::Incoming)
    }

    /// The group's tasks with no downstream task in the group, in file order: depending on a group means depending on
    /// them.
    pub fn group_leaves(&self, group_id: &str) -> Vec<&str> {
        self.group_ends(group_id, Direction::Outgoing)
    }

    fn group_ends(&self, group_id: &str, direction: Direction) -> Vec<&str> {
        let members = self.group_tasks(group_id);
        members.iter().copied().filter(|t| self.neighbors(t, direction).iter().all(|n| !members.contains(n))).collect()
    }

    /// The task graph with each group of `collapsed` drawn as one node (weight: the group id) in place of its tasks,
    /// at the place of its first task; an edge joins two nodes when one of their tasks depends on the other's. A
    /// collapsed group inside another collapsed group is part of the outer one.
    pub fn collapsed_graph(&self, collapsed: &[&str]) -> DiGraph<String, ()> {
        let node_of = |task: &TaskSpec| -> String {
            let outermost = std::iter::successors(task.group.as_deref(), |g| self.group(g)?.parent.as_deref())
                .filter(|g| collapsed.contains(g))
                .last();
            outermost.unwrap_or(task.id.as_str()).to_owned()
        };
        let mut graph = DiGraph::new();
        let mut index: HashMap<String, NodeIndex> = HashMap::new();
        let node: HashMap<&str, NodeIndex> = self
            .spec
            .tasks
            .iter()
            .map(|t| {
                let id = node_of(t);
                (t.id.as_str(), *index.entry(id.clone()).or_insert_with(|| graph.add_node(id)))
            })
            .collect();
        for edge in self.graph.raw_edges() {
            let ends = (node.get(self.graph[edge.source()].as_str()), node.get(self.graph[edge.target()].as_str()));
            if let (Some(&up), Some(&down)) = ends
                && up != down
                && !graph.contains_edge(up, down)
            {
                graph.add_edge(up, down, ());
            }
        }
        graph
    }

    pub fn timetable(&self) -> &Timetable {
        &self.timetable
    }

    pub fn timezone(&self) -> Tz {
        self.timetable.timezone()
    }

    /// The task's effective settings, with the DAG's `default_args` applied.
    pub fn resolved_task(&self, task_id: &str) -> Option<&ResolvedTask> {
        self.derived().resolved.get(task_id)
    }

    /// The task's priority among queued tasks (Airflow's `priority_weight_total`): its `priority_weight`, plus
    /// those of every task downstream or upstream of it as its `weight_rule` says; 0 for an unknown task.
    pub fn priority_weight_total(&self, task_id: &str) -> i64 {
        self.derived().priority_weights.get(task_id).copied().unwrap_or(0)
    }

    /// The tasks limited by `max_active_tis_per_dag` or `max_active_tis_per_dagrun`, with their settings.
    pub fn limited_tasks(&self) -> impl Iterator<Item = (&str, &ResolvedTask)> {
        let derived = self.derived();
        derived.limited.iter().filter_map(|id| derived.resolved.get(id).map(|task| (id.as_str(), task)))
    }

    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            let resolved: HashMap<String, ResolvedTask> =
                self.spec.tasks.iter().map(|t| (t.id.clone(), t.resolved(&self.spec.default_args))).collect();
            let own = |id: &str| resolved.get(id).map_or(0, |t| i64::from(t.priority_weight));
            let sum = |ids: Vec<&str>| ids.into_iter().map(own).fold(0i64, i64::saturating_add);
            let priority_weights = resolved
                .iter()
                .map(|(id, task)| {
                    let others = match task.weight_rule {
                        WeightRule::Downstream => sum(self.descendants(id)),
                        WeightRule::Upstream => sum(self.ancestors(id)),
                        WeightRule::Absolute => 0,
                    };
                    (id.clone(), own(id).saturating_add(others))
                })
                .collect();
            let limited = self
                .spec
                .tasks
                .iter()
                .filter(|t| {
                    resolved
                        .get(&t.id)
                        .is_some_and(|r| r.max_active_tis_per_dag.is_some() || r.max_active_tis_per_dagrun.is_some())
                })
                .map(|t| t.id.clone())
                .collect();
            Derived { resolved, priority_weights, limited }
        })
    }

    pub fn max_active_runs(&self) -> u32 {
        self.spec.max_active_runs.unwrap_or(DEFAULT_MAX_ACTIVE_RUNS)
    }

    pub fn max_active_tasks(&self) -> u32 {
        self.spec.max_active_tasks.unwrap_or(DEFAULT_MAX_ACTIVE_TASKS)
    }

    pub fn is_paused_upon_creation(&self) -> bool {
        self.spec.is_paused_upon_creation.unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_dag;

    const DIAMOND: &str = r#"
dag_id: diamond
tasks:
  - id: extract
    command: [echo, extract]
  - id: clean
    depends_on: [extract]
    command: [echo, clean]
  - id: enrich
    depends_on: [extract]
    command: [echo, enrich]
  - id: load
    depends_on: [enrich, clean]
    command: [echo, load]
  - id: report
    command: [echo, report]
"#;

    fn diamond() -> Dag {
        match load_dag("diamond.yaml", DIAMOND) {
            Ok(dag) => dag,
            Err(errors) => panic!("{errors:?}"),
        }
    }

    #[test]
    fn graph_queries() {
        let dag = diamond();
        assert_eq!(dag.dag_id(), "diamond");
        assert_eq!(dag.upstream("load"), ["clean", "enrich"]);
        assert_eq!(dag.downstream("extract"), ["clean", "enrich"]);
        assert!(dag.upstream("nope").is_empty());
        assert_eq!(dag.topological_order(), ["extract", "clean", "enrich", "load", "report"]);
        assert_eq!(dag.leaves(), ["load", "report"]);
        assert_eq!(dag.roots(), ["extract", "report"]);
        assert_eq!(dag.graph().node_count(), 5);
        assert_eq!(dag.graph().edge_count(), 4);
        assert_eq!(dag.task("clean").map(|t| t.id.as_str()), Some("clean"));
        assert_eq!(dag.descendants("extract"), ["clean", "enrich", "load"]);
        assert_eq!(dag.ancestors("load"), ["extract", "clean", "enrich"]);
        assert!(dag.descendants("report").is_empty());
    }

    #[test]
    fn airflow_defaults() {
        let dag = diamond();
        assert_eq!(dag.max_active_runs(), 16);
        assert_eq!(dag.max_active_tasks(), 16);
        assert!(dag.is_paused_upon_creation());
        assert_eq!(dag.timezone(), Tz::UTC);
        assert_eq!(dag.timetable().summary(), "None");
        assert!(!dag.timetable().is_periodic());
        let task = dag.resolved_task("load").expect("task");
        assert_eq!((task.retries, task.queue.as_str(), task.pool.as_str()), (0, "default", "default_pool"));
    }

    #[test]
    fn json_round_trip_gives_the_same_dag() {
        let source = r#"
dag_id: full
description: every field
owner: data
tags: [a, b]
schedule: "0 3 * * 1-5"
timezone: Europe/Paris
start_date: 2026-01-01
end_date: "2026-12-31T23:00:00+01:00"
catchup: true
max_active_runs: 2
max_active_tasks: 4
is_paused_upon_creation: false
dagrun_timeout: 1h30m
params:
  n: 3
  mode: {type: string, enum: [fast, slow], default: fast, description: how}
  ratio: {type: number, minimum: 0, maximum: 1, default: 0.5}
default_args:
  retries: 2
  retry_delay: 30s
  retry_exponential_backoff: true
  max_retry_delay: 10m
  execution_timeout: 2h
  queue: q
  pool: p
  priority_weight: 5
  env: {A: "1", PORT: 8080}
tasks:
  - id: a
    script: echo {{ ds }}
    cwd: /tmp
    env: {B: "{{ params.n }}"}
  - id: b
    kind: command
    depends_on: [a]
    trigger_rule: all_done
    retries: 1
    retry_delay: 5s
    command: [echo, b]
    description: second
"#;
        let dag = load_dag("full.yaml", source).expect("loads");
        let json = serde_json::to_string(&dag.spec).expect("to json");
        let back: DagSpec = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, dag.spec);
        let rebuilt = Dag::from_spec(back).expect("valid");
        assert_eq!(rebuilt.timetable(), dag.timetable());
        assert_eq!(rebuilt.topological_order(), dag.topological_order());
        assert_eq!(dag.spec.default_args.env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(dag.max_active_runs(), 2);
        assert!(!dag.is_paused_upon_creation());
        assert_eq!(dag.timetable().summary(), "0 3 * * 1-5");
        assert!(dag.timetable().is_periodic());
        assert_eq!(dag.timezone(), chrono_tz::Europe::Paris);
    }

    #[test]
    fn from_spec_validates_without_locations() {
        let mut a = TaskSpec::new("a");
        a.command = Some(vec!["true".into()]);
        a.depends_on = vec!["b".into()];
        let mut b = TaskSpec::new("b");
        b.script = Some("true".into());
        b.depends_on = vec!["a".into()];
        let errors = Dag::from_spec(DagSpec::new("loop", vec![a, b])).expect_err("cycle");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (0, 0));
        assert_eq!(errors[0].message, "cycle: a -> b -> a");
    }
}
