//! The `many_dags` scenario: a DAG folder of 2,000 small DAG files, on a database of its own.
//!
//! The folder is read in this process as every scheduler loop reads it, twice: the first pass parses and records
//! every DAG (`load_s`), the second finds every file unchanged (`reread_s`, the cost each pass pays forever after,
//! every `--dag-sync-secs`). Then a real `sluice server` process starts on the same folder and database, and its
//! resident set is read once it has parsed every file and run a few more passes (`server_rss_mib`, and its peak).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::{Value, json};
use sluice_scheduler::sync::DagFolder;
use tokio::process::Command;

use super::scratch::process_memory_kib;
use super::{Args, Database, DatabaseArgs, connect, round, round3, stop_processes};

/// How long the server may take to parse the whole folder.
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn run(args: &Args) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-many-{}", uuid::Uuid::now_v7().simple()));
    let folder = dir.join("dags");
    let outcome = async {
        write_small_dags(&folder, args.many_dags)?;
        let database = Database::create(args, &dir, "many").await?;
        let outcome = measure(args.many_dags, &folder, &database.url).await;
        database.remove().await;
        outcome
    }
    .await;
    std::fs::remove_dir_all(&dir).ok();
    outcome
}

/// `count` one-task DAGs, `bench_dag_00000` … in `folder`, one file each.
pub fn write_small_dags(folder: &Path, count: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)?;
    for i in 0..count {
        let yaml = format!("dag_id: bench_dag_{i:05}\ntags: [bench]\ntasks:\n  - {{id: only, command: [\"true\"]}}\n");
        std::fs::write(folder.join(format!("dag_{i:05}.yaml")), yaml)?;
    }
    Ok(())
}

async fn measure(count: usize, folder: &Path, database_url: &str) -> anyhow::Result<Value> {
    let store = connect(&DatabaseArgs::url(database_url.to_string())).await?;
    let progress = indicatif::ProgressBar::new_spinner().with_message(format!("many_dags: reading {count} files"));
    progress.enable_steady_tick(Duration::from_millis(200));
    let mut dags = DagFolder::new(folder.to_path_buf());
    let started = Instant::now();
    let first = dags.sync(&store).await?;
    let load_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        first.dags.len() == count,
        "{} of {count} DAGs loaded: {:?}",
        first.dags.len(),
        first.import_errors
    );
    let started = Instant::now();
    dags.sync(&store).await?;
    let reread_s = started.elapsed().as_secs_f64();

    progress.set_message("many_dags: a server on the folder");
    let last_dag = format!("bench_dag_{:05}", count.saturating_sub(1));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server_start = Utc::now();
    let mut server = Command::new(std::env::current_exe()?)
        .args(["server", "--bind", &format!("127.0.0.1:{port}")])
        .env("SLUICE_DATABASE_URL", database_url)
        .env("SLUICE_DAGS_FOLDER", folder)
        .env("SLUICE_WORKER_TOKEN", super::TOKEN)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a server")?;
    let Some(pid) = server.id().map(|p| p.to_string()) else { bail!("the server exited at once") };
    // Files are read in name order: once the last one is parsed again, the server holds every DAG.
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        let parsed = store.get_dag(&last_dag).await?.and_then(|d| d.last_parsed);
        if parsed.is_some_and(|at| at >= server_start) {
            break;
        }
        if Instant::now() > deadline || server.try_wait()?.is_some() {
            bail!("the server did not parse the folder within {LOAD_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_load_s = (Utc::now() - server_start).as_seconds_f64();
    // A few more passes over the unchanged folder, as a server lives.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss = process_memory_kib(&pid, "VmRSS")?;
    let peak = process_memory_kib(&pid, "VmHWM")?;
    stop_processes(vec![server]).await;
    progress.finish_and_clear();
    Ok(json!({
        "scenario": "many_dags",
        "dags": count,
        "load_s": round3(load_s),
        "reread_s": round3(reread_s),
        "server_start_to_loaded_s": round(server_load_s),
        "server_rss_mib": round(rss as f64 / 1024.0),
        "server_peak_rss_mib": round(peak as f64 / 1024.0),
    }))
}
