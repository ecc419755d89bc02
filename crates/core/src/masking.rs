//! Keeping secrets out of what Sluice stores and shows: task logs, outputs, errors and rendered fields.
//!
//! As in Airflow's secrets masker, a value is secret when it is a connection's password, or when the key it is
//! stored under (a variable's key, a key of a connection's `extra`) contains one of the [`SensitiveKeys`] words.
//! A [`Masker`] replaces every occurrence of a set of secret strings with [`MASK`]; a [`StreamMasker`] does the same
//! for text that arrives in pieces (a task's output pipe), so that a secret split across two pieces is still caught.
//! Very short secrets and a few common words are not masked (they would garble every line without hiding much),
//! except by [`Masker::every_value`], which serves the roles that may not see variables or connections at all.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::connection::Connection;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Airflow's `DEFAULT_SENSITIVE_FIELDS`: a key containing one of these (case-insensitive) holds a secret.
pub const DEFAULT_SENSITIVE_FIELDS: [&str; 12] = [
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
    "keyfile_dict",
    "service_account",
];

/// Secrets shorter than this are not masked: masking `abc` in every line hides little and garbles much.
pub const MIN_SECRET_LEN: usize = 5;

/// Values too common to mask even when they are secrets (a password `postgres` would otherwise hide every
/// mention of the database).
const COMMON_WORDS: [&str; 10] =
    ["sluice", "airflow", "postgres", "password", "secret", "default", "changeme", "localhost", "admin", "false"];

/// Nesting deeper than this is left as it is, as Airflow's `redact` does.
const MAX_DEPTH: usize = 16;

/// The words that make a key sensitive: Airflow's defaults plus those the server is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveKeys {
    /// Lower case, non-empty.
    words: Vec<String>,
}

impl Default for SensitiveKeys {
    fn default() -> Self {
        SensitiveKeys { words: DEFAULT_SENSITIVE_FIELDS.iter().map(|w| (*w).to_owned()).collect() }
    }
}

impl SensitiveKeys {
    /// Airflow's defaults and `extra` words (trimmed; empty ones ignored).
    pub fn with_extra<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> SensitiveKeys {
        let mut keys = SensitiveKeys::default();
        for word in extra {
            let word = word.as_ref().trim().to_lowercase();
            if !word.is_empty() && !keys.words.contains(&word) {
                keys.words.push(word);
            }
        }
        keys
    }

    /// Whether the value stored under `key` is a secret.
    pub fn is_sensitive(&self, key: &str) -> bool {
        let key = key.trim().to_lowercase();
        self.words.iter().any(|word| key.contains(word.as_str()))
    }

    /// Adds to `out` the strings of `value` that are secret: all of them when `name` is sensitive, and inside
    /// objects those under sensitive keys (as Airflow's `mask_secret(value, name)`).
    pub fn collect_secrets(&self, name: &str, value: &Value, out: &mut BTreeSet<String>) {
        self.collect(name, value, out, 0);
    }

    fn collect(&self, name: &str, value: &Value, out: &mut BTreeSet<String>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::String(text) if self.is_sensitive(name) => {
                out.insert(text.clone());
            }
            Value::Array(items) => items.iter().for_each(|item| self.collect(name, item, out, depth + 1)),
            Value::Object(map) => map.iter().for_each(|(key, item)| self.collect(key, item, out, depth + 1)),
            _ => {}
        }
    }

    /// `value` with every string under a sensitive key replaced by [`MASK`] and the `masker`'s secrets masked in
    /// the others: Airflow's `redact`, for values stored before they could be masked.
    pub fn redact(&self, value: &Value, masker: &Masker) -> Value {
        self.redact_at(value, masker, 0)
    }

    fn redact_at(&self, value: &Value, masker: &Masker, depth: usize) -> Value {
        match value {
            _ if depth > MAX_DEPTH => value.clone(),
            Value::String(text) => Value::String(masker.mask(text).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact_at(v, masker, depth + 1)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, item)| {
                        let redacted = if self.is_sensitive(key) {
                            redact_all(item, depth + 1)
                        } else {
                            self.redact_at(item, masker, depth + 1)
                        };
                        (key.clone(), redacted)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Every string in `value` replaced by [`MASK`]; numbers and booleans kept, as Airflow's `_redact_all`.
fn redact_all(value: &Value, depth: usize) -> Value {
    match value {
        Value::String(_) => Value::String(MASK.to_owned()),
        _ if depth > MAX_DEPTH => Value::String(MASK.to_owned()),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_all(v, depth + 1)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), redact_all(v, depth + 1))).collect()),
        other => other.clone(),
    }
}

