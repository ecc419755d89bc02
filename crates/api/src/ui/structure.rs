//! `GET /api/v2/ui/structure/{dag_id}?run_id=`: the DAG laid out left to right for drawing (see
//! `sluice_core::layout`), each task with its state in the given run.

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
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructureNode {
    pub id: String,
    pub label: String,
    pub kind: String,
    /// Top-left corner and size of the node's box, in pixels.
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The task instance's state in the run asked for (`null` without a run, or before the scheduler decided).
    pub state: Option<TaskState>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructureEdge {
    pub source: String,
    pub target: String,
    /// The polyline from the source box's right side to the target box's left side, `[x, y]` pairs.
    pub points: Vec<[f64; 2]>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Structure {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<StructureNode>,
    pub edges: Vec<StructureEdge>,
}

/// The DAG's tasks and dependencies with the coordinates to draw them at, left to right.
#[utoipa::path(get, path = "/ui/structure/{dag_id}", tag = "Dashboard", params(("dag_id" = String, Path), StructureQuery), responses((status = 200, body = Structure), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn structure(
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StructureQuery>,
) -> Result<Json<Structure>, ApiError> {
    let store = state.engine.store();
    let (version, states) = match &q.run_id {
        Some(run_id) => {
            let run = crate::public::runs::find(&state, &dag_id, run_id).await?;
            let cells = store.grid_cells(&[run.id]).await?;
            let states: HashMap<String, TaskState> = cells.into_iter().map(|c| (c.task_id, c.state)).collect();
            (run.version_id, states)
        }
        None => {
            let row = crate::public::dags::find(&state, &dag_id).await?;
            let version = row
                .latest_version_id
                .ok_or_else(|| ApiError::NotFound(format!("The DAG `{dag_id}` has no version that loaded")))?;
            (version, HashMap::new())
        }
    };
    let dag = state.engine.dags().get(store, version).await?;
    let graph = dag.graph();
    let layout = layered(graph, |n| label_size(&graph[n]));
    let nodes = layout
        .nodes
        .iter()
        .map(|b| {
            let id = graph[b.node].clone();
            StructureNode {
                label: id.clone(),
                kind: dag.task(&id).map_or_else(|| "command".to_owned(), |t| t.kind.clone()),
                state: states.get(&id).copied().filter(|s| *s != TaskState::None),
                id,
                x: b.x,
                y: b.y,
                width: b.width,
                height: b.height,
            }
        })
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
    Ok(Json(Structure { width: layout.width, height: layout.height, nodes, edges }))
}
