//! One task try, from spawn to report.
//!
//! The try runs until the first of: the process exits, `execution_timeout` passes, the heartbeat says stop (cancel,
//! lease lost, or server unreachable for a whole lease), or the worker shuts down. Whatever ends it, the whole
//! process group is killed before the outcome is reported, so that nothing of the try outlives its report.
//!
//! Fencing: when the lease is lost (409) or no server answered a heartbeat for `lease_ms`, the server has already
//! ended the try and may hand the task to another worker; the task is killed at once and nothing is reported. A
//! server that answers that its database is away (503) does not count as silent: nothing can expire the lease
//! through that database meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_core::xcom::{LakeObjects, XComValue, lake_uri};

use sluice_core::protocol::{
    FILE_BACKED_ENV, LeasedTask, LogLine, LogStream, MAX_ENV_VALUE, OP_SPEC_ENV, OpOutput, RUN_OP_COMMAND,
    ReportRequest, TaskOutcome, file_env_var,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use sluice_core::masking::Masker;

use crate::client::{Backoff, Client, ClientError};
use crate::guard::{GroupEvent, GuardLink, INSTANCE_ENV};
use crate::logs::{LogSender, LogShipper, pump_lines};
use crate::output::{Markers, Outputs, keep, read_outputs};
use crate::process::{SpawnSpec, TaskProcess, describe_exit};

/// How long to wait for the log pipes to close once the group is dead. Only a process that left the group
/// (`setsid`) can hold them longer, and it must not hold up the report.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

/// What every try of this worker shares.
#[derive(Debug, Clone)]
pub struct TryContext {
    pub client: Client,
    pub kill_grace: Duration,
    /// Becomes true when the worker's shutdown grace is over and running tries must be killed.
    pub kill_all: watch::Receiver<bool>,
    /// Kills the tries' process groups should the worker die (see `guard.rs`).
    pub guard: GuardLink,
    /// Where the tries' `$SLUICE_OUTPUT` files go (see `output::output_dir`).
    pub output_dir: PathBuf,
    /// See `WorkerConfig::task_env`.
    pub task_env: Arc<BTreeMap<String, String>>,
    /// See `WorkerConfig::max_log_bytes`.
    pub max_log_bytes: u64,
    /// See `WorkerConfig::lake`.
    pub lake: Option<Arc<dyn LakeObjects>>,
}

/// Runs one leased try to the end, reporting its outcome unless the lease was lost.
pub async fn run_try(ctx: TryContext, task: LeasedTask) {
    let span = tracing::info_span!(
        "task",
        dag_id = %task.dag_id,
        run_id = %task.dag_run_id,
        task_id = %task.task_id,
        map_index = task.map_index,
        try_number = task.try_number,
    );
    async move {
        let logs = LogShipper::start(ctx.client.clone(), task.ti_id, task.lease_id, masker(&task), ctx.max_log_bytes);
        let verdict = execute(&ctx, &task, logs.sender()).await;
        // The last lines travel with the report, so they are stored when the report makes the try final.
        let tail = logs.finish().await;
        if let Some(verdict) = verdict {
            report(&ctx, &task, verdict, tail).await;
        }
    }
    .instrument(span)
    .await
}

/// What to report about a try.
#[derive(Debug)]
struct Verdict {
    exit_code: Option<i32>,
    pid: Option<u32>,
    error: Option<String>,
    /// The return value.
    output: Option<serde_json::Value>,
    /// The values pushed under other keys.
    xcom: BTreeMap<String, serde_json::Value>,
}

impl Verdict {
    fn failed(error: impl Into<String>) -> Self {
        Verdict::ended(None, Some(error.into()))
    }

    fn ended(exit_code: Option<i32>, error: Option<String>) -> Self {
        Verdict { exit_code, pid: None, error, output: None, xcom: BTreeMap::new() }
    }

    /// The verdict with the try's secrets masked in its error and outputs (their files are read as they are).
    fn masked(self, masker: &Masker) -> Self {
        Verdict {
            error: self.error.map(|e| masker.mask(&e).into_owned()),
            output: self.output.map(|o| masker.mask_json(&o)),
            xcom: self.xcom.into_iter().map(|(k, v)| (k, masker.mask_json(&v))).collect(),
            ..self
        }
    }
}

/// Why the try stopped.
#[derive(Debug)]
enum End {
    Exited(ExitStatus),
    WaitFailed(std::io::Error),
    TimedOut(Duration),
    Cancelled,
    /// The server answered 409: another decision already ended the try.
    LeaseLost,
    /// No heartbeat got through for a whole lease: the server has failed the try as lost.
    LeaseExpired,
    Shutdown,
}

/// Runs the process; `None` when the lease is gone and nothing may be reported.
async fn execute(ctx: &TryContext, task: &LeasedTask, log: LogSender) -> Option<Verdict> {
    let output_file = ctx.output_dir.join(format!("sluice-output-{}-{}.json", task.ti_id, task.lease_id));
    let outputs_dir = ctx.output_dir.join(format!("sluice-outputs-{}-{}", task.ti_id, task.lease_id));
    let env_dir = ctx.output_dir.join(format!("sluice-env-{}-{}", task.ti_id, task.lease_id));
    // The folder is there for the task to write into; inside the worker's private folder, like the file.
    if let Err(e) = tokio::fs::create_dir(&outputs_dir).await {
        return Some(Verdict::failed(format!("cannot create {}: {e}", outputs_dir.display())));
    }
    let files = OutputFiles { file: &output_file, dir: &outputs_dir, env: &env_dir };
    let verdict = run_process(ctx, task, &log, files).await.map(|v| v.masked(&masker(task)));
    match tokio::fs::remove_file(&output_file).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("could not remove {}: {e}", output_file.display());
        }
        _ => {}
    }
    if let Err(e) = tokio::fs::remove_dir_all(&outputs_dir).await {
        tracing::warn!("could not remove {}: {e}", outputs_dir.display());
    }
    match tokio::fs::remove_dir_all(&env_dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("could not remove {}: {e}", env_dir.display());
        }
        _ => {}
    }
    verdict
}

