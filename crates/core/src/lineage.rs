//! Lineage: which tasks read and write which assets and models, across every DAG.
//!
//! The graph has three kinds of nodes, assets (by URI), tasks (`dag_id` + `task_id`) and model versions, and its
//! edges follow the data: an asset points to the tasks that read it (`inputs`, and the assets a transform joins), a
//! task to the assets it writes (`outputs`) and to the tasks that depend on it, and an asset that schedules a DAG
//! (`schedule: {assets: …}`) to that DAG's first tasks. The tasks and assets come from the DAG files alone, so the
//! graph shows what will happen as well as what did; asset events say when it did. Models come from the registry
//! ([`Lineage::with_models`]): the train task that registered a version points to it, and a version points to the
//! `score` and `monitor` tasks that use it (by stage or number). A model no version of which is registered yet is one
//! node without a version, between the tasks that will train and use it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::spec::{DagSpec, ScheduleSpec};

/// A node of the lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineageNode {
    Asset {
        uri: String,
    },
    Task {
        dag_id: String,
        task_id: String,
    },
    /// A registered version of a model; `version` is null for a model not trained yet.
    Model {
        name: String,
        version: Option<i64>,
    },
}

/// A registered model version, as lineage needs it: its stage and the task that trained it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersionRef {
    pub name: String,
    pub version: i64,
    pub stage: String,
    pub dag_id: String,
    pub task_id: String,
}

/// Which versions of a model a task uses.
#[derive(Debug, Clone, PartialEq)]
enum Uses {
    Stage(String),
    Version(i64),
    /// A version number given by a template: any version may be the one.
    Any,
}

impl Uses {
    fn of(model: &crate::ops_spec::ModelRef) -> Uses {
        match &model.version {
            None => Uses::Stage(model.stage.clone()),
            Some(number) => number.value("version").map_or(Uses::Any, |v| Uses::Version(v as i64)),
        }
    }

    fn includes(&self, version: &ModelVersionRef) -> bool {
        match self {
            Uses::Stage(stage) => *stage == version.stage,
            Uses::Version(number) => *number == version.version,
            Uses::Any => true,
        }
    }
}

/// The part of the graph around one node: everything upstream and downstream of it, with the edges between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineageView {
    pub upstream: Vec<LineageNode>,
    pub downstream: Vec<LineageNode>,
    /// `(from, to)` pairs, in the direction the data flows.
    pub edges: Vec<(LineageNode, LineageNode)>,
}

#[derive(Debug, Default)]
pub struct Lineage {
    graph: DiGraph<LineageNode, ()>,
    index: HashMap<LineageNode, NodeIndex>,
    /// Model name → the tasks that train it.
    trainers: BTreeMap<String, Vec<LineageNode>>,
    /// Model name → the tasks that use it, and which of its versions.
    users: BTreeMap<String, Vec<(LineageNode, Uses)>>,
}

