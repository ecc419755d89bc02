//! OpenLineage run events (spec 2-0-2): what Marquez, DataHub and other lineage servers read about Sluice's jobs.
//!
//! A DAG is a job named by its `dag_id`, a task a job named `<dag_id>.<task_id>` whose runs (its tries) have the
//! DAG run as their `parent`, as Airflow's OpenLineage provider names them. A task's `inputs` and `outputs` are
//! its datasets, named from their URIs: the scheme and authority are the namespace, the path the name
//! (`lake://penguins/raw` is `raw` in `lake://penguins`). What a try reported about data rides along: quality
//! checks as the input's `dataQualityAssertions` and `dataQualityMetrics`, rows written as the output's
//! `outputStatistics`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// Who made the events: Sluice and its version.
pub const PRODUCER: &str = concat!("urn:sluice:", env!("CARGO_PKG_VERSION"));
/// The event of the alerts outbox whose context is an OpenLineage run event, posted to the lineage server.
pub const LINEAGE_EVENT: &str = "openlineage";
const FACETS: &str = "https://openlineage.io/spec/facets/1-0-0";

/// The transition a run event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Start,
    Complete,
    Fail,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
        }
    }
}

/// What a try found about one of its datasets: a quality report (`{rows, results: [{check, column, passed}]}`)
/// or the rows it wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum DataFact {
    Quality { uri: String, report: Value },
    Written { uri: String, rows: Option<i64> },
}

/// One run event of a DAG run (`task: None`) or of a task's try.
#[derive(Debug, Clone)]
pub struct RunEvent<'a> {
    pub event_type: EventType,
    pub event_time: DateTime<Utc>,
    pub namespace: &'a str,
    pub dag_id: &'a str,
    /// The task and its try's id; `None` for the DAG run's own event.
    pub task: Option<(&'a str, Uuid)>,
    /// The DAG run's id: the run of a DAG's event, the parent of a task's.
    pub dag_run: Uuid,
    /// The data interval, as `nominalTime`.
    pub interval: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub inputs: &'a [String],
    pub outputs: &'a [String],
    pub error: Option<&'a str>,
    pub facts: &'a [DataFact],
}

fn facet(schema: &str, mut fields: Value) -> Value {
    if let Some(object) = fields.as_object_mut() {
        object.insert("_producer".into(), json!(PRODUCER));
        object.insert("_schemaURL".into(), json!(format!("{FACETS}/{schema}")));
    }
    fields
}

/// A dataset's namespace and name from its URI.
pub fn dataset_name(uri: &str) -> (String, String) {
    match url::Url::parse(uri) {
        Ok(url) if url.has_host() => {
            let namespace = format!("{}://{}", url.scheme(), &url[url::Position::BeforeHost..url::Position::AfterPort]);
            let name = url.path().trim_start_matches('/');
            (namespace, if name.is_empty() { "/".to_owned() } else { name.to_owned() })
        }
        Ok(url) => (url.scheme().to_owned(), url.path().to_owned()),
        Err(_) => ("file".to_owned(), uri.to_owned()),
    }
}

