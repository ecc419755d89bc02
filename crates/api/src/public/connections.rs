//! `/api/v2/connections`: how tasks reach outside systems. Passwords and secret-looking extra fields are stored
//! as given but never answered in clear.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::masking::{MASK, SensitiveKeys};
use sluice_store::ConnectionRow;

use super::UpdateMask;
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// What a redacted secret reads as; sending it back in a PATCH keeps the stored secret.
const REDACTED: &str = MASK;

/// Airflow 3's `ConnectionResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub password: Option<String>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

impl From<ConnectionRow> for ConnectionResponse {
    fn from(row: ConnectionRow) -> Self {
        ConnectionResponse {
            connection_id: row.conn_id,
            conn_type: row.conn_type,
            description: row.description,
            host: row.host,
            login: row.login,
            schema: row.schema,
            port: row.port,
            password: row.password.map(|_| REDACTED.to_owned()),
            extra: row.extra.map(|e| redact_extra(&e)),
            team_name: None,
        }
    }
}

/// Keys of `extra` whose values are secrets, as Airflow's secrets masker decides.
fn is_sensitive(key: &str) -> bool {
    SensitiveKeys::default().is_sensitive(key)
}

fn redact_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_sensitive(&k) && !v.is_null() { Value::from(REDACTED) } else { redact_value(v) };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_value).collect()),
        other => other,
    }
}

/// Unstructured (non-JSON) extras cannot be searched for secrets and are answered as stored, as Airflow does.
fn redact_extra(extra: &str) -> String {
    match serde_json::from_str::<Value>(extra) {
        Ok(value) => redact_value(value).to_string(),
        Err(_) => extra.to_owned(),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionCollection {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: i64,
}

/// Airflow 3's `ConnectionBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    connection_id: String,
    conn_type: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    extra: Option<String>,
    #[serde(default)]
    team_name: Option<String>,
}

impl ConnectionBody {
    fn checked(self) -> Result<ConnectionRow, ApiError> {
        let id = &self.connection_id;
        if id.is_empty()
            || id.len() > 200
            || !id.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            return Err(ApiError::Unprocessable(format!(
                "connection_id {id:?} must have 1 to 200 letters, digits, '_', '.' or '-'"
            )));
        }
        if self.team_name.is_some() {
            return Err(ApiError::BadRequest("team_name cannot be set: Sluice has no multi-team mode".into()));
        }
        if let Some(port) = self.port
            && !(0..=65535).contains(&port)
        {
            return Err(ApiError::Unprocessable(format!("port {port} is not between 0 and 65535")));
        }
        // Airflow keeps treating "" as an empty object for compatibility with older clients.
        let extra = match self.extra.as_deref() {
            None => None,
            Some("") => Some("{}".to_owned()),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(_)) => Some(text.to_owned()),
                _ => {
                    return Err(ApiError::Unprocessable(
                        "The `extra` field must be a valid JSON object (e.g., {\"key\": \"value\"})".into(),
                    ));
                }
            },
        };
        Ok(ConnectionRow {
            conn_id: self.connection_id,
            conn_type: self.conn_type,
            description: self.description,
            host: self.host,
            login: self.login,
            password: self.password,
            schema: self.schema,
            port: self.port,
            extra,
        })
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("The Connection with connection_id: `{id}` was not found"))
}

#[utoipa::path(get, path = "/connections", tag = "Connection", params(super::Page), responses((status = 200, body = ConnectionCollection), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<ConnectionCollection>, ApiError> {
    let (limit, offset) = page.checked()?;
    let (rows, total_entries) = state.engine.store().list_connections(limit, offset).await?;
    Ok(Json(ConnectionCollection { connections: rows.into_iter().map(Into::into).collect(), total_entries }))
}

#[utoipa::path(get, path = "/connections/{connection_id}", tag = "Connection", params(("connection_id" = String, Path)), responses((status = 200, body = ConnectionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ConnectionResponse>, ApiError> {
    let row = state.engine.store().get_connection(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(row.into()))
}

