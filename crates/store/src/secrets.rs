//! Secrets at rest: connection passwords and extras, and variable values, are stored sealed with a key from
//! configuration, as Airflow stores them with its Fernet key.
//!
//! `SLUICE_ENCRYPTION_KEY` holds one or more keys, comma-separated, each 32 random bytes in URL-safe base64
//! (`sluice rotate-key --generate` prints one). The first key seals what is written; every key opens what was
//! read, so that keys can change without downtime: put the new key first, keep the old one after it, run
//! `sluice rotate-key` to reseal everything with the new one, then drop the old one.
//!
//! A sealed value is `sluice:v1:<key id>:<base64 of nonce and ciphertext>`, XChaCha20-Poly1305 with a random
//! 192-bit nonce per value. The key id (the first 8 hex digits of the key's SHA-256) says which key opens it, so a
//! process started with the wrong key is told so at start ([`crate::Store::check_secrets`]) instead of failing on
//! the first task that needs a password. Values written while no key was configured stay readable as they are, and
//! `sluice rotate-key` seals them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sluice:v1:";
const NONCE_LEN: usize = 24;

/// Why the configured keys cannot be used, or why a stored value cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error(
        "SLUICE_ENCRYPTION_KEY: key {position} is not 32 bytes in URL-safe base64 (make one with `sluice rotate-key --generate`)"
    )]
    BadKey { position: usize },
    #[error(
        "a secret in the database was sealed with key {key_id}, which SLUICE_ENCRYPTION_KEY does not hold ({configured}): \
         start with the key it was written with (to change keys, put the new key first, the old one after it, and run \
         `sluice rotate-key`)"
    )]
    UnknownKey { key_id: String, configured: String },
    #[error("a secret sealed with key {key_id} does not open with it: the stored value was changed or damaged")]
    Damaged { key_id: String },
    #[error("a secret could not be sealed with key {key_id}")]
    Seal { key_id: String },
}

/// One key: what seals and opens, and its id.
struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys of `SLUICE_ENCRYPTION_KEY`; none means values are stored as they are.
#[derive(Default)]
pub struct Secrets {
    keys: Vec<SecretKey>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets").field("key_ids", &self.key_ids()).finish()
    }
}

impl Secrets {
    /// The keys of a configuration value: comma-separated, first one sealing; blank means none.
    pub fn from_config(text: &str) -> Result<Secrets, SecretsError> {
        let keys = text
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, text)| {
                let bytes = [URL_SAFE, URL_SAFE_NO_PAD, STANDARD]
                    .iter()
                    .find_map(|engine| engine.decode(text).ok())
                    .filter(|b| b.len() == 32)
                    .ok_or(SecretsError::BadKey { position: i + 1 })?;
                let id = Sha256::digest(&bytes).iter().take(4).map(|b| format!("{b:02x}")).collect();
                Ok(SecretKey { id, cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)) })
            })
            .collect::<Result<_, _>>()?;
        Ok(Secrets { keys })
    }

    /// A new random key, in the form `SLUICE_ENCRYPTION_KEY` takes.
    pub fn generate_key() -> String {
        URL_SAFE.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// `plain` sealed with the first key; as it is when no key is configured.
    pub fn seal(&self, plain: &str) -> Result<String, SecretsError> {
        let Some(key) = self.keys.first() else { return Ok(plain.to_owned()) };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed =
            key.cipher.encrypt(&nonce, plain.as_bytes()).map_err(|_| SecretsError::Seal { key_id: key.id.clone() })?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The plain text of a stored value; a value that was never sealed is returned as it is.
    pub fn open(&self, stored: &str) -> Result<String, SecretsError> {
        let Some((key_id, body)) = sealed_parts(stored) else { return Ok(stored.to_owned()) };
        let key = self.key(key_id)?;
        let damaged = || SecretsError::Damaged { key_id: key_id.to_owned() };
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| damaged())?;
        if bytes.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = key.cipher.decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// Whether `stored` needs sealing again by [`Secrets::seal`]: plain, or sealed with another key than the first.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        match (sealed_parts(stored), self.keys.first()) {
            (Some((key_id, _)), Some(first)) => key_id != first.id,
            (None, Some(_)) => true,
            (_, None) => false,
        }
    }

    /// Checks that a stored value's key is configured, without opening it.
    pub fn check(&self, stored: &str) -> Result<(), SecretsError> {
        match sealed_parts(stored) {
            Some((key_id, _)) => self.key(key_id).map(drop),
            None => Ok(()),
        }
    }

    fn key(&self, key_id: &str) -> Result<&SecretKey, SecretsError> {
        self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| SecretsError::UnknownKey {
            key_id: key_id.to_owned(),
            configured: if self.keys.is_empty() {
                "it is not set".to_owned()
            } else {
                format!("it holds {}", self.key_ids().join(", "))
            },
        })
    }
}

