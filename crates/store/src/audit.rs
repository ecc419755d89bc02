//! The audit log: who changed what over the API, when and from where (Airflow's event log).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::dags::{Bind, bind_all, placeholders};
use crate::error::Result;
use crate::rows::opt_json;
use crate::time::{from_ms, to_ms};

/// One change, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub when: DateTime<Utc>,
    pub event: String,
    /// The user who made it (through their API key or not).
    pub owner: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    /// The request (with its secrets masked), the answer's status and the caller's address.
    pub extra: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub event: NewEvent,
}

/// Which events to list, newest first unless `oldest_first`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub id: Option<i64>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub owner: Option<String>,
    pub event: Option<String>,
    pub included_events: Vec<String>,
    pub excluded_events: Vec<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    /// DAGs the caller may not read: their events are left out.
    pub hidden_dag_ids: Vec<String>,
    pub oldest_first: bool,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    pub async fn record_event(&self, event: &NewEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_log (when_ms, event, owner, dag_id, run_id, task_id, map_index, try_number, extra)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(to_ms(event.when))
        .bind(&event.event)
        .bind(event.owner.as_deref())
        .bind(event.dag_id.as_deref())
        .bind(event.run_id.as_deref())
        .bind(event.task_id.as_deref())
        .bind(event.map_index)
        .bind(event.try_number)
        .bind(event.extra.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One page of events, and how many match in all.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<(Vec<EventRow>, i64)> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut binds = Vec::new();
        let texts = [
            ("dag_id", &filter.dag_id),
            ("run_id", &filter.run_id),
            ("task_id", &filter.task_id),
            ("owner", &filter.owner),
            ("event", &filter.event),
        ];
        let equal = texts.into_iter().filter_map(|(column, value)| Some((column, "=", Bind::Text(value.clone()?))));
        let numbers = [
            ("id", "=", filter.id),
            ("when_ms", ">=", filter.after.map(to_ms)),
            ("when_ms", "<=", filter.before.map(to_ms)),
        ];
        let compared = numbers.into_iter().filter_map(|(column, op, value)| Some((column, op, Bind::Int(value?))));
        for (column, op, value) in equal.chain(compared) {
            binds.push(value);
            conditions.push(format!("{column} {op} ${}", binds.len()));
        }
        // An event of no DAG (a variable changed) is hidden from nobody.
        for (list, test) in [
            (&filter.included_events, "event IN"),
            (&filter.excluded_events, "event NOT IN"),
            (&filter.hidden_dag_ids, "dag_id IS NULL OR dag_id NOT IN"),
        ] {
            if list.is_empty() {
                continue;
            }
            let start = binds.len() + 1;
            binds.extend(list.iter().cloned().map(Bind::Text));
            conditions.push(format!("({test} ({}))", placeholders(start, list.len())));
        }
        let where_clause = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM event_log WHERE {where_clause}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds).fetch_one(self.pool()).await?.try_get("n")?;
        let sql = format!(
            "SELECT id, when_ms, event, owner, dag_id, run_id, task_id, map_index, try_number, extra FROM event_log
              WHERE {where_clause} ORDER BY id {} LIMIT {} OFFSET {}",
            if filter.oldest_first { "ASC" } else { "DESC" },
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        let events = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok((events, total))
    }
}

fn decode(row: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: row.try_get("id")?,
        event: NewEvent {
            when: from_ms(row.try_get("when_ms")?),
            event: row.try_get("event")?,
            owner: row.try_get("owner")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            map_index: row.try_get("map_index")?,
            try_number: row.try_get("try_number")?,
            extra: opt_json(row, "extra")?.unwrap_or(Value::Null),
        },
    })
}