#[utoipa::path(post, path = "/connections", tag = "Connection", request_body = ConnectionBody, responses((status = 201, body = ConnectionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<(StatusCode, Json<ConnectionResponse>), ApiError> {
    let row = body.checked()?;
    if !state.engine.store().create_connection(&row).await? {
        return Err(ApiError::Conflict(format!("The connection with connection_id: `{}` already exists", row.conn_id)));
    }
    tracing::info!(conn_id = row.conn_id, "connection created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Replaces the fields named in `update_mask` (all of them without one). A password or secret sent back as
/// `***` keeps the stored value, so a client can round-trip what it read.
#[utoipa::path(patch, path = "/connections/{connection_id}", tag = "Connection", params(("connection_id" = String, Path), UpdateMask), request_body = ConnectionBody, responses((status = 200, body = ConnectionResponse), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(mask): ApiQuery<UpdateMask>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<Json<ConnectionResponse>, ApiError> {
    if body.connection_id != id {
        return Err(ApiError::BadRequest(format!(
            "The connection_id in the request body {:?} does not match the path's {id:?}",
            body.connection_id
        )));
    }
    let store = state.engine.store();
    let old = store.get_connection(&id).await?.ok_or_else(|| not_found(&id))?;
    let new = body.checked()?;
    let fields = ["conn_type", "description", "host", "login", "schema", "port", "password", "extra"];
    let update = mask.fields(&fields)?;
    let pick = |name: &str| update.contains(&name);
    let password = match new.password {
        Some(p) if p == REDACTED => old.password.clone(),
        p => p,
    };
    let merged = ConnectionRow {
        conn_id: id,
        conn_type: if pick("conn_type") { new.conn_type } else { old.conn_type },
        description: if pick("description") { new.description } else { old.description },
        host: if pick("host") { new.host } else { old.host },
        login: if pick("login") { new.login } else { old.login },
        schema: if pick("schema") { new.schema } else { old.schema },
        port: if pick("port") { new.port } else { old.port },
        password: if pick("password") { password } else { old.password },
        extra: if pick("extra") { restore_redacted_extra(new.extra, old.extra.as_deref()) } else { old.extra },
    };
    if !store.update_connection(&merged).await? {
        return Err(not_found(&merged.conn_id));
    }
    Ok(Json(merged.into()))
}

/// Puts the stored secret back wherever the new `extra` holds the redacted placeholder.
fn restore_redacted_extra(new: Option<String>, old: Option<&str>) -> Option<String> {
    let (Some(new_text), Some(old_text)) = (new.as_deref(), old) else { return new };
    let (Ok(Value::Object(mut fresh)), Ok(Value::Object(stored))) =
        (serde_json::from_str::<Value>(new_text), serde_json::from_str::<Value>(old_text))
    else {
        return new;
    };
    for (key, value) in fresh.iter_mut() {
        if value.as_str() == Some(REDACTED)
            && let Some(kept) = stored.get(key)
        {
            *value = kept.clone();
        }
    }
    Some(Value::Object(fresh).to_string())
}

#[utoipa::path(delete, path = "/connections/{connection_id}", tag = "Connection", params(("connection_id" = String, Path)), responses((status = 204, description = "Deleted"), (status = "default", description = "An error: `{\"detail\": ...}`", body = crate::openapi::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if state.engine.store().delete_connection(&id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_found(&id)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_hide_secret_keys_at_any_depth() {
        let out = redact_extra(r#"{"sslmode": "require", "API_KEY": "k", "nested": {"client_secret": "s"}}"#);
        let value: Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(value["sslmode"], "require");
        assert_eq!(value["API_KEY"], REDACTED);
        assert_eq!(value["nested"]["client_secret"], REDACTED);
        assert_eq!(redact_extra("not json"), "not json");
    }

    #[test]
    fn redacted_extra_values_keep_the_stored_secret() {
        let merged = restore_redacted_extra(
            Some(r#"{"token": "***", "region": "eu"}"#.into()),
            Some(r#"{"token": "t0k3n", "region": "us"}"#),
        );
        let value: Value = serde_json::from_str(merged.as_deref().unwrap_or("null")).unwrap_or_default();
        assert_eq!((value["token"].as_str(), value["region"].as_str()), (Some("t0k3n"), Some("eu")));
    }
}
