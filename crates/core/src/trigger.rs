//! Trigger rules: when a task may start, given the states of its upstream tasks.
//!
//! This follows Airflow 3's `trigger_rule_dep.py` with `flag_upstream_failed=True` (what the scheduler uses): a rule
//! can decide early. For example `all_success` answers [`Readiness::UpstreamFailed`] as soon as one upstream task
//! failed, without waiting for the others, and a skipped upstream task skips an `all_success` task (skip
//! propagation, as for a branch not taken).
//!
//! Counting follows Airflow: only finished upstream states count (`up_for_retry` is still in progress), and
//! `removed` counts as done but never as a success, so an `all_success` task behind a removed upstream task waits
//! (Airflow then ends the run as deadlocked).

use serde::{Deserialize, Serialize};

use crate::state::TaskState;

/// Airflow's trigger rules (without the setup/teardown ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    AllSkipped,
    OneSuccess,
    OneFailed,
    OneDone,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 11] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::AllSkipped,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::OneDone,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneSkipped,
        TriggerRule::Always,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllSkipped => "all_skipped",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneDone => "one_done",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::Always => "always",
        }
    }
}

impl std::fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the scheduler should do with a task that has not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// The rule is met: schedule the task.
    Ready,
    /// Not decided yet: some upstream task has not finished.
    Waiting,
    /// The rule can no longer be met in a way that calls for running: mark the task `skipped`.
    Skip,
    /// The rule can no longer be met because of a failure: mark the task `upstream_failed`.
    UpstreamFailed,
}

/// Counts of upstream states, as Airflow's `_UpstreamTIStates`.
#[derive(Default)]
struct Counts {
    total: usize,
    done: usize,
    success: usize,
    skipped: usize,
    failed: usize,
    upstream_failed: usize,
}

impl Counts {
    fn of(upstream: &[TaskState]) -> Counts {
        let mut c = Counts { total: upstream.len(), ..Counts::default() };
        for state in upstream {
            if state.is_finished() {
                c.done += 1;
            }
            match state {
                TaskState::Success => c.success += 1,
                TaskState::Skipped => c.skipped += 1,
                TaskState::Failed => c.failed += 1,
                TaskState::UpstreamFailed => c.upstream_failed += 1,
                _ => {}
            }
        }
        c
    }

    fn all_done(&self) -> bool {
        self.done >= self.total
    }

    fn any_failed(&self) -> bool {
        self.failed + self.upstream_failed > 0
    }
}

/// Whether a task may start, given the states of its upstream tasks (finished or not).
///
/// Airflow's semantics including early decisions (e.g. all_success → UpstreamFailed as soon as one upstream failed;
/// skipped propagation). A task with no upstream is Ready for every rule.
pub fn trigger_satisfied(rule: TriggerRule, upstream: &[TaskState]) -> Readiness {
    use Readiness::*;
    if upstream.is_empty() {
        return Ready;
    }
    let c = Counts::of(upstream);
    // Each arm: first the early decision Airflow takes with flag_upstream_failed, then whether the rule is met.
    match rule {
        TriggerRule::AllSuccess if c.any_failed() => UpstreamFailed,
        TriggerRule::AllSuccess if c.skipped > 0 => Skip,
        TriggerRule::AllSuccess => ready_if(c.success == c.total),

        TriggerRule::AllFailed if c.success + c.skipped > 0 => Skip,
        TriggerRule::AllFailed => ready_if(c.failed + c.upstream_failed == c.total),

        TriggerRule::AllDone => ready_if(c.all_done()),

        TriggerRule::AllSkipped if c.success + c.failed + c.upstream_failed > 0 => Skip,
        TriggerRule::AllSkipped => ready_if(c.skipped == c.total),

        TriggerRule::OneSuccess if c.all_done() && c.done == c.skipped => Skip,
        TriggerRule::OneSuccess if c.all_done() && c.success == 0 => UpstreamFailed,
        TriggerRule::OneSuccess => ready_if(c.success > 0),

        TriggerRule::OneFailed if c.all_done() && !c.any_failed() => Skip,
        TriggerRule::OneFailed => ready_if(c.any_failed()),

        TriggerRule::OneDone if c.all_done() && c.success + c.failed == 0 => Skip,
        TriggerRule::OneDone => ready_if(c.success + c.failed > 0),

        TriggerRule::NoneFailed if c.any_failed() => UpstreamFailed,
        TriggerRule::NoneFailed => ready_if(c.success + c.skipped == c.total),

        TriggerRule::NoneFailedMinOneSuccess if c.any_failed() => UpstreamFailed,
        TriggerRule::NoneFailedMinOneSuccess if c.skipped == c.total => Skip,
        TriggerRule::NoneFailedMinOneSuccess => ready_if(c.success + c.skipped == c.total),

        TriggerRule::NoneSkipped if c.skipped > 0 => Skip,
        TriggerRule::NoneSkipped => ready_if(c.all_done()),

        TriggerRule::Always => Ready,
    }
}

