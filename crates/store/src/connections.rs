//! Connections and pools: the shared configuration that operators edit over the API.

use sqlx::Row;
use sqlx::any::AnyRow;

use sluice_core::connection::Connection;

use crate::error::Result;
use crate::rows::flag;
use crate::{Reads, Secrets, Store};

/// A connection as the API and tasks see it. The API redacts `password` and secret-looking `extra` keys before
/// answering; in the database both are sealed (see [`Secrets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    pub conn_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub extra: Option<String>,
}

impl ConnectionRow {
    /// The connection as tasks and notifiers use it (Airflow's JSON form), or why it cannot be used.
    pub fn into_connection(self) -> std::result::Result<Connection, String> {
        let port = self.port.map(|p| u16::try_from(p).map_err(|_| format!("port {p} is out of range"))).transpose()?;
        let extra = match self.extra.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(Connection::parse_extra(text)?),
        };
        Ok(Connection {
            conn_type: self.conn_type,
            host: self.host,
            port,
            login: self.login,
            password: self.password,
            schema: self.schema,
            extra,
        })
    }

    const COLUMNS: &'static str = "conn_id, conn_type, description, host, login, password, schema_name, port, extra";

    fn decode(r: &AnyRow, secrets: &Secrets) -> Result<ConnectionRow> {
        let open = |column: &str| -> Result<Option<String>> {
            let stored: Option<String> = r.try_get(column)?;
            Ok(stored.map(|s| secrets.open(&s)).transpose()?)
        };
        Ok(ConnectionRow {
            conn_id: r.try_get("conn_id")?,
            conn_type: r.try_get("conn_type")?,
            description: r.try_get("description")?,
            host: r.try_get("host")?,
            login: r.try_get("login")?,
            password: open("password")?,
            schema: r.try_get("schema_name")?,
            port: r.try_get("port")?,
            extra: open("extra")?,
        })
    }

    /// This connection as stored: its secrets sealed.
    fn sealed(&self, secrets: &Secrets) -> Result<ConnectionRow> {
        Ok(ConnectionRow {
            password: self.password.as_deref().map(|p| secrets.seal(p)).transpose()?,
            extra: self.extra.as_deref().map(|e| secrets.seal(e)).transpose()?,
            ..self.clone()
        })
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        query
            .bind(self.conn_id.as_str())
            .bind(self.conn_type.as_str())
            .bind(self.description.as_deref())
            .bind(self.host.as_deref())
            .bind(self.login.as_deref())
            .bind(self.password.as_deref())
            .bind(self.schema.as_deref())
            .bind(self.port)
            .bind(self.extra.as_deref())
    }
}

/// A pool with how its slots are used right now, counted from the task instances that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    /// `-1` for unlimited.
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
}

impl PoolRow {
    /// Airflow counts running and queued task instances as occupying a slot; scheduled ones wait for one.
    pub fn occupied_slots(&self) -> i64 {
        self.running_slots + self.queued_slots
    }

    /// `-1` when the pool is unlimited.
    pub fn open_slots(&self) -> i64 {
        if self.slots < 0 { -1 } else { (self.slots - self.occupied_slots()).max(0) }
    }
}

/// The pool's own fields, as a user sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
}

impl PoolSettings {
    /// Binds `$1` to `$4`: name, slots, description, include_deferred.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        query.bind(self.name.as_str()).bind(self.slots).bind(self.description.as_deref()).bind(self.include_deferred)
    }
}

/// A pool with the slots its task instances take in each state (a task may take several: `pool_slots`).
const POOL_SELECT: &str = "SELECT p.name, p.slots, p.description, p.include_deferred,
        (SELECT CAST(COALESCE(SUM(t.pool_slots), 0) AS BIGINT) FROM task_instances t
          WHERE t.pool = p.name AND t.state = 'running') AS running_slots,
        (SELECT CAST(COALESCE(SUM(t.pool_slots), 0) AS BIGINT) FROM task_instances t
          WHERE t.pool = p.name AND t.state = 'queued') AS queued_slots,
        (SELECT CAST(COALESCE(SUM(t.pool_slots), 0) AS BIGINT) FROM task_instances t
          WHERE t.pool = p.name AND t.state = 'scheduled') AS scheduled_slots
   FROM pools p";

