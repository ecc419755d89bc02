//! What a leased data task receives besides its configuration: the connections it names and, for an incremental
//! ingest, the high-water mark of its previous load.
//!
//! Both are read in the claim's transaction and travel in the lease's environment only: they are not part of the
//! rendered command stored with the try, so a connection's password never reaches the tries table or the API.

use std::collections::BTreeMap;

use sluice_core::connection::connection_env_var;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::PREVIOUS_WATERMARK_ENV;
use sluice_store::{ConnectionRow, Reads};

use crate::EngineError;

/// The environment variables a data task needs, or why it cannot run (a connection that does not exist): that
/// message fails the try, as a template error does.
pub(super) async fn data_task_env(
    tx: &mut Reads<'_>,
    op: &OpSpec,
) -> Result<Result<BTreeMap<String, String>, String>, EngineError> {
    let mut env = BTreeMap::new();
    for conn_id in op.connections() {
        let Some(row) = tx.connection(conn_id).await? else {
            return Ok(Err(format!(
                "connection {conn_id:?} does not exist: create it with POST /api/v2/connections or \
                 `sluice connections set {conn_id} --json '{{\"conn_type\": …}}'`"
            )));
        };
        match to_json(row) {
            Ok(json) => env.insert(connection_env_var(conn_id), json),
            Err(reason) => return Ok(Err(format!("connection {conn_id:?} cannot be used: {reason}"))),
        };
    }
    if let OpSpec::Ingest(spec) = op
        && spec.watermark.is_some()
        && let Some(uri) = spec.outputs.first()
        && let Some(mark) = tx.latest_watermark(uri).await?
    {
        env.insert(PREVIOUS_WATERMARK_ENV.to_owned(), mark);
    }
    Ok(Ok(env))
}

/// The connection in Airflow's JSON connection format.
fn to_json(row: ConnectionRow) -> Result<String, String> {
    serde_json::to_string(&row.into_connection()?).map_err(|e| e.to_string())
}
