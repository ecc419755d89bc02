//! `sluice worker-tokens create|list|revoke`: named worker tokens, managed in the database directly (like `sluice
//! users`), so the first workers can get theirs before any server runs. The server's `/auth/worker-tokens` does the
//! same for an Admin over HTTP.

use std::process::ExitCode;

use anyhow::bail;

use super::server::{DatabaseArgs, connect};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token and print it once: give it to the worker as SLUICE_WORKER_TOKEN.
    Create {
        /// Letters, digits, `-`, `_` and `.`; never reused, even after the token is revoked.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the tokens: when each was made, used last and by which worker, and revoked.
    List(DatabaseArgs),
    /// Revoke a token: the workers presenting it are refused within seconds, and stop.
    Revoke {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create { name, database } => {
            if let Some(problem) = sluice_api::auth::worker_token_name_problem(&name) {
                bail!("{problem}");
            }
            let (id, token, hash) = sluice_api::auth::new_worker_token();
            let store = connect(&database).await?;
            let created = store.create_worker_token(id, &name, &hash, None).await?;
            store.close().await;
            if created.is_none() {
                bail!("a worker token named {name:?} exists or existed: choose another name");
            }
            println!("created worker token {name:?}; give it to the worker as SLUICE_WORKER_TOKEN (shown once):");
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::List(database) => {
            let store = connect(&database).await?;
            let tokens = store.list_worker_tokens().await?;
            store.close().await;
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
            println!("{:<24} {:<26} {:<26} {:<20} revoked", "name", "created", "last used", "last worker");
            for t in tokens {
                let worker = t.last_worker.as_deref().unwrap_or("-");
                let (created, used, revoked) = (t.created.to_rfc3339(), time(t.last_used), time(t.revoked));
                println!("{:<24} {created:<26} {used:<26} {worker:<20} {revoked}", t.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { name, database } => {
            let store = connect(&database).await?;
            let revoked = store.revoke_worker_token(&name).await?;
            store.close().await;
            if !revoked {
                bail!("no worker token {name:?} that is not revoked already");
            }
            println!("revoked worker token {name:?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
