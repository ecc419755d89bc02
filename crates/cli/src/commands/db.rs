//! `sluice db migrate` and `sluice rotate-key`.

use std::process::ExitCode;

use anyhow::bail;
use sluice_store::Secrets;

use super::server::{DatabaseArgs, connect};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or upgrade the schema (the server and scheduler also do this on start).
    Migrate(DatabaseArgs),
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate(database) => {
            let store = connect(&database).await?;
            store.close().await;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
    }
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
