-- Connections: how tasks reach outside systems (databases, HTTP APIs). The API never returns a password or a
-- secret extra in clear.
CREATE TABLE connections (
    conn_id      TEXT PRIMARY KEY,
    conn_type    TEXT NOT NULL,
    description  TEXT,
    host         TEXT,
    login        TEXT,
    password     TEXT,
    schema_name  TEXT,
    port         BIGINT,
    extra        TEXT
);

-- Pools cap how many task instances of any DAG run at once against a shared resource; slots -1 means unlimited.
CREATE TABLE pools (
    name              TEXT PRIMARY KEY,
    slots             BIGINT NOT NULL,
    description       TEXT,
    include_deferred  BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');
CREATE INDEX task_instances_pool_state ON task_instances (pool, state);
