//! A task instance's life, driven by random events on a small random DAG, against a reference model.
//!
//! The engine decides a task instance's next state with the core's pure rules: [`trigger_satisfied`] for readiness
//! (in topological order, so that a skip or an upstream failure propagates in one pass), the task's `retries` for
//! whether a failed try is retried and [`ResolvedTask::retry_delay_after`] for when, [`run_outcome`] over the leaf
//! tasks for the run's end. `Engine` below applies them as the scheduler does, on a [`Dag`] built from a spec;
//! `Model` restates each rule in its own terms (a trigger rule as what makes it fire, fail or skip; a retry as
//! failures counted against `retries`) on plain indices. After every event both must agree, a finished state must
//! not change, and no task may have more tries than `retries + 1`; once driven to its end, the run's outcome must
//! be the model's.
//!
//! [`ResolvedTask::retry_delay_after`]: sluice_core::ResolvedTask::retry_delay_after

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use sluice_core::spec::DEFAULT_MAX_RETRY_DELAY;
use sluice_core::{
    Dag, DagSpec, Readiness, RunState, TaskSpec, TaskState, TriggerRule, run_outcome, trigger_satisfied,
};

/// One task of a generated DAG.
#[derive(Debug, Clone)]
struct Shape {
    rule: TriggerRule,
    retries: u32,
    /// Bit `j` set: the task depends on task `j`, for the `j` before it.
    upstream: u8,
    retry_delay_secs: u64,
    backoff: bool,
    max_retry_delay_secs: Option<u64>,
}

impl Shape {
    fn upstream(&self, own: usize) -> impl Iterator<Item = usize> + '_ {
        (0..own.min(8)).filter(|j| self.upstream & (1 << j) != 0)
    }
}

/// What happens to a run: a scheduler pass, or something that happens to one task (by index, modulo the tasks).
#[derive(Debug, Clone)]
enum Event {
    /// Decide the waiting tasks by their trigger rules, and schedule the retries that are due.
    Evaluate,
    Queue(usize),
    /// A worker leases it: a new try.
    Start(usize),
    Succeed(usize),
    Fail(usize),
    /// The command exited with one of its `skip_on_exit_code`.
    ExitSkip(usize),
    /// A branch upstream did not choose it.
    BranchSkip(usize),
    /// It is no longer in the run's DAG version.
    Remove(usize),
}

fn id(i: usize) -> String {
    format!("t{i}")
}

fn is_failure(state: TaskState) -> bool {
    matches!(state, TaskState::Failed | TaskState::UpstreamFailed)
}

/// The scheduler's decisions, made with the core's rules on a `Dag`.
struct Engine {
    dag: Dag,
    /// Task id → state and try number (0 before the first try).
    tis: BTreeMap<String, (TaskState, u32)>,
}

