//! Which alerts a decision fires: the callbacks of a task's try and of a run's end, missed deadlines, and the
//! OpenLineage events of runs and tries when lineage is on. They are recorded in the decision's transaction (see
//! `sluice_core::notify`); delivering them is the notifier's job.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_core::notify::{Event, Notifier, Occasion};
use sluice_core::openlineage::{DataFact, EventType, LINEAGE_EVENT, RunEvent};
use sluice_core::{Dag, RunState, TaskState};
use sluice_store::{DagRunRow, NewNotification, RunTx, TaskInstanceRow, TryRecord};
use uuid::Uuid;

use super::{EndedSpan, Engine};
use crate::EngineError;

/// The event of a task instance's new state, if it has one.
pub(super) fn task_event(state: TaskState) -> Option<Event> {
    match state {
        TaskState::Running => Some(Event::OnExecute),
        TaskState::UpForRetry => Some(Event::OnRetry),
        TaskState::Success => Some(Event::OnSuccess),
        TaskState::Failed => Some(Event::OnFailure),
        _ => None,
    }
}

/// The alerts of a task instance reaching `state` (with the try's error), for its task's callbacks.
pub(super) fn task_alerts(
    dag: &Dag,
    ti: &TaskInstanceRow,
    state: TaskState,
    error: Option<&str>,
    logical_date: Option<DateTime<Utc>>,
) -> Vec<NewNotification> {
    let Some(event) = task_event(state) else { return Vec::new() };
    let Some(task) = dag.resolved_task(&ti.task_id) else { return Vec::new() };
    let notifiers = task.callbacks.for_event(event);
    if notifiers.is_empty() {
        return Vec::new();
    }
    let occasion = Occasion {
        event,
        dag_id: &ti.dag_id,
        run_id: &ti.run_id,
        logical_date,
        task: Some((&ti.task_id, ti.map_index, ti.try_number)),
        state: state.as_str(),
        error,
        deadline: None,
    };
    alerts(&occasion, notifiers, None)
}

/// The alerts of a run ending in `state`, for the DAG's `on_success` / `on_failure`.
pub(super) fn run_alerts(dag: &Dag, run: &DagRunRow, state: RunState, error: Option<&str>) -> Vec<NewNotification> {
    let (event, notifiers) = match state {
        RunState::Success => (Event::OnSuccess, &dag.spec.on_success),
        RunState::Failed => (Event::OnFailure, &dag.spec.on_failure),
        _ => return Vec::new(),
    };
    let occasion = Occasion {
        event,
        dag_id: &run.dag_id,
        run_id: &run.run_id,
        logical_date: run.logical_date,
        task: None,
        state: state.as_str(),
        error,
        deadline: None,
    };
    alerts(&occasion, notifiers, None)
}

fn alerts(occasion: &Occasion<'_>, notifiers: &[Notifier], dedupe_key: Option<&str>) -> Vec<NewNotification> {
    let context = occasion.context();
    notifiers
        .iter()
        .enumerate()
        .map(|(i, notifier)| NewNotification {
            dag_id: occasion.dag_id.to_owned(),
            run_id: occasion.run_id.to_owned(),
            task_id: occasion.task.map(|(task_id, _, _)| task_id.to_owned()),
            map_index: occasion.task.map(|(_, map_index, _)| map_index),
            try_number: occasion.task.map(|(_, _, try_number)| try_number),
            event: occasion.event.as_str().to_owned(),
            notifier: serde_json::to_value(notifier).unwrap_or_default(),
            context: context.clone(),
            dedupe_key: dedupe_key.map(|key| format!("{key}:{i}")),
            stream: None,
        })
        .collect()
}

/// An OpenLineage event as an alert of its DAG run's stream, so that a run's events are posted in order.
fn lineage_alert(run: &DagRunRow, task: Option<&TaskInstanceRow>, event: Value) -> NewNotification {
    NewNotification {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: task.map(|ti| ti.task_id.clone()),
        map_index: task.map(|ti| ti.map_index),
        try_number: task.map(|ti| ti.try_number),
        event: LINEAGE_EVENT.to_owned(),
        notifier: json!({"type": LINEAGE_EVENT}),
        context: event,
        dedupe_key: None,
        stream: Some(format!("{LINEAGE_EVENT}:{}", run.id)),
    }
}

fn interval(run: &DagRunRow) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((run.data_interval_start?, run.data_interval_end?))
}

