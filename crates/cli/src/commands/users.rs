//! `sluice users create|list|delete`: user accounts, managed in the database directly (like `sluice db migrate`),
//! so the first Admin can be created before any server runs.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sluice_core::Role;

use super::server::{DatabaseArgs, connect};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a user. The password comes from --password, else from the first line of stdin when it is not a
    /// terminal, else it is generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        /// Viewer, User, Op or Admin.
        #[arg(long)]
        role: Role,
        /// The password (visible to other local users in the process list: prefer stdin).
        #[arg(long)]
        password: Option<String>,
        /// Succeed without changing anything when the user exists: for a start-up script that runs every time.
        #[arg(long)]
        if_missing: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List users and their roles.
    List(DatabaseArgs),
    /// Delete a user and their API keys; their tokens stop working at once.
    Delete {
        username: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The password given on stdin, if stdin is piped and holds one.
fn password_from_stdin() -> anyhow::Result<Option<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    Ok((!password.is_empty()).then(|| password.to_string()))
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create { username, role, password, if_missing, database } => {
            let username = username.trim();
            if let Some(problem) = sluice_api::auth::username_problem(username) {
                bail!("{problem}");
            }
            let given = match password {
                Some(password) => Some(password),
                None => password_from_stdin()?,
            };
            let (password, generated) = match given {
                Some(password) => (password, false),
                None => (sluice_api::auth::generate_password(), true),
            };
            let hash = sluice_api::auth::hash_password(&password)?;
            let store = connect(&database).await?;
            let created = store.create_user(username, &hash, role).await?;
            store.close().await;
            match created {
                None if if_missing => {
                    println!("the user {username:?} exists already: left as it is");
                    return Ok(ExitCode::SUCCESS);
                }
                None => bail!("the user {username:?} exists already"),
                Some(_) => {}
            }
            println!("created user {username:?} with role {role}");
            if generated {
                println!("password: {password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List(database) => {
            let store = connect(&database).await?;
            let users = store.list_users().await?;
            store.close().await;
            println!("{:<30} {:<7} created", "username", "role");
            for user in users {
                println!("{:<30} {:<7} {}", user.username, user.role.as_str(), user.created.to_rfc3339());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { username, database } => {
            let store = connect(&database).await?;
            let deleted = store.delete_user(&username).await?;
            store.close().await;
            if !deleted {
                bail!("no user {username:?}");
            }
            println!("deleted user {username:?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
