//! Task logs kept in the lake (`SLUICE_LOG_STORE=lake`), as Airflow's remote logging keeps them. A running try's
//! lines are in the database, where workers append them and readers tail them; once the try has ended, a pass
//! ([`crate::run_log_mover`]) writes them to one object of the lake (see [`log_uri`]), one JSON object per line
//! with its id, timestamp, stream and text, then in one transaction records where it is on the try and deletes the
//! rows. Every reader goes through [`Engine::read_logs`]: it reads the rows first, then where the try's object is,
//! so no line is missed whenever the move commits, and line ids (the continuation tokens) are the same before and
//! after it.
//!
//! A move is done again when the server stops between writing the object and committing (the object is written
//! whole, replacing the first one), and a try whose lines were moved is not taken again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::ops_spec::lake_segment;
use sluice_store::{LogRow, LogsToMove};
use uuid::Uuid;

use super::Engine;
use crate::EngineError;

/// The lake's zone reserved for task logs.
const LOG_ZONE: &str = "_logs";

/// Where the lake keeps the log of a try once it has ended:
/// `lake://_logs/<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>.jsonl`, each id one segment.
fn log_uri(dag_id: &str, run_id: &str, task_id: &str, map_index: i64, try_number: i64) -> String {
    format!(
        "lake://{LOG_ZONE}/{}/{}/{}/{map_index}/{try_number}.jsonl",
        lake_segment(dag_id),
        lake_segment(run_id),
        lake_segment(task_id)
    )
}

/// Lines as the lake keeps them: one JSON object a line.
fn encode(lines: &[LogRow]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        // A row of text, a time and a number always serialises.
        if serde_json::to_writer(&mut bytes, line).is_ok() {
            bytes.push(b'\n');
        }
    }
    bytes
}

fn decode(bytes: &[u8]) -> Result<Vec<LogRow>, String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| serde_json::from_slice(line).map_err(|e| format!("line {} is not a log line: {e}", i + 1)))
        .collect()
}

/// What one pass of the mover did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MovePass {
    /// Tries taken to be moved.
    pub taken: usize,
    /// Tries whose lines are now in the lake.
    pub moved: usize,
}

impl Engine {
    /// The log lines of try `try_id` after line `after` (0 for the start), at most `limit`, wherever they are kept.
    pub async fn read_logs(&self, try_id: Uuid, after: i64, limit: i64) -> Result<Vec<LogRow>, EngineError> {
        let rows = self.store.read_logs(try_id, after, limit).await?;
        // Read after the rows: the move sets it in the commit that deletes them.
        let Some(uri) = self.store.log_uri(try_id).await? else { return Ok(rows) };
        let mut lines: Vec<LogRow> = self.load_log(uri).await?.into_iter().filter(|l| l.id > after).collect();
        // Lines stored after the move (a worker's batch that came late) are read with the others.
        lines.extend(rows);
        lines.sort_by_key(|l| l.id);
        lines.dedup_by_key(|l| l.id);
        lines.truncate(usize::try_from(limit.max(1)).unwrap_or(usize::MAX));
        Ok(lines)
    }

    /// The lines kept at `uri`; none when nothing is there (the try logged nothing, or the object store's own
    /// lifecycle rules removed it).
    async fn load_log(&self, uri: String) -> Result<Vec<LogRow>, EngineError> {
        let lake = self.lake.clone();
        let object = uri.clone();
        let read = tokio::task::spawn_blocking(move || {
            let lake = lake.ok_or("no lake is configured here: set SLUICE_LAKE (the workers' lake)")?;
            lake.get(&object)?.map_or_else(|| Ok(Vec::new()), |bytes| decode(&bytes))
        });
        match read.await {
            Ok(Ok(lines)) => Ok(lines),
            Ok(Err(message)) => Err(EngineError::Log { uri, message }),
            Err(e) => Err(EngineError::Log { uri, message: e.to_string() }),
        }
    }

