//! Kills a worker's tasks when the worker dies, however it dies, so that a `kill -9` of a worker cannot leave a task
//! running while the server hands it to another worker.
//!
//! The kernel's parent-death signal (`PR_SET_PDEATHSIG`) would do it, but it has to be set between fork and exec,
//! and any code there rules out `posix_spawn`, the cheap way to start a process: a plain fork copies the worker's
//! page tables and marks its memory copy-on-write, which made the fan-out benchmark (2,000 short tasks) 15–25%
//! slower. So each worker starts a small guard process (`sluice task-guard`) whose stdin is a pipe that only the
//! worker writes to. The worker tells it the process group of each task it starts and ends. When the worker exits,
//! the kernel closes the pipe, and the guard SIGKILLs every group it was told about and the group of every process
//! that still carries the worker's mark (`SLUICE_WORKER_INSTANCE`) in its environment, which also covers a task
//! started in the instant before the worker could tell the guard. Then the guard exits.

use std::collections::HashSet;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use uuid::Uuid;

/// The hidden `sluice` subcommand that runs [`run_guard`].
pub const TASK_GUARD_COMMAND: &str = "task-guard";

/// Set in every task's environment: which worker process started it.
pub const INSTANCE_ENV: &str = "SLUICE_WORKER_INSTANCE";

/// How long a restarted guard waits after the previous one died, so that a guard that cannot run does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Kill passes over `/proc` at most, for tasks that fork while they are being killed.
const KILL_PASSES: usize = 20;

/// A task's process group starting or ending, as the worker tells its guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    Started(u32),
    Ended(u32),
}

impl GroupEvent {
    fn line(self) -> String {
        match self {
            GroupEvent::Started(pgid) => format!("+{pgid}\n"),
            GroupEvent::Ended(pgid) => format!("-{pgid}\n"),
        }
    }
}

/// What a try needs to be covered by the guard: the mark for its environment, and where to announce its group.
#[derive(Debug, Clone)]
pub struct GuardLink {
    pub instance: String,
    pub events: mpsc::UnboundedSender<GroupEvent>,
}

/// Starts the guard (`program task-guard`) and keeps one running, restarting it should it die, until every
/// [`GuardLink`] is dropped; then its pipe closes and it exits on its own. Fails when the first one cannot start.
pub fn start_guard(program: PathBuf) -> std::io::Result<GuardLink> {
    let instance = Uuid::now_v7().to_string();
    let first = Guard::spawn(&program, &instance)?;
    let (events, receiver) = mpsc::unbounded_channel();
    tokio::spawn(keep_guarding(program, instance.clone(), first, receiver));
    Ok(GuardLink { instance, events })
}

struct Guard {
    child: Child,
    pipe: pipe::Sender,
}

impl Guard {
    fn spawn(program: &PathBuf, instance: &str) -> std::io::Result<Guard> {
        let (pipe, reader) = pipe::pipe()?;
        let reader: OwnedFd = reader.into_blocking_fd()?;
        let child = Command::new(program)
            .args([TASK_GUARD_COMMAND, "--instance", instance])
            .stdin(Stdio::from(reader))
            .stdout(Stdio::null())
            // Its own group, so that a Ctrl-C meant for the worker does not end the guard before the worker.
            .process_group(0)
            .spawn()?;
        Ok(Guard { child, pipe })
    }
}

async fn keep_guarding(
    program: PathBuf,
    instance: String,
    mut guard: Guard,
    mut events: mpsc::UnboundedReceiver<GroupEvent>,
) {
    let mut groups = HashSet::new();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(first) = event else { return };
                // Whatever else is waiting goes in the same write, so that a busy worker wakes its guard once.
                let waiting = std::iter::from_fn(|| events.try_recv().ok());
                let mut lines = String::new();
                for event in std::iter::once(first).chain(waiting) {
                    match event {
                        GroupEvent::Started(pgid) => groups.insert(pgid),
                        GroupEvent::Ended(pgid) => groups.remove(&pgid),
                    };
                    lines += &event.line();
                }
                // A failed write means the guard died; the other branch restarts it and tells it every group.
                let _ = guard.pipe.write_all(lines.as_bytes()).await;
            }
            status = guard.child.wait() => {
                tracing::error!("the task guard exited ({status:?}): restarting it");
                tokio::time::sleep(RESTART_DELAY).await;
                match Guard::spawn(&program, &instance) {
                    Ok(mut restarted) => {
                        let known: String = groups.iter().map(|pgid| GroupEvent::Started(*pgid).line()).collect();
                        let _ = restarted.pipe.write_all(known.as_bytes()).await;
                        guard = restarted;
                    }
                    Err(e) => tracing::error!("cannot restart the task guard: {e}"),
                }
            }
        }
    }
}

