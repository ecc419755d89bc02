//! Who is calling, and whether they may: authentication and authorisation of `/api/v2` and `/auth`.
//!
//! Every request to those two areas goes through [`authorize`]. It finds the request's rule in [`RULES`] by method
//! and path, and unless the rule is public it authenticates the caller from `Authorization: Bearer <credential>`,
//! where the credential is a JWT from `POST /auth/token` ([`token`]) or an API key ([`keys`]). Missing, expired,
//! forged or revoked credentials get 401; a caller whose role is below the rule's gets 403. When the rule names a
//! `{dag_id}`, the DAG's `access_control` must also allow the caller's role the rule's DAG action, or 403 (as
//! Airflow answers for a DAG the user may not access). The caller then reaches the handler as a [`Principal`].
//!
//! Because the rules match paths, not handlers, a route added later is covered without touching its handler: a
//! read falls under "Viewer may read", anything else under "Admin only", until a rule says otherwise. Handlers
//! only need the [`Principal`] where one request spans several DAGs (lists, bulk changes): see
//! [`Principal::hidden_dags`] and [`Principal::may_on_dag`].
//!
//! The worker protocol is not covered here: it has its own token (`crate::worker`), and neither kind of
//! credential works on the other's routes.

mod keys;
mod password;
mod throttle;
mod token;
mod users;
mod worker_tokens;

pub use worker_tokens::{
    RECHECK_AFTER, WorkerAuth, WorkerCredential, name_problem as worker_token_name_problem,
    new_token as new_worker_token,
};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use sluice_core::{DagAction, Role, dag_allows};
use sluice_store::Store;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use password::{PasswordError, generate_password, hash_password, verify_password};
pub use throttle::{SignInLimits, SignInThrottle};
pub use token::{AuthConfig, Claims, TokenError};
pub use users::username_problem;

use crate::extract::ApiJson;
use crate::{ApiError, AppState};

/// Which methods a rule applies to.
#[derive(Debug, Clone, Copy)]
enum On {
    /// GET and HEAD.
    Read,
    /// Anything but GET and HEAD.
    Write,
    Post,
    Delete,
    Any,
}

impl On {
    fn matches(self, method: &Method) -> bool {
        let read = method == Method::GET || method == Method::HEAD;
        match self {
            On::Read => read,
            On::Write => !read,
            On::Post => method == Method::POST,
            On::Delete => method == Method::DELETE,
            On::Any => true,
        }
    }
}

/// Who may call a route: anyone, or callers of at least a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    AtLeast(Role),
}

/// One row of the authorisation table. A pattern's segments are literals, `*` (any one segment), `{dag_id}` (any
/// one segment, the DAG whose `access_control` also applies, with `dag`'s action) or a final `**` (zero or more
/// segments).
#[derive(Debug)]
struct Rule {
    on: On,
    pattern: &'static str,
    access: Access,
    dag: Option<DagAction>,
}

const fn rule(on: On, pattern: &'static str, access: Access) -> Rule {
    Rule { on, pattern, access, dag: None }
}

const fn dag_rule(on: On, pattern: &'static str, role: Role, action: DagAction) -> Rule {
    Rule { on, pattern, access: Access::AtLeast(role), dag: Some(action) }
}

use Access::{AtLeast, Public};
use Role::{Admin, Op, User, Viewer};

