//! What a leased try must not show: the secrets it is given and the values it read from variables and
//! connections (see `sluice_core::masking`).
//!
//! The worker receives the secrets with the lease and masks them in the logs, output and error it sends back: it
//! reads the task's output as one stream, where a secret written in two pieces is whole again, and it holds what
//! masking needs for as long as the try runs, whichever server its requests reach. What the server stores of the
//! rendering is masked here, before it is written.

use std::collections::BTreeMap;

use sluice_core::Dag;
use sluice_core::connection::{CONNECTION_ENV_PREFIX, Connection};
use sluice_core::masking::{Confidential, Masker, SensitiveKeys};
use sluice_store::Reads;

use crate::EngineError;

/// What a task's templates may read, from one look at all of them: most read no variable, connection or upstream
/// output, and their claims skip loading those.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Mentions {
    pub variables: bool,
    pub connections: bool,
    /// Also true for a python task, whose function receives its upstream tasks' outputs.
    pub outputs: bool,
    /// The values upstream tasks pushed under other keys (`xcom.<task>.<key>`, `ti.xcom_pull`); a python task's
    /// function receives them too.
    pub xcom: bool,
}

impl Mentions {
    pub(super) fn of(dag: &Dag, task_id: &str) -> Mentions {
        let Some(task) = dag.task(task_id) else { return Mentions::default() };
        let env = dag.resolved_task(task_id).map(|t| t.env.clone()).unwrap_or_default();
        // A data task's configuration and a python task's op_kwargs are templated too; their JSON holds every text.
        let op = task.op_spec().and_then(|op| serde_json::to_string(&op).ok());
        let op_kwargs = serde_json::to_string(&task.op_kwargs).ok();
        let texts: Vec<&String> = task
            .command
            .iter()
            .flatten()
            .chain(task.script.as_ref())
            .chain(task.cwd.as_ref())
            .chain(env.values())
            .chain(op.as_ref())
            .chain(op_kwargs.as_ref())
            .collect();
        let mention = |word: &str| texts.iter().any(|text| text.contains(word));
        let python = task.kind == sluice_core::python::PYTHON_KIND;
        // `xcom_pull` reads return values too.
        let xcom = python || mention("xcom");
        Mentions { variables: mention("var"), connections: mention("conn"), outputs: xcom || mention("outputs"), xcom }
    }
}

/// The connections templates may read as `conn.<id>`; one that cannot be used is left out (reading it is then an
/// undefined-value error).
pub(super) async fn template_connections(tx: &mut Reads<'_>) -> Result<BTreeMap<String, Connection>, EngineError> {
    let rows = tx.connections().await?;
    Ok(rows.into_iter().filter_map(|row| Some((row.conn_id.clone(), row.into_connection().ok()?))).collect())
}

/// Adds the connections a data task receives in its environment.
pub(super) fn add_received_connections(
    confidential: &mut Confidential,
    env: &BTreeMap<String, String>,
    keys: &SensitiveKeys,
) {
    let received = env.iter().filter(|(name, _)| name.starts_with(CONNECTION_ENV_PREFIX));
    for conn in received.filter_map(|(_, json)| serde_json::from_str::<Connection>(json).ok()) {
        confidential.add_connection(&conn, keys);
    }
}

/// `message` with the secrets masked: a template error may quote what it read.
pub(super) fn masked(confidential: &Confidential, message: &str) -> String {
    Masker::new(confidential.secrets.iter().cloned()).mask(message).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_connections_are_confidential() {
        let keys = SensitiveKeys::default();
        let conn =
            r#"{"conn_type": "http", "host": "api.example", "password": "pw-123456", "extra": {"token": "t-abcdef"}}"#;
        let env = BTreeMap::from([
            ("SLUICE_CONN_API".to_owned(), conn.to_owned()),
            ("SLUICE_DS".to_owned(), "2026-01-01".to_owned()),
        ]);
        let mut confidential = Confidential::default();
        add_received_connections(&mut confidential, &env, &keys);
        assert_eq!(confidential.secrets.iter().collect::<Vec<_>>(), ["pw-123456", "t-abcdef"]);
        assert!(confidential.restricted.contains("api.example"));
        assert_eq!(masked(&confidential, "bad pw-123456"), "bad ***");
    }
}
