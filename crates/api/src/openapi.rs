//! The OpenAPI 3.1 document of `/api/v2`, generated from the handlers' annotations (utoipa), served at
//! `/api/v2/openapi.json` and rendered for people at `/docs`.

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every error answer: `{"detail": "..."}`, as Airflow's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// One event of a `text/event-stream` answer, as a client reads it off the stream: its name, and its `data`, the JSON
/// text of the body the route names for that event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServerSentEvent {
    pub event: Option<String>,
    pub data: String,
    /// Where a reconnecting client resumes (`Last-Event-ID`), on streams that number their events.
    pub id: Option<String>,
    pub retry: Option<u64>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice REST API",
        description = "Airflow 3-compatible REST API of Sluice: the same paths, fields and status codes as Airflow's /api/v2.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "DAG"), (name = "DagSource"), (name = "DagRun"), (name = "Backfill"), (name = "Task"), (name = "TaskInstance"), (name = "XCom"),
        (name = "Variable"), (name = "Connection"), (name = "Pool"), (name = "Asset"), (name = "ImportError"), (name = "Event Log"), (name = "Notification"),
        (name = "Monitor"), (name = "Version"), (name = "Auth"),
        (name = "Dashboard", description = "What the web dashboard reads: views in one call, and live updates as Server-Sent Events")
    )
)]
pub struct ApiDoc;

/// Every call takes `Authorization: Bearer <token or API key>` (from `POST /auth/token` or `/auth/api-keys`); the few
/// public routes (health, version, this document) accept it too.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("HTTPBearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        openapi.security = Some(vec![SecurityRequirement::new("HTTPBearer", Vec::<String>::new())]);
    }
}