fn decode_pool(r: &AnyRow) -> Result<PoolRow> {
    Ok(PoolRow {
        name: r.try_get("name")?,
        slots: r.try_get("slots")?,
        description: r.try_get("description")?,
        include_deferred: flag(r, "include_deferred")?,
        running_slots: r.try_get("running_slots")?,
        queued_slots: r.try_get("queued_slots")?,
        scheduled_slots: r.try_get("scheduled_slots")?,
    })
}

impl Reads<'_> {
    /// A connection, read in the transaction that leases the task using it: from a secrets backend if one has
    /// it, else from the database.
    pub async fn connection(&mut self, conn_id: &str) -> Result<Option<ConnectionRow>> {
        if let Some(conn) = self.tx.backends.connection(conn_id)? {
            return Ok(Some(conn));
        }
        let sql = format!("SELECT {} FROM connections WHERE conn_id = $1", ConnectionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(conn_id).fetch_optional(&mut *self.tx.inner).await?;
        row.as_ref().map(|r| ConnectionRow::decode(r, &self.tx.secrets)).transpose()
    }

    /// Every connection, for templates that read `conn`: the secrets backends' and the database's, a backend's
    /// winning for an id both have.
    pub async fn connections(&mut self) -> Result<Vec<ConnectionRow>> {
        let sql = format!("SELECT {} FROM connections ORDER BY conn_id", ConnectionRow::COLUMNS);
        let rows = sqlx::query(&sql).fetch_all(&mut *self.tx.inner).await?;
        let mut all = std::collections::BTreeMap::new();
        for row in rows {
            let conn = ConnectionRow::decode(&row, &self.tx.secrets)?;
            all.insert(conn.conn_id.clone(), conn);
        }
        all.extend(self.tx.backends.connections()?);
        Ok(all.into_values().collect())
    }
}

impl Store {
    /// Creates a connection; `false`, changing nothing, when the id exists already.
    pub async fn create_connection(&self, conn: &ConnectionRow) -> Result<bool> {
        let sql = format!(
            "INSERT INTO connections ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (conn_id) DO NOTHING",
            ConnectionRow::COLUMNS
        );
        let sealed = conn.sealed(self.secrets())?;
        Ok(sealed.bind(sqlx::query(&sql)).execute(self.pool()).await?.rows_affected() == 1)
    }

    /// Replaces every field of an existing connection; `false` when there is none.
    pub async fn update_connection(&self, conn: &ConnectionRow) -> Result<bool> {
        let sql = "UPDATE connections SET conn_type = $2, description = $3, host = $4, login = $5, password = $6,
                          schema_name = $7, port = $8, extra = $9
                    WHERE conn_id = $1";
        let sealed = conn.sealed(self.secrets())?;
        Ok(sealed.bind(sqlx::query(sql)).execute(self.pool()).await?.rows_affected() == 1)
    }

    /// A connection as tasks get it: from a secrets backend if one has it, else from the database.
    pub async fn resolve_connection(&self, conn_id: &str) -> Result<Option<ConnectionRow>> {
        if let Some(conn) = self.backends.connection(conn_id)? {
            return Ok(Some(conn));
        }
        self.get_connection(conn_id).await
    }

    pub async fn get_connection(&self, conn_id: &str) -> Result<Option<ConnectionRow>> {
        let sql = format!("SELECT {} FROM connections WHERE conn_id = $1", ConnectionRow::COLUMNS);
        let row = sqlx::query(&sql).bind(conn_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(|r| ConnectionRow::decode(r, self.secrets())).transpose()
    }

    pub async fn delete_connection(&self, conn_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM connections WHERE conn_id = $1").bind(conn_id).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    /// One page of connections by id, and how many there are in all.
    pub async fn list_connections(&self, limit: i64, offset: i64) -> Result<(Vec<ConnectionRow>, i64)> {
        let total: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM connections").fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT {} FROM connections ORDER BY conn_id LIMIT {limit} OFFSET {offset}",
            ConnectionRow::COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(|r| ConnectionRow::decode(r, self.secrets())).collect::<Result<_>>()?, total))
    }

