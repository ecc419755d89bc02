//! Alerts: whom to tell when a task starts, retries, succeeds or fails, when a run ends, and when a run misses its
//! deadline — Airflow's `on_*_callback`s with its notifiers (Slack webhook, SMTP), and its `DeadlineAlert`.
//!
//! The scheduler only records what is to be told (an outbox row, in the transaction of the state change it is
//! about), so a slow or broken receiver never holds a decision up; the server's notifier delivers, retries with
//! backoff, and keeps the outcome readable over the API. What is told is rendered at delivery from a small context
//! ([`Occasion::context`]): the notifier's templates read `dag_id`, `run_id`, `task_id`, `map_index`,
//! `try_number`, `state`, `event`, `logical_date`, `ds`, `error`, `deadline` and `message`, the default text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::spec::DateSpec;

/// One way of telling: a webhook or an e-mail, through a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notifier {
    /// An HTTP POST to the connection's host (Airflow's `SlackWebhookNotifier`, or any receiver): by default
    /// Slack's `{"text": …}`, else `body` as rendered (sent as JSON when it parses as JSON).
    Webhook {
        connection: String,
        /// The path joined to the connection's host; the host itself when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The message (a template); Sluice's description of the event when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The whole body (a template), in place of `{"text": …}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// An e-mail through an SMTP connection (Airflow's `SmtpNotifier`): host, port, login and password, with
    /// `from` and `ssl`/`starttls` in its extra.
    Email {
        connection: String,
        to: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cc: Vec<String>,
        /// A template; Sluice's description of the event when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// The body (a template); the description of the event when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

impl Notifier {
    pub fn connection(&self) -> &str {
        match self {
            Notifier::Webhook { connection, .. } | Notifier::Email { connection, .. } => connection,
        }
    }

    /// What is wrong with it, for the DAG's import errors.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connection().trim().is_empty() {
            problems.push("a notifier needs a `connection`".to_owned());
        }
        let mut templates: Vec<&str> = Vec::new();
        match self {
            Notifier::Webhook { endpoint, text, body, .. } => {
                if text.is_some() && body.is_some() {
                    problems.push("a webhook has `text` or `body`, not both".to_owned());
                }
                templates.extend([endpoint, text, body].into_iter().flatten().map(String::as_str));
            }
            Notifier::Email { to, subject, text, .. } => {
                if to.iter().all(|address| address.trim().is_empty()) {
                    problems.push("an e-mail needs at least one address in `to`".to_owned());
                }
                templates.extend([subject, text].into_iter().flatten().map(String::as_str));
            }
        }
        for template in templates {
            let compiled = crate::template::chain::check(template).and_then(|()| {
                minijinja::Environment::new().template_from_str(template).map(drop).map_err(|e| e.to_string())
            });
            if let Err(e) = compiled {
                problems.push(format!("template {template:?}: {e}"));
            }
        }
        problems
    }
}

/// What happened, as the event of an alert; the names of Airflow's callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    OnExecute,
    OnRetry,
    OnSuccess,
    OnFailure,
    /// A run not finished by its deadline.
    Deadline,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::OnExecute => "on_execute",
            Event::OnRetry => "on_retry",
            Event::OnSuccess => "on_success",
            Event::OnFailure => "on_failure",
            Event::Deadline => "deadline",
        }
    }
}

/// The callbacks of a task (task-level settings and `default_args`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCallbacks {
    pub on_execute: Vec<Notifier>,
    pub on_retry: Vec<Notifier>,
    pub on_success: Vec<Notifier>,
    pub on_failure: Vec<Notifier>,
}

impl TaskCallbacks {
    pub fn for_event(&self, event: Event) -> &[Notifier] {
        match event {
            Event::OnExecute => &self.on_execute,
            Event::OnRetry => &self.on_retry,
            Event::OnSuccess => &self.on_success,
            Event::OnFailure => &self.on_failure,
            Event::Deadline => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        [&self.on_execute, &self.on_retry, &self.on_success, &self.on_failure].iter().all(|list| list.is_empty())
    }
}

/// What a deadline counts from (Airflow 3.1's `DeadlineReference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineReference {
    /// The run's logical date (a run without one has no deadline of this kind).
    DagrunLogicalDate,
    /// When the run was queued.
    DagrunQueuedAt,
    /// A fixed time, `datetime`.
    FixedDatetime,
}