/// The values a try was given that not everyone may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confidential {
    /// Connection passwords, secret parts of `extra`, values of variables with a sensitive key: masked for
    /// everyone, Admin included.
    pub secrets: BTreeSet<String>,
    /// Every value read from a variable or a connection: masked for the roles that may not read variables and
    /// connections (below Op).
    pub restricted: BTreeSet<String>,
}

impl Confidential {
    /// A variable read by the try: its text and, if it is JSON, the values inside.
    pub fn add_variable(&mut self, key: &str, text: &str, keys: &SensitiveKeys) {
        self.restricted.insert(text.to_owned());
        keys.collect_secrets(key, &Value::String(text.to_owned()), &mut self.secrets);
        if let Ok(json) = serde_json::from_str::<Value>(text) {
            scalars(&json, &mut self.restricted, 0);
            keys.collect_secrets(key, &json, &mut self.secrets);
        }
    }

    /// A connection the try receives or whose fields its templates read.
    pub fn add_connection(&mut self, conn: &Connection, keys: &SensitiveKeys) {
        self.secrets.extend(conn.password.iter().cloned());
        let extra = Value::Object(conn.extra.clone().unwrap_or_default());
        keys.collect_secrets("extra", &extra, &mut self.secrets);
        let fields = [&conn.host, &conn.login, &conn.password, &conn.schema];
        self.restricted.extend(fields.into_iter().flatten().cloned());
        self.restricted.extend(conn.port.map(|p| p.to_string()));
        scalars(&extra, &mut self.restricted, 0);
    }

    /// Whether anything came from a variable or a connection.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.restricted.is_empty()
    }
}

/// The strings and numbers inside a JSON value, as text.
fn scalars(value: &Value, out: &mut BTreeSet<String>, depth: usize) {
    match value {
        _ if depth > MAX_DEPTH => {}
        Value::String(text) => {
            out.insert(text.clone());
        }
        Value::Number(n) => {
            out.insert(n.to_string());
        }
        Value::Array(items) => items.iter().for_each(|v| scalars(v, out, depth + 1)),
        Value::Object(map) => map.values().for_each(|v| scalars(v, out, depth + 1)),
        _ => {}
    }
}

/// The key of a stored rendering that holds what roles below Op are shown (see [`stored_rendering`]).
pub const RESTRICTED_RENDERING: &str = "restricted";

/// What is stored with a try as its rendered fields: `rendered` with the secrets masked and, when the try read
/// variables or connections, under [`RESTRICTED_RENDERING`] the same with every value it read masked.
///
/// Two renderings rather than the values read: those values must not be stored with the try, and masking at
/// read time by the current values would miss a variable changed since.
pub fn stored_rendering(rendered: &Value, confidential: &Confidential) -> Value {
    let mut stored = Masker::new(confidential.secrets.iter().cloned()).mask_json(rendered);
    if !confidential.restricted.is_empty() {
        let read = confidential.restricted.iter().chain(&confidential.secrets).cloned();
        let restricted = Masker::every_value(read).mask_json(&stored);
        if let Value::Object(map) = &mut stored {
            map.insert(RESTRICTED_RENDERING.to_owned(), restricted);
        }
    }
    stored
}

/// The rendered fields shown to a caller: the whole rendering to those who may read variables and connections,
/// the restricted one to the others. For every role, values under sensitive keys (an `env` entry `API_KEY`) are
/// redacted, which also covers tries stored before Sluice masked them.
pub fn shown_rendering(stored: &Value, may_read_values: bool, keys: &SensitiveKeys) -> Value {
    let mut shown = stored.clone();
    let restricted = shown.as_object_mut().and_then(|map| map.remove(RESTRICTED_RENDERING));
    let shown = match restricted {
        Some(restricted) if !may_read_values => restricted,
        _ => shown,
    };
    keys.redact(&shown, &Masker::default())
}

