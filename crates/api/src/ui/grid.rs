//! `GET /api/v2/ui/grid/{dag_id}`: runs × tasks with each task instance's state, and
//! `GET /api/v2/ui/gantt/{dag_id}/{run_id}`: every try of a run's task instances with its times.
//!
//! The grid is two statements: a page of runs, then the task instances of all of them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::TaskState;
use sluice_store::{GridCell, RunFilter, RunOrder, RunTime};
use uuid::Uuid;

use super::RunSummary;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GridQuery {
    /// How many runs, newest first.
    #[serde(default = "default_runs")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_runs() -> i64 {
    25
}

/// A row of the grid.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GridTask {
    pub task_id: String,
    /// The id within its task group.
    pub label: String,
    /// `command`, or the built-in kind of a data task (`ingest`, `transform`, …).
    pub kind: String,
    /// The innermost task group the task is in.
    pub group_id: Option<String>,
}

/// The state of one task instance in one run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cell {
    /// `null` until the scheduler first decides about the task, as in Airflow.
    pub state: Option<TaskState>,
    pub try_number: i64,
    /// How many mapped instances the task has in this run (1 unless mapped).
    pub map_count: i64,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Grid {
    pub dag_id: String,
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// The latest DAG version's tasks in topological order, then tasks only older runs have.
    pub tasks: Vec<GridTask>,
    /// One row per run (in `runs` order), one cell per task (in `tasks` order); `null` where the run has no such
    /// task.
    #[schema(value_type = Vec<Vec<Option<Cell>>>)]
    pub cells: Vec<Vec<Option<Cell>>>,
    /// Runs of the DAG in all.
    pub total_runs: i64,
}

/// The newest runs of a DAG as columns and its tasks as rows, each cell a task instance's state and times.
#[utoipa::path(get, path = "/ui/grid/{dag_id}", tag = "Dashboard", params(("dag_id" = String, Path), GridQuery), responses((status = 200, body = Grid), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn grid(
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GridQuery>,
) -> Result<Json<Grid>, ApiError> {
    let (limit, offset) = crate::public::Page { limit: q.limit, offset: q.offset }.checked()?;
    let row = crate::public::dags::find(&state, &dag_id).await?;
    let store = state.engine.store();
    let filter = RunFilter {
        dag_id: Some(dag_id.clone()),
        order: RunOrder::Time(RunTime::RunAfter),
        descending: true,
        limit,
        offset,
        ..RunFilter::default()
    };
    let (runs, total_runs) = store.list_runs(&filter).await?;
    let pks: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let found = store.grid_cells(&pks).await?;
    let mut tasks: Vec<GridTask> = match row.latest_version_id {
        Some(version) => {
            let dag = state.engine.dags().get(store, version).await?;
            dag.topological_order()
                .into_iter()
                .map(|id| GridTask {
                    task_id: id.to_owned(),
                    label: dag.task_label(id).to_owned(),
                    kind: dag.task(id).map_or_else(|| "command".to_owned(), |t| t.kind.clone()),
                    group_id: dag.group_of(id).map(str::to_owned),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let mut row_of: HashMap<String, usize> = tasks.iter().enumerate().map(|(i, t)| (t.task_id.clone(), i)).collect();
    let mut older: Vec<&str> = found.iter().map(|c| c.task_id.as_str()).filter(|t| !row_of.contains_key(*t)).collect();
    older.sort_unstable();
    older.dedup();
    for task_id in older {
        row_of.insert(task_id.to_owned(), tasks.len());
        // Its kind is in the version of the runs that had it; the grid only needs to show it.
        tasks.push(GridTask { task_id: task_id.into(), label: task_id.into(), kind: "command".into(), group_id: None });
    }
    let column_of: HashMap<Uuid, usize> = pks.iter().enumerate().map(|(i, pk)| (*pk, i)).collect();
    let mut cells: Vec<Vec<Option<Cell>>> = runs.iter().map(|_| tasks.iter().map(|_| None).collect()).collect();
    for c in found {
        let (Some(&run), Some(&task)) = (column_of.get(&c.run_pk), row_of.get(&c.task_id)) else { continue };
        match &mut cells[run][task] {
            // Cells come in map_index order: the first instance speaks for a mapped task.
            Some(cell) => cell.map_count += 1,
            empty => *empty = Some(grid_cell(c)),
        }
    }
    Ok(Json(Grid { dag_id, runs: runs.iter().map(RunSummary::from).collect(), tasks, cells, total_runs }))
}

fn grid_cell(c: GridCell) -> Cell {
    Cell {
        state: (c.state != TaskState::None).then_some(c.state),
        try_number: c.try_number,
        map_count: 1,
        queued_at: c.queued_at,
        start_date: c.start_date,
        end_date: c.end_date,
    }
}

/// One try in the Gantt chart.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GanttTry {
    pub task_id: String,
    pub map_index: i64,
    pub try_number: i64,
    pub state: TaskState,
    /// When the try was queued: known for each task instance's latest try.
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Seconds from start to end, once ended.
    pub duration: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Gantt {
    pub run: RunSummary,
    /// Every try of every task instance by start time; a queued task instance's next try (not started) last.
    pub tries: Vec<GanttTry>,
}

/// Every try of a run's task instances with its times.
#[utoipa::path(get, path = "/ui/gantt/{dag_id}/{run_id}", tag = "Dashboard", params(("dag_id" = String, Path), ("run_id" = String, Path)), responses((status = 200, body = Gantt), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn gantt(
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<Json<Gantt>, ApiError> {
    let run = crate::public::runs::find(&state, &dag_id, &run_id).await?;
    let tries = state.engine.store().run_tries(run.id).await?;
    let tries = tries
        .into_iter()
        .map(|t| GanttTry {
            duration: super::seconds(t.start_date, t.end_date),
            task_id: t.task_id,
            map_index: t.map_index,
            try_number: t.try_number,
            state: t.state,
            queued_at: t.queued_at,
            start_date: t.start_date,
            end_date: t.end_date,
        })
        .collect();
    Ok(Json(Gantt { run: RunSummary::from(&run), tries }))
}
