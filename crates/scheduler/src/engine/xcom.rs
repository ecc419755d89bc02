//! What a task reads of its upstream tasks' outputs (Airflow's XCom): their return values for its templates and
//! its mapping, and the values they pushed under other keys for its templates. Values the lake keeps (see
//! `sluice_core::xcom`) are read back from it on a blocking thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sluice_core::xcom::{LakeObjects, XComError, XComValue};
use sluice_core::{Dag, TaskSpec};
use sluice_store::Reads;
use uuid::Uuid;

use crate::EngineError;

/// Where the values above the database's limit are: the lake, if this process knows it.
pub(crate) type Lake = Option<Arc<dyn LakeObjects>>;

/// The values themselves, those kept in the lake read from it.
pub(crate) async fn load_values(lake: &Lake, values: Vec<XComValue>) -> Result<Vec<Value>, XComError> {
    if values.iter().all(|v| matches!(v, XComValue::Inline(_))) {
        return values.into_iter().map(|v| v.load(None)).collect();
    }
    let lake = lake.clone();
    tokio::task::spawn_blocking(move || values.into_iter().map(|v| v.load(lake.as_deref())).collect())
        .await
        .unwrap_or_else(|e| Err(XComError::Read { uri: "the lake".into(), message: e.to_string() }))
}

/// The outputs of a task's upstream tasks, direct or not, for its templates and its mapping: a mapped task's
/// outputs as one list in `map_index` order (Airflow's reduce), empty when none of its instances output anything.
/// `Err` when a value kept in the lake cannot be read.
pub(crate) async fn upstream_outputs(
    tx: &mut Reads<'_>,
    lake: &Lake,
    dag: &Dag,
    run_pk: Uuid,
    task_id: &str,
) -> Result<Result<BTreeMap<String, Value>, XComError>, EngineError> {
    let ancestors = dag.ancestors(task_id);
    let rows = tx.run_outputs(run_pk, &ancestors).await?;
    let (instances, values): (Vec<_>, Vec<_>) = rows.into_iter().map(|(id, i, v)| ((id, i), v)).unzip();
    let values = match load_values(lake, values).await {
        Ok(values) => values,
        Err(e) => return Ok(Err(e)),
    };
    let mut outputs: BTreeMap<String, Value> = ancestors
        .iter()
        .filter(|id| dag.task(id).is_some_and(TaskSpec::is_mapped))
        .map(|id| ((*id).to_owned(), Value::Array(Vec::new())))
        .collect();
    for ((id, map_index), value) in instances.into_iter().zip(values) {
        match outputs.get_mut(&id) {
            Some(Value::Array(list)) if map_index >= 0 => list.push(value),
            _ => {
                outputs.insert(id, value);
            }
        }
    }
    Ok(Ok(outputs))
}

/// The values a task's upstream tasks, direct or not, pushed under keys other than the return value: task id →
/// key → value, a mapped task's values of a key as one list in `map_index` order, as its outputs.
pub(crate) async fn upstream_xcom(
    tx: &mut Reads<'_>,
    lake: &Lake,
    dag: &Dag,
    run_pk: Uuid,
    task_id: &str,
) -> Result<Result<BTreeMap<String, BTreeMap<String, Value>>, XComError>, EngineError> {
    let ancestors = dag.ancestors(task_id);
    let rows = tx.run_xcom(run_pk, &ancestors).await?;
    let (entries, values): (Vec<_>, Vec<_>) = rows.into_iter().map(|(id, _, key, v)| ((id, key), v)).unzip();
    let values = match load_values(lake, values).await {
        Ok(values) => values,
        Err(e) => return Ok(Err(e)),
    };
    let mut xcom: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for ((id, key), value) in entries.into_iter().zip(values) {
        let mapped = dag.task(&id).is_some_and(TaskSpec::is_mapped);
        let keys = xcom.entry(id).or_default();
        if mapped {
            if let Value::Array(list) = keys.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                list.push(value);
            }
        } else {
            keys.insert(key, value);
        }
    }
    Ok(Ok(xcom))
}
