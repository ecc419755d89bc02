//! A temporary DAGs folder and lake in which the in-process scenarios run data tasks through `sluice_ops::run_op`,
//! as `sluice run-op` runs them on a worker. The folder is removed when the scratch is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use chrono::NaiveDate;
use sluice_core::Dag;
use sluice_core::ops_spec::OpSpec;
use sluice_core::protocol::{ModelWrite, RegistryView, VersionView};
use sluice_ops::{Lake, OpContext};

use super::{PENGUINS_CSV, PENGUINS_DAG};

pub struct Scratch {
    dir: PathBuf,
    pub dags: PathBuf,
    pub lake: Lake,
    pub ds: NaiveDate,
    connections: BTreeMap<String, sluice_core::connection::Connection>,
}

impl Scratch {
    pub fn new(scenario: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("sluice-bench-{scenario}-{}", uuid::Uuid::now_v7().simple()));
        let dags = dir.join("dags");
        std::fs::create_dir_all(dags.join("data")).with_context(|| format!("cannot create {}", dags.display()))?;
        Ok(Scratch {
            lake: Lake::new(dir.join("lake")),
            dir,
            dags,
            ds: chrono::Utc::now().date_naive(),
            connections: BTreeMap::new(),
        })
    }

    /// The context of a task of this scratch's run; `model_version` is what the server reserves for a `train`, and
    /// `registry` what it hands `deploy`, `score` and `monitor` tasks.
    pub fn context<'a>(&'a self, model_version: Option<i64>, registry: Option<&'a RegistryView>) -> OpContext<'a> {
        OpContext {
            lake: &self.lake,
            base_dir: &self.dags,
            ds: self.ds,
            now: chrono::Utc::now(),
            previous_watermark: None,
            connections: &self.connections,
            log: &quiet,
            model_version,
            registry,
            feedback: None,
            run: None,
            sensor: None,
        }
    }

    /// The example DAG `penguins_train`, with its data written into this scratch's DAGs folder.
    pub fn penguins(&self) -> anyhow::Result<Dag> {
        std::fs::write(self.dags.join("data/penguins.csv"), PENGUINS_CSV)?;
        load_dag("penguins_train.yaml", PENGUINS_DAG)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn quiet(_: &str) {}

pub fn load_dag(file: &str, yaml: &str) -> anyhow::Result<Dag> {
    sluice_core::load_dag(file, yaml)
        .map_err(|errors| anyhow!("{file}: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))
}

pub fn op(dag: &Dag, task_id: &str) -> anyhow::Result<OpSpec> {
    dag.task(task_id).and_then(|t| t.op_spec()).with_context(|| format!("{} has no data task {task_id}", dag.dag_id()))
}

/// The registry of a model whose only version, `written`, is in production.
pub fn in_production(written: &ModelWrite) -> RegistryView {
    RegistryView {
        model: written.name.clone(),
        versions: vec![VersionView {
            version: written.version,
            stage: "production".into(),
            metrics: written.metrics.clone(),
            artifact_uri: written.artifact_uri.clone(),
        }],
        previous_production: None,
    }
}

/// Make `VmHWM` start again from the current resident set (Linux's `clear_refs`, value 5).
pub fn reset_peak_memory() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("cannot reset the peak memory of the process")
}

/// A figure of `/proc/self/status`, in KiB.
pub fn memory_kib(field: &str) -> anyhow::Result<u64> {
    process_memory_kib("self", field)
}

/// A figure of a process's `/proc/<pid>/status`, in KiB.
pub fn process_memory_kib(pid: &str, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}
