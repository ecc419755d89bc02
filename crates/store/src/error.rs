//! The store's error type.

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that Sluice cannot read back: a bug or a manual edit of the database.
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A change that needs a stronger lock on its run than the one held: a bug in the caller.
    #[error("lock order: {0}")]
    LockOrder(&'static str),
    /// A secret that cannot be opened with the configured keys.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A secrets backend that cannot be read.
    #[error(transparent)]
    Backend(#[from] crate::backends::BackendError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt { what, detail: detail.to_string() }
    }

    /// Whether this is a unique-constraint violation (a concurrent writer got there first).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }

    /// Whether the database could not be reached: no connection within the pool's wait, a connection refused,
    /// reset or closed, or PostgreSQL shutting down, starting up or out of connections. The same request may
    /// succeed once the database is back; nothing of it was committed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
            // Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now;
            // 53300: too many connections.
            Error::Database(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
            }),
            _ => false,
        }
    }

    /// Whether PostgreSQL refused a text value it cannot store (a NUL character): bad input, not a failure.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            // character_not_in_repertoire
            Error::Database(sqlx::Error::Database(e)) => e.code().as_deref() == Some("22021"),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_unavailable_and_a_failed_statement_is_not() {
        let io = |kind| Error::Database(sqlx::Error::Io(std::io::Error::from(kind)));
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(io(std::io::ErrorKind::ConnectionRefused).is_unavailable());
        assert!(io(std::io::ErrorKind::ConnectionReset).is_unavailable());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!Error::LockOrder("a bug").is_unavailable());
    }
}
