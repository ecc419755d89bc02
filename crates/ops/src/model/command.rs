//! A `command` task with `registers:`: users' own code (Python with scikit-learn, anything) trains the model, and
//! Sluice registers what it wrote as a new version, with the lineage of a `train` task's.
//!
//! `sluice run-op` starts the command with, besides the usual `SLUICE_*` variables:
//! - `SLUICE_INPUT`: the Parquet file of the first input's partition for the run's logical date (the training data),
//!   and `SLUICE_INPUTS`: every input, as a JSON object from asset URI to file;
//! - `SLUICE_MODEL_DIR`: an empty folder for the version's files;
//! - `SLUICE_MODEL_NAME` and `SLUICE_MODEL_VERSION`: the model, and the version number reserved for the try.
//!
//! When the command exits 0, the folder must hold `metrics.json` (an object of numbers: what the deploy gate reads)
//! and may hold `params.json` (an object), `model.onnx` (then served, its features named by its inputs or by
//! `features.json`) and any other file. Sluice adds the training asset's fitted transform, a reference sample for
//! monitoring (ONNX only) and the signature, then moves the folder to `lake://models/<name>/<version>/` in one
//! rename (in a bucket: one put per file, the signature last). A try killed before that leaves a hidden folder that
//! no version names, and the version is registered only when the try's success is reported.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_core::ops_spec::CommandSpec;
use sluice_core::protocol::{MODEL_VERSION_ENV, ModelWrite, OP_SPEC_ENV, file_env_var};
use sluice_ml::OnnxModel;

use super::monitor::Reference;
use super::serve::not_served;
use super::train::feature_values;
use super::{
    FEATURES_FILE, MODEL_FILE, ModelFormat, ONNX_FILE, REFERENCE_FILE, SIGNATURE_FILE, Signature, TRANSFORM_FILE,
    artifact_uri, json_bytes, request_inputs,
};
use crate::error::{OpsError, Result};
use crate::lake::Lake;
use crate::task::OpContext;
use crate::transform::FittedTransform;

/// The Parquet file of the training asset's partition.
pub const INPUT_ENV: &str = "SLUICE_INPUT";
/// Every input asset's Parquet file, as a JSON object from URI to path.
pub const INPUTS_ENV: &str = "SLUICE_INPUTS";
/// The folder the command writes the version's files to.
pub const MODEL_DIR_ENV: &str = "SLUICE_MODEL_DIR";
/// The model the command trains.
pub const MODEL_NAME_ENV: &str = "SLUICE_MODEL_NAME";

const METRICS_FILE: &str = "metrics.json";
const PARAMS_FILE: &str = "params.json";
/// Files that Sluice writes into a version; a command writing one would be overwritten.
const SLUICE_FILES: [&str; 4] = [SIGNATURE_FILE, TRANSFORM_FILE, REFERENCE_FILE, MODEL_FILE];

/// Runs the command of `spec` and registers its folder as version `version`.
pub fn run_command(spec: &CommandSpec, ctx: &OpContext<'_>, version: i64) -> Result<ModelWrite> {
    let uri = artifact_uri(&spec.registers.model, version);
    let staging = Staging::create(ctx.lake, &uri)?;
    let written = train_and_publish(spec, ctx, version, &uri, &staging);
    staging.clean_up();
    written
}

