-- Named worker tokens: each worker, or group of workers, presents its own token, which can be revoked alone; the
-- token row says which worker used it last and the worker's row which token it presented. Only the secret's
-- SHA-256 is kept. The shared SLUICE_WORKER_TOKEN keeps working beside them.
CREATE TABLE worker_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    created_by    TEXT,
    last_used_ms  INTEGER,
    last_worker   TEXT,
    revoked_ms    INTEGER
);
ALTER TABLE workers ADD COLUMN token_name TEXT;