/// Where a try writes its outputs: `$SLUICE_OUTPUT` and `$SLUICE_OUTPUT_DIR` (see `output.rs`); and where the
/// worker writes the values too long for the try's environment (see `FILE_BACKED_ENV`).
#[derive(Debug, Clone, Copy)]
struct OutputFiles<'a> {
    file: &'a Path,
    dir: &'a Path,
    env: &'a Path,
}

async fn run_process(ctx: &TryContext, task: &LeasedTask, log: &LogSender, files: OutputFiles<'_>) -> Option<Verdict> {
    let spawned = spawn_spec(task, files, &ctx.guard.instance, &ctx.task_env)
        .and_then(|spec| TaskProcess::spawn(&spec).map_err(|e| e.to_string()));
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            log.system(e.clone());
            return Some(Verdict::failed(e));
        }
    };
    let mut process = spawned.process;
    let pid = process.pid();
    // The child leads its own group, whose id is its pid. A send fails only once the worker is shutting down.
    let _ = ctx.guard.events.send(GroupEvent::Started(pid));
    log.system(format!("started pid {pid}"));
    let stdout = tokio::spawn(pump_lines(spawned.stdout, LogStream::Stdout, log.clone()));
    let stderr = tokio::spawn(pump_lines(spawned.stderr, LogStream::Stderr, log.clone()));

    let end = supervise(ctx, task, &mut process).await;
    let verdict = stop(ctx, &mut process, end, log).await;
    let _ = ctx.guard.events.send(GroupEvent::Ended(pid));
    let markers = drain_pipes(stdout, stderr).await;
    let mut verdict = verdict?;
    verdict.pid = Some(pid);
    // A data task that exited on its own may have failed with a report worth keeping (failed quality checks).
    let exited_by_itself = verdict.error.is_none() || (task.op.is_some() && verdict.exit_code.is_some());
    if exited_by_itself {
        match read_outputs(files.file, files.dir, markers).await {
            Ok(outputs) => (verdict.output, verdict.xcom) = (outputs.value, outputs.keyed),
            Err(e) => verdict.error = Some(verdict.error.take().map_or(e.to_string(), |first| format!("{first}; {e}"))),
        }
    }
    Some(verdict)
}

