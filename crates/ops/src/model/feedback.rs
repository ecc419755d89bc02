//! Accuracy on fed-back labels: the labels given through the API since the model's last report (which the server
//! hands the monitor try, [`FeedbackView`]), matched by request id and record with the predictions of the model's
//! prediction log (`lake://predictions/<model>`).
//!
//! Only the log's partitions that can hold those requests are read: a request id made by Sluice is a UUIDv7, whose
//! first 48 bits are the time it was made, so its day is known; a caller's own id (`x-request-id`, the Open Inference
//! Protocol's `id`) may be from any day, and for those the last [`OWN_ID_DAYS`] days are read.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sluice_core::protocol::{DriftCheck, FeedbackSummary, FeedbackView};
use sluice_core::serving::prediction_log_uri;

use super::log::{PREDICTION, RECORD, REQUEST_ID};
use crate::error::Result;
use crate::lake::Lake;

/// Days of the log searched for requests whose ids do not say when they were made.
pub(super) const OWN_ID_DAYS: i64 = 7;

/// The accuracy and macro F1 of the logged predictions on the labels (checks of feature `feedback`; none when no
/// label matched a logged prediction), and how many labels there were and matched.
pub(super) fn feedback_checks(
    lake: &Lake,
    model: &str,
    view: &FeedbackView,
    min_accuracy: Option<f64>,
    today: NaiveDate,
) -> Result<(Vec<DriftCheck>, FeedbackSummary)> {
    let wanted: HashMap<(&str, i64), &str> =
        view.labels.iter().map(|l| ((l.request_id.as_str(), l.record), l.label.as_str())).collect();
    let uri = prediction_log_uri(model);
    let mut labels = Vec::new();
    let mut predicted = Vec::new();
    for ds in days(view, today) {
        for part in lake.read_parts(&uri, ds)? {
            let ids = part.column(REQUEST_ID)?.str()?.clone();
            let records = part.column(RECORD)?.i64()?.clone();
            let predictions = part.column(PREDICTION)?.str()?.clone();
            for ((id, record), prediction) in ids.iter().zip(records.iter()).zip(predictions.iter()) {
                let (Some(id), Some(record), Some(prediction)) = (id, record, prediction) else { continue };
                if let Some(label) = wanted.get(&(id, record)) {
                    labels.push((*label).to_owned());
                    predicted.push(prediction.to_owned());
                }
            }
        }
    }
    let summary = FeedbackSummary {
        labels: view.total,
        matched: i64::try_from(labels.len()).unwrap_or(i64::MAX),
        through: view.through,
    };
    if labels.is_empty() {
        return Ok((Vec::new(), summary));
    }
    let accuracy = labels.iter().zip(&predicted).filter(|(l, p)| l == p).count() as f64 / labels.len() as f64;
    let checks = vec![
        DriftCheck {
            feature: "feedback".into(),
            statistic: "accuracy".into(),
            value: accuracy,
            threshold: min_accuracy,
            drifted: min_accuracy.is_some_and(|min| accuracy < min),
        },
        DriftCheck {
            feature: "feedback".into(),
            statistic: "f1".into(),
            value: super::monitor::macro_f1(&labels, &predicted),
            threshold: None,
            drifted: false,
        },
    ];
    Ok((checks, summary))
}

/// The days of the log that may hold the labelled requests.
fn days(view: &FeedbackView, today: NaiveDate) -> BTreeSet<NaiveDate> {
    let mut days = BTreeSet::new();
    for label in &view.labels {
        match made_at(&label.request_id) {
            Some(at) => {
                days.insert(at.date_naive());
            }
            None => days.extend((0..OWN_ID_DAYS).map(|back| today - Duration::days(back))),
        }
    }
    days
}

