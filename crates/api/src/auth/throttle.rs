//! Limits on failed sign-ins, against password guessing. After [`SignInLimits::per_user`] failures for one
//! username, or [`SignInLimits::per_address`] from one client address, `POST /auth/token` answers 429 until the
//! window that began with the first of those failures has passed — even to the right password, so that a guess
//! cannot be confirmed while the lock holds.
//!
//! The counts live in the server's memory (each server of a deployment counts on its own) in fixed windows, each
//! starting at a key's first failure. An attempt counts as a failure from the moment it starts and is taken back
//! when the password was right, so concurrent guesses cannot slip past the limit while their passwords are being
//! checked. At most [`MAX_KEYS`] usernames and addresses are tracked: when full, expired windows are dropped, then
//! the oldest one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many usernames and addresses are tracked at most (a few megabytes).
const MAX_KEYS: usize = 50_000;

/// Usernames have at most 100 characters; longer ones cannot exist and are counted under their first 101.
const NAME_CHARS: usize = 101;

/// How many failed sign-ins are allowed within `window`; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    pub per_user: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits { per_user: 5, per_address: 20, window: Duration::from_secs(5 * 60) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Why an attempt is refused now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// `"user"` or `"address"`: which limit was reached.
    pub by: &'static str,
    pub retry_after: Duration,
}

/// The failed sign-ins of the last window, per username and per client address.
#[derive(Debug)]
pub struct SignInThrottle {
    limits: SignInLimits,
    windows: Mutex<HashMap<Key, Window>>,
}

/// A sign-in under way, counted as a failure unless [`SignInThrottle::succeeded`] takes it back.
#[derive(Debug)]
pub struct Attempt {
    counted: Vec<(Key, Instant)>,
}

/// The address a client is counted under: an IPv6 client usually holds a whole /64, so that is one address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl SignInThrottle {
    pub fn new(limits: SignInLimits) -> SignInThrottle {
        SignInThrottle { limits, windows: Mutex::new(HashMap::new()) }
    }

    fn keys(&self, username: &str, address: IpAddr) -> Vec<(Key, u32)> {
        let name = Key::User(username.chars().take(NAME_CHARS).collect());
        [(name, self.limits.per_user), (Key::Address(address_key(address)), self.limits.per_address)]
            .into_iter()
            .filter(|(_, max)| *max > 0)
            .collect()
    }

    /// Starts a sign-in of `username` from `address` at `now`, or says until when it is refused.
    pub fn begin(&self, username: &str, address: IpAddr, now: Instant) -> Result<Attempt, Locked> {
        let keys = self.keys(username, address);
        let window = self.limits.window;
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, max) in &keys {
            if let Some(w) = windows.get(key)
                && now < w.started + window
                && w.failures >= *max
            {
                let by = if matches!(key, Key::User(_)) { "user" } else { "address" };
                return Err(Locked { by, retry_after: w.started + window - now });
            }
        }
        let mut counted = Vec::with_capacity(keys.len());
        for (key, _) in keys {
            if !windows.contains_key(&key) && windows.len() >= MAX_KEYS {
                make_room(&mut windows, window, now);
            }
            let w = windows.entry(key.clone()).or_insert(Window { started: now, failures: 0 });
            if now >= w.started + window {
                *w = Window { started: now, failures: 0 };
            }
            w.failures += 1;
            counted.push((key, w.started));
        }
        Ok(Attempt { counted })
    }

    /// The password was right: the user's failures are forgotten, and this attempt no longer counts against the
    /// address (whose earlier failures stay, so that one good account does not clear another's guesses).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, started) in attempt.counted {
            match key {
                Key::User(_) => {
                    windows.remove(&key);
                }
                Key::Address(_) => {
                    if let Some(w) = windows.get_mut(&key)
                        && w.started == started
                    {
                        w.failures = w.failures.saturating_sub(1);
                    }
                }
            }
        }
    }
}

/// Drops the expired windows, or if none has expired, the oldest one.
fn make_room(windows: &mut HashMap<Key, Window>, window: Duration, now: Instant) {
    windows.retain(|_, w| now < w.started + window);
    if windows.len() < MAX_KEYS {
        return;
    }
    if let Some(oldest) = windows.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| k.clone()) {
        windows.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn throttle(per_user: u32, per_address: u32) -> SignInThrottle {
        SignInThrottle::new(SignInLimits { per_user, per_address, window: Duration::from_secs(60) })
    }

    #[test]
    fn a_user_is_locked_after_its_failures_until_the_window_passes() {
        let t = throttle(3, 100);
        let start = Instant::now();
        for i in 0..3 {
            assert!(t.begin("ada", ONE, start + Duration::from_secs(i)).is_ok(), "attempt {i}");
        }
        let locked = t.begin("ada", TWO, start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(locked, Locked { by: "user", retry_after: Duration::from_secs(50) }, "from any address");
        assert!(t.begin("bob", ONE, start + Duration::from_secs(10)).is_ok(), "other users are not locked");
        assert!(t.begin("ada", ONE, start + Duration::from_secs(60)).is_ok(), "a new window");
    }

    #[test]
    fn an_address_is_locked_after_its_failures_whatever_the_username() {
        let t = throttle(100, 3);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            assert!(t.begin(name, ONE, now).is_ok());
        }
        assert_eq!(t.begin("d", ONE, now).unwrap_err().by, "address");
        assert!(t.begin("d", TWO, now).is_ok());
    }

    #[test]
    fn success_forgets_the_users_failures_but_not_the_addresses() {
        let t = throttle(2, 3);
        let now = Instant::now();
        t.begin("ada", ONE, now).unwrap();
        let right = t.begin("ada", ONE, now).unwrap();
        t.succeeded(right);
        assert!(t.begin("ada", ONE, now).is_ok(), "one failure now, the success did not count");
        let right = t.begin("bob", ONE, now).unwrap();
        t.succeeded(right);
        assert!(t.begin("carl", ONE, now).is_ok(), "the address's third failure: ada's two and carl's");
        assert_eq!(t.begin("dan", ONE, now).unwrap_err().by, "address");
    }

    #[test]
    fn a_zero_limit_is_off_and_ipv6_neighbours_share_a_count() {
        let t = throttle(0, 1);
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(t.begin("ada", a, now).is_ok());
        assert_eq!(t.begin("ada", b, now).unwrap_err().by, "address", "same /64");
        assert!(t.begin("ada", "2001:db8:0:1::1".parse().unwrap(), now).is_ok(), "another /64, no user limit");
    }

    #[test]
    fn memory_is_bounded() {
        let t = throttle(5, 0);
        let now = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            t.begin(&format!("user{i}"), ONE, now + Duration::from_millis(i as u64)).unwrap();
        }
        assert_eq!(t.windows.lock().unwrap().len(), MAX_KEYS);
    }
}
