//! The public REST API, `/api/v2`, shaped like Airflow 3's.

mod assets;
mod backfills;
mod clear;
mod connections;
mod dag_tasks;
pub(crate) mod dags;
mod event_logs;
mod models;
mod monitor;
mod notifications;
mod pools;
pub(crate) mod runs;
pub(crate) mod tasks;
mod variables;
mod xcom;

use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Every route of `/api/v2`, each with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dags::list, dags::patch_many))
        .routes(routes!(dags::get, dags::patch, dags::delete))
        .routes(routes!(dags::details))
        .routes(routes!(dags::source))
        .routes(routes!(dag_tasks::list))
        .routes(routes!(dag_tasks::get))
        .routes(routes!(clear::clear_task_instances))
        .routes(routes!(runs::list, runs::trigger))
        .routes(routes!(runs::list_batch))
        .routes(routes!(runs::get, runs::patch, runs::delete))
        .routes(routes!(runs::clear))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::list_batch))
        .routes(routes!(tasks::get, clear::patch))
        .routes(routes!(clear::patch_dry_run))
        .routes(routes!(tasks::get_mapped))
        .routes(routes!(tasks::list_mapped))
        .routes(routes!(tasks::tries))
        .routes(routes!(tasks::mapped_tries))
        .routes(routes!(tasks::try_detail))
        .routes(routes!(tasks::mapped_try_detail))
        .routes(routes!(tasks::logs))
        .routes(routes!(xcom::list, xcom::create))
        .routes(routes!(xcom::get, xcom::update))
        .routes(routes!(variables::list, variables::create))
        .routes(routes!(variables::get, variables::patch, variables::delete))
        .routes(routes!(connections::list, connections::create))
        .routes(routes!(connections::get, connections::patch, connections::delete))
        .routes(routes!(pools::list, pools::create))
        .routes(routes!(pools::get, pools::patch, pools::delete))
        .routes(routes!(backfills::list, backfills::create))
        .routes(routes!(backfills::dry_run))
        .routes(routes!(backfills::get))
        .routes(routes!(backfills::pause))
        .routes(routes!(backfills::unpause))
        .routes(routes!(backfills::cancel))
        .routes(routes!(assets::list))
        .routes(routes!(assets::events))
        .routes(routes!(assets::lineage))
        .routes(routes!(assets::get))
        .routes(routes!(assets::quality))
        .routes(routes!(assets::asset_quality))
        .merge(models_router())
        .routes(routes!(event_logs::list))
        .routes(routes!(event_logs::get))
        .routes(routes!(notifications::list))
        .routes(routes!(monitor::import_errors))
        .routes(routes!(monitor::import_error))
        .routes(routes!(monitor::health))
        .routes(routes!(monitor::version))
        .merge(crate::ui::router())
}

/// The model registry and predictions: part of `/api/v2`, and all that `sluice serve` answers of it.
pub fn models_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models::list))
        .routes(routes!(models::get))
        .routes(routes!(models::versions))
        .routes(routes!(models::version))
        .routes(routes!(models::stage_history))
        .routes(routes!(models::monitor_reports))
        .routes(routes!(models::set_stage))
        .routes(routes!(models::rollback))
        .routes(routes!(models::predict))
        .routes(routes!(models::feedback))
}

/// `limit` and `offset`, as every Airflow list endpoint takes them.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    50
}

impl Page {
    pub fn checked(&self) -> Result<(i64, i64), crate::ApiError> {
        if self.limit < 0 || self.offset < 0 {
            return Err(crate::ApiError::Unprocessable("limit and offset must not be negative".into()));
        }
        Ok((self.limit.min(1000), self.offset))
    }
}

/// `update_mask` of Airflow's PATCH endpoints: the body fields to apply (repeated key or comma-separated).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpdateMask {
    #[serde(default)]
    update_mask: Vec<String>,
}

impl From<Vec<String>> for UpdateMask {
    fn from(update_mask: Vec<String>) -> Self {
        UpdateMask { update_mask }
    }
}

impl UpdateMask {
    /// The fields to change: those named, each one of `allowed`, or every allowed field when none is named.
    pub fn fields<'a>(&self, allowed: &[&'a str]) -> Result<Vec<&'a str>, crate::ApiError> {
        let named: Vec<&str> =
            self.update_mask.iter().flat_map(|m| m.split(',')).map(str::trim).filter(|m| !m.is_empty()).collect();
        if named.is_empty() {
            return Ok(allowed.to_vec());
        }
        named
            .into_iter()
            .map(|name| {
                allowed.iter().copied().find(|a| *a == name).ok_or_else(|| {
                    crate::ApiError::BadRequest(format!(
                        "update_mask names {name:?}, which cannot be changed; allowed: {}",
                        allowed.join(", ")
                    ))
                })
            })
            .collect()
    }
}
