-- Users, API keys and per-DAG access. Passwords are argon2 hashes (PHC strings); an API key's secret is stored as
-- its SHA-256 only, so the key is shown once, when it is created.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- a key acts for its owner and never with more rights than the owner has now
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    last_used_ms  BIGINT,
    revoked_ms    BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- The DAG file's access_control as JSON; NULL when the DAG is open to every role.
ALTER TABLE dags ADD COLUMN access_control TEXT;