/// Every authorisation decision of the REST API, first match wins. Roles follow Airflow's simple auth manager:
/// Viewer reads, User changes DAGs and their runs, Op also variables, connections, pools, assets and backfills.
static RULES: &[Rule] = &[
    // Open in Airflow too: load balancers and clients probe these before they have a token.
    rule(On::Read, "/api/v2/monitor/health", Public),
    rule(On::Read, "/api/v2/version", Public),
    rule(On::Read, "/api/v2/openapi.json", Public),
    rule(On::Post, "/auth/token", Public),
    // Its labels name every DAG, pool and worker: an operator's view, as Prometheus scrapes it with an API key.
    rule(On::Read, "/metrics", AtLeast(Op)),
    // Variables and connections hold secrets: Op even to read them.
    rule(On::Any, "/api/v2/variables/**", AtLeast(Op)),
    rule(On::Any, "/api/v2/connections/**", AtLeast(Op)),
    // The audit log holds what changes carried, variables' values among them.
    rule(On::Read, "/api/v2/eventLogs/**", AtLeast(Op)),
    rule(On::Write, "/api/v2/pools/**", AtLeast(Op)),
    rule(On::Write, "/api/v2/assets/**", AtLeast(Op)),
    rule(On::Write, "/api/v2/backfills/**", AtLeast(Op)),
    // Models: Viewer reads the registry, User predicts and gives feedback, Op promotes and rolls back.
    rule(On::Post, "/api/v2/models/*/predict", AtLeast(User)),
    rule(On::Post, "/api/v2/models/*/feedback", AtLeast(User)),
    rule(On::Write, "/api/v2/models/**", AtLeast(Op)),
    // The Open Inference Protocol: health is open as in KServe, inference is a User's.
    rule(On::Read, "/v2/health/**", Public),
    rule(On::Read, "/v2/models/**", AtLeast(Viewer)),
    rule(On::Post, "/v2/models/*/infer", AtLeast(User)),
    rule(On::Post, "/v2/models/*/versions/*/infer", AtLeast(User)),
    // Lists whose filters travel in a POST body are reads; their handlers leave out DAGs the caller cannot read.
    rule(On::Post, "/api/v2/dags/~/dagRuns/list", AtLeast(Viewer)),
    rule(On::Post, "/api/v2/dags/~/dagRuns/~/taskInstances/list", AtLeast(Viewer)),
    dag_rule(On::Read, "/api/v2/dags/{dag_id}/**", Viewer, DagAction::CanRead),
    dag_rule(On::Read, "/api/v2/dagSources/{dag_id}", Viewer, DagAction::CanRead),
    // The dashboard's views of one DAG; its lists and event stream filter in their handlers.
    dag_rule(On::Read, "/api/v2/ui/grid/{dag_id}", Viewer, DagAction::CanRead),
    dag_rule(On::Read, "/api/v2/ui/structure/{dag_id}", Viewer, DagAction::CanRead),
    dag_rule(On::Read, "/api/v2/ui/gantt/{dag_id}/**", Viewer, DagAction::CanRead),
    dag_rule(On::Read, "/api/v2/ui/logs/{dag_id}/**", Viewer, DagAction::CanRead),
    dag_rule(On::Delete, "/api/v2/dags/{dag_id}", User, DagAction::CanDelete),
    dag_rule(On::Write, "/api/v2/dags/{dag_id}/**", User, DagAction::CanEdit),
    // Pausing several DAGs at once: the handler checks each DAG with `Principal::may_on_dag`.
    rule(On::Write, "/api/v2/dags", AtLeast(User)),
    rule(On::Read, "/api/v2/**", AtLeast(Viewer)),
    // Everyone manages their own API keys; the handlers keep other people's keys to Admin.
    rule(On::Any, "/auth/api-keys/**", AtLeast(Viewer)),
    rule(On::Any, "/auth/users/**", AtLeast(Admin)),
    // Whatever else changes something is Admin's until a rule above says otherwise.
    rule(On::Any, "/**", AtLeast(Admin)),
];

/// `%XX` escapes decoded, so that an escaped DAG id is checked as the handler will read it; `None` if not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `path` fits `pattern`, and the `{dag_id}` segment it captured.
fn match_path(pattern: &str, path: &[String]) -> Option<Option<String>> {
    let mut dag_id = None;
    let mut segments = path.iter();
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        if part == "**" {
            return Some(dag_id);
        }
        let segment = segments.next()?;
        match part {
            "*" => {}
            "{dag_id}" => dag_id = Some(segment.clone()),
            literal if literal == segment => {}
            _ => return None,
        }
    }
    segments.next().is_none().then_some(dag_id)
}

