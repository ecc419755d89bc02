//! Reading a DAG file: YAML parsing, structural and semantic validation, and errors users can act on.
//!
//! [`load_dag`] returns every error it finds in a file, each as `file:line:column: message`. It works in three
//! passes. The YAML is parsed into a tree of located nodes ([`node`]); a syntax error stops there. The header and
//! each task are then deserialised separately from that tree, dropping a bad field and retrying, so that one run
//! reports all wrong types, unknown fields (with "did you mean") and bad values. Last, the semantic checks of
//! [`validate`] run on what was read: task ids, dependencies, cycles, schedule, timezone, dates, params, templates.
//! They name paths in the spec, which are turned into locations by looking the path up in the tree; for a spec read
//! back from JSON ([`crate::Dag::from_spec`]) there is no tree and locations are 0.

mod groups;
mod node;
pub(crate) mod suggest;
pub(crate) mod validate;

use std::fmt;

use crate::dag::Dag;
use crate::spec::DagSpec;

use self::node::{Kind, Loc, Node, NodeError};
use self::validate::Locator;

/// One problem in a DAG file, at a 1-based line and column (0 when the spec did not come from a file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DagError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl DagError {
    pub(crate) fn new(file: &str, (line, column): Loc, message: impl Into<String>) -> DagError {
        DagError { file: file.to_owned(), line, column, message: message.into() }
    }
}

/// Parse and validate one DAG file. Returns every error found in the file (not just the first).
pub fn load_dag(file: &str, source: &str) -> Result<Dag, Vec<DagError>> {
    let root = match node::parse(source) {
        Ok(root) => root,
        Err(e) => return Err(vec![syntax_error(file, &e)]),
    };
    let mut errors: Vec<NodeError> = Vec::new();
    let Kind::Map(entries) = &root.kind else {
        return Err(vec![DagError::new(
            file,
            root.loc,
            "a DAG file must be a mapping with at least `dag_id` and `tasks`",
        )]);
    };

    // The header is read without its tasks and groups so that bad tasks do not hide header errors, and vice versa.
    let mut header_entries = entries.clone();
    let mut tasks_read = true;
    for (key, value) in &mut header_entries {
        if matches!(key.as_str(), Some("tasks" | "groups")) {
            tasks_read &= key.as_str() != Some("tasks") || matches!(value.kind, Kind::Seq(_));
            *value = Node { kind: Kind::Seq(Vec::new()), ..value.clone() };
        }
    }
    if root.get("tasks").is_none() && root.get("groups").is_some() {
        // A DAG may hold all its tasks in groups.
        let empty = Node { kind: Kind::Seq(Vec::new()), ..root.clone() };
        header_entries.push((Node { kind: Kind::Str("tasks".to_owned()), ..root.clone() }, empty));
    }
    let header_node = Node { kind: Kind::Map(header_entries), ..root.clone() };
    let mut header = node::deserialize_collecting::<DagSpec>(&header_node, &mut errors);
    if !tasks_read {
        // `tasks` was not a list: that is reported already, not also as "no tasks".
        header.dropped.push("tasks".to_owned());
    }
    let (flat, extra) = groups::read(file, &root, &mut errors);

    // Checks still run on what could be read, minus the fields that had errors, so that one pass reports as much as
    // possible; the header's own checks need at least the header.
    let header_ok = header.value.is_some();
    let mut spec = header.value.unwrap_or_else(|| DagSpec::new("", Vec::new()));
    spec.tasks = flat.tasks;
    spec.groups = flat.groups;
    let locator =
        Locator::new(Some(&root), flat.task_paths, flat.group_paths).with_dropped(header.dropped, flat.task_dropped);
    let mut all: Vec<DagError> = errors
        .into_iter()
        .map(|e| DagError::new(file, e.loc.unwrap_or(root.loc), with_hint(e.message)))
        .chain(extra)
        .collect();
    let checked = validate::check(spec, file, &locator, header_ok, &flat.unread_ids);
    match checked {
        Ok(dag) if all.is_empty() => Ok(dag),
        Ok(_) => {
            sort(&mut all);
            Err(all)
        }
        Err(more) => {
            all.extend(more);
            sort(&mut all);
            Err(all)
        }
    }
}

fn sort(errors: &mut [DagError]) {
    errors.sort_by_key(|e| (e.line, e.column));
}

/// Settings that belong to tasks, for the hint on an unknown field at the top of the file.
const TASK_ARG_FIELDS: [&str; 9] = [
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "queue",
    "pool",
    "priority_weight",
    "env",
];

/// Adds a hint to an unknown-field error for a task setting written at the top of the file or on a group.
fn with_hint(message: String) -> String {
    let Some(field) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) else {
        return message;
    };
    if message.contains("did you mean") || message.contains("`dag_id`") {
        return message;
    }
    match suggest::closest(field, TASK_ARG_FIELDS).or(TASK_ARG_FIELDS.into_iter().find(|f| *f == field)) {
        Some(setting) if !message.contains(&format!("`{setting}`")) => {
            format!("{message}; `{setting}` is a task setting: put it under `default_args` or on a task")
        }
        _ => message,
    }
}

fn syntax_error(file: &str, e: &serde_saphyr::Error) -> DagError {
    let loc = node::saphyr_error_loc(e);
    use serde_saphyr::budget::BudgetBreach;
    if let serde_saphyr::Error::Budget { breach: BudgetBreach::Depth { .. }, .. } = e.without_snippet() {
        let message = format!("invalid YAML: mappings and lists nest deeper than {} levels", node::MAX_DEPTH);
        return DagError::new(file, loc, message);
    }
    let mut message = format!("invalid YAML: {}", e.without_snippet());
    // The location is already in front of the message.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    // `@` and `` ` `` cannot start a plain YAML scalar, and `schedule: @daily` is the usual way to hit that.
    if message.contains("reserved") || message.contains('@') {
        message.push_str(" (values starting with @ must be quoted, e.g. schedule: \"@daily\")");
    }
    DagError::new(file, loc, message)
}

/// `", did you mean `x`?"` or nothing, for messages elsewhere in the crate.
pub(crate) fn suggest_hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest::hint(word, candidates)
}

#[cfg(test)]
mod tests;