fn ready_if(met: bool) -> Readiness {
    if met { Readiness::Ready } else { Readiness::Waiting }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Readiness::{Ready, Skip, UpstreamFailed as UpF, Waiting};
    use TaskState::{
        Failed as F, None as N, Removed as Rm, Running as R, Skipped as Sk, Success as S, UpForRetry as Retry,
        UpstreamFailed as Uf,
    };

    type Row = (&'static [TaskState], Readiness);

    fn check(rule: TriggerRule, rows: &[Row]) {
        for (upstream, expected) in rows {
            assert_eq!(trigger_satisfied(rule, upstream), *expected, "{rule} with upstream {upstream:?}");
        }
    }

    #[test]
    fn no_upstream_is_ready_for_every_rule() {
        for rule in TriggerRule::ALL {
            assert_eq!(trigger_satisfied(rule, &[]), Ready, "{rule}");
        }
    }

    #[test]
    fn all_success() {
        check(
            TriggerRule::AllSuccess,
            &[
                (&[S, S], Ready),
                (&[S, R], Waiting),
                (&[S, Retry], Waiting),
                (&[F, R], UpF),
                (&[Uf, S], UpF),
                (&[Sk, S], Skip),
                (&[Sk, R], Skip),
                (&[F, Sk], UpF),
                (&[S, Rm], Waiting),
            ],
        );
    }

    #[test]
    fn all_failed() {
        check(
            TriggerRule::AllFailed,
            &[(&[F, Uf], Ready), (&[F, R], Waiting), (&[F, S], Skip), (&[F, Sk], Skip), (&[N, N], Waiting)],
        );
    }

    #[test]
    fn all_done() {
        check(TriggerRule::AllDone, &[(&[S, F, Sk, Uf, Rm], Ready), (&[F, R], Waiting), (&[F, Retry], Waiting)]);
    }

    #[test]
    fn all_skipped() {
        check(
            TriggerRule::AllSkipped,
            &[(&[Sk, Sk], Ready), (&[Sk, R], Waiting), (&[Sk, S], Skip), (&[F, R], Skip), (&[Uf], Skip)],
        );
    }

    #[test]
    fn one_success() {
        check(
            TriggerRule::OneSuccess,
            &[
                (&[S, R], Ready),
                (&[F, S], Ready),
                (&[F, R], Waiting),
                (&[F, Uf], UpF),
                (&[F, Sk], UpF),
                (&[Sk, Sk], Skip),
            ],
        );
    }

    #[test]
    fn one_failed() {
        check(TriggerRule::OneFailed, &[(&[F, R], Ready), (&[Uf, S], Ready), (&[S, R], Waiting), (&[S, Sk], Skip)]);
    }

    #[test]
    fn one_done() {
        check(
            TriggerRule::OneDone,
            &[(&[S, R], Ready), (&[F, R], Ready), (&[Sk, R], Waiting), (&[Sk, Uf], Skip), (&[Rm, Sk], Skip)],
        );
    }

    #[test]
    fn none_failed() {
        check(
            TriggerRule::NoneFailed,
            &[(&[S, Sk], Ready), (&[Sk, Sk], Ready), (&[S, R], Waiting), (&[F, R], UpF), (&[Uf, S], UpF)],
        );
    }

    #[test]
    fn none_failed_min_one_success() {
        check(
            TriggerRule::NoneFailedMinOneSuccess,
            &[(&[S, Sk], Ready), (&[Sk, Sk], Skip), (&[S, R], Waiting), (&[Sk, R], Waiting), (&[F, Sk], UpF)],
        );
    }

    #[test]
    fn none_skipped() {
        check(TriggerRule::NoneSkipped, &[(&[S, F, Uf], Ready), (&[S, R], Waiting), (&[Sk, R], Skip)]);
    }

    #[test]
    fn always() {
        check(TriggerRule::Always, &[(&[N, R], Ready), (&[F, Sk], Ready), (&[S], Ready)]);
    }

    #[test]
    fn rule_names_are_airflows() {
        for rule in TriggerRule::ALL {
            let json = serde_json::to_string(&rule).expect("serialise");
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
        }
        assert_eq!(TriggerRule::default(), TriggerRule::AllSuccess);
    }
}