impl Engine {
    /// Records a run's end and the DAG's callbacks for it.
    pub(super) async fn finish_run(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        tx.set_run_state(state, now).await?;
        if let Some(traces) = &self.config.traces {
            let run = tx.run();
            traces.ended(&EndedSpan {
                dag_id: &run.dag_id,
                run_id: &run.run_id,
                run_pk: run.id,
                task: None,
                state: state.as_str(),
                error,
                start: run.start_date.or(run.queued_at).unwrap_or(now),
                end: now,
            });
        }
        let alerts = run_alerts(dag, tx.run(), state, error);
        if !alerts.is_empty() {
            tx.enqueue_notifications(&alerts, now).await?;
        }
        self.record_run_lineage(tx, state, error, now).await
    }

    /// Fires the deadlines an unfinished run has missed; each fires once, however many schedulers look.
    pub(super) async fn check_deadlines(
        &self,
        tx: &mut RunTx<'_>,
        dag: &Dag,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        if dag.spec.deadline.is_empty() || tx.run().state.is_finished() {
            return Ok(());
        }
        let run = tx.run().clone();
        for (i, alert) in dag.spec.deadline.iter().enumerate() {
            let Some(due) = alert.due(run.logical_date, run.queued_at, dag.timezone()) else { continue };
            if due > now {
                continue;
            }
            let occasion = Occasion {
                event: Event::Deadline,
                dag_id: &run.dag_id,
                run_id: &run.run_id,
                logical_date: run.logical_date,
                task: None,
                state: run.state.as_str(),
                error: None,
                deadline: Some(due),
            };
            let key = format!("deadline:{}:{i}", run.id);
            let fired = tx.enqueue_notifications(&alerts(&occasion, &alert.callback, Some(&key)), now).await?;
            if fired > 0 {
                tracing::warn!(dag_id = %run.dag_id, run_id = %run.run_id, deadline = %due, "DAG run missed its deadline");
            }
        }
        Ok(())
    }
}

impl Engine {
    /// The lineage event of a try that starts (`state` running) or ends; `None` when lineage is off, or the state is
    /// not a start or an end (a sensor waiting for its next poke).
    pub(super) fn task_lineage(
        &self,
        dag: &Dag,
        run: &DagRunRow,
        ti: &TaskInstanceRow,
        state: TaskState,
        error: Option<&str>,
        record: Option<&TryRecord>,
    ) -> Option<NewNotification> {
        let namespace = self.config.lineage_namespace.as_deref()?;
        let event_type = match state {
            TaskState::Running => EventType::Start,
            TaskState::Success | TaskState::Skipped => EventType::Complete,
            TaskState::Failed | TaskState::UpForRetry => EventType::Fail,
            _ => return None,
        };
        let task = dag.task(&ti.task_id)?;
        let mut facts: Vec<DataFact> = Vec::new();
        if let Some(record) = record {
            facts.extend(
                record.quality.iter().map(|q| DataFact::Quality { uri: q.uri.clone(), report: q.report.clone() }),
            );
            facts.extend(record.events.iter().map(|e| DataFact::Written { uri: e.uri.clone(), rows: e.row_count }));
        }
        let event = RunEvent {
            event_type,
            event_time: Utc::now(),
            namespace,
            dag_id: &run.dag_id,
            // The try's id is its lease's, fixed when it starts.
            task: Some((&ti.task_id, ti.lease_id.unwrap_or_else(Uuid::nil))),
            dag_run: run.id,
            interval: interval(run),
            inputs: &task.inputs,
            outputs: &task.outputs,
            error,
            facts: &facts,
        };
        Some(lineage_alert(run, Some(ti), event.to_json()))
    }

    /// Records the lineage event of a DAG run that starts (`state` running) or ends, when lineage is on.
    pub(super) async fn record_run_lineage(
        &self,
        tx: &mut RunTx<'_>,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(namespace) = self.config.lineage_namespace.as_deref() else { return Ok(()) };
        let event_type = match state {
            RunState::Running => EventType::Start,
            RunState::Success => EventType::Complete,
            RunState::Failed => EventType::Fail,
            RunState::Queued => return Ok(()),
        };
        let run = tx.run().clone();
        let event = RunEvent {
            event_type,
            event_time: now,
            namespace,
            dag_id: &run.dag_id,
            task: None,
            dag_run: run.id,
            interval: interval(&run),
            inputs: &[],
            outputs: &[],
            error,
            facts: &[],
        };
        tx.enqueue_notifications(&[lineage_alert(&run, None, event.to_json())], now).await?;
        Ok(())
    }
}