impl RunEvent<'_> {
    pub fn to_json(&self) -> Value {
        let (job_name, run_id) = match self.task {
            Some((task_id, try_id)) => (format!("{}.{task_id}", self.dag_id), try_id),
            None => (self.dag_id.to_owned(), self.dag_run),
        };
        let mut run_facets = Map::new();
        if self.task.is_some() {
            let parent = json!({
                "run": {"runId": self.dag_run},
                "job": {"namespace": self.namespace, "name": self.dag_id},
            });
            run_facets.insert("parent".into(), facet("ParentRunFacet.json#/$defs/ParentRunFacet", parent));
        }
        if let Some((start, end)) = self.interval {
            let nominal = json!({"nominalStartTime": start.to_rfc3339(), "nominalEndTime": end.to_rfc3339()});
            run_facets
                .insert("nominalTime".into(), facet("NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet", nominal));
        }
        if let Some(error) = self.error.filter(|_| self.event_type == EventType::Fail) {
            let message = json!({"message": error, "programmingLanguage": "shell"});
            run_facets
                .insert("errorMessage".into(), facet("ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet", message));
        }
        let job_type = json!({
            "processingType": "BATCH",
            "integration": "SLUICE",
            "jobType": if self.task.is_some() { "TASK" } else { "DAG" },
        });
        json!({
            "eventType": self.event_type.as_str(),
            "eventTime": self.event_time.to_rfc3339(),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": run_id, "facets": run_facets},
            "job": {
                "namespace": self.namespace,
                "name": job_name,
                "facets": {"jobType": facet("JobTypeJobFacet.json#/$defs/JobTypeJobFacet", job_type)},
            },
            "inputs": self.inputs.iter().map(|uri| self.dataset(uri, true)).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|uri| self.dataset(uri, false)).collect::<Vec<_>>(),
        })
    }

    fn dataset(&self, uri: &str, input: bool) -> Value {
        let (namespace, name) = dataset_name(uri);
        let mut facets = Map::new();
        for fact in self.facts {
            match fact {
                DataFact::Quality { uri: of, report } if of == uri && input => {
                    let assertions: Vec<Value> = report["results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| json!({"assertion": r["check"], "success": r["passed"], "column": r["column"]}))
                        .collect();
                    let schema = "DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
                    facets.insert("dataQualityAssertions".into(), facet(schema, json!({"assertions": assertions})));
                    let schema = "DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet";
                    let metrics = json!({"rowCount": report["rows"], "columnMetrics": {}});
                    facets.insert("dataQualityMetrics".into(), facet(schema, metrics));
                }
                DataFact::Written { uri: of, rows: Some(rows) } if of == uri && !input => {
                    let schema = "OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
                    facets.insert("outputStatistics".into(), facet(schema, json!({"rowCount": rows})));
                }
                _ => {}
            }
        }
        let key = if input { "inputFacets" } else { "outputFacets" };
        json!({"namespace": namespace, "name": name, key: facets})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_named_from_their_uris() {
        assert_eq!(dataset_name("lake://penguins/raw"), ("lake://penguins".into(), "raw".into()));
        assert_eq!(dataset_name("s3://bucket/a/b.csv"), ("s3://bucket".into(), "a/b.csv".into()));
        assert_eq!(
            dataset_name("postgres://db:5432/shop.public.orders"),
            ("postgres://db:5432".into(), "shop.public.orders".into())
        );
        assert_eq!(dataset_name("file:///data/x.csv"), ("file".into(), "/data/x.csv".into()));
    }

    #[test]
    fn a_tasks_event_has_its_parent_datasets_and_facts() {
        let (try_id, dag_run) = (Uuid::now_v7(), Uuid::now_v7());
        let facts = [
            DataFact::Quality {
                uri: "lake://p/raw".into(),
                report: json!({"rows": 10, "results": [{"check": "not_null", "column": "id", "passed": true}]}),
            },
            DataFact::Written { uri: "lake://p/clean".into(), rows: Some(9) },
        ];
        let event = RunEvent {
            event_type: EventType::Fail,
            event_time: Utc::now(),
            namespace: "prod",
            dag_id: "etl",
            task: Some(("check", try_id)),
            dag_run,
            interval: None,
            inputs: &["lake://p/raw".to_owned()],
            outputs: &["lake://p/clean".to_owned()],
            error: Some("exit code 1"),
            facts: &facts,
        }
        .to_json();
        assert_eq!(event["eventType"], "FAIL");
        assert_eq!(event["job"], json!({"namespace": "prod", "name": "etl.check", "facets": event["job"]["facets"]}));
        assert_eq!(event["run"]["runId"], json!(try_id));
        assert_eq!(event["run"]["facets"]["parent"]["run"]["runId"], json!(dag_run));
        assert_eq!(event["run"]["facets"]["errorMessage"]["message"], "exit code 1");
        let input = &event["inputs"][0];
        assert_eq!((&input["namespace"], &input["name"]), (&json!("lake://p"), &json!("raw")));
        let assertions = &input["inputFacets"]["dataQualityAssertions"]["assertions"];
        assert_eq!(assertions, &json!([{"assertion": "not_null", "success": true, "column": "id"}]));
        assert_eq!(event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"], 9);
    }
}