fn train_and_publish(
    spec: &CommandSpec,
    ctx: &OpContext<'_>,
    version: i64,
    uri: &str,
    staging: &Staging,
) -> Result<ModelWrite> {
    let registers = &spec.registers;
    let inputs = input_files(ctx, &spec.inputs, &staging.scratch)?;
    let (input, input_file, content_hash) = inputs.first().ok_or_else(|| {
        OpsError::Invalid(
            "a command task that registers a model needs `inputs`: the first is its training asset".into(),
        )
    })?;
    run(spec, &inputs, &staging.dir, version, ctx)?;

    let dir = &staging.dir;
    if let Some(file) = SLUICE_FILES.iter().find(|f| dir.join(f).exists()) {
        return Err(OpsError::Invalid(format!(
            "the command wrote {file} in $SLUICE_MODEL_DIR: that name is Sluice's own, rename the file"
        )));
    }
    let metrics = read_metrics(dir)?;
    let params = match read_json(dir, PARAMS_FILE)? {
        None => json!({}),
        Some(params @ Value::Object(_)) => params,
        Some(_) => return Err(OpsError::Invalid(format!("{PARAMS_FILE} must hold a JSON object"))),
    };
    let transform = match FittedTransform::load(ctx.lake, input, ctx.ds) {
        Ok(fitted) => Some(fitted),
        Err(OpsError::NoPartition { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(fitted) = &transform {
        fs::write(dir.join(TRANSFORM_FILE), json_bytes(fitted, &dir.join(TRANSFORM_FILE))?)
            .map_err(OpsError::io("cannot write", dir.join(TRANSFORM_FILE)))?;
    }
    let signature = if dir.join(ONNX_FILE).is_file() {
        onnx_signature(ctx, registers.target.as_str(), input, input_file, transform.as_ref(), dir)?
    } else {
        (ctx.log)(&not_served(uri));
        Signature {
            inputs: Vec::new(),
            features: Vec::new(),
            target: registers.target.clone(),
            classes: None,
            has_transform: transform.is_some(),
            format: ModelFormat::External,
        }
    };
    fs::write(dir.join(SIGNATURE_FILE), json_bytes(&signature, &dir.join(SIGNATURE_FILE))?)
        .map_err(OpsError::io("cannot write", dir.join(SIGNATURE_FILE)))?;
    let files = relative_files(dir)?;
    staging.publish(ctx.lake, uri)?;
    (ctx.log)(&format!("wrote {uri}: {}", files.join(", ")));

    let details = json!({
        "format": signature.format,
        "files": files,
        "features": signature.features,
        "classes": signature.classes,
        "target": registers.target,
        "inputs": signature.inputs,
        "transform": transform.is_some().then(|| format!("{uri}/{TRANSFORM_FILE}")),
    });
    Ok(ModelWrite {
        name: registers.model.clone(),
        version,
        algorithm: registers.algorithm.clone().unwrap_or_else(|| "command".to_owned()),
        params,
        metrics,
        details,
        artifact_uri: uri.to_owned(),
        input_uri: input.clone(),
        input_content_hash: Some(content_hash.clone()),
        description: registers.description.clone(),
    })
}

/// Where the command writes: beside the version's folder in a local lake, so that publishing is one rename; in a
/// local temporary folder for a bucket, with the inputs fetched from it.
struct Staging {
    dir: PathBuf,
    /// Fetched input files (bucket only); not part of the version.
    scratch: PathBuf,
}

impl Staging {
    fn create(lake: &Lake, uri: &str) -> Result<Staging> {
        let tag = format!("{}-{}", uri.trim_start_matches("lake://").replace('/', "-"), std::process::id());
        let dir = if lake.is_local() {
            let version_dir = lake.asset_dir(uri)?;
            let name = version_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            version_dir.with_file_name(format!(".{name}.incoming-{}", std::process::id()))
        } else {
            std::env::temp_dir().join(format!("sluice-model-{tag}"))
        };
        let scratch = std::env::temp_dir().join(format!("sluice-inputs-{tag}"));
        // A folder left by a killed try of this process id is stale: start empty.
        for stale in [&dir, &scratch] {
            remove_dir(stale);
        }
        fs::create_dir_all(&dir).map_err(OpsError::io("cannot create", &dir))?;
        Ok(Staging { dir, scratch })
    }

    /// Moves the folder to the version's place: a rename in a folder (after syncing every file), a put per file in
    /// a bucket with the signature last.
    fn publish(&self, lake: &Lake, uri: &str) -> Result<()> {
        let target = lake.asset_dir(uri)?;
        let files = relative_files(&self.dir)?;
        if lake.is_local() {
            for file in &files {
                let path = self.dir.join(file);
                fs::File::open(&path).and_then(|f| f.sync_all()).map_err(OpsError::io("cannot sync", &path))?;
            }
            if target.exists() {
                return Err(OpsError::Invalid(format!("{} exists already", target.display())));
            }
            fs::rename(&self.dir, &target).map_err(OpsError::io("cannot move the model folder to", &target))?;
            if let Some(parent) = target.parent() {
                fs::File::open(parent).and_then(|f| f.sync_all()).map_err(OpsError::io("cannot sync", parent))?;
            }
            return Ok(());
        }
        let (last, first): (Vec<&String>, Vec<&String>) = files.iter().partition(|f| f.as_str() == SIGNATURE_FILE);
        for file in first.into_iter().chain(last) {
            let path = self.dir.join(file);
            let bytes = fs::read(&path).map_err(OpsError::io("cannot read", &path))?;
            lake.put(&target.join(file), bytes)?;
        }
        Ok(())
    }

    fn clean_up(&self) {
        remove_dir(&self.dir);
        remove_dir(&self.scratch);
    }
}

fn remove_dir(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("warning: cannot remove {}: {e}", dir.display());
    }
}

/// Each input's URI, local Parquet file and content hash (the hash `Lake::write` recorded with its event).
fn input_files(ctx: &OpContext<'_>, inputs: &[String], scratch: &Path) -> Result<Vec<(String, PathBuf, String)>> {
    let mut files = Vec::with_capacity(inputs.len());
    for (i, uri) in inputs.iter().enumerate() {
        let path = ctx.lake.partition_file(uri, ctx.ds)?;
        let bytes = ctx.lake.get(uri, ctx.ds, &path)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let local = if ctx.lake.is_local() {
            path
        } else {
            fs::create_dir_all(scratch).map_err(OpsError::io("cannot create", scratch))?;
            let local = scratch.join(format!("input-{i}.parquet"));
            fs::write(&local, bytes).map_err(OpsError::io("cannot write", &local))?;
            local
        };
        files.push((uri.clone(), local, hash));
    }
    Ok(files)
}

/// Runs the command to its end; its output is the task's log.
fn run(
    spec: &CommandSpec,
    inputs: &[(String, PathBuf, String)],
    dir: &Path,
    version: i64,
    ctx: &OpContext<'_>,
) -> Result<()> {
    let (program, args) =
        spec.argv.split_first().ok_or_else(|| OpsError::Invalid("the task has no command to run".into()))?;
    let all: BTreeMap<&str, String> = inputs.iter().map(|(uri, path, _)| (uri.as_str(), path_text(path))).collect();
    let first = inputs.first().map(|(_, path, _)| path_text(path)).unwrap_or_default();
    (ctx.log)(&format!("running {program} with {INPUT_ENV}={first}, {MODEL_DIR_ENV}={}", dir.display()));
    let status = Command::new(program)
        .args(args)
        // The command's output is not the task's: run-op reports the registered version.
        .env_remove("SLUICE_OUTPUT")
        .env_remove(OP_SPEC_ENV)
        .env_remove(file_env_var(OP_SPEC_ENV))
        .env(INPUT_ENV, &first)
        .env(INPUTS_ENV, serde_json::to_string(&all).unwrap_or_default())
        .env(MODEL_DIR_ENV, dir)
        .env(MODEL_NAME_ENV, &spec.registers.model)
        .env(MODEL_VERSION_ENV, version.to_string())
        .status()
        .map_err(|e| OpsError::Invalid(format!("cannot start {program:?}: {e}")))?;
    if !status.success() {
        return Err(OpsError::Invalid(format!("{program} failed ({status}): no model version is registered")));
    }
    Ok(())
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// `metrics.json`: an object of numbers.
fn read_metrics(dir: &Path) -> Result<BTreeMap<String, f64>> {
    let Some(value) = read_json(dir, METRICS_FILE)? else {
        return Err(OpsError::Invalid(format!(
            "the command wrote no {METRICS_FILE} in $SLUICE_MODEL_DIR: write the model's metrics there as a JSON \
             object of numbers, e.g. {{\"accuracy\": 0.97}}"
        )));
    };
    let Value::Object(entries) = value else {
        return Err(OpsError::Invalid(format!("{METRICS_FILE} must hold a JSON object of numbers")));
    };
    entries
        .into_iter()
        .map(|(name, value)| match value.as_f64() {
            Some(number) => Ok((name, number)),
            None => Err(OpsError::Invalid(format!("metric {name:?} in {METRICS_FILE} is {value}, not a number"))),
        })
        .collect()
}

fn read_json(dir: &Path, file: &str) -> Result<Option<Value>> {
    let path = dir.join(file);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OpsError::Invalid(format!("{file} is not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpsError::io("cannot read", path)(e)),
    }
}

/// The signature of an ONNX model, once it has predicted its training data; writes the monitoring reference.
fn onnx_signature(
    ctx: &OpContext<'_>,
    target: &str,
    input: &str,
    input_file: &Path,
    transform: Option<&FittedTransform>,
    dir: &Path,
) -> Result<Signature> {
    let features: Option<Vec<String>> = match read_json(dir, FEATURES_FILE)? {
        None => None,
        Some(value) => Some(
            serde_json::from_value(value)
                .map_err(|_| OpsError::Invalid(format!("{FEATURES_FILE} must hold a JSON list of column names")))?,
        ),
    };
    let bytes = fs::read(dir.join(ONNX_FILE)).map_err(OpsError::io("cannot read", dir.join(ONNX_FILE)))?;
    let model = OnnxModel::from_bytes(&bytes, features.as_deref())
        .map_err(|e| OpsError::Invalid(format!("{ONNX_FILE} cannot be served: {e}")))?;
    let names = model.feature_names().to_vec();
    let matrix = training_matrix(input, input_file, &names)?;
    let predicted = model
        .predict(matrix.view())
        .map_err(|e| OpsError::Invalid(format!("{ONNX_FILE} cannot predict its training data ({input}): {e}")))?;
    let texts: Vec<String> = match (predicted.labels, predicted.values) {
        (Some(labels), _) => labels,
        (None, Some(values)) => values.iter().map(f64::to_string).collect(),
        (None, None) => Vec::new(),
    };
    let reference = Reference::sample(&matrix, &names, &texts);
    let path = dir.join(REFERENCE_FILE);
    fs::write(&path, json_bytes(&reference, &path)?).map_err(OpsError::io("cannot write", &path))?;
    (ctx.log)(&format!("{ONNX_FILE} predicts from {}; served", names.join(", ")));
    Ok(Signature {
        inputs: request_inputs(transform, target, &names),
        features: names,
        target: target.to_owned(),
        classes: model.classes().map(<[String]>::to_vec),
        has_transform: transform.is_some(),
        format: ModelFormat::Onnx,
    })
}

/// The training asset's feature columns as a matrix.
fn training_matrix(input: &str, file: &Path, features: &[String]) -> Result<Array2<f64>> {
    use polars::prelude::*;
    let reader = fs::File::open(file).map_err(OpsError::io("cannot open", file))?;
    let df = ParquetReader::new(reader)
        .finish()
        .map_err(|e| OpsError::Read { path: file.into(), message: e.to_string() })?;
    let present = || df.get_column_names().iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let mut columns = Vec::with_capacity(features.len());
    for name in features {
        let column = df.column(name).map_err(|_| {
            OpsError::Invalid(format!(
                "the ONNX model reads feature {name:?}, which {input} does not have (it has {})",
                present().join(", ")
            ))
        })?;
        columns.push(feature_values(name, column.as_materialized_series())?);
    }
    Ok(Array2::from_shape_fn((df.height(), features.len()), |(r, c)| columns[c][r]))
}

/// The files of `dir` and its subfolders, relative to it, sorted.
fn relative_files(dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).map_err(OpsError::io("cannot list", &folder))? {
            let path = entry.map_err(OpsError::io("cannot list", &folder))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.push(relative.display().to_string());
            }
        }
    }
    files.sort();
    Ok(files)
}