    /// Creates a pool; `false`, changing nothing, when the name exists already.
    pub async fn create_pool(&self, pool: &PoolSettings) -> Result<bool> {
        let sql = "INSERT INTO pools (name, slots, description, include_deferred) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (name) DO NOTHING";
        Ok(pool.bind(sqlx::query(sql)).execute(self.pool()).await?.rows_affected() == 1)
    }

    /// Replaces the settings of pool `name` (which `pool.name` may rename); `false` when there is none.
    pub async fn update_pool(&self, name: &str, pool: &PoolSettings) -> Result<bool> {
        let sql = "UPDATE pools SET name = $1, slots = $2, description = $3, include_deferred = $4 WHERE name = $5";
        Ok(pool.bind(sqlx::query(sql)).bind(name).execute(self.pool()).await?.rows_affected() == 1)
    }

    pub async fn get_pool(&self, name: &str) -> Result<Option<PoolRow>> {
        let sql = format!("{POOL_SELECT} WHERE p.name = $1");
        let row = sqlx::query(&sql).bind(name).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode_pool).transpose()
    }

    pub async fn delete_pool(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pools WHERE name = $1").bind(name).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    /// One page of pools by name, and how many there are in all.
    pub async fn list_pools(&self, limit: i64, offset: i64) -> Result<(Vec<PoolRow>, i64)> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM pools").fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!("{POOL_SELECT} ORDER BY p.name LIMIT {limit} OFFSET {offset}");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        Ok((rows.iter().map(decode_pool).collect::<Result<_>>()?, total))
    }
}

/// The columns that hold secrets at rest: table, key column, secret column.
const SECRET_COLUMNS: [(&str, &str, &str); 3] =
    [("connections", "conn_id", "password"), ("connections", "conn_id", "extra"), ("variables", "key", "val")];

/// What [`Store::check_secrets`] found in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretsCheck {
    /// Values that `sluice rotate-key` would seal again: stored plain, or sealed with another key than the first.
    pub to_reseal: usize,
}

impl Store {
    /// Checks that every stored secret opens with the configured keys: a process started with the wrong key is
    /// stopped at once with a message naming the key the database needs, not at the first task that reads one.
    pub async fn check_secrets(&self) -> Result<SecretsCheck> {
        let mut check = SecretsCheck::default();
        for (table, _, column) in SECRET_COLUMNS {
            let sql = format!("SELECT {column} AS v FROM {table} WHERE {column} IS NOT NULL");
            for row in sqlx::query(&sql).fetch_all(self.pool()).await? {
                let stored: String = row.try_get("v")?;
                self.secrets().check(&stored)?;
                check.to_reseal += usize::from(self.secrets().needs_reseal(&stored));
            }
        }
        Ok(check)
    }

    /// Seals every stored secret again with the first configured key (`sluice rotate-key`), in one transaction;
    /// how many values changed. A value edited meanwhile is left as its writer sealed it.
    pub async fn reseal_secrets(&self) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        let mut resealed = 0;
        for (table, key, column) in SECRET_COLUMNS {
            let sql = format!("SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL");
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
            let update = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3");
            for row in rows {
                let (id, stored): (String, String) = (row.try_get("k")?, row.try_get("v")?);
                if !self.secrets().needs_reseal(&stored) {
                    continue;
                }
                let sealed = self.secrets().seal(&self.secrets().open(&stored)?)?;
                let done = sqlx::query(&update).bind(sealed).bind(id).bind(&stored).execute(&mut *tx).await?;
                resealed += usize::try_from(done.rows_affected()).unwrap_or(0);
            }
        }
        tx.commit().await?;
        Ok(resealed)
    }
}