/// What to start for the try: its command, or for a built-in data task this very executable's `run-op`, so that
/// timeouts, kills, logs and heartbeats work the same for both.
fn spawn_spec(
    task: &LeasedTask,
    files: OutputFiles<'_>,
    worker_instance: &str,
    worker_env: &BTreeMap<String, String>,
) -> Result<SpawnSpec, String> {
    let mut env = worker_env.clone();
    env.extend(task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("SLUICE_OUTPUT".to_owned(), files.file.display().to_string());
    env.insert("SLUICE_OUTPUT_DIR".to_owned(), files.dir.display().to_string());
    env.insert(INSTANCE_ENV.to_owned(), worker_instance.to_owned());
    let argv = match &task.op {
        None => task.argv.clone(),
        Some(op) => {
            let exe = std::env::current_exe().map_err(|e| format!("cannot find the sluice executable: {e}"))?;
            let spec = serde_json::to_string(op).map_err(|e| format!("cannot encode the task's configuration: {e}"))?;
            env.insert(OP_SPEC_ENV.to_owned(), spec);
            vec![exe.display().to_string(), RUN_OP_COMMAND.to_owned()]
        }
    };
    move_long_values_to_files(&mut env, files.env)?;
    Ok(SpawnSpec { argv, env, cwd: task.cwd.as_ref().map(PathBuf::from) })
}

/// Hands each [`FILE_BACKED_ENV`] value longer than [`MAX_ENV_VALUE`] as a file named by `<NAME>_FILE`: the
/// operating system refuses to start a process with a value that long.
fn move_long_values_to_files(env: &mut BTreeMap<String, String>, dir: &Path) -> Result<(), String> {
    for name in FILE_BACKED_ENV {
        let Some(value) = env.remove(name) else { continue };
        if value.len() <= MAX_ENV_VALUE {
            env.insert(name.to_owned(), value);
            continue;
        }
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, value))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        env.insert(file_env_var(name), path.display().to_string());
    }
    Ok(())
}

/// Waits for whatever ends the try first.
async fn supervise(ctx: &TryContext, task: &LeasedTask, process: &mut TaskProcess) -> End {
    let timeout = task.execution_timeout_ms.map(Duration::from_millis);
    tokio::select! {
        status = process.wait() => match status {
            Ok(status) => End::Exited(status),
            Err(e) => End::WaitFailed(e),
        },
        () = sleep_or_never(timeout) => End::TimedOut(timeout.unwrap_or_default()),
        end = heartbeat(&ctx.client, task) => end,
        () = kill_requested(ctx.kill_all.clone()) => End::Shutdown,
    }
}

/// Kills what is left of the process group and says what to report.
async fn stop(ctx: &TryContext, process: &mut TaskProcess, end: End, log: &LogSender) -> Option<Verdict> {
    let (reason, error) = match end {
        End::Exited(status) => return Some(exited(ctx, process, status, log).await),
        End::LeaseLost => {
            return kill_at_once(process, "the server says the lease is lost (409)").await;
        }
        End::LeaseExpired => {
            return kill_at_once(process, "no heartbeat got through for a whole lease").await;
        }
        End::TimedOut(after) => {
            let after = human(after);
            (format!("execution_timeout of {after} reached"), format!("timed out after {after}"))
        }
        End::Cancelled => ("the server cancelled the task".to_owned(), "cancelled by the server".to_owned()),
        End::Shutdown => {
            ("the worker is shutting down".to_owned(), "worker shut down before the task finished".to_owned())
        }
        End::WaitFailed(e) => {
            (format!("waiting for the task failed ({e})"), format!("the worker lost track of the process: {e}"))
        }
    };
    log.system(format!("{reason}: sending SIGTERM to the process group"));
    let exit_code = terminate(ctx, process, log).await.and_then(|status| status.code());
    Some(Verdict::ended(exit_code, Some(error)))
}

/// For a try the server has already ended: it may be running elsewhere by now, so not one moment longer here.
async fn kill_at_once(process: &mut TaskProcess, why: &str) -> Option<Verdict> {
    tracing::error!("{why}: killing the task's process group, not reporting");
    if let Err(e) = process.kill().await {
        tracing::error!("could not reap the killed task: {e}");
    }
    None
}

