//! Where to draw a DAG: a layered, left-to-right layout of the task graph, computed once on the server so that
//! the dashboard only draws boxes and lines.
//!
//! The method is Sugiyama's, kept small:
//! 1. **Layers** by longest path: a task sits one column right of its furthest upstream task, so every edge goes
//!    left to right.
//! 2. An edge spanning several columns gets a **dummy vertex** in each column it crosses; the column keeps a slot
//!    for it, so the line passes between boxes instead of through them.
//! 3. **Ordering** within each column by barycenters: sweeps down and up the columns move each vertex to the mean
//!    position of its neighbours in the previous column; the ordering with the fewest crossings seen is kept.
//!    Ties keep the current order, so the result depends only on the graph (node indices follow file order).
//! 4. **Coordinates**: columns side by side, each column's vertices stacked and centred vertically.

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

/// A box's size, in the dashboard's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

/// Where one node of the graph is drawn: its box's top-left corner and size.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBox {
    pub node: NodeIndex,
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// One edge as a polyline, from the right side of its source to the left side of its target.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePath {
    pub source: NodeIndex,
    pub target: NodeIndex,
    pub points: Vec<(f64, f64)>,
}

/// The whole drawing: its size, every node (in the graph's node order) and every edge (in the graph's edge order).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<NodeBox>,
    pub edges: Vec<EdgePath>,
}

/// Space between two columns: room for the edges to bend.
pub const LAYER_GAP: f64 = 64.0;
/// Space between two vertices of a column.
pub const NODE_GAP: f64 = 20.0;
/// Space around the drawing.
pub const MARGIN: f64 = 16.0;
/// The slot an edge takes where it crosses a column.
const DUMMY_HEIGHT: f64 = 8.0;
/// Barycenter sweeps (down then up) tried before keeping the best ordering.
const SWEEPS: usize = 12;

/// The box a task's label needs: roughly 7.5 px per character of a 13 px sans-serif font, plus padding.
pub fn label_size(label: &str) -> Size {
    let chars = label.chars().count() as f64;
    Size { width: (chars * 7.5 + 32.0).clamp(96.0, 320.0), height: 36.0 }
}

/// A vertex of the layered graph: a node, or a point where an edge crosses a column.
#[derive(Debug, Clone)]
struct Vertex {
    node: Option<NodeIndex>,
    layer: usize,
    height: f64,
    /// Vertices in the previous and next column joined to this one.
    up: Vec<usize>,
    down: Vec<usize>,
}

/// Lays `graph` out left to right; `size` gives each node's box. The graph should be acyclic (a [`crate::Dag`]'s
/// is): the nodes of a cycle would be placed in the first column.
pub fn layered<N, E>(graph: &DiGraph<N, E>, size: impl Fn(NodeIndex) -> Size) -> Layout {
    let layers_of = longest_path_layers(graph);
    let mut vertices: Vec<Vertex> = graph
        .node_indices()
        .map(|n| Vertex {
            node: Some(n),
            layer: layers_of[n.index()],
            height: size(n).height,
            up: Vec::new(),
            down: Vec::new(),
        })
        .collect();
    // Each edge becomes a chain of vertices, one per column from its source's to its target's.
    let mut chains = Vec::with_capacity(graph.edge_count());
    for edge in graph.edge_indices() {
        let Some((from, to)) = graph.edge_endpoints(edge) else { continue };
        let mut chain = vec![from.index()];
        for layer in layers_of[from.index()] + 1..layers_of[to.index()] {
            vertices.push(Vertex { node: None, layer, height: DUMMY_HEIGHT, up: Vec::new(), down: Vec::new() });
            chain.push(vertices.len() - 1);
        }
        chain.push(to.index());
        for pair in chain.windows(2) {
            vertices[pair[0]].down.push(pair[1]);
            vertices[pair[1]].up.push(pair[0]);
        }
        chains.push((from, to, chain));
    }
    let layer_count = vertices.iter().map(|v| v.layer + 1).max().unwrap_or(0);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (id, vertex) in vertices.iter().enumerate() {
        order[vertex.layer].push(id);
    }
    let order = reduce_crossings(&vertices, order);
    place(graph, &size, &vertices, &order, &chains)
}

/// Each node's column: 0 for nodes without upstream, else one more than the furthest upstream node's.
fn longest_path_layers<N, E>(graph: &DiGraph<N, E>) -> Vec<usize> {
    let mut indegree: Vec<usize> =
        graph.node_indices().map(|n| graph.neighbors_directed(n, Direction::Incoming).count()).collect();
    let mut ready: Vec<NodeIndex> = graph.node_indices().filter(|n| indegree[n.index()] == 0).collect();
    let mut layer = vec![0; graph.node_count()];
    while let Some(n) = ready.pop() {
        for next in graph.neighbors_directed(n, Direction::Outgoing) {
            layer[next.index()] = layer[next.index()].max(layer[n.index()] + 1);
            indegree[next.index()] -= 1;
            if indegree[next.index()] == 0 {
                ready.push(next);
            }
        }
    }
    layer
}