/// `deadline:` of a DAG: a run still unfinished `interval` after its reference fires `callback` once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineAlert {
    pub reference: DeadlineReference,
    /// With `reference: fixed_datetime`: the time, read in the DAG's timezone unless it has an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<DateSpec>,
    #[serde(default, with = "crate::duration::serde")]
    pub interval: Duration,
    pub callback: Vec<Notifier>,
}

impl DeadlineAlert {
    /// When a run with these times is late; `None` when the reference does not apply to it.
    pub fn due(
        &self,
        logical_date: Option<DateTime<Utc>>,
        queued_at: Option<DateTime<Utc>>,
        tz: chrono_tz::Tz,
    ) -> Option<DateTime<Utc>> {
        let from = match self.reference {
            DeadlineReference::DagrunLogicalDate => logical_date?,
            DeadlineReference::DagrunQueuedAt => queued_at?,
            DeadlineReference::FixedDatetime => self.datetime.as_ref()?.resolve(tz),
        };
        Some(from + chrono::Duration::from_std(self.interval).ok()?)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.callback.iter().flat_map(Notifier::problems).collect();
        match (self.reference, &self.datetime) {
            (DeadlineReference::FixedDatetime, None) => {
                problems.push("`reference: fixed_datetime` needs a `datetime`".to_owned());
            }
            (DeadlineReference::DagrunLogicalDate | DeadlineReference::DagrunQueuedAt, Some(_)) => {
                problems.push("`datetime` goes with `reference: fixed_datetime` alone".to_owned());
            }
            _ => {}
        }
        if self.callback.is_empty() {
            problems.push("a deadline needs at least one notifier in `callback`".to_owned());
        }
        problems
    }
}

/// The event an alert is about: a task instance's try or a run.
#[derive(Debug, Clone)]
pub struct Occasion<'a> {
    pub event: Event,
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub logical_date: Option<DateTime<Utc>>,
    /// `(task_id, map_index, try_number)` for a task's event; `None` for a run's.
    pub task: Option<(&'a str, i64, i64)>,
    /// The state the event leads to (`failed`, `up_for_retry`, `running`, …).
    pub state: &'a str,
    pub error: Option<&'a str>,
    /// For a deadline: when it was due.
    pub deadline: Option<DateTime<Utc>>,
}

impl Occasion<'_> {
    /// What the notifier's templates read.
    pub fn context(&self) -> Value {
        let (task_id, map_index, try_number) = match self.task {
            Some((task_id, map_index, try_number)) => (Some(task_id), Some(map_index), Some(try_number)),
            None => (None, None, None),
        };
        json!({
            "event": self.event.as_str(),
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": task_id,
            "map_index": map_index,
            "try_number": try_number,
            "state": self.state,
            "logical_date": self.logical_date.map(|d| d.to_rfc3339()),
            "ds": self.logical_date.map(|d| d.format("%Y-%m-%d").to_string()),
            "error": self.error,
            "deadline": self.deadline.map(|d| d.to_rfc3339()),
            "message": self.message(),
        })
    }

    /// Sluice's one-line description of the event.
    pub fn message(&self) -> String {
        let subject = match self.task {
            Some((task_id, map_index, try_number)) => {
                let index = if map_index >= 0 { format!("[{map_index}]") } else { String::new() };
                format!("Task {}.{task_id}{index} of run {} (try {try_number})", self.dag_id, self.run_id)
            }
            None => format!("DAG run {} of {}", self.run_id, self.dag_id),
        };
        let what = match self.event {
            Event::OnExecute => "started".to_owned(),
            Event::OnRetry => "failed and will be retried".to_owned(),
            Event::OnSuccess => "succeeded".to_owned(),
            Event::OnFailure => "failed".to_owned(),
            Event::Deadline => match self.deadline {
                Some(due) => format!("missed its deadline of {}", due.to_rfc3339()),
                None => "missed its deadline".to_owned(),
            },
        };
        match self.error {
            Some(error) if !error.is_empty() => format!("{subject} {what}: {error}"),
            _ => format!("{subject} {what}"),
        }
    }
}

