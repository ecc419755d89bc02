//! `sluice db migrate`.

use std::process::ExitCode;

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
