//! The OpenAPI 3.1 document of `/api/v2`, generated from the handlers' annotations (utoipa), served at
//! `/api/v2/openapi.json` and rendered for people at `/docs`.

use serde::Serialize;
use utoipa::OpenApi;

/// Every error answer: `{"detail": "..."}`, as Airflow's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice REST API",
        description = "Airflow 3-compatible REST API of Sluice: the same paths, fields and status codes as Airflow's /api/v2.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "DAG"), (name = "DagSource"), (name = "DagRun"), (name = "Backfill"), (name = "TaskInstance"), (name = "XCom"),
        (name = "Variable"), (name = "Connection"), (name = "Pool"), (name = "ImportError"), (name = "Monitor"),
        (name = "Version")
    )
)]
pub struct ApiDoc;