/// The verdict of a process that exited on its own; kills what it left running in its group.
async fn exited(ctx: &TryContext, process: &mut TaskProcess, status: ExitStatus, log: &LogSender) -> Verdict {
    let error = describe_exit(status);
    log.system(error.clone().unwrap_or_else(|| "exit code 0".to_owned()));
    if process.group_alive() {
        log.system("the task left processes running in its process group: sending SIGTERM to them");
        terminate(ctx, process, log).await;
    }
    Verdict::ended(status.code(), error)
}

/// SIGTERM, grace, SIGKILL; logs how it went.
async fn terminate(ctx: &TryContext, process: &mut TaskProcess, log: &LogSender) -> Option<ExitStatus> {
    match process.terminate(ctx.kill_grace).await {
        Ok(killed) => {
            if killed.escalated {
                log.system(format!("still running after {}: sent SIGKILL", human(ctx.kill_grace)));
            }
            Some(killed.status)
        }
        Err(e) => {
            tracing::error!("could not reap the task's process: {e}");
            None
        }
    }
}

/// Waits for both pipes to close; returns the output lines of stdout.
async fn drain_pipes(mut stdout: JoinHandle<Markers>, mut stderr: JoinHandle<Markers>) -> Markers {
    let both = async { ((&mut stdout).await, (&mut stderr).await) };
    match tokio::time::timeout(PIPE_DRAIN, both).await {
        Ok((Ok(markers), _)) => markers,
        Ok((Err(e), _)) => {
            tracing::error!("the stdout reader failed: {e}");
            Markers::default()
        }
        Err(_) => {
            // Stop reading, else the log shipper would wait for the pumps' senders forever.
            tracing::warn!("a process outside the task's group still holds its output pipes; not waiting for it");
            stdout.abort();
            stderr.abort();
            Markers::default()
        }
    }
}

/// Heartbeats every `heartbeat_interval_ms` until the server says stop, or until the lease would have expired.
///
/// A failed heartbeat is tried again sooner, with backoff and jitter, never later than the next one was due. An
/// answer that the server cannot reach its database counts as a heartbeat for the fence: while it lasts no lease
/// can be expired, and once the database is back the scheduler waits a lease before expiring any, so the task
/// keeps running. Only a server that does not answer at all for a lease ends the task here.
async fn heartbeat(client: &Client, task: &LeasedTask) -> End {
    let interval = Duration::from_millis(task.heartbeat_interval_ms).max(Duration::from_millis(100));
    let lease = Duration::from_millis(task.lease_ms);
    let mut lease_until = Instant::now() + lease;
    // Half the interval: a heartbeat answered 503 took up to the interval itself on the server (its wait for a
    // database connection), and the next must be answered before the lease counted from that answer ends.
    let mut retries = Backoff::up_to(interval / 2);
    let mut wait = interval;
    loop {
        let beat = async {
            tokio::time::sleep(wait).await;
            let sent = Instant::now();
            (sent, client.heartbeat(task.ti_id, task.lease_id).await)
        };
        let (sent, answer) = tokio::select! {
            () = tokio::time::sleep_until(lease_until) => return End::LeaseExpired,
            beat = beat => beat,
        };
        wait = match answer {
            // Counting from when the request left keeps us on the safe side of the server's clock.
            Ok(response) if !response.cancel => {
                lease_until = sent + lease;
                retries.reset();
                interval
            }
            Ok(_) => return End::Cancelled,
            Err(ClientError::Conflict) => return End::LeaseLost,
            Err(e) => {
                if matches!(e, ClientError::DatabaseUnavailable(_)) {
                    // The database was out of reach when the server answered, not only when the request left.
                    lease_until = Instant::now() + lease;
                }
                tracing::warn!("heartbeat failed: {e}");
                retries.next_delay()
            }
        };
    }
}

async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

async fn kill_requested(mut kill_all: watch::Receiver<bool>) {
    if kill_all.wait_for(|kill| *kill).await.is_err() {
        // The worker loop is gone without asking; nobody can ask any more.
        std::future::pending::<()>().await;
    }
}