impl Engine {
    fn new(shapes: &[Shape]) -> Engine {
        let tasks = shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| {
                let mut task = TaskSpec::new(id(i));
                task.command = Some(vec!["true".to_owned()]);
                task.depends_on = shape.upstream(i).map(id).collect();
                task.trigger_rule = shape.rule;
                task.retries = Some(shape.retries);
                task.retry_delay = Some(Duration::from_secs(shape.retry_delay_secs));
                task.retry_exponential_backoff = Some(shape.backoff);
                task.max_retry_delay = shape.max_retry_delay_secs.map(Duration::from_secs);
                task
            })
            .collect();
        let dag = Dag::from_spec(DagSpec::new("transitions", tasks))
            .unwrap_or_else(|errors| panic!("a generated DAG is valid: {errors:?}"));
        let tis = (0..shapes.len()).map(|i| (id(i), (TaskState::None, 0))).collect();
        Engine { dag, tis }
    }

    fn state(&self, task_id: &str) -> TaskState {
        self.tis.get(task_id).map_or(TaskState::None, |ti| ti.0)
    }

    /// Applies an event; returns the delay before the next try when a try failed and will be retried.
    fn apply(&mut self, event: &Event) -> Option<Duration> {
        let ids = self.dag.task_ids().into_iter().map(str::to_owned).collect::<Vec<_>>();
        let pick = |at: &usize| ids[at % ids.len()].clone();
        let (task_id, from, to) = match event {
            Event::Evaluate => {
                self.evaluate();
                return None;
            }
            Event::Queue(at) => (pick(at), TaskState::Scheduled, TaskState::Queued),
            Event::Start(at) => (pick(at), TaskState::Queued, TaskState::Running),
            Event::Succeed(at) => (pick(at), TaskState::Running, TaskState::Success),
            Event::Fail(at) => return self.fail(&pick(at)),
            Event::ExitSkip(at) => (pick(at), TaskState::Running, TaskState::Skipped),
            Event::BranchSkip(at) => (pick(at), TaskState::None, TaskState::Skipped),
            Event::Remove(at) => (pick(at), TaskState::None, TaskState::Removed),
        };
        if let Some(ti) = self.tis.get_mut(&task_id).filter(|ti| ti.0 == from) {
            ti.0 = to;
            if to == TaskState::Running {
                ti.1 += 1;
            }
        }
        None
    }

    /// As the engine's `decide_readiness`: in topological order, each decision seen by the tasks after it.
    fn evaluate(&mut self) {
        let order: Vec<String> = self.dag.topological_order().into_iter().map(str::to_owned).collect();
        for task_id in order {
            let next = match self.state(&task_id) {
                TaskState::UpForRetry => TaskState::Scheduled,
                TaskState::None => {
                    let upstream: Vec<TaskState> =
                        self.dag.upstream(&task_id).into_iter().map(|u| self.state(u)).collect();
                    let rule = self.dag.task(&task_id).map(|t| t.trigger_rule).unwrap_or_default();
                    match trigger_satisfied(rule, &upstream) {
                        Readiness::Ready => TaskState::Scheduled,
                        Readiness::Skip => TaskState::Skipped,
                        Readiness::UpstreamFailed => TaskState::UpstreamFailed,
                        Readiness::Waiting => continue,
                    }
                }
                _ => continue,
            };
            if let Some(ti) = self.tis.get_mut(&task_id) {
                ti.0 = next;
            }
        }
    }

    /// As the engine's `try_end` for a failed try: retried while the try number is within `retries`.
    fn fail(&mut self, task_id: &str) -> Option<Duration> {
        let task = self.dag.resolved_task(task_id)?;
        let ti = self.tis.get_mut(task_id).filter(|ti| ti.0 == TaskState::Running)?;
        if ti.1 <= task.retries {
            ti.0 = TaskState::UpForRetry;
            Some(task.retry_delay_after(ti.1))
        } else {
            ti.0 = TaskState::Failed;
            None
        }
    }

    fn outcome(&self) -> RunState {
        let leaves: Vec<TaskState> = self.dag.leaves().into_iter().map(|leaf| self.state(leaf)).collect();
        run_outcome(&leaves)
    }
}

/// Readiness as Airflow's documentation states each rule: what makes it fail (upstream_failed), what makes it
/// skip, and what makes it fire, in that order of precedence; otherwise it waits. `removed` is done, and nothing
/// else.
fn model_readiness(rule: TriggerRule, upstream: &[TaskState]) -> Readiness {
    use TaskState::{Failed, Skipped, Success};
    if upstream.is_empty() {
        return Readiness::Ready;
    }
    let any = |f: &dyn Fn(TaskState) -> bool| upstream.iter().any(|s| f(*s));
    let all = |f: &dyn Fn(TaskState) -> bool| upstream.iter().all(|s| f(*s));
    let done = all(&|s| s.is_finished());
    let (fails, skips, fires) = match rule {
        TriggerRule::AllSuccess => (any(&is_failure), any(&|s| s == Skipped), all(&|s| s == Success)),
        TriggerRule::AllFailed => (false, any(&|s| matches!(s, Success | Skipped)), all(&is_failure)),
        TriggerRule::AllDone => (false, false, done),
        TriggerRule::AllSkipped => (false, any(&|s| s == Success || is_failure(s)), all(&|s| s == Skipped)),
        TriggerRule::OneSuccess => {
            let none_succeeded = done && !any(&|s| s == Success);
            (none_succeeded && !all(&|s| s == Skipped), done && all(&|s| s == Skipped), any(&|s| s == Success))
        }
        TriggerRule::OneFailed => (false, done && !any(&is_failure), any(&is_failure)),
        TriggerRule::OneDone => {
            let ended = |s: TaskState| matches!(s, Success | Failed);
            (false, done && !any(&ended), any(&ended))
        }
        TriggerRule::NoneFailed => (any(&is_failure), false, all(&|s| matches!(s, Success | Skipped))),
        TriggerRule::NoneFailedMinOneSuccess => {
            (any(&is_failure), all(&|s| s == Skipped), all(&|s| matches!(s, Success | Skipped)))
        }
        TriggerRule::NoneSkipped => (false, any(&|s| s == Skipped), done),
        TriggerRule::Always => (false, false, true),
    };
    match (fails, skips, fires) {
        (true, _, _) => Readiness::UpstreamFailed,
        (false, true, _) => Readiness::Skip,
        (false, false, true) => Readiness::Ready,
        (false, false, false) => Readiness::Waiting,
    }
}

