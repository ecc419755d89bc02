//! The task's operating-system process: spawn it in its own process group, and kill the whole group.
//!
//! A task is often a shell that starts other programs. Killing only the direct child would leave those running
//! (and holding the log pipes open), so every kill here targets the process group, which the child leads. Should the
//! worker die, its guard process kills the groups (`guard.rs`). Nothing runs between fork and exec, so the standard
//! library can start the child with `posix_spawn`, which does not copy the worker's memory mappings.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::Instant;

/// How often to look whether the process group is gone while waiting for it to die.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    /// Added to the worker's own environment.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the task has no command to run (empty argv)")]
    EmptyArgv,
    #[error("could not start {program:?}{}: {source}", in_dir(.cwd))]
    Io { program: String, cwd: Option<PathBuf>, source: std::io::Error },
}

fn in_dir(cwd: &Option<PathBuf>) -> String {
    cwd.as_ref().map(|dir| format!(" in {}", dir.display())).unwrap_or_default()
}

/// A running task: the direct child, which leads its own process group.
#[derive(Debug)]
pub struct TaskProcess {
    child: Child,
    pid: u32,
}

/// A freshly spawned task and its output pipes.
#[derive(Debug)]
pub struct Spawned {
    pub process: TaskProcess,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// How a kill went.
#[derive(Debug)]
pub struct Killed {
    pub status: ExitStatus,
    /// SIGTERM was not enough within the grace period and the group got SIGKILL.
    pub escalated: bool,
}

impl TaskProcess {
    /// Starts the task.
    pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
        let (program, args) = spec.argv.split_first().ok_or(SpawnError::EmptyArgv)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // A last resort should the supervising future be dropped: tokio then SIGKILLs the direct child.
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let io_err = |source| SpawnError::Io { program: program.clone(), cwd: spec.cwd.clone(), source };
        let mut child = command.spawn().map_err(io_err)?;
        let missing = || io_err(std::io::Error::other("the child's output pipes are missing"));
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let pid = child.id().ok_or_else(|| io_err(std::io::Error::other("the child has no pid")))?;
        Ok(Spawned { process: TaskProcess { child, pid }, stdout, stderr })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the direct child to exit. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Whether any process of the task's group is still there (the direct child counts until it is reaped).
    pub fn group_alive(&self) -> bool {
        // ESRCH means the group is empty. Any other error (EPERM) means the id now belongs to someone else's
        // processes, which are not ours to kill either.
        killpg(self.pgid(), None).is_ok()
    }