impl Lineage {
    pub fn from_dags<'a>(dags: impl IntoIterator<Item = &'a DagSpec>) -> Lineage {
        let mut lineage = Lineage::default();
        for dag in dags {
            let task = |task_id: &str| LineageNode::Task { dag_id: dag.dag_id.clone(), task_id: task_id.to_owned() };
            let asset = |uri: &str| LineageNode::Asset { uri: uri.to_owned() };
            for t in &dag.tasks {
                lineage.node(task(&t.id));
                for uri in t.input_assets() {
                    lineage.edge(asset(uri), task(&t.id));
                }
                for uri in &t.outputs {
                    lineage.edge(task(&t.id), asset(uri));
                }
                for up in &t.depends_on {
                    lineage.edge(task(up), task(&t.id));
                }
                if let (Some(model), "train") = (&t.model, t.kind.as_str()) {
                    lineage.trainers.entry(model.name.clone()).or_default().push(task(&t.id));
                }
                let used = t.score.as_ref().map(|s| (s.model.clone(), Uses::of(s))).or_else(|| {
                    let m = t.monitor.as_ref()?;
                    Some((m.model.clone(), Uses::Stage(m.stage.clone())))
                });
                if let Some((model, uses)) = used {
                    lineage.users.entry(model).or_default().push((task(&t.id), uses));
                }
            }
            if let Some(ScheduleSpec::Assets { assets, .. }) = &dag.schedule {
                for root in dag.tasks.iter().filter(|t| t.depends_on.is_empty()) {
                    for uri in assets.uris() {
                        lineage.edge(asset(uri), task(&root.id));
                    }
                }
            }
        }
        lineage
    }

    /// Adds the models: each registered version after the task that trained it (when that task is in the graph)
    /// and before the tasks that use it; a model of the DAGs without a version as one node between its tasks.
    pub fn with_models(mut self, versions: &[ModelVersionRef]) -> Lineage {
        let (trainers, users) = (std::mem::take(&mut self.trainers), std::mem::take(&mut self.users));
        let mut names: BTreeSet<&str> = trainers.keys().chain(users.keys()).map(String::as_str).collect();
        names.extend(versions.iter().map(|v| v.name.as_str()));
        for name in names {
            let of_model: Vec<&ModelVersionRef> = versions.iter().filter(|v| v.name == name).collect();
            let using = users.get(name).map(Vec::as_slice).unwrap_or_default();
            if of_model.is_empty() {
                let model = LineageNode::Model { name: name.to_owned(), version: None };
                for trainer in trainers.get(name).into_iter().flatten() {
                    self.edge(trainer.clone(), model.clone());
                }
                for (user, _) in using {
                    self.edge(model.clone(), user.clone());
                }
                continue;
            }
            for version in of_model {
                let model = LineageNode::Model { name: name.to_owned(), version: Some(version.version) };
                let trainer = LineageNode::Task { dag_id: version.dag_id.clone(), task_id: version.task_id.clone() };
                if self.index.contains_key(&trainer) {
                    self.edge(trainer, model.clone());
                }
                for (user, _) in using.iter().filter(|(_, uses)| uses.includes(version)) {
                    self.edge(model.clone(), user.clone());
                }
            }
        }
        self
    }

    fn node(&mut self, node: LineageNode) -> NodeIndex {
        *self.index.entry(node.clone()).or_insert_with(|| self.graph.add_node(node))
    }

    fn edge(&mut self, from: LineageNode, to: LineageNode) {
        let (a, b) = (self.node(from), self.node(to));
        self.graph.update_edge(a, b, ());
    }

    /// Everything upstream and downstream of `node`; `None` when no DAG mentions it.
    pub fn around(&self, node: &LineageNode) -> Option<LineageView> {
        let start = *self.index.get(node)?;
        let upstream = self.reach(start, Direction::Incoming);
        let downstream = self.reach(start, Direction::Outgoing);
        let up_side = |n: &NodeIndex| *n == start || upstream.contains(n);
        let down_side = |n: &NodeIndex| *n == start || downstream.contains(n);
        // Only edges along the flow through `node`, not side branches between its neighbours' other inputs.
        let mut edges: Vec<(LineageNode, LineageNode)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .filter(|(a, b)| (up_side(a) && up_side(b)) || (down_side(a) && down_side(b)))
            .map(|(a, b)| (self.graph[a].clone(), self.graph[b].clone()))
            .collect();
        edges.sort();
        let sorted = |set: BTreeSet<NodeIndex>| {
            let mut nodes: Vec<LineageNode> = set.into_iter().map(|i| self.graph[i].clone()).collect();
            nodes.sort();
            nodes
        };
        Some(LineageView { upstream: sorted(upstream), downstream: sorted(downstream), edges })
    }

    fn reach(&self, start: NodeIndex, direction: Direction) -> BTreeSet<NodeIndex> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for next in self.graph.neighbors_directed(n, direction) {
                if next != start && seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_dag;

    const ETL: &str = "dag_id: etl
tasks:
  - {id: ingest, kind: ingest, source: {type: csv, path: a.csv}, outputs: ['lake://raw/a']}
  - {id: clean, kind: transform, depends_on: [ingest], inputs: ['lake://raw/a'], outputs: ['lake://clean/a'], steps: []}
";
    const CONSUMER: &str = "dag_id: consumer
schedule: {assets: ['lake://clean/a']}
tasks:
  - {id: train, command: [echo]}
  - {id: publish, depends_on: [train], command: [echo], outputs: ['s3://models/a']}
";
    const OTHER: &str = "dag_id: other
tasks:
  - {id: side, command: [echo], inputs: ['lake://raw/b'], outputs: ['lake://side/b']}
";

    fn asset(uri: &str) -> LineageNode {
        LineageNode::Asset { uri: uri.into() }
    }

    fn task(dag_id: &str, task_id: &str) -> LineageNode {
        LineageNode::Task { dag_id: dag_id.into(), task_id: task_id.into() }
    }

    fn lineage() -> Lineage {
        let dags: Vec<DagSpec> =
            [ETL, CONSUMER, OTHER].iter().map(|src| load_dag("f.yaml", src).unwrap().spec.clone()).collect();
        Lineage::from_dags(&dags)
    }

    #[test]
    fn an_asset_sees_its_producers_and_consumers_across_dags() {
        let view = lineage().around(&asset("lake://clean/a")).unwrap();
        assert_eq!(view.upstream, [asset("lake://raw/a"), task("etl", "clean"), task("etl", "ingest")]);
        assert_eq!(view.downstream, [asset("s3://models/a"), task("consumer", "publish"), task("consumer", "train")]);
        assert!(view.edges.contains(&(asset("lake://clean/a"), task("consumer", "train"))), "{:?}", view.edges);
        assert!(view.edges.contains(&(task("etl", "ingest"), task("etl", "clean"))));
        assert!(!view.edges.iter().any(|(a, b)| *a == task("other", "side") || *b == task("other", "side")));
    }

    #[test]
    fn a_task_sees_what_feeds_it_and_what_it_feeds() {
        let view = lineage().around(&task("consumer", "train")).unwrap();
        assert!(view.upstream.contains(&task("etl", "ingest")), "{:?}", view.upstream);
        assert_eq!(view.downstream, [asset("s3://models/a"), task("consumer", "publish")]);
        assert!(lineage().around(&asset("lake://nowhere")).is_none());
    }

    const ML: &str = "dag_id: ml
tasks:
  - id: train
    kind: train
    inputs: ['lake://features/p']
    model: {name: p, target: y, candidates: [{algorithm: decision_tree}]}
  - {id: score, kind: score, inputs: ['lake://batch/p'], outputs: ['lake://scored/p'], score: {model: p}}
  - {id: score_v1, kind: score, inputs: ['lake://batch/p'], outputs: ['lake://old/p'], score: {model: p, version: 1}}
";

    fn model(name: &str, version: Option<i64>) -> LineageNode {
        LineageNode::Model { name: name.into(), version }
    }

    #[test]
    fn a_model_version_sits_between_its_train_task_and_the_tasks_that_use_it() {
        let dag = load_dag("ml.yaml", ML).unwrap().spec.clone();
        let version = |version: i64, stage: &str| ModelVersionRef {
            name: "p".into(),
            version,
            stage: stage.into(),
            dag_id: "ml".into(),
            task_id: "train".into(),
        };
        let lineage = Lineage::from_dags([&dag]).with_models(&[version(1, "archived"), version(2, "production")]);
        let view = lineage.around(&asset("lake://scored/p")).unwrap();
        assert_eq!(
            view.upstream,
            [
                asset("lake://batch/p"),
                asset("lake://features/p"),
                task("ml", "score"),
                task("ml", "train"),
                model("p", Some(2))
            ]
        );
        for edge in [
            (asset("lake://features/p"), task("ml", "train")),
            (task("ml", "train"), model("p", Some(2))),
            (model("p", Some(2)), task("ml", "score")),
        ] {
            assert!(view.edges.contains(&edge), "{edge:?} in {:?}", view.edges);
        }
        let old = lineage.around(&model("p", Some(1))).unwrap();
        assert_eq!(old.downstream, [asset("lake://old/p"), task("ml", "score_v1")], "version 1 is read by number");

        // Before any version is registered, the model is one node between the tasks.
        let planned = Lineage::from_dags([&dag]).with_models(&[]).around(&model("p", None)).unwrap();
        assert_eq!(planned.upstream, [asset("lake://features/p"), task("ml", "train")]);
        assert!(planned.downstream.contains(&task("ml", "score")), "{:?}", planned.downstream);
    }

    #[test]
    fn a_joined_asset_is_an_input_of_the_transform() {
        let src = "dag_id: enrich
tasks:
  - id: features
    kind: transform
    inputs: ['lake://raw/a']
    outputs: ['lake://features/a']
    steps: [{join: {asset: 'lake://ref/islands', on: [island]}}]
";
        let dag = load_dag("f.yaml", src).unwrap().spec.clone();
        let view = Lineage::from_dags([&dag]).around(&asset("lake://features/a")).unwrap();
        assert_eq!(view.upstream, [asset("lake://raw/a"), asset("lake://ref/islands"), task("enrich", "features")]);
        assert!(view.edges.contains(&(asset("lake://ref/islands"), task("enrich", "features"))), "{:?}", view.edges);
    }
}