/// Renders one of a notifier's templates with an alert's context. The notifier is read back from the alerts outbox,
/// not from a validated DAG, so the stack guard of `template::chain` runs here too.
pub fn render(template: &str, context: &Value) -> Result<String, String> {
    crate::template::chain::check(template)?;
    let context = minijinja::Value::from_serialize(context);
    crate::template::render_limited(&crate::template::environment(), template, &context).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(yaml_json: Value) -> Result<Notifier, serde_json::Error> {
        serde_json::from_value(yaml_json)
    }

    #[test]
    fn notifiers_read_their_fields_and_refuse_unknown_ones() {
        let hook = webhook(json!({"type": "webhook", "connection": "slack", "text": "{{ dag_id }} failed"}))
            .expect("a webhook");
        assert_eq!(hook.connection(), "slack");
        assert!(hook.problems().is_empty());
        assert!(webhook(json!({"type": "webhook", "connection": "slack", "txt": "x"})).is_err());
        assert!(webhook(json!({"type": "pager", "connection": "x"})).is_err());
        let both = webhook(json!({"type": "webhook", "connection": "c", "text": "a", "body": "b"})).expect("a webhook");
        assert_eq!(both.problems(), ["a webhook has `text` or `body`, not both"]);
        let mail =
            webhook(json!({"type": "email", "connection": "smtp", "to": [], "subject": "{{ oops"})).expect("an e-mail");
        let problems = mail.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].starts_with("template \"{{ oops\""), "{problems:?}");
    }

    #[test]
    fn a_chain_deeper_than_the_stack_allows_is_refused_not_rendered() {
        let text = format!("{{{{ dag_id{} }}}}", " | upper".repeat(2000));
        let hook = webhook(json!({"type": "webhook", "connection": "slack", "text": text})).expect("a webhook");
        let problems = hook.problems();
        assert!(problems.len() == 1 && problems[0].contains("chains more than 1000 operators"), "{problems:?}");
        let err = render(&text, &json!({"dag_id": "etl"})).expect_err("refused");
        assert!(err.contains("chains more than 1000 operators"), "{err}");
    }

    #[test]
    fn a_deadline_counts_from_its_reference() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("RFC 3339").with_timezone(&Utc);
        let alert = |reference: &str, datetime: Option<&str>| -> DeadlineAlert {
            serde_json::from_value(json!({
                "reference": reference, "datetime": datetime, "interval": "10m",
                "callback": [{"type": "webhook", "connection": "c"}],
            }))
            .expect("a deadline")
        };
        let (logical, queued) = (Some(at("2026-01-01T00:00:00Z")), Some(at("2026-01-02T00:00:00Z")));
        let tz = chrono_tz::Europe::Paris;
        assert_eq!(alert("dagrun_logical_date", None).due(logical, queued, tz), Some(at("2026-01-01T00:10:00Z")));
        assert_eq!(alert("dagrun_logical_date", None).due(None, queued, tz), None);
        assert_eq!(alert("dagrun_queued_at", None).due(logical, queued, tz), Some(at("2026-01-02T00:10:00Z")));
        let fixed = alert("fixed_datetime", Some("2026-03-01T08:00:00"));
        assert_eq!(fixed.due(None, None, tz), Some(at("2026-03-01T07:10:00Z")));
        assert!(fixed.problems().is_empty());
        assert_eq!(alert("fixed_datetime", None).problems(), ["`reference: fixed_datetime` needs a `datetime`"]);
    }

    #[test]
    fn the_context_describes_the_event() {
        let occasion = Occasion {
            event: Event::OnFailure,
            dag_id: "etl",
            run_id: "manual__1",
            logical_date: None,
            task: Some(("load", 2, 3)),
            state: "failed",
            error: Some("exit code 1"),
            deadline: None,
        };
        let context = occasion.context();
        assert_eq!(context["message"], "Task etl.load[2] of run manual__1 (try 3) failed: exit code 1");
        assert_eq!(render("{{ task_id }}#{{ try_number }} {{ state }}", &context).expect("rendered"), "load#3 failed");
        assert!(render("{{ nope }}", &context).is_err());
    }
}