/// The rule for a request, and the DAG it concerns.
fn rule_for(method: &Method, path: &str) -> Result<(&'static Rule, Option<String>), ApiError> {
    // Empty segments are dropped, so `//dags/x` is checked as `/dags/x` whatever the router makes of it.
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s).ok_or_else(|| ApiError::BadRequest("the path is not valid UTF-8".into())))
        .collect::<Result<Vec<_>, _>>()?;
    RULES
        .iter()
        .filter(|r| r.on.matches(method))
        .find_map(|r| match_path(r.pattern, &segments).map(|dag_id| (r, dag_id)))
        .ok_or_else(|| ApiError::Forbidden("no rule allows this request".into()))
}

/// Whether a presented secret is the expected one, compared in constant time (`subtle`), so that response times
/// do not reveal how much of a guess was right. Every comparison of secrets goes through here.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The authenticated caller of a request: a user, directly or through one of their API keys.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: String,
    /// The role requests are judged by (for an API key, the lower of the key's and its owner's).
    pub role: Role,
    /// The API key used, if any.
    pub api_key: Option<Uuid>,
}

impl Principal {
    /// 403 with `why` unless the caller has at least `role`.
    pub fn require(&self, role: Role, why: &str) -> Result<(), ApiError> {
        if self.role >= role { Ok(()) } else { Err(ApiError::Forbidden(why.into())) }
    }

    /// Whether the caller may do `action` on `dag_id` according to its `access_control` (the role's rights on
    /// routes are checked by [`RULES`]). A DAG that does not exist restricts nothing: the handler answers 404.
    pub async fn may_on_dag(&self, store: &Store, dag_id: &str, action: DagAction) -> Result<bool, ApiError> {
        if self.role == Role::Admin {
            return Ok(true);
        }
        Ok(dag_allows(store.dag_access_control(dag_id).await?.as_ref(), self.role, action))
    }

    /// The DAGs the caller may not read, for list endpoints to leave out (see `DagFilter::hidden_dag_ids`).
    pub async fn hidden_dags(&self, store: &Store) -> Result<Vec<String>, ApiError> {
        if self.role == Role::Admin {
            return Ok(Vec::new());
        }
        let restricted = store.restricted_dags().await?;
        Ok(restricted
            .into_iter()
            .filter(|(_, access)| !dag_allows(Some(access), self.role, DagAction::CanRead))
            .map(|(dag_id, _)| dag_id)
            .collect())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))
    }
}

/// The caller, from `Authorization: Bearer <JWT or API key>`.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
    let credential = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token or API key>".into()))?;
    let store = state.engine.store();
    if keys::looks_like_key(credential) {
        return keys::authenticate(store, credential).await;
    }
    let claims =
        state.auth.verify(credential).map_err(|e| ApiError::Unauthorized(format!("Invalid JWT token: {e}")))?;
    let user = match Uuid::try_parse(&claims.sub) {
        Ok(id) => store.get_user(id).await?,
        Err(_) => None,
    };
    let user = user.ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
    Ok(Principal { user_id: user.id, username: user.username, role: user.role, api_key: None })
}

/// The middleware in front of `/api/v2` and `/auth`: see the module's documentation.
pub async fn authorize(State(state): State<AppState>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let path = match request.extensions().get::<OriginalUri>() {
        Some(original) => original.path().to_owned(),
        None => request.uri().path().to_owned(),
    };
    let (rule, dag_id) = rule_for(request.method(), &path)?;
    let Access::AtLeast(role) = rule.access else {
        return Ok(next.run(request).await);
    };
    let principal = authenticate(&state, request.headers()).await?;
    principal
        .require(role, &format!("{} may not {} {path}: it takes the {role} role", principal.role, request.method()))?;
    // `~` stands for every DAG: such requests are filtered by their handlers.
    if let (Some(action), Some(dag_id)) = (rule.dag, dag_id.filter(|d| d != "~"))
        && !principal.may_on_dag(state.engine.store(), &dag_id, action).await?
    {
        return Err(ApiError::Forbidden(format!("{} may not access the DAG `{dag_id}`", principal.username)));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// `/auth`: tokens and API keys, each route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update, users::delete))
        .routes(routes!(worker_tokens::create, worker_tokens::list))
        .routes(routes!(worker_tokens::revoke))
}

/// Airflow's `LoginBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// Airflow's `LoginResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
}