/// The guard process: follows the worker's announcements on stdin until the worker is gone (end of input), then
/// kills whatever is left of its tasks. Returns how many process groups it killed.
pub fn run_guard(instance: &str) -> usize {
    let killed = kill_leftovers(instance, &announced_groups(std::io::stdin().lock()));
    // Already gone when the worker stopped normally.
    let _ = std::fs::remove_dir_all(crate::output::output_dir(instance));
    killed
}

/// The groups announced as started and not yet as ended, once the announcements end.
fn announced_groups(announcements: impl BufRead) -> HashSet<i32> {
    let mut groups = HashSet::new();
    for line in announcements.lines() {
        let Ok(line) = line else { break };
        let (sign, pgid) = line.split_at(line.len().min(1));
        match (sign, pgid.parse::<i32>()) {
            ("+", Ok(pgid)) => groups.insert(pgid),
            ("-", Ok(pgid)) => groups.remove(&pgid),
            _ => continue,
        };
    }
    groups
}

/// SIGKILLs the announced groups and the groups of the processes marked with `instance`, until none is left.
fn kill_leftovers(instance: &str, groups: &HashSet<i32>) -> usize {
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut killed = HashSet::new();
    for pass in 0..KILL_PASSES {
        let mut targets = marked_groups(instance);
        if pass == 0 {
            targets.extend(groups.iter().copied());
        }
        targets.retain(|pgid| *pgid > 1 && *pgid != own_group);
        if targets.is_empty() {
            break;
        }
        for pgid in targets {
            if killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_ok() {
                killed.insert(pgid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

/// The process groups of the live processes whose environment carries `SLUICE_WORKER_INSTANCE=<instance>`.
fn marked_groups(instance: &str) -> HashSet<i32> {
    let mark = format!("{INSTANCE_ENV}={instance}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashSet::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // Unreadable (another user's process, or gone): not ours. A zombie's environment reads empty.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == mark.as_bytes()))
        })
        .filter_map(process_group)
        .collect()
}

/// The process group from `/proc/<pid>/stat`: the fifth field, counted after the command name in parentheses
/// (which may itself hold spaces and parentheses).
fn process_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    use super::*;

    #[test]
    fn the_process_group_is_read_after_the_command_name() {
        let own = nix::unistd::getpgrp().as_raw();
        assert_eq!(process_group(std::process::id()), Some(own));
    }

    fn sleeper(env: &[(&str, &str)]) -> std::process::Child {
        let mut command = std::process::Command::new("sleep");
        command.arg("30").env_clear().envs(env.iter().copied()).process_group(0);
        command.spawn().expect("sleep")
    }

    fn killed(child: &mut std::process::Child) -> bool {
        child.wait().expect("wait").signal() == Some(Signal::SIGKILL as i32)
    }

    #[test]
    fn marked_and_announced_groups_are_killed_and_no_others() {
        let instance = Uuid::now_v7().to_string();
        let mut marked = sleeper(&[(INSTANCE_ENV, &instance)]);
        let marked_group = i32::try_from(marked.id()).expect("a pid");
        // A task may clear its environment: the announcement covers it.
        let mut announced = sleeper(&[]);
        let other_worker = Uuid::now_v7().to_string();
        let mut bystander = sleeper(&[(INSTANCE_ENV, &other_worker)]);
        assert_eq!(marked_groups(&instance), HashSet::from([marked_group]));

        let announcements = format!("+{}\n+7\n-7\n", announced.id());
        let groups = announced_groups(announcements.as_bytes());
        assert_eq!(kill_leftovers(&instance, &groups), 2);
        assert!(killed(&mut marked) && killed(&mut announced));
        assert_eq!(bystander.try_wait().expect("try_wait"), None, "another worker's task is left alone");
        bystander.kill().expect("kill");
        bystander.wait().expect("wait");
    }

    #[test]
    fn ended_groups_are_forgotten() {
        assert_eq!(announced_groups("+10\n+11\n-10\nnoise\n".as_bytes()), HashSet::from([11]));
    }

    #[test]
    fn announcements_are_one_line_each() {
        assert_eq!(GroupEvent::Started(42).line(), "+42\n");
        assert_eq!(GroupEvent::Ended(42).line(), "-42\n");
    }
}