/// Replaces a set of secret strings with [`MASK`] wherever they occur in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masker {
    /// Longest first, so that of two secrets starting at one place the longer is masked whole.
    secrets: Vec<String>,
}

impl Masker {
    /// Masks `secrets` that are worth it: not shorter than [`MIN_SECRET_LEN`] nor a common word. A secret is also
    /// masked as it appears inside a JSON string (quotes, backslashes and newlines escaped).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Masker {
        let worth_it =
            |s: &String| s.chars().count() >= MIN_SECRET_LEN && !COMMON_WORDS.contains(&s.to_lowercase().as_str());
        Masker::from_values(secrets.into_iter().filter(worth_it))
    }

    /// Masks every non-empty value, however short: for showing rendered fields to someone who may not know any
    /// of these values.
    pub fn every_value(values: impl IntoIterator<Item = String>) -> Masker {
        Masker::from_values(values)
    }

    fn from_values(values: impl IntoIterator<Item = String>) -> Masker {
        let mut secrets = BTreeSet::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            let escaped = serde_json::to_string(&value).unwrap_or_default();
            if let Some(inner) = escaped.get(1..escaped.len().saturating_sub(1))
                && inner != value
                && !inner.is_empty()
            {
                secrets.insert(inner.to_owned());
            }
            secrets.insert(value);
        }
        let mut secrets: Vec<String> = secrets.into_iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Masker { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The strings masked (a worker receives them with its lease).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The longest secret's length in bytes.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// `text` with every secret replaced by [`MASK`], the leftmost first.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.secrets.iter().any(|s| text.contains(s.as_str())) {
            return Cow::Borrowed(text);
        }
        let (masked, _) = self.scan(text, false);
        Cow::Owned(masked)
    }

    /// `value` with the secrets masked in every string (object keys included).
    pub fn mask_json(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.mask(text).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.mask_json(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (self.mask(k).into_owned(), self.mask_json(v))).collect())
            }
            other => other.clone(),
        }
    }

    /// Masks `text` from its start. With `hold`, stops where the rest of the text could be the beginning of a
    /// secret that more text would complete, and returns where; otherwise masks it all.
    fn scan(&self, text: &str, hold: bool) -> (String, usize) {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        while let Some(c) = text[at..].chars().next() {
            let rest = &text[at..];
            // Which secret matches here may depend on what comes next: wait for it.
            if hold && self.secrets.iter().any(|s| s.len() > rest.len() && s.starts_with(rest)) {
                return (out, at);
            }
            match self.secrets.iter().find(|s| rest.starts_with(s.as_str())) {
                Some(secret) => {
                    out.push_str(MASK);
                    at += secret.len();
                }
                None => {
                    out.push(c);
                    at += c.len_utf8();
                }
            }
        }
        (out, at)
    }
}

/// Masks text that arrives in pieces, as a [`Masker`] would mask the whole of it.
///
/// Each piece's text is given back masked as soon as it is certain, except its end when that end could begin a
/// secret: at most the longest secret's length less one byte is held back until the next piece or [`finish`].
///
/// [`finish`]: StreamMasker::finish
#[derive(Debug, Clone, Default)]
pub struct StreamMasker {
    masker: Masker,
    pending: String,
}

impl StreamMasker {
    pub fn new(masker: Masker) -> StreamMasker {
        StreamMasker { masker, pending: String::new() }
    }

    /// The masked text that `piece` makes certain.
    pub fn push(&mut self, piece: &str) -> String {
        if self.masker.is_empty() {
            return piece.to_owned();
        }
        self.pending.push_str(piece);
        let (masked, used) = self.masker.scan(&self.pending, true);
        self.pending.drain(..used);
        masked
    }

    /// Everything still held back, masked: the text has ended.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.masker.mask(&rest).into_owned()
    }

    /// How many bytes are held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests;
