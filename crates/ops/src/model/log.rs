//! The prediction log in the lake: each batch the server hands over becomes a file of `lake://predictions/<model>`,
//! in the partition of the day the predictions were made, one row per record predicted — the request id, the
//! record's place in its request, when, the version, the prediction, and the record's columns typed by the
//! version's signature, so that a `monitor` task can read the log as its input and match fed-back labels.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use serde_json::Value;
use sluice_core::serving::{InputColumn, LogWrite, LoggedPrediction, PredictionSink, prediction_log_uri};

use crate::error::Result;
use crate::ingest::ColumnInfo;
use crate::lake::Lake;

/// The log's columns before the record's own.
pub(crate) const REQUEST_ID: &str = "request_id";
pub(crate) const RECORD: &str = "record";
pub(crate) const PREDICTION: &str = "prediction";

/// Writes the prediction log of `sluice server` and `sluice serve` to the lake.
pub struct LakePredictionLog {
    pub lake: Lake,
}

impl PredictionSink for LakePredictionLog {
    fn write(&self, model: &str, batch: &[LoggedPrediction]) -> std::result::Result<Vec<LogWrite>, String> {
        let uri = prediction_log_uri(model);
        // A version's signature types its columns: one file per day and version keeps each file's columns one.
        let mut groups: BTreeMap<(NaiveDate, i64), Vec<&LoggedPrediction>> = BTreeMap::new();
        for logged in batch {
            groups.entry((logged.at.date_naive(), logged.version)).or_default().push(logged);
        }
        groups
            .into_iter()
            .map(|((ds, _), logged)| {
                let mut df = frame(&logged).map_err(|e| e.to_string())?;
                let written = self.lake.append(&uri, ds, &mut df).map_err(|e| e.to_string())?;
                let schema = serde_json::to_value(ColumnInfo::of(&df)).map_err(|e| e.to_string())?;
                Ok(LogWrite {
                    uri: written.uri,
                    rows: i64::try_from(written.rows).unwrap_or(i64::MAX),
                    schema,
                    content_hash: written.content_hash,
                })
            })
            .collect()
    }
}

/// The rows of predictions made by one version.
fn frame(logged: &[&LoggedPrediction]) -> Result<DataFrame> {
    let rows = || logged.iter().flat_map(|l| l.records.iter().enumerate().map(move |(i, r)| (*l, i, r)));
    let mut columns = vec![
        Column::new(REQUEST_ID.into(), rows().map(|(l, _, _)| l.request_id.as_str()).collect::<Vec<_>>()),
        Column::new(RECORD.into(), rows().map(|(_, i, _)| i as i64).collect::<Vec<_>>()),
        Column::new("predicted_at".into(), rows().map(|(l, _, _)| l.at.to_rfc3339()).collect::<Vec<_>>()),
        Column::new("model_version".into(), rows().map(|(l, _, _)| l.version).collect::<Vec<_>>()),
        Column::new(
            PREDICTION.into(),
            rows().map(|(l, i, _)| l.predictions.get(i).map(text)).collect::<Vec<Option<String>>>(),
        ),
    ];
    let signature: &[InputColumn] = logged.first().map(|l| l.model.inputs()).unwrap_or_default();
    for input in signature {
        let values = || rows().map(|(_, _, r)| r.get(&input.name).filter(|v| !v.is_null()));
        let name = input.name.as_str().into();
        columns.push(match input.dtype.as_str() {
            "int" => Column::new(name, values().map(|v| v.and_then(as_int)).collect::<Vec<_>>()),
            "float" => Column::new(name, values().map(|v| v.and_then(Value::as_f64)).collect::<Vec<_>>()),
            "bool" => Column::new(name, values().map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>()),
            _ => Column::new(name, values().map(|v| v.map(text)).collect::<Vec<_>>()),
        });
    }
    Ok(DataFrame::new(rows().count(), columns)?)
}

fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// A prediction or label as text: a string as it is, anything else as JSON. Fed-back labels are compared as such.
pub(crate) fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}