    /// Moves the log lines of up to `batch` tries that ended at or before `ended_before` to the lake, a few at a
    /// time. Each try is held for `hold` meanwhile; one that fails is left to a later pass once its hold ends.
    pub async fn move_ended_logs(
        &self,
        ended_before: DateTime<Utc>,
        hold: Duration,
        batch: i64,
    ) -> Result<MovePass, EngineError> {
        let now = Utc::now();
        let hold_until = now + chrono::Duration::from_std(hold).unwrap_or_default();
        let taken = self.store.take_logs_to_move(ended_before, now, hold_until, batch).await?;
        let mut pass = MovePass { taken: taken.len(), moved: 0 };
        let mut moves = tokio::task::JoinSet::new();
        for entry in taken {
            let engine = self.clone();
            moves.spawn(async move { (engine.move_log(&entry).await, entry) });
        }
        while let Some(done) = moves.join_next().await {
            match done {
                Ok((Ok(true), _)) => pass.moved += 1,
                Ok((Ok(false), _)) => {}
                Ok((Err(e), entry)) => tracing::warn!(error = %e, dag_id = %entry.dag_id, run_id = %entry.run_id,
                    task_id = %entry.task_id, try_number = entry.try_number, "cannot move a try's log to the lake"),
                Err(e) => tracing::warn!(error = %e, "a move of a try's log stopped"),
            }
        }
        Ok(pass)
    }

    /// Writes one try's lines to the lake, then records the move; `false` when another pass recorded it first.
    async fn move_log(&self, entry: &LogsToMove) -> Result<bool, EngineError> {
        let uri = log_uri(&entry.dag_id, &entry.run_id, &entry.task_id, entry.map_index, entry.try_number);
        let lines = self.store.read_logs(entry.try_id, 0, i64::MAX).await?;
        // A try that logged nothing gets no object: reading it finds none, which reads as no lines.
        let Some(last_id) = lines.last().map(|l| l.id) else {
            return Ok(self.store.record_log_moved(entry.try_id, &uri, 0).await?);
        };
        let lake = self.lake.clone();
        let target = uri.clone();
        let put = tokio::task::spawn_blocking(move || match lake {
            Some(lake) => lake.put(&target, encode(&lines)),
            None => Err("no lake is configured here: set SLUICE_LAKE".into()),
        });
        match put.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(EngineError::Log { uri, message }),
            Err(e) => return Err(EngineError::Log { uri, message: e.to_string() }),
        }
        Ok(self.store.record_log_moved(entry.try_id, &uri, last_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::ops_spec::lake_path;

    #[test]
    fn a_logs_uri_keeps_each_id_one_segment() {
        let uri = log_uri("etl", "manual__2026-01-01T00:00:00+00:00", "group.load", -1, 2);
        assert_eq!(uri, "lake://_logs/etl/manual__2026-01-01T00%3A00%3A00%2B00%3A00/group.load/-1/2.jsonl");
        assert_eq!(log_uri("d", "..", "ds=1", 0, 1), "lake://_logs/d/%2E%2E/ds%3D1/0/1.jsonl");
        assert!(lake_path(&log_uri("a/b", "..", ".", 3, 1)).is_ok());
    }

    #[test]
    fn lines_read_back_as_they_were_written() {
        let lines: Vec<LogRow> =
            [(7, "stdout", "plain"), (9, "stderr", "tab\tquote\" and\nnewline"), (12, "sluice", "")]
                .into_iter()
                .map(|(id, stream, line)| LogRow {
                    id,
                    timestamp: sluice_store::from_ms(1_765_000_000_123 + id),
                    stream: stream.into(),
                    line: line.into(),
                })
                .collect();
        let bytes = encode(&lines);
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 3, "one line each");
        assert_eq!(decode(&bytes), Ok(lines));
        assert_eq!(decode(b""), Ok(Vec::new()));
        let err = decode(b"{\"id\": 1}\n").expect_err("not a log line");
        assert!(err.starts_with("line 1 is not a log line"), "{err}");
    }
}