/// `retry_delay`, or with exponential backoff `retry_delay * 2^(try_number - 1)` capped by `max_retry_delay`
/// (a day when absent), computed without overflow.
fn model_delay(shape: &Shape, try_number: u32) -> Duration {
    if !shape.backoff || shape.retry_delay_secs == 0 {
        return Duration::from_secs(shape.retry_delay_secs);
    }
    let cap = shape.max_retry_delay_secs.unwrap_or(DEFAULT_MAX_RETRY_DELAY.as_secs());
    let doublings = try_number.saturating_sub(1);
    // retry_delay_secs < 2^32: 63 doublings still fit.
    let delay = if doublings < 64 { u128::from(shape.retry_delay_secs) << doublings } else { u128::MAX };
    Duration::from_secs(u64::try_from(delay.min(u128::from(cap))).unwrap_or(u64::MAX))
}

/// The rules restated on plain indices.
struct Model {
    shapes: Vec<Shape>,
    states: Vec<TaskState>,
    failures: Vec<u32>,
}

impl Model {
    fn new(shapes: &[Shape]) -> Model {
        Model { shapes: shapes.to_vec(), states: vec![TaskState::None; shapes.len()], failures: vec![0; shapes.len()] }
    }

    fn apply(&mut self, event: &Event) -> Option<Duration> {
        use TaskState::*;
        let n = self.states.len();
        let (i, from, to) = match event {
            Event::Evaluate => {
                // Upstream tasks come first by construction.
                for i in 0..n {
                    self.states[i] = match self.states[i] {
                        UpForRetry => Scheduled,
                        None => {
                            let upstream: Vec<TaskState> = self.shapes[i].upstream(i).map(|j| self.states[j]).collect();
                            match model_readiness(self.shapes[i].rule, &upstream) {
                                Readiness::Ready => Scheduled,
                                Readiness::Skip => Skipped,
                                Readiness::UpstreamFailed => UpstreamFailed,
                                Readiness::Waiting => None,
                            }
                        }
                        other => other,
                    };
                }
                return Option::None;
            }
            Event::Fail(at) => {
                let i = at % n;
                if self.states[i] != Running {
                    return Option::None;
                }
                self.failures[i] += 1;
                let retried = self.failures[i] <= self.shapes[i].retries;
                self.states[i] = if retried { UpForRetry } else { Failed };
                return retried.then(|| model_delay(&self.shapes[i], self.failures[i]));
            }
            Event::Queue(at) => (at % n, Scheduled, Queued),
            Event::Start(at) => (at % n, Queued, Running),
            Event::Succeed(at) => (at % n, Running, Success),
            Event::ExitSkip(at) => (at % n, Running, Skipped),
            Event::BranchSkip(at) => (at % n, None, Skipped),
            Event::Remove(at) => (at % n, None, Removed),
        };
        if self.states[i] == from {
            self.states[i] = to;
        }
        Option::None
    }

    /// The run fails when a task no other task depends on failed or could not run because of a failure.
    fn outcome(&self) -> RunState {
        let n = self.states.len();
        let is_leaf = |i: usize| (0..n).all(|k| self.shapes[k].upstream(k).all(|j| j != i));
        if (0..n).any(|i| is_leaf(i) && is_failure(self.states[i])) { RunState::Failed } else { RunState::Success }
    }
}

fn rule() -> impl Strategy<Value = TriggerRule> {
    select(TriggerRule::ALL.to_vec())
}

fn state() -> impl Strategy<Value = TaskState> {
    select(TaskState::ALL.to_vec())
}

