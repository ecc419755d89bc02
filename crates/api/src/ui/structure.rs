//! `GET /api/v2/ui/structure/{dag_id}?run_id=&collapsed=`: the DAG laid out left to right for drawing (see
//! `sluice_core::layout`), each task with its state in the given run, and its task groups: a group asked for in
//! `collapsed` is laid out as one node in place of its tasks.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sluice_core::TaskState;
use sluice_core::layout::{label_size, layered};

use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StructureQuery {
    /// Draw the DAG version this run used, with its task instances' states; the latest version without it.
    run_id: Option<String>,
    /// Task groups to draw as one node each (repeated, or several separated by commas).
    #[serde(default)]
    collapsed: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructureNode {
    /// A task id, or the id of a collapsed group.
    pub id: String,
    /// The id within its group.
    pub label: String,
    /// The task's kind, or `group` for a collapsed group.
    pub kind: String,
    /// The innermost group the node is in.
    pub group_id: Option<String>,
    /// Top-left corner and size of the node's box, in pixels.
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The task instance's state in the run asked for (`null` without a run, or before the scheduler decided); for
    /// a collapsed group, the state of its tasks that most needs attention.
    pub state: Option<TaskState>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructureEdge {
    pub source: String,
    pub target: String,
    /// The polyline from the source box's right side to the target box's left side, `[x, y]` pairs.
    pub points: Vec<[f64; 2]>,
}

/// A task group of the DAG, collapsed or not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructureGroup {
    /// The full id, prefixed with the enclosing groups' ids.
    pub id: String,
    /// The id within the enclosing group.
    pub label: String,
    pub parent: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Structure {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<StructureNode>,
    pub edges: Vec<StructureEdge>,
    /// Every task group, parents before their children.
    pub groups: Vec<StructureGroup>,
}

/// The DAG's tasks and dependencies with the coordinates to draw them at, left to right.
#[utoipa::path(get, path = "/ui/structure/{dag_id}", tag = "Dashboard", params(("dag_id" = String, Path), StructureQuery), responses((status = 200, body = Structure), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn structure(
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StructureQuery>,
) -> Result<Json<Structure>, ApiError> {
    let store = state.engine.store();
    let (dag, states) = match &q.run_id {
        Some(run_id) => {
            let run = crate::public::runs::find(&state, &dag_id, run_id).await?;
            let cells = store.grid_cells(&[run.id]).await?;
            let states: HashMap<String, TaskState> = cells.into_iter().map(|c| (c.task_id, c.state)).collect();
            (state.engine.dags().get(store, run.version_id).await?, states)
        }
        None => (crate::public::dags::latest_dag(&state, &dag_id).await?, HashMap::new()),
    };
    let collapsed: Vec<&str> = q.collapsed.iter().flat_map(|c| c.split(',')).filter(|c| !c.is_empty()).collect();
    if let Some(unknown) = collapsed.iter().find(|c| dag.group(c).is_none()) {
        return Err(ApiError::Unprocessable(format!("`{unknown}` is not a task group of the DAG `{dag_id}`")));
    }
    let graph = dag.collapsed_graph(&collapsed);
    // The nodes without their places, in the graph's node order.
    let drawn: Vec<StructureNode> = graph
        .node_weights()
        .map(|id| {
            let (label, kind, group_id, state) = match dag.group(id) {
                Some(group) => {
                    let tasks = dag.group_tasks(id);
                    let state = TaskState::of_group(tasks.iter().filter_map(|t| states.get(*t).copied()));
                    (group.label().to_owned(), "group".to_owned(), group.parent.clone(), state)
                }
                None => {
                    let kind = dag.task(id).map_or_else(|| "command".to_owned(), |t| t.kind.clone());
                    let group_id = dag.group_of(id).map(str::to_owned);
                    (dag.task_label(id).to_owned(), kind, group_id, states.get(id).copied())
                }
            };
            let state = state.filter(|s| *s != TaskState::None);
            StructureNode { id: id.clone(), label, kind, group_id, x: 0.0, y: 0.0, width: 0.0, height: 0.0, state }
        })
        .collect();
    let layout = layered(&graph, |n| label_size(&drawn[n.index()].label));
    // The layout lists the nodes in the graph's node order too.
    let nodes = drawn
        .into_iter()
        .zip(&layout.nodes)
        .map(|(node, b)| StructureNode { x: b.x, y: b.y, width: b.width, height: b.height, ..node })
        .collect();
    let edges = layout
        .edges
        .into_iter()
        .map(|e| StructureEdge {
            source: graph[e.source].clone(),
            target: graph[e.target].clone(),
            points: e.points.into_iter().map(|(x, y)| [x, y]).collect(),
        })
        .collect();
    let groups = dag
        .groups()
        .iter()
        .map(|g| StructureGroup {
            id: g.id.clone(),
            label: g.label().to_owned(),
            parent: g.parent.clone(),
            description: g.description.clone(),
        })
        .collect();
    Ok(Json(Structure { width: layout.width, height: layout.height, nodes, edges, groups }))
}