/// Barycenter sweeps down and up the columns; the ordering with the fewest crossings wins (the first one on ties).
fn reduce_crossings(vertices: &[Vertex], mut order: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    let mut best = order.clone();
    let mut best_crossings = crossings(vertices, &order);
    for _ in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        for layer in 1..order.len() {
            sort_by_barycenter(vertices, &mut order, layer, layer - 1, |v| &v.up);
        }
        for layer in (0..order.len().saturating_sub(1)).rev() {
            sort_by_barycenter(vertices, &mut order, layer, layer + 1, |v| &v.down);
        }
        let now = crossings(vertices, &order);
        if now < best_crossings {
            best_crossings = now;
            best = order.clone();
        }
    }
    best
}

/// Reorders column `layer` by the mean position of each vertex's neighbours in column `fixed`; a vertex without
/// neighbours there keeps its own position as its key.
fn sort_by_barycenter(
    vertices: &[Vertex],
    order: &mut [Vec<usize>],
    layer: usize,
    fixed: usize,
    neighbours: impl Fn(&Vertex) -> &Vec<usize>,
) {
    let position = positions(vertices.len(), &order[fixed]);
    let mut keyed: Vec<(f64, usize, usize)> = order[layer]
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let near = neighbours(&vertices[v]);
            let key = if near.is_empty() {
                i as f64
            } else {
                near.iter().map(|&u| position[u] as f64).sum::<f64>() / near.len() as f64
            };
            (key, i, v)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    order[layer] = keyed.into_iter().map(|(_, _, v)| v).collect();
}

/// Each vertex's position in its column (`usize::MAX` for vertices of other columns).
fn positions(count: usize, column: &[usize]) -> Vec<usize> {
    let mut position = vec![usize::MAX; count];
    for (i, &v) in column.iter().enumerate() {
        position[v] = i;
    }
    position
}

/// How many pairs of segments between neighbouring columns cross.
fn crossings(vertices: &[Vertex], order: &[Vec<usize>]) -> usize {
    let mut total = 0;
    for pair in order.windows(2) {
        let upper = positions(vertices.len(), &pair[0]);
        let lower = positions(vertices.len(), &pair[1]);
        let mut segments: Vec<(usize, usize)> = pair[0]
            .iter()
            .flat_map(|&u| vertices[u].down.iter().map(move |&d| (u, d)))
            .map(|(u, d)| (upper[u], lower[d]))
            .collect();
        segments.sort_unstable();
        for (i, a) in segments.iter().enumerate() {
            total += segments[i + 1..].iter().filter(|b| b.0 > a.0 && b.1 < a.1).count();
        }
    }
    total
}