/// When a UUIDv7 was made: its first 48 bits are milliseconds since the epoch.
fn made_at(id: &str) -> Option<DateTime<Utc>> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.as_bytes().get(12) != Some(&b'7') {
        return None;
    }
    let ms = i64::from_str_radix(hex.get(..12)?, 16).ok()?;
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, Value, json};
    use sluice_core::protocol::FedBackLabel;
    use sluice_core::serving::{InputColumn, LoggedPrediction, PredictError, Prediction, PredictionSink, ServedModel};

    use super::*;
    use crate::model::LakePredictionLog;
    use crate::test_util::TempDir;

    /// A model whose signature is one float column; it is never asked to predict here.
    struct OneColumn(Vec<InputColumn>);

    impl ServedModel for OneColumn {
        fn inputs(&self) -> &[InputColumn] {
            &self.0
        }

        fn predict(&self, _: &[Map<String, Value>]) -> std::result::Result<Prediction, PredictError> {
            Err(PredictError::Invalid("not used".into()))
        }
    }

    fn logged(request_id: &str, at: DateTime<Utc>, predictions: &[&str]) -> LoggedPrediction {
        let model: Arc<dyn ServedModel> =
            Arc::new(OneColumn(vec![InputColumn { name: "x".into(), dtype: "float".into() }]));
        LoggedPrediction {
            request_id: request_id.into(),
            at,
            version: 3,
            model,
            records: predictions.iter().map(|_| json!({"x": 1.5}).as_object().unwrap().clone()).collect(),
            predictions: predictions.iter().map(|p| json!(p)).collect(),
        }
    }

    fn label(request_id: &str, record: i64, label: &str) -> FedBackLabel {
        FedBackLabel { request_id: request_id.into(), record, label: label.into() }
    }

    #[test]
    fn labels_are_matched_with_the_logged_predictions_by_request_and_record() {
        let dir = TempDir::new();
        let lake = Lake::new(dir.path());
        // A Sluice request id made yesterday, in yesterday's partition; a caller's own id, today.
        let made = DateTime::from_timestamp_millis(0x0192_f3a1_b2c4).unwrap();
        let ours = "0192f3a1-b2c4-7def-8123-456789abcdef";
        let today = made.date_naive() + Duration::days(1);
        let later = made + Duration::days(1);
        let sink = LakePredictionLog { lake: lake.clone() };
        let written = sink.write("m", &[logged(ours, made, &["a", "b"]), logged("own-1", later, &["c"])]).unwrap();
        assert_eq!(written.iter().map(|w| w.rows).collect::<Vec<_>>(), [2, 1], "one file per day");
        assert_eq!(written[0].uri, "lake://predictions/m");
        let view = FeedbackView {
            after: Some(7),
            through: 12,
            total: 4,
            labels: vec![label(ours, 0, "a"), label(ours, 1, "a"), label("own-1", 0, "c"), label("gone", 0, "c")],
        };
        let (checks, summary) = feedback_checks(&lake, "m", &view, Some(0.7), today).unwrap();
        assert_eq!(summary, FeedbackSummary { labels: 4, matched: 3, through: 12 });
        let accuracy = &checks[0];
        assert_eq!((accuracy.feature.as_str(), accuracy.statistic.as_str()), ("feedback", "accuracy"));
        assert!((accuracy.value - 2.0 / 3.0).abs() < 1e-12, "{accuracy:?}");
        assert!(accuracy.drifted, "below the minimum of 0.7");
        // Macro F1 over a, b, c: a 2/3, b 0, c 1.
        assert!((checks[1].value - (2.0 / 3.0 + 0.0 + 1.0) / 3.0).abs() < 1e-12, "{:?}", checks[1]);

        let none_logged = FeedbackView { labels: vec![label("gone", 0, "c")], ..view };
        let (checks, summary) = feedback_checks(&lake, "m", &none_logged, None, today).unwrap();
        assert!(checks.is_empty() && summary.matched == 0, "{checks:?}");
    }

    #[test]
    fn a_uuid_v7_says_when_it_was_made() {
        // 0x0192f3a1b2c4 ms = 2024-11-13T…; the version nibble is the 13th hex digit.
        let at = made_at("0192f3a1-b2c4-7def-8123-456789abcdef").unwrap();
        assert_eq!(at.timestamp_millis(), 0x0192_f3a1_b2c4);
        assert_eq!(made_at("0192f3a1-b2c4-4def-8123-456789abcdef"), None, "a v4 UUID says nothing");
        assert_eq!(made_at("order-42"), None);
    }
}
