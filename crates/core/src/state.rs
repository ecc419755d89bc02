//! Task-instance and DAG-run states, named and serialised exactly as Airflow names them.
//!
//! The store keeps these as their string form, the API returns them, and the dashboard colours by them, so the
//! string form (`as_str`, `Display`, `FromStr`, serde) is the contract; the enums are its typed view.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A state string that names no known state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} state {value:?} (expected one of: {expected})")]
pub struct UnknownState {
    kind: &'static str,
    value: String,
    expected: String,
}

/// The state of one task instance (one task in one run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Created with the run, not yet considered by the scheduler.
    None,
    /// Its trigger rule is met; waiting for a free slot (pool, max_active_tasks).
    Scheduled,
    /// Handed to a queue; waiting for a worker to lease it.
    Queued,
    Running,
    Success,
    Failed,
    /// The try failed and another try is due after the retry delay.
    UpForRetry,
    /// A sensor in `reschedule` mode found its condition false: it holds no worker slot until its next poke, due
    /// at the time kept in the database, and the poke does not count as a try.
    UpForReschedule,
    /// An upstream task failed, so this one will not run.
    UpstreamFailed,
    Skipped,
    /// The task no longer exists in the DAG version of the run.
    Removed,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 11] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpForReschedule,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
        TaskState::Removed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpForReschedule => "up_for_reschedule",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::Removed => "removed",
        }
    }

    /// Whether the task instance will not change state again on its own (Airflow's `State.finished`).
    /// `up_for_retry` and `up_for_reschedule` are not finished: another try or poke follows.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::UpstreamFailed
                | TaskState::Removed
        )
    }

    /// The state a task group shows for its tasks' states: the one that most needs attention, in the order of
    /// Airflow's grid (`state_priority`): failures first, then work in progress, then what ended well. `None` for
    /// no state at all.
    pub fn of_group(states: impl IntoIterator<Item = TaskState>) -> Option<TaskState> {
        let rank = |state: &TaskState| match state {
            TaskState::Failed => 0,
            TaskState::UpstreamFailed => 1,
            TaskState::UpForRetry => 2,
            TaskState::UpForReschedule => 3,
            TaskState::Running => 4,
            TaskState::Queued => 5,
            TaskState::Scheduled => 6,
            TaskState::None => 7,
            TaskState::Success => 8,
            TaskState::Skipped => 9,
            TaskState::Removed => 10,
        };
        states.into_iter().min_by_key(rank)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState {
            kind: "task",
            value: s.to_owned(),
            expected: TaskState::ALL.map(|s| s.as_str()).join(", "),
        })
    }
}

/// The state of a DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Created, waiting for a `max_active_runs` slot.
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 4] = [RunState::Queued, RunState::Running, RunState::Success, RunState::Failed];

    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState {
            kind: "run",
            value: s.to_owned(),
            expected: RunState::ALL.map(|s| s.as_str()).join(", "),
        })
    }
}

/// Final state of a run whose tasks are all finished: Failed if any leaf task is failed or upstream_failed, else
/// Success (Airflow's rule: a failure that a downstream `all_done` task absorbed does not fail the run, but a failure
/// that reaches a leaf does).
pub fn run_outcome(leaf_states: &[TaskState]) -> RunState {
    let failed = leaf_states.iter().any(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed));
    if failed { RunState::Failed } else { RunState::Success }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_state_strings_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
            let json = serde_json::to_string(&state).expect("serialise");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<TaskState>(&json).ok(), Some(state));
        }
        assert_eq!(TaskState::UpForRetry.as_str(), "up_for_retry");
        assert_eq!(TaskState::UpstreamFailed.as_str(), "upstream_failed");
        assert_eq!(TaskState::UpForReschedule.as_str(), "up_for_reschedule");
    }

    #[test]
    fn run_state_strings_round_trip() {
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
            let json = serde_json::to_string(&state).expect("serialise");
            assert_eq!(json, format!("\"{state}\""));
        }
    }

    #[test]
    fn unknown_state_names_the_choices() {
        let err = "sucess".parse::<TaskState>().expect_err("unknown").to_string();
        assert!(err.contains("\"sucess\"") && err.contains("success"), "{err}");
        assert!("done".parse::<RunState>().is_err());
    }

    #[test]
    fn finished_states() {
        let finished: Vec<_> = TaskState::ALL.into_iter().filter(TaskState::is_finished).collect();
        assert_eq!(
            finished,
            [TaskState::Success, TaskState::Failed, TaskState::UpstreamFailed, TaskState::Skipped, TaskState::Removed]
        );
        assert!(RunState::Success.is_finished() && RunState::Failed.is_finished());
        assert!(!RunState::Running.is_finished() && !RunState::Queued.is_finished());
    }

    #[test]
    fn run_outcome_table() {
        use TaskState::*;
        let rows: &[(&[TaskState], RunState)] = &[
            (&[], RunState::Success),
            (&[Success], RunState::Success),
            (&[Success, Skipped], RunState::Success),
            (&[Skipped, Removed], RunState::Success),
            (&[Success, Failed], RunState::Failed),
            (&[UpstreamFailed], RunState::Failed),
        ];
        for (leaves, expected) in rows {
            assert_eq!(run_outcome(leaves), *expected, "{leaves:?}");
        }
    }

    #[test]
    fn a_group_shows_the_state_that_most_needs_attention() {
        use TaskState::*;
        let rows: &[(&[TaskState], Option<TaskState>)] = &[
            (&[], Option::None),
            (&[Success, Skipped], Some(Success)),
            (&[Skipped, Removed], Some(Skipped)),
            (&[Success, None], Some(None)),
            (&[Success, Queued, Running], Some(Running)),
            (&[Scheduled, Queued], Some(Queued)),
            (&[Running, UpForRetry], Some(UpForRetry)),
            (&[Running, UpForReschedule, Queued], Some(UpForReschedule)),
            (&[UpForReschedule, UpForRetry], Some(UpForRetry)),
            (&[Success, UpstreamFailed, Failed], Some(Failed)),
        ];
        for (states, expected) in rows {
            assert_eq!(TaskState::of_group(states.iter().copied()), *expected, "{states:?}");
        }
    }
}