/// Coordinates: columns left to right, each column's vertices stacked and centred vertically.
fn place<N, E>(
    graph: &DiGraph<N, E>,
    size: &impl Fn(NodeIndex) -> Size,
    vertices: &[Vertex],
    order: &[Vec<usize>],
    chains: &[(NodeIndex, NodeIndex, Vec<usize>)],
) -> Layout {
    let sizes: Vec<Size> = graph.node_indices().map(size).collect();
    let column_width: Vec<f64> = order
        .iter()
        .map(|column| {
            column.iter().filter_map(|&v| vertices[v].node).map(|n| sizes[n.index()].width).fold(0.0, f64::max)
        })
        .collect();
    let column_height: Vec<f64> = order
        .iter()
        .map(|column| {
            let boxes: f64 = column.iter().map(|&v| vertices[v].height).sum();
            boxes + NODE_GAP * column.len().saturating_sub(1) as f64
        })
        .collect();
    let tallest = column_height.iter().copied().fold(0.0, f64::max);
    let mut left = Vec::with_capacity(order.len());
    let mut x = MARGIN;
    for width in &column_width {
        left.push(x);
        x += width + LAYER_GAP;
    }
    // Vertical centre of every vertex.
    let mut centre = vec![0.0; vertices.len()];
    for (layer, column) in order.iter().enumerate() {
        let mut y = MARGIN + (tallest - column_height[layer]) / 2.0;
        for &v in column {
            centre[v] = y + vertices[v].height / 2.0;
            y += vertices[v].height + NODE_GAP;
        }
    }
    let nodes: Vec<NodeBox> = graph
        .node_indices()
        .map(|n| {
            let layer = vertices[n.index()].layer;
            let Size { width, height } = sizes[n.index()];
            NodeBox {
                node: n,
                layer,
                x: left[layer] + (column_width[layer] - width) / 2.0,
                y: centre[n.index()] - height / 2.0,
                width,
                height,
            }
        })
        .collect();
    let edges = chains
        .iter()
        .map(|(source, target, chain)| {
            let from = &nodes[source.index()];
            let to = &nodes[target.index()];
            let mut points = vec![(from.x + from.width, from.y + from.height / 2.0)];
            // Through each column crossed: along its dummy's slot, from the column's left edge to its right edge.
            for &dummy in &chain[1..chain.len() - 1] {
                let layer = vertices[dummy].layer;
                points.push((left[layer], centre[dummy]));
                points.push((left[layer] + column_width[layer], centre[dummy]));
            }
            points.push((to.x, to.y + to.height / 2.0));
            EdgePath { source: *source, target: *target, points }
        })
        .collect();
    let width = if order.is_empty() { 2.0 * MARGIN } else { x - LAYER_GAP + MARGIN };
    Layout { width, height: tallest + 2.0 * MARGIN, nodes, edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph from `(upstream, downstream)` pairs over nodes named in order.
    fn graph(names: &[&str], edges: &[(&str, &str)]) -> DiGraph<String, ()> {
        let mut g = DiGraph::new();
        let idx: Vec<NodeIndex> = names.iter().map(|n| g.add_node((*n).to_owned())).collect();
        let find = |name: &str| idx[names.iter().position(|n| *n == name).unwrap()];
        for (a, b) in edges {
            g.add_edge(find(a), find(b), ());
        }
        g
    }

    fn lay(g: &DiGraph<String, ()>) -> Layout {
        layered(g, |n| label_size(&g[n]))
    }

    fn node<'a>(layout: &'a Layout, g: &DiGraph<String, ()>, name: &str) -> &'a NodeBox {
        layout.nodes.iter().find(|b| g[b.node] == name).unwrap()
    }

    fn overlaps(a: &NodeBox, b: &NodeBox) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    /// A wide, deep graph with long edges: what most checks run on.
    fn sample() -> DiGraph<String, ()> {
        graph(
            &["extract", "a", "b", "c", "transform_a", "transform_b", "join", "report", "notify", "load_warehouse"],
            &[
                ("extract", "a"),
                ("extract", "b"),
                ("extract", "c"),
                ("a", "transform_a"),
                ("b", "transform_b"),
                ("transform_a", "join"),
                ("transform_b", "join"),
                ("c", "join"),
                ("join", "report"),
                ("extract", "report"),
                ("join", "load_warehouse"),
                ("a", "notify"),
            ],
        )
    }

    #[test]
    fn layers_follow_the_longest_path() {
        let g = sample();
        let layout = lay(&g);
        let layer = |name| node(&layout, &g, name).layer;
        assert_eq!(
            [layer("extract"), layer("a"), layer("c"), layer("transform_b"), layer("join"), layer("report")],
            [0, 1, 1, 2, 3, 4]
        );
        assert_eq!(layer("notify"), 2);
    }

    #[test]
    fn boxes_never_overlap_and_fit_the_drawing() {
        let g = sample();
        let layout = lay(&g);
        for (i, a) in layout.nodes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0, "{}", g[a.node]);
            assert!(a.x + a.width <= layout.width && a.y + a.height <= layout.height, "{}", g[a.node]);
            for b in &layout.nodes[i + 1..] {
                assert!(!overlaps(a, b), "{} overlaps {}", g[a.node], g[b.node]);
            }
        }
    }

    #[test]
    fn edges_go_left_to_right_and_around_boxes() {
        let g = sample();
        let layout = lay(&g);
        assert_eq!(layout.edges.len(), g.edge_count());
        for edge in &layout.edges {
            let (from, to) = (&layout.nodes[edge.source.index()], &layout.nodes[edge.target.index()]);
            assert_eq!(edge.points.first(), Some(&(from.x + from.width, from.y + from.height / 2.0)));
            assert_eq!(edge.points.last(), Some(&(to.x, to.y + to.height / 2.0)));
            for pair in edge.points.windows(2) {
                assert!(pair[0].0 < pair[1].0 || (pair[0].0 == pair[1].0 && pair[0] == pair[1]), "{edge:?}");
            }
            // Inside a column, a long edge runs along its own slot, never through a box.
            for point in &edge.points[1..edge.points.len() - 1] {
                for b in &layout.nodes {
                    let inside =
                        point.0 >= b.x && point.0 <= b.x + b.width && point.1 >= b.y && point.1 <= b.y + b.height;
                    assert!(!inside, "{} → {} passes through {}", g[edge.source], g[edge.target], g[b.node]);
                }
            }
        }
    }

    #[test]
    fn barycenters_remove_avoidable_crossings() {
        // In file order the two edges cross: a→d above b→c with c listed before d.
        let g = graph(&["a", "b", "c", "d"], &[("a", "d"), ("b", "c")]);
        let layout = lay(&g);
        let y = |name| node(&layout, &g, name).y;
        assert_eq!(y("a") < y("b"), y("d") < y("c"), "a→d and b→c must not cross");
    }

    #[test]
    fn the_same_graph_gives_the_same_drawing() {
        let g = sample();
        assert_eq!(lay(&g), lay(&g));
        let empty: DiGraph<String, ()> = DiGraph::new();
        let nothing = lay(&empty);
        assert!(nothing.nodes.is_empty() && nothing.edges.is_empty());
        assert_eq!(nothing.width, 2.0 * MARGIN);
    }

    #[test]
    fn labels_get_room_within_bounds() {
        assert_eq!(label_size("a").width, 96.0);
        assert!(label_size("load_the_warehouse_tables").width > 96.0);
        assert_eq!(label_size(&"x".repeat(200)).width, 320.0);
    }
}
