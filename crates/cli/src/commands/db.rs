//! `sluice db migrate`, `sluice db clean` and `sluice rotate-key`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_store::{History, Secrets, Store};

use super::server::{DatabaseArgs, connect};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or upgrade the schema (the server and scheduler also do this on start).
    Migrate(DatabaseArgs),
    /// Delete history older than a cutoff (as `airflow db clean`): finished runs with their task instances, tries
    /// and logs (each DAG's latest scheduled run is kept), log lines, audit log events.
    Clean(CleanArgs),
}

#[derive(clap::Args)]
pub struct CleanArgs {
    /// What is older than this goes: `90d`, `12h`, `1d12h`.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Duration,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Which history to clean (all when absent).
    #[arg(long, value_delimiter = ',', value_parser = parse_history)]
    pub tables: Vec<History>,
    /// Do not ask before deleting.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

fn parse_age(text: &str) -> Result<Duration, String> {
    sluice_core::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_history(text: &str) -> Result<History, String> {
    History::ALL.into_iter().find(|h| h.name() == text).ok_or_else(|| {
        let names: Vec<&str> = History::ALL.iter().map(|h| h.name()).collect();
        format!("unknown table {text:?}: one of {}", names.join(", "))
    })
}

/// Rows deleted per statement: small enough that a batch holds its locks briefly.
const CLEAN_BATCH: i64 = 1000;

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate(database) => {
            let store = connect(&database).await?;
            store.close().await;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Clean(args) => {
            let store = connect(&args.database).await?;
            let result = clean(&store, &args).await;
            store.close().await;
            result
        }
    }
}

async fn clean(store: &Store, args: &CleanArgs) -> anyhow::Result<ExitCode> {
    let before =
        chrono::Utc::now() - chrono::Duration::from_std(args.older_than).context("--older-than is too long")?;
    let histories = if args.tables.is_empty() { History::ALL.to_vec() } else { args.tables.clone() };
    let mut counts = Vec::with_capacity(histories.len());
    for history in histories {
        let n = store.count_history(history, before).await?;
        println!("{}: {n} rows older than {}", history.name(), before.format("%Y-%m-%d %H:%M:%S UTC"));
        counts.push((history, n));
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if args.dry_run || total == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirmed(total)? {
        println!("nothing deleted");
        return Ok(ExitCode::FAILURE);
    }
    let progress = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    for (history, _) in counts.into_iter().filter(|(_, n)| *n > 0) {
        progress.set_message(history.name());
        let mut done = 0;
        loop {
            let deleted = store.delete_history(history, before, CLEAN_BATCH).await?;
            progress.inc(deleted);
            done += deleted;
            if deleted == 0 {
                break;
            }
        }
        progress.suspend(|| println!("{}: {done} rows deleted", history.name()));
    }
    progress.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; without one, `--yes` is the only way.
fn confirmed(total: i64) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{total} rows would be deleted: pass --yes to delete them without a terminal to confirm on");
    }
    print!("Delete these {total} rows? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[derive(clap::Args)]
pub struct RotateKeyArgs {
    /// Print a new random key and exit.
    #[arg(long)]
    pub generate: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Seals every secret in the database again with the first key of `SLUICE_ENCRYPTION_KEY` (as `airflow
/// rotate-fernet-key`): set it to `new,old`, run this, then drop the old key.
pub async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    if args.generate {
        println!("{}", Secrets::generate_key());
        return Ok(ExitCode::SUCCESS);
    }
    if args.database.encryption_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        bail!("SLUICE_ENCRYPTION_KEY is not set: set it to the new key, then the old one (`new,old`)");
    }
    let store = connect(&args.database).await?;
    let progress = indicatif::ProgressBar::new_spinner().with_message("sealing secrets with the first key");
    progress.enable_steady_tick(std::time::Duration::from_millis(100));
    let resealed = store.reseal_secrets().await;
    progress.finish_and_clear();
    store.close().await;
    println!("{} secrets sealed with the first key; the other keys may now be removed", resealed?);
    Ok(ExitCode::SUCCESS)
}
