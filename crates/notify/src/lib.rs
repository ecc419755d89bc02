//! The notifier: delivers the alerts the scheduler records (task and run callbacks, missed deadlines) as webhooks
//! and e-mails through connections.
//!
//! It runs beside the scheduler loop in every server and scheduler process, on its own task, so a slow receiver
//! delays only other alerts, never a decision. Alerts are taken from the database's outbox with a hold (see
//! `Store::take_due_notifications`), so several notifiers share the work and an alert whose notifier stopped
//! half-way is delivered again later: delivery is at least once. A failed attempt is retried with exponential
//! backoff and jitter; after the last one the alert is `failed`, with its error, in `GET /api/v2/notifications`.
//! While the database cannot be reached the notifier waits for it with growing pauses, saying so once.

mod deliver;

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use metrics::counter;
use sluice_store::{NotificationRow, Outage, Store};

pub use deliver::DeliveryError;

/// How alerts are delivered and retried.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Attempts per alert, the first included.
    pub attempts: u32,
    /// The wait after the first failed attempt; doubled after each next one, with jitter, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How often the outbox is looked at.
    pub poll: Duration,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// Where OpenLineage events are posted (the lineage server's URL and endpoint), with its API key.
    pub lineage: Option<LineageTarget>,
}

/// An OpenLineage HTTP endpoint (Marquez: `http://marquez:5000/api/v1/lineage`).
#[derive(Debug, Clone)]
pub struct LineageTarget {
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            attempts: 5,
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(600),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            lineage: None,
        }
    }
}

impl NotifierConfig {
    /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed; `None` after the last.
    fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(usize::try_from(self.attempts.saturating_sub(1)).unwrap_or(0))
            .with_jitter()
            .build();
        delays.nth(usize::try_from(attempt.checked_sub(1)?).ok()?)
    }
}

/// Alerts taken from the outbox at once.
const BATCH: i64 = 20;

/// Delivers alerts until `shutdown` completes.
pub async fn run_notifier(store: Store, config: NotifierConfig, shutdown: impl Future<Output = ()>) {
    let delivery = match deliver::Delivery::new(store.clone(), config.timeout, config.lineage.clone()) {
        Ok(delivery) => delivery,
        Err(e) => {
            tracing::error!(error = %e, "the notifier cannot start: alerts stay in the outbox");
            return;
        }
    };
    tokio::pin!(shutdown);
    let mut outage = Outage::new("notifier");
    let mut pause = config.poll;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
        let now = Utc::now();
        // Held for longer than an attempt may take, so that no other notifier takes one that is being sent.
        let hold = now + chrono::Duration::from_std(config.timeout * 2).unwrap_or_default();
        let due = match store.take_due_notifications(now, hold, BATCH).await {
            Ok(due) => due,
            Err(e) if e.is_unavailable() => {
                pause = outage.down(&e);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the notifier cannot read the outbox; trying again");
                pause = config.poll;
                continue;
            }
        };
        outage.reached();
        // While there is work, the next batch is taken at once: a stream's next alert is taken only after the one
        // before it was delivered.
        pause = if due.is_empty() { config.poll } else { Duration::ZERO };
        let attempts = due.iter().map(|alert| attempt(&store, &delivery, &config, alert));
        futures::future::join_all(attempts).await;
    }
}

/// One attempt at one alert, and its outcome recorded.
async fn attempt(store: &Store, delivery: &deliver::Delivery, config: &NotifierConfig, alert: &NotificationRow) {
    let outcome = delivery.deliver(&alert.alert).await;
    let now = Utc::now();
    let attempt = u32::try_from(alert.attempts + 1).unwrap_or(u32::MAX);
    let (error, retry_at) = match &outcome {
        Ok(()) => {
            counter!("sluice_notifications_total", "outcome" => "delivered").increment(1);
            tracing::info!(dag_id = %alert.alert.dag_id, run_id = %alert.alert.run_id, event = %alert.alert.event,
                attempt, "alert delivered");
            (None, None)
        }
        Err(e) => {
            let retry = if e.is_permanent() { None } else { config.retry_delay(attempt) };
            let retry_at = retry.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now + d);
            let outcome = if retry_at.is_some() { "retried" } else { "failed" };
            counter!("sluice_notifications_total", "outcome" => outcome).increment(1);
            tracing::warn!(dag_id = %alert.alert.dag_id, run_id = %alert.alert.run_id, event = %alert.alert.event,
                attempt, error = %e, retry_at = ?retry_at, "alert not delivered");
            (Some(e.to_string()), retry_at)
        }
    };
    if let Err(e) = store.record_notification_attempt(alert.id, error.as_deref(), retry_at, now).await {
        // The hold ends and the alert is attempted again.
        tracing::warn!(error = %e, "cannot record an alert's delivery");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_last_attempt() {
        let config = NotifierConfig {
            attempts: 3,
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(15),
            ..NotifierConfig::default()
        };
        let first = config.retry_delay(1).expect("a second attempt");
        // Jitter adds up to the delay itself.
        assert!(first >= Duration::from_secs(10) && first <= Duration::from_secs(20), "{first:?}");
        let second = config.retry_delay(2).expect("a third attempt");
        assert!(second >= Duration::from_secs(15) && second <= Duration::from_secs(30), "{second:?}");
        assert_eq!(config.retry_delay(3), None, "three attempts in all");
        assert_eq!(NotifierConfig { attempts: 1, ..config }.retry_delay(1), None);
    }
}