/// The key id and body of a sealed value.
fn sealed_parts(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let key = Secrets::generate_key();
        let secrets = Secrets::from_config(&key).expect("a key");
        let sealed = secrets.seal("hunter2").expect("sealed");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"), "{sealed}");
        assert_ne!(sealed, secrets.seal("hunter2").expect("sealed"), "a fresh nonce per value");
        assert_eq!(secrets.open(&sealed).expect("opened"), "hunter2");

        let other = Secrets::from_config(&Secrets::generate_key()).expect("a key");
        assert!(matches!(other.open(&sealed), Err(SecretsError::UnknownKey { .. })));
        assert!(matches!(Secrets::default().check(&sealed), Err(SecretsError::UnknownKey { .. })));
        let message = other.open(&sealed).unwrap_err().to_string();
        assert!(message.contains(secrets.key_ids()[0]) && message.contains("rotate-key"), "{message}");
    }

    #[test]
    fn a_changed_value_is_refused() {
        let secrets = Secrets::from_config(&Secrets::generate_key()).expect("a key");
        let sealed = secrets.seal("hunter2").expect("sealed");
        let last = sealed.chars().last().expect("a sealed value is not empty");
        let flipped = format!("{}{}", &sealed[..sealed.len() - 1], if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(secrets.open(&flipped), Err(SecretsError::Damaged { .. })));
        assert!(matches!(
            secrets.open(&format!("{PREFIX}{}:xx", secrets.key_ids()[0])),
            Err(SecretsError::Damaged { .. })
        ));
    }

    #[test]
    fn old_keys_open_and_only_the_first_seals() {
        let (old, new) = (Secrets::generate_key(), Secrets::generate_key());
        let before = Secrets::from_config(&old).expect("a key");
        let sealed_old = before.seal("a").expect("sealed");
        let both = Secrets::from_config(&format!("{new}, {old}")).expect("two keys");
        assert_eq!(both.open(&sealed_old).expect("opened with the old key"), "a");
        assert!(both.needs_reseal(&sealed_old) && both.needs_reseal("plain"));
        let resealed = both.seal("a").expect("sealed");
        assert!(!both.needs_reseal(&resealed));
        assert_eq!(Secrets::from_config(&new).expect("a key").open(&resealed).expect("opened with the new key"), "a");
    }

    #[test]
    fn without_keys_values_stay_as_they_are() {
        let none = Secrets::from_config(" ").expect("no key");
        assert!(!none.is_configured());
        assert_eq!(none.seal("x").expect("kept as it is"), "x");
        assert_eq!(none.open("x").expect("an unsealed value"), "x");
        assert!(!none.needs_reseal("x"));
    }

    #[test]
    fn bad_keys_are_named_by_position() {
        let good = Secrets::generate_key();
        assert_eq!(Secrets::from_config(&format!("{good},short")).unwrap_err(), SecretsError::BadKey { position: 2 });
        assert!(Secrets::from_config("not base64 at all!").is_err());
    }
}