/// A hash to check a password against when the username is unknown, so that answering takes as long as for a
/// known one and response times do not tell which usernames exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

/// The address a request came from: the connection's peer. `X-Forwarded-For` is not read, since any client can
/// send it; behind a reverse proxy every client has the proxy's address. Without the connection's details (a
/// router served without them) every client shares one address.
pub(crate) fn client_address(extensions: &Extensions) -> IpAddr {
    extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip())
}

/// `POST /auth/token`: a JSON or form body `{username, password}` → 201 `{"access_token": …}`. Failed attempts are
/// limited per username and per client address (see [`throttle`]): beyond the limits the answer is 429, with
/// `Retry-After`.
#[utoipa::path(post, path = "/token", tag = "Auth", security(()),
    request_body(content((LoginBody = "application/json"), (LoginBody = "application/x-www-form-urlencoded"))),
    responses((status = 201, body = LoginResponse), (status = 429, description = "Too many failed sign-ins; `Retry-After` says when to try again", body = crate::openapi::ErrorBody), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
async fn login(State(state): State<AppState>, request: Request) -> Result<(StatusCode, Json<LoginResponse>), ApiError> {
    let address = client_address(request.extensions());
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if form {
        Form::<LoginBody>::from_request(request, &state)
            .await
            .map_err(|e| ApiError::Unprocessable(format!("invalid request body: {}", e.body_text())))?
            .0
    } else {
        ApiJson::<LoginBody>::from_request(request, &state).await?.0
    };
    if body.username.is_empty() || body.password.is_empty() {
        return Err(ApiError::BadRequest("Username and password must be provided".into()));
    }
    let attempt = state.sign_in.begin(&body.username, address, Instant::now()).map_err(|locked| {
        let retry_after_secs = locked.retry_after.as_secs() + u64::from(locked.retry_after.subsec_nanos() > 0);
        tracing::warn!(username = %body.username, %address, by = locked.by, "sign-in refused: too many failures");
        ApiError::TooManyRequests {
            detail: format!("Too many failed sign-ins for this {}; try again in {retry_after_secs} seconds", locked.by),
            retry_after_secs,
        }
    })?;
    let user = state.engine.store().get_user_by_name(&body.username).await?;
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = body.password;
    // argon2 takes tens of milliseconds of CPU on purpose: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))?;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(username = %body.username, %address, "sign-in failed");
        return Err(ApiError::Unauthorized("Invalid credentials".into()));
    };
    state.sign_in.succeeded(attempt);
    let access_token =
        state.auth.issue(&user).map_err(|e| ApiError::Internal(format!("cannot sign the token: {e}")))?;
    tracing::info!(username = %user.username, "token issued");
    Ok((StatusCode::CREATED, Json(LoginResponse { access_token })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(method: Method, path: &str) -> (Access, Option<DagAction>, Option<String>) {
        let (rule, dag_id) = rule_for(&method, path).unwrap();
        (rule.access, rule.dag, dag_id)
    }

    #[test]
    fn the_table_gives_each_route_airflows_role() {
        let cases = [
            (Method::GET, "/api/v2/version", Public),
            (Method::GET, "/api/v2/monitor/health", Public),
            (Method::POST, "/auth/token", Public),
            (Method::GET, "/api/v2/dags", AtLeast(Viewer)),
            (Method::PATCH, "/api/v2/dags", AtLeast(User)),
            (Method::GET, "/api/v2/variables", AtLeast(Op)),
            (Method::DELETE, "/api/v2/variables/k", AtLeast(Op)),
            (Method::GET, "/api/v2/connections/c", AtLeast(Op)),
            (Method::GET, "/api/v2/pools", AtLeast(Viewer)),
            (Method::POST, "/api/v2/pools", AtLeast(Op)),
            (Method::POST, "/api/v2/dags/~/dagRuns/list", AtLeast(Viewer)),
            (Method::POST, "/api/v2/dags/d/dagRuns", AtLeast(User)),
            (Method::GET, "/api/v2/importErrors", AtLeast(Viewer)),
            (Method::POST, "/api/v2/someFutureThing", AtLeast(Admin)),
            (Method::GET, "/api/v2/someFutureThing", AtLeast(Viewer)),
            (Method::GET, "/auth/api-keys", AtLeast(Viewer)),
            (Method::GET, "/auth/users", AtLeast(Admin)),
            (Method::DELETE, "/auth/users/alice", AtLeast(Admin)),
            (Method::PUT, "/api/v2/backfills/1/cancel", AtLeast(Op)),
            (Method::GET, "/auth/somethingElse", AtLeast(Admin)),
            (Method::GET, "/api/v2/models/m/versions", AtLeast(Viewer)),
            (Method::POST, "/api/v2/models/m/predict", AtLeast(User)),
            (Method::POST, "/api/v2/models/m/feedback", AtLeast(User)),
            (Method::POST, "/api/v2/models/m/versions/2/stage", AtLeast(Op)),
            (Method::POST, "/api/v2/models/m/rollback", AtLeast(Op)),
            (Method::GET, "/v2/health/ready", Public),
            (Method::GET, "/v2/models/m", AtLeast(Viewer)),
            (Method::POST, "/v2/models/m/infer", AtLeast(User)),
            (Method::POST, "/v2/models/m/versions/3/infer", AtLeast(User)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(decide(method.clone(), path).0, expected, "{method} {path}");
        }
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("s3cret-token", "s3cret-token"));
        for other in ["s3cret-tokeN", "s3cret-toke", "s3cret-token!", "", "S3cret-token"] {
            assert!(!same_secret(other, "s3cret-token"), "{other:?}");
        }
        assert!(same_secret("", ""));
    }

    #[test]
    fn dag_scoped_routes_name_their_dag_and_action() {
        let read = decide(Method::GET, "/api/v2/dags/etl/dagRuns/r1/taskInstances/t/logs/1");
        assert_eq!(read, (AtLeast(Viewer), Some(DagAction::CanRead), Some("etl".into())));
        assert_eq!(decide(Method::GET, "/api/v2/dags/etl").2.as_deref(), Some("etl"));
        assert_eq!(decide(Method::DELETE, "/api/v2/dags/etl").1, Some(DagAction::CanDelete));
        assert_eq!(decide(Method::DELETE, "/api/v2/dags/etl/dagRuns/r1").1, Some(DagAction::CanEdit));
        assert_eq!(decide(Method::GET, "/api/v2/dagSources/etl").2.as_deref(), Some("etl"));
        for path in
            ["/api/v2/ui/grid/etl", "/api/v2/ui/structure/etl", "/api/v2/ui/gantt/etl/r1", "/api/v2/ui/logs/etl/r1/t/1"]
        {
            assert_eq!(
                decide(Method::GET, path),
                (AtLeast(Viewer), Some(DagAction::CanRead), Some("etl".into())),
                "{path}"
            );
        }
        assert_eq!(decide(Method::GET, "/api/v2/ui/dags"), (AtLeast(Viewer), None, None));
        assert_eq!(decide(Method::GET, "/api/v2/ui/events"), (AtLeast(Viewer), None, None));
        // An escaped id is checked as the handler reads it, and empty segments cannot dodge the rule.
        assert_eq!(decide(Method::GET, "/api/v2/dags/e%74l").2.as_deref(), Some("etl"));
        assert_eq!(decide(Method::GET, "/api/v2//dags/etl").2.as_deref(), Some("etl"));
    }
}
