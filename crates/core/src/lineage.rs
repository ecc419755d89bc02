//! Lineage: which tasks read and write which assets, across every DAG.
//!
//! The graph has two kinds of nodes, assets (by URI) and tasks (`dag_id` + `task_id`), and its edges follow the data:
//! an asset points to the tasks that read it (`inputs`, and the assets a transform joins), a task to the assets it
//! writes (`outputs`) and to the tasks that depend on it, and an asset that schedules a DAG (`schedule: {assets: …}`)
//! to that DAG's first tasks. It is built from the DAG files alone, so it shows what will happen as well as what did;
//! asset events say when it did.

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::spec::{DagSpec, ScheduleSpec};

/// A node of the lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineageNode {
    Asset { uri: String },
    Task { dag_id: String, task_id: String },
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
            }
            if let Some(ScheduleSpec::Assets { assets }) = &dag.schedule {
                for root in dag.tasks.iter().filter(|t| t.depends_on.is_empty()) {
                    for uri in assets {
                        lineage.edge(asset(uri), task(&root.id));
                    }
                }
            }
        }
        lineage
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