    /// SIGTERM the whole group, give it `grace` to exit, then SIGKILL what is left. Also works after the direct
    /// child exited on its own, to clean up what it left behind.
    pub async fn terminate(&mut self, grace: Duration) -> std::io::Result<Killed> {
        self.signal_group(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut escalated = false;
        loop {
            // Reap the direct child as soon as it exits, else it would keep the group alive as a zombie.
            let _ = self.child.try_wait()?;
            if !self.group_alive() {
                break;
            }
            if Instant::now() >= deadline {
                self.signal_group(Signal::SIGKILL);
                escalated = true;
                break;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
        Ok(Killed { status: self.child.wait().await?, escalated })
    }

    /// SIGKILL the whole group at once, for when the task must not run one moment longer (lease lost).
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.signal_group(Signal::SIGKILL);
        self.child.wait().await
    }

    fn pgid(&self) -> Pid {
        // The child leads its group (`process_group(0)`), so the group id is its pid.
        Pid::from_raw(self.pid as i32)
    }

    fn signal_group(&self, signal: Signal) {
        if let Err(e) = killpg(self.pgid(), signal) {
            tracing::debug!(pgid = self.pid, ?signal, "killpg: {e}");
        }
    }
}

/// The failure to report for an exit status, `None` for success.
pub fn describe_exit(status: ExitStatus) -> Option<String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit code {code}")),
        (None, Some(signal)) => Some(match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        }),
        (None, None) => Some(format!("ended abnormally ({status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> SpawnSpec {
        SpawnSpec { argv: vec!["sh".into(), "-c".into(), script.into()], env: BTreeMap::new(), cwd: None }
    }

    /// Processes of group `pgid` that are still running (zombies excluded: they are dead, only not yet reaped by
    /// whoever inherited them).
    fn live_members(pgid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the parenthesised command name: state ppid pgrp ...
                let Some((_, rest)) = stat.rsplit_once(')') else {
                    return false;
                };
                let fields: Vec<&str> = rest.split_whitespace().collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .collect()
    }

    async fn wait_for_members(pgid: u32, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_members(pgid).len() < count {
            assert!(Instant::now() < deadline, "the task did not start its children");
            tokio::time::sleep(GROUP_POLL).await;
        }
    }

    #[tokio::test]
    async fn a_timed_out_task_is_killed_with_its_whole_group() {
        let mut spawned = TaskProcess::spawn(&sh("sleep 100 & sleep 100")).expect("spawn");
        let pgid = spawned.process.pid();
        wait_for_members(pgid, 2).await;
        let timed_out = tokio::time::timeout(Duration::from_millis(100), spawned.process.wait()).await;
        assert!(timed_out.is_err(), "sleep 100 cannot have exited");

        let killed = spawned.process.terminate(Duration::from_secs(5)).await.expect("terminate");
        assert!(!killed.escalated, "sleep dies on SIGTERM");
        assert_eq!(describe_exit(killed.status).as_deref(), Some("killed by signal 15 (SIGTERM)"));
        assert_eq!(live_members(pgid), Vec::<u32>::new());
        assert!(!spawned.process.group_alive());
    }

    #[tokio::test]
    async fn a_task_that_ignores_sigterm_gets_sigkill_after_the_grace() {
        let mut spawned = TaskProcess::spawn(&sh("trap '' TERM; sleep 100 & sleep 100")).expect("spawn");
        let pgid = spawned.process.pid();
        wait_for_members(pgid, 2).await;
        let killed = spawned.process.terminate(Duration::from_millis(200)).await.expect("terminate");
        assert!(killed.escalated);
        assert_eq!(describe_exit(killed.status).as_deref(), Some("killed by signal 9 (SIGKILL)"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(pgid).is_empty() {
            assert!(Instant::now() < deadline, "processes left in the group: {:?}", live_members(pgid));
            tokio::time::sleep(GROUP_POLL).await;
        }
    }

    #[tokio::test]
    async fn kill_stops_the_group_at_once() {
        let mut spawned = TaskProcess::spawn(&sh("sleep 100 & sleep 100")).expect("spawn");
        let pgid = spawned.process.pid();
        wait_for_members(pgid, 2).await;
        let status = spawned.process.kill().await.expect("kill");
        assert_eq!(status.signal(), Some(9));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(pgid).is_empty() {
            assert!(Instant::now() < deadline, "processes left in the group: {:?}", live_members(pgid));
            tokio::time::sleep(GROUP_POLL).await;
        }
    }

    #[tokio::test]
    async fn exit_codes_and_signals_are_described() {
        let mut ok = TaskProcess::spawn(&sh("exit 0")).expect("spawn").process;
        assert_eq!(describe_exit(ok.wait().await.expect("wait")), None);
        let mut three = TaskProcess::spawn(&sh("exit 3")).expect("spawn").process;
        assert_eq!(describe_exit(three.wait().await.expect("wait")).as_deref(), Some("exit code 3"));
        let mut killed = TaskProcess::spawn(&sh("kill -9 $$")).expect("spawn").process;
        let described = describe_exit(killed.wait().await.expect("wait"));
        assert_eq!(described.as_deref(), Some("killed by signal 9 (SIGKILL)"));
    }

    #[tokio::test]
    async fn env_and_cwd_reach_the_task() {
        use tokio::io::AsyncReadExt;
        let mut spec = sh("echo \"$SLUICE_TEST_VAR $(pwd)\"");
        spec.env.insert("SLUICE_TEST_VAR".into(), "hello".into());
        spec.cwd = Some("/".into());
        let mut spawned = TaskProcess::spawn(&spec).expect("spawn");
        let mut out = String::new();
        spawned.stdout.read_to_string(&mut out).await.expect("read stdout");
        assert_eq!(out, "hello /\n");
        assert!(spawned.process.wait().await.expect("wait").success());
    }

    #[test]
    fn a_missing_program_or_cwd_is_an_error_not_a_panic() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _guard = runtime.enter();
        let missing = SpawnSpec { argv: vec!["/no/such/program".into()], env: BTreeMap::new(), cwd: None };
        let err = TaskProcess::spawn(&missing).expect_err("no such program");
        assert!(err.to_string().contains("No such file or directory"), "{err}");

        let mut bad_cwd = sh("true");
        bad_cwd.cwd = Some("/no/such/dir".into());
        let err = TaskProcess::spawn(&bad_cwd).expect_err("no such dir");
        assert!(err.to_string().contains("in /no/such/dir"), "{err}");

        let empty = SpawnSpec { argv: vec![], env: BTreeMap::new(), cwd: None };
        assert!(matches!(TaskProcess::spawn(&empty), Err(SpawnError::EmptyArgv)));
    }
}
