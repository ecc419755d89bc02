//! One module per top-level command.

pub mod assets;
pub mod backfill;
pub mod bench;
pub mod client;
pub mod dags;
pub mod db;
pub mod models;
pub mod remote;
pub mod run_op;
pub mod server;
pub mod standalone;
pub mod users;
pub mod worker;
pub mod worker_tokens;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