fn shape() -> impl Strategy<Value = Shape> {
    (rule(), 0u32..4, any::<u8>(), 0u64..3600, any::<bool>(), prop::option::of(1u64..7 * 86_400)).prop_map(
        |(rule, retries, upstream, retry_delay_secs, backoff, max_retry_delay_secs)| Shape {
            rule,
            retries,
            upstream,
            retry_delay_secs,
            backoff,
            max_retry_delay_secs,
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => Just(Event::Evaluate),
        3 => (0usize..8).prop_map(Event::Queue),
        3 => (0usize..8).prop_map(Event::Start),
        2 => (0usize..8).prop_map(Event::Succeed),
        3 => (0usize..8).prop_map(Event::Fail),
        1 => (0usize..8).prop_map(Event::ExitSkip),
        1 => (0usize..8).prop_map(Event::BranchSkip),
        1 => (0usize..8).prop_map(Event::Remove),
    ]
}

/// Every task that can make progress does, and succeeds.
fn drive(engine: &mut Engine, model: &mut Model) {
    let n = model.states.len();
    for _ in 0..n * 2 + 1 {
        for event in std::iter::once(Event::Evaluate)
            .chain((0..n).flat_map(|i| [Event::Queue(i), Event::Start(i), Event::Succeed(i)]))
        {
            engine.apply(&event);
            model.apply(&event);
        }
    }
}

fn states(engine: &Engine) -> Vec<TaskState> {
    (0..engine.tis.len()).map(|i| engine.state(&id(i))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn readiness_is_the_rules_statement(rule in rule(), upstream in prop::collection::vec(state(), 0..6)) {
        let readiness = trigger_satisfied(rule, &upstream);
        prop_assert_eq!(readiness, model_readiness(rule, &upstream), "{} with upstream {:?}", rule, upstream);
        // Once every upstream task is done the rule decides, unless a removed task keeps it waiting (a deadlock).
        if upstream.iter().all(|s| s.is_finished() && *s != TaskState::Removed) {
            prop_assert_ne!(readiness, Readiness::Waiting, "{} with upstream {:?}", rule, upstream);
        }
    }

    #[test]
    fn a_run_fails_when_a_leaf_failed(leaves in prop::collection::vec(state(), 0..6)) {
        let failed = leaves.iter().any(|s| is_failure(*s));
        prop_assert_eq!(run_outcome(&leaves), if failed { RunState::Failed } else { RunState::Success });
    }

    #[test]
    fn retry_delays_are_the_backoff_formula(shape in shape(), try_number in prop_oneof![0u32..80, any::<u32>()]) {
        let mut task = TaskSpec::new("t");
        task.retry_delay = Some(Duration::from_secs(shape.retry_delay_secs));
        task.retry_exponential_backoff = Some(shape.backoff);
        task.max_retry_delay = shape.max_retry_delay_secs.map(Duration::from_secs);
        let resolved = task.resolved(&sluice_core::TaskArgs::default());
        prop_assert_eq!(resolved.retry_delay_after(try_number), model_delay(&shape, try_number));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn task_instances_move_as_the_model_says(
        shapes in prop::collection::vec(shape(), 1..6),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut engine = Engine::new(&shapes);
        let mut model = Model::new(&shapes);
        let leaves: Vec<String> = (0..shapes.len())
            .filter(|&i| (0..shapes.len()).all(|k| shapes[k].upstream(k).all(|j| j != i)))
            .map(id)
            .collect();
        prop_assert_eq!(engine.dag.leaves(), leaves.iter().map(String::as_str).collect::<Vec<_>>());
        for event in &events {
            let before = states(&engine);
            let delay = engine.apply(event);
            prop_assert_eq!(delay, model.apply(event), "retry delay after {:?}", event);
            let after = states(&engine);
            prop_assert_eq!(&after, &model.states, "after {:?}", event);
            for (i, (was, is)) in before.iter().zip(&after).enumerate() {
                prop_assert!(!was.is_finished() || was == is, "t{} went from {} to {} on {:?}", i, was, is, event);
                let tries = engine.tis[&id(i)].1;
                prop_assert!(tries <= shapes[i].retries + 1, "t{} has {} tries with retries {}", i, tries, shapes[i].retries);
            }
        }
        drive(&mut engine, &mut model);
        prop_assert_eq!(&states(&engine), &model.states);
        if !model.states.contains(&TaskState::Removed) {
            prop_assert!(model.states.iter().all(TaskState::is_finished), "the run ends: {:?}", model.states);
            prop_assert_eq!(engine.outcome(), model.outcome());
        }
    }
}