/// The try's outputs as the report carries them: those too big for the database written to the lake first, on a
/// blocking thread (a bucket is reached over the network).
async fn keep_outputs(
    lake: Option<Arc<dyn LakeObjects>>,
    task: &LeasedTask,
    outputs: Outputs,
) -> Result<(Option<Value>, BTreeMap<String, XComValue>), String> {
    if outputs.value.is_none() && outputs.keyed.is_empty() {
        return Ok((None, BTreeMap::new()));
    }
    let (dag_id, run_id, task_id) = (task.dag_id.clone(), task.dag_run_id.clone(), task.task_id.clone());
    let map_index = i64::from(task.map_index);
    let uri_of = move |key: &str| lake_uri(&dag_id, &run_id, &task_id, map_index, key);
    tokio::task::spawn_blocking(move || keep(outputs, lake.as_deref(), uri_of).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("writing the task's outputs failed: {e}")))
}

/// The secrets of a try, which nothing it sends to the server may show.
fn masker(task: &LeasedTask) -> Masker {
    Masker::new(task.mask.iter().cloned())
}

/// Sends the outcome, retrying transient failures with backoff and jitter until the server takes it or says the
/// lease is stale. Only a server that does not answer at all for a whole lease makes it give up (the try is
/// failed as lost then); one that answers that its database is away keeps the report waiting, however long.
async fn report(ctx: &TryContext, task: &LeasedTask, verdict: Verdict, logs: Vec<LogLine>) {
    let client = &ctx.client;
    let op_output = match (&task.op, &verdict.output) {
        (Some(_), Some(output)) => serde_json::from_value::<OpOutput>(output.clone()).unwrap_or_else(|e| {
            tracing::warn!("the data task's output is not what run-op writes: {e}");
            OpOutput::default()
        }),
        _ => OpOutput::default(),
    };
    let Verdict { exit_code, pid, mut error, output, xcom } = verdict;
    let (output, xcom) = match keep_outputs(ctx.lake.clone(), task, Outputs { value: output, keyed: xcom }).await {
        Ok(kept) => kept,
        Err(e) => {
            error = Some(error.map_or(e.clone(), |first| format!("{first}; {e}")));
            (None, BTreeMap::new())
        }
    };
    let outcome = if error.is_none() { TaskOutcome::Success } else { TaskOutcome::Failed };
    let request = ReportRequest {
        lease_id: task.lease_id,
        outcome,
        exit_code,
        error,
        output,
        xcom,
        pid,
        logs,
        assets: op_output.assets,
        quality: op_output.quality,
        model: op_output.model,
        stage_change: op_output.stage_change,
        monitor: op_output.monitor,
        sensor: op_output.sensor,
    };
    let mut give_up = Instant::now() + Duration::from_millis(task.lease_ms);
    // As often as heartbeats: after an outage the scheduler waits one lease for what the workers have to say, and
    // a try that has ended has no heartbeat left to keep its lease.
    let mut backoff = Backoff::up_to(Duration::from_millis(task.heartbeat_interval_ms));
    loop {
        let error = match client.report(task.ti_id, &request).await {
            Ok(()) => {
                tracing::info!(?outcome, error = request.error.as_deref(), "reported");
                return;
            }
            Err(ClientError::Conflict) => {
                tracing::warn!("the server refused the report, the lease is stale: dropping it");
                return;
            }
            Err(error) => error,
        };
        if matches!(error, ClientError::DatabaseUnavailable(_)) {
            give_up = Instant::now() + Duration::from_millis(task.lease_ms);
        }
        if !error.is_transient() || Instant::now() >= give_up {
            tracing::error!(?outcome, "could not report the outcome: {error}");
            return;
        }
        tracing::warn!("report failed, retrying: {error}");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// `10s`, `1500ms`: how durations read in logs and errors.
fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_channel;
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;
    use serde_json::json;
    use sluice_core::protocol::LogLine;
    use uuid::Uuid;

    /// A try of `script`, on a worker whose server is unreachable: heartbeats only warn until the (long) lease ends,
    /// which leaves the process side to test on its own.
    struct Harness {
        ctx: TryContext,
        kill_all: watch::Sender<bool>,
        /// What the try told the guard.
        groups: tokio::sync::mpsc::UnboundedReceiver<GroupEvent>,
        task: LeasedTask,
    }

    impl Harness {
        fn new(script: &str, execution_timeout_ms: Option<u64>) -> Self {
            let (kill_all, kill_rx) = watch::channel(false);
            let client = Client::new("http://127.0.0.1:9", "token", reqwest::Client::builder()).expect("client");
            let (events, groups) = tokio::sync::mpsc::unbounded_channel();
            let guard = GuardLink { instance: "worker-under-test".into(), events };
            let output_dir = std::env::temp_dir();
            let task_env = Default::default();
            let ctx = TryContext {
                client,
                kill_grace: Duration::from_secs(2),
                kill_all: kill_rx,
                guard,
                output_dir,
                task_env,
                max_log_bytes: 1 << 20,
                lake: None,
            };
            let task = LeasedTask {
                ti_id: Uuid::now_v7(),
                lease_id: Uuid::now_v7(),
                dag_id: "dag".into(),
                dag_run_id: "manual__1".into(),
                task_id: "task".into(),
                map_index: -1,
                try_number: 1,
                argv: vec!["sh".into(), "-c".into(), script.into()],
                op: None,
                env: [("GREETING".to_owned(), "hello".to_owned())].into(),
                cwd: None,
                execution_timeout_ms,
                heartbeat_interval_ms: 60_000,
                lease_ms: 60_000,
                mask: Vec::new(),
            };
            Harness { ctx, kill_all, groups, task }
        }

        async fn run(&self) -> (Verdict, Vec<LogLine>) {
            let (log, mut rx) = test_channel(Masker::new(self.task.mask.iter().cloned()));
            let verdict = execute(&self.ctx, &self.task, log).await.expect("a verdict to report");
            let lines = std::iter::from_fn(|| rx.try_recv().ok()).collect();
            (verdict, lines)
        }
    }

    #[tokio::test]
    async fn the_secrets_of_the_lease_are_masked_in_logs_output_and_error() {
        let mut h = Harness::new(r#"echo "key $SECRET"; echo "$SECRET" >&2; exit 3"#, None);
        h.task.env.insert("SECRET".into(), "hunter2-secret".into());
        h.task.mask = vec!["hunter2-secret".into()];
        h.task.argv.push("task-named-hunter2-secret".into());
        let (verdict, lines) = h.run().await;
        assert!(has_line(&lines, LogStream::Stdout, "key ***"), "{lines:?}");
        assert!(has_line(&lines, LogStream::Stderr, "***"), "{lines:?}");
        assert!(lines.iter().all(|l| !l.line.contains("hunter2")), "{lines:?}");
        assert_eq!(verdict.exit_code, Some(3));
        let mut h = Harness::new(r#"printf '{"k": "%s"}' "$SECRET" > "$SLUICE_OUTPUT""#, None);
        h.task.env.insert("SECRET".into(), "hunter2-secret".into());
        h.task.mask = vec!["hunter2-secret".into()];
        let (verdict, _) = h.run().await;
        assert_eq!(verdict.output, Some(json!({"k": "***"})));
        let mut h = Harness::new("", None);
        h.task.argv = vec!["/no/such/hunter2-secret".into()];
        h.task.mask = vec!["hunter2-secret".into()];
        let (verdict, lines) = h.run().await;
        let error = verdict.error.expect("failed");
        assert!(error.contains("/no/such/***") && !error.contains("hunter2"), "{error}");
        assert!(lines.iter().all(|l| !l.line.contains("hunter2")), "{lines:?}");
    }

    fn has_line(lines: &[LogLine], stream: LogStream, text: &str) -> bool {
        lines.iter().any(|l| l.stream == stream && l.line == text)
    }

    fn group_gone(pid: Option<u32>) -> bool {
        let pid = pid.expect("a pid") as i32;
        killpg(Pid::from_raw(pid), None).is_err()
    }

    #[tokio::test]
    async fn a_successful_try_reports_its_output_and_logs() {
        let h = Harness::new("echo \"$GREETING\"; echo oops >&2; echo '::output::{\"rows\": 3}'", None);
        let (verdict, lines) = h.run().await;
        assert_eq!((verdict.error, verdict.exit_code), (None, Some(0)));
        assert_eq!(verdict.output, Some(json!({"rows": 3})));
        assert!(has_line(&lines, LogStream::Stdout, "hello"), "{lines:?}");
        assert!(has_line(&lines, LogStream::Stderr, "oops"), "{lines:?}");
        assert!(has_line(&lines, LogStream::System, "exit code 0"), "{lines:?}");
        let started = format!("started pid {}", verdict.pid.expect("a pid"));
        assert!(has_line(&lines, LogStream::System, &started), "{lines:?}");
    }

    #[tokio::test]
    async fn the_guard_hears_of_the_group_and_the_task_carries_the_mark() {
        let mut h = Harness::new("echo \"$SLUICE_WORKER_INSTANCE\"", None);
        let (verdict, lines) = h.run().await;
        assert!(has_line(&lines, LogStream::Stdout, "worker-under-test"), "{lines:?}");
        let pid = verdict.pid.expect("a pid");
        let told: Vec<GroupEvent> = std::iter::from_fn(|| h.groups.try_recv().ok()).collect();
        assert_eq!(told, [GroupEvent::Started(pid), GroupEvent::Ended(pid)]);
    }

    #[tokio::test]
    async fn the_output_file_wins_and_is_removed_after() {
        let h = Harness::new("echo '::output::1'; echo not-json > \"$SLUICE_OUTPUT\"; echo \"$SLUICE_OUTPUT\"", None);
        let (verdict, lines) = h.run().await;
        assert_eq!(verdict.output, Some(json!("not-json")));
        let path = lines.iter().find(|l| l.line.contains("sluice-output-")).expect("the path was printed");
        assert!(!Path::new(&path.line).exists(), "{} is left behind", path.line);
    }

    #[tokio::test]
    async fn too_big_an_output_line_fails_the_try() {
        let h = Harness::new("printf '::output name=k::'; yes x | head -c 140000 | tr -d '\\n'; echo", None);
        let (verdict, _) = h.run().await;
        let error = verdict.error.expect("failed");
        assert!(error.contains("above the limit of 65536 bytes for a line"), "{error}");
        assert_eq!((verdict.output, verdict.xcom.len()), (None, 0));
    }

    #[tokio::test]
    async fn keyed_outputs_come_from_lines_and_files_and_large_ones_need_the_lake() {
        let script = "echo '::output name=rows::3'; echo '{\"p\": 1}' > \"$SLUICE_OUTPUT_DIR/meta.json\"; \
                      yes x | head -c 70000 > \"$SLUICE_OUTPUT\"; echo \"$SLUICE_OUTPUT_DIR\"";
        let h = Harness::new(script, None);
        let (verdict, lines) = h.run().await;
        assert_eq!(verdict.error, None);
        assert_eq!(verdict.xcom, BTreeMap::from([("meta".into(), json!({"p": 1})), ("rows".into(), json!(3))]));
        let dir = lines.iter().find(|l| l.line.contains("sluice-outputs-")).expect("the folder was printed");
        assert!(!Path::new(&dir.line).exists(), "{} is left behind", dir.line);
        let outputs = Outputs { value: verdict.output, keyed: verdict.xcom };
        let err = keep_outputs(None, &h.task, outputs).await.expect_err("no lake for 70000 bytes");
        assert!(err.contains("set SLUICE_LAKE on the worker"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_exit_code_is_reported() {
        let (verdict, lines) = Harness::new("exit 3", None).run().await;
        assert_eq!((verdict.error.as_deref(), verdict.exit_code), (Some("exit code 3"), Some(3)));
        assert!(has_line(&lines, LogStream::System, "exit code 3"), "{lines:?}");
    }

    #[tokio::test]
    async fn a_timed_out_try_is_failed_and_its_whole_group_killed() {
        let (verdict, lines) = Harness::new("sleep 100 & sleep 100", Some(300)).run().await;
        assert_eq!(verdict.error.as_deref(), Some("timed out after 300ms"));
        let notice = "execution_timeout of 300ms reached: sending SIGTERM to the process group";
        assert!(has_line(&lines, LogStream::System, notice), "{lines:?}");
        assert!(group_gone(verdict.pid));
    }

    #[tokio::test]
    async fn what_a_task_leaves_running_is_killed_without_waiting_for_its_pipes() {
        let started = Instant::now();
        let (verdict, lines) = Harness::new("sleep 100 & echo done", None).run().await;
        assert_eq!(verdict.error, None);
        assert!(has_line(&lines, LogStream::Stdout, "done"), "{lines:?}");
        assert!(group_gone(verdict.pid));
        // The background sleep would hold the pipes for 100 s: well under that means it was killed, not waited
        // for (a tighter bound would fail on a loaded machine without saying anything about the behaviour).
        assert!(started.elapsed() < Duration::from_secs(30), "waited for the pipes of a killed process");
    }

    #[tokio::test]
    async fn shutdown_kills_the_try_and_reports_it_failed() {
        let h = Harness::new("sleep 100", None);
        let kill_all = h.kill_all.clone();
        let kill_soon = async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            kill_all.send_replace(true);
        };
        let ((verdict, _), ()) = tokio::join!(h.run(), kill_soon);
        assert_eq!(verdict.error.as_deref(), Some("worker shut down before the task finished"));
        assert!(group_gone(verdict.pid));
    }

    #[tokio::test]
    async fn a_missing_program_fails_the_try() {
        let mut h = Harness::new("", None);
        h.task.argv = vec!["/no/such/program".into()];
        let (verdict, _) = h.run().await;
        let error = verdict.error.expect("failed");
        assert!(error.starts_with("could not start \"/no/such/program\""), "{error}");
    }

    #[test]
    fn a_data_task_starts_this_executable_with_its_configuration() {
        let mut h = Harness::new("", None);
        let op: sluice_core::ops_spec::OpSpec = serde_json::from_value(json!({
            "kind": "quality", "inputs": ["lake://raw/a"], "checks": [{"row_count": {"min": 1}}]
        }))
        .expect("a quality task");
        h.task.op = Some(op.clone());
        let worker_env = [("GREETING".to_owned(), "from the worker".to_owned()), ("OTHER".to_owned(), "x".to_owned())];
        let files =
            OutputFiles { file: Path::new("/tmp/out.json"), dir: Path::new("/tmp/outs"), env: Path::new("/tmp/env") };
        let spec = spawn_spec(&h.task, files, "w", &worker_env.into()).expect("a spawn spec");
        assert_eq!(spec.env["OTHER"], "x", "the worker's own task environment");
        let exe = std::env::current_exe().expect("this executable");
        assert_eq!(spec.argv, [exe.display().to_string(), RUN_OP_COMMAND.to_owned()]);
        let sent: sluice_core::ops_spec::OpSpec = serde_json::from_str(&spec.env[OP_SPEC_ENV]).expect("JSON");
        assert_eq!(sent, op);
        assert_eq!(spec.env["SLUICE_OUTPUT"], "/tmp/out.json");
        assert_eq!(spec.env["SLUICE_OUTPUT_DIR"], "/tmp/outs");
        assert_eq!(spec.env["GREETING"], "hello");
    }

    #[test]
    fn values_too_long_for_the_environment_are_handed_as_files() {
        let env_dir = std::env::temp_dir().join(format!("sluice-env-test-{}", Uuid::now_v7()));
        let long = "x".repeat(MAX_ENV_VALUE + 1);
        let mut env = BTreeMap::from([
            (OP_SPEC_ENV.to_owned(), long.clone()),
            (sluice_core::python::CONTEXT_ENV.to_owned(), "{}".to_owned()),
            ("OTHER".to_owned(), long.clone()),
        ]);
        move_long_values_to_files(&mut env, &env_dir).expect("written");
        let path = &env[&file_env_var(OP_SPEC_ENV)];
        assert_eq!(std::fs::read_to_string(path).expect("the file"), long);
        assert!(!env.contains_key(OP_SPEC_ENV));
        assert_eq!(env[sluice_core::python::CONTEXT_ENV], "{}", "a short value stays in the environment");
        assert_eq!(env["OTHER"], long, "only the listed variables move");
        std::fs::remove_dir_all(&env_dir).expect("removed");
    }

    #[test]
    fn durations_read_like_the_dag_file() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::ZERO), "0s");
    }
}
