//! Waiting out a database that cannot be reached.
//!
//! The loops that run beside the API (the scheduler loop, the notifier, the listener of queued work) meet an
//! unreachable database at every turn while it is restarting or cut off. [`Outage`] turns that into one warning
//! when it goes, one line when it is back, and growing pauses with jitter in between (so that many processes do
//! not all knock at once when it returns), instead of an error at every tick.

use std::fmt::Display;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

/// The first pause after the database went away; doubled at each failure, with jitter, up to [`LONGEST_PAUSE`].
/// Jitter adds up to the pause itself, so the pauses without it stop at half the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Short enough that a loop notices the database's return within seconds.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Whether one loop's database is away, since when, and how long to pause next.
#[derive(Debug)]
pub struct Outage {
    /// Names the loop in what it logs.
    what: &'static str,
    since: Option<Instant>,
    pauses: ExponentialBackoff,
}

impl Outage {
    pub fn new(what: &'static str) -> Outage {
        Outage { what, since: None, pauses: pauses() }
    }

    /// Notes an error that [`crate::Error::is_unavailable`] (or a failed connection): warns the first time, and
    /// returns the pause before the loop tries again.
    pub fn down(&mut self, error: &impl Display) -> Duration {
        if self.since.is_none() {
            tracing::warn!(error = %error, "{}: the database cannot be reached; waiting for it", self.what);
            self.since = Some(Instant::now());
        }
        self.pauses.next().unwrap_or(LONGEST_PAUSE).min(LONGEST_PAUSE)
    }

    /// Notes that the database answered. Returns how long it was away when it has just come back.
    pub fn reached(&mut self) -> Option<Duration> {
        let away = self.since.take()?.elapsed();
        self.pauses = pauses();
        tracing::info!("{}: the database is back after {:.1}s", self.what, away.as_secs_f64());
        Some(away)
    }

    /// Whether the database is away as far as this loop knows.
    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }
}

fn pauses() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_PAUSE)
        .with_max_delay(LONGEST_PAUSE / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_jitter_and_start_again_once_the_database_is_back() {
        let mut outage = Outage::new("test");
        assert_eq!(outage.reached(), None, "never away");
        let pauses: Vec<Duration> = (0..12).map(|_| outage.down(&"refused")).collect();
        assert!(outage.is_down());
        // Jitter adds up to the pause itself.
        assert!(pauses[0] >= FIRST_PAUSE && pauses[0] <= FIRST_PAUSE * 2, "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= LONGEST_PAUSE), "{pauses:?}");
        assert!(pauses[11] >= LONGEST_PAUSE / 2, "{pauses:?}");
        assert!(outage.reached().is_some());
        assert!(!outage.is_down());
        assert!(outage.down(&"refused") <= FIRST_PAUSE * 2, "starts over");
    }
}
