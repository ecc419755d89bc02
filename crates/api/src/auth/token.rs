//! Access tokens: JWTs signed with the server's secret key (HS256), as Airflow 3's `/auth/token` hands out.
//!
//! A token names its user by id; each request reads the user again, so a deleted user's tokens stop working at
//! once and a changed role applies to tokens already handed out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sluice_store::UserRow;

/// Every Sluice token carries this audience, so a JWT signed with the same secret for something else is refused.
const AUDIENCE: &str = "sluice";

/// How tokens are signed and how long they last.
pub struct AuthConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// For people reading a token; authorisation uses the user's role as stored now.
    pub username: String,
    pub role: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AuthConfig {
    pub fn new(secret: &str, ttl: Duration) -> AuthConfig {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: a configured lifetime means what it says.
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        AuthConfig {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user`, valid for the configured lifetime.
    pub fn issue(&self, user: &UserRow) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now_secs();
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            role: user.role.to_string(),
            aud: AUDIENCE.into(),
            iat,
            exp: iat.saturating_add(self.ttl.as_secs().max(1)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Role;
    use uuid::Uuid;

    use super::*;

    fn user() -> UserRow {
        UserRow {
            id: Uuid::now_v7(),
            username: "ada".into(),
            password_hash: String::new(),
            role: Role::Op,
            created: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_token_verifies_with_its_secret_only() {
        let config = AuthConfig::new("secret-one", Duration::from_secs(60));
        let user = user();
        let token = config.issue(&user).unwrap();
        let claims = config.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.username.as_str(), claims.exp - claims.iat), (user.id.to_string(), "ada", 60));
        let other = AuthConfig::new("secret-two", Duration::from_secs(60));
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid)));
        assert!(matches!(config.verify("not.a.token"), Err(TokenError::Invalid)));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let config = AuthConfig::new("secret", Duration::from_secs(60));
        let past = now_secs() - 120;
        let claims = Claims {
            sub: Uuid::now_v7().to_string(),
            username: "ada".into(),
            role: "Admin".into(),
            aud: AUDIENCE.into(),
            iat: past,
            exp: past + 60,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &config.encoding).unwrap();
        assert!(matches!(config.verify(&token), Err(TokenError::Expired)));
    }
}
