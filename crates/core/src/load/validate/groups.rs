//! Checks of task groups: their ids, and that each task's group and id agree. A file's groups are built consistent by
//! the loader, so most of these only fail for a stored spec edited by hand; the id rules and the empty group are the
//! file's.

use std::collections::HashMap;

use super::{Errors, Locator, valid_id};
use crate::load::node::Seg;
use crate::spec::DagSpec;

/// Airflow's rule for group ids, stricter than for task ids: the `.` joins a group's id to those of its members.
fn valid_group_key(id: &str) -> bool {
    valid_id(id) && !id.contains('.')
}

pub(super) fn check_groups(spec: &DagSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (g, group) in spec.groups.iter().enumerate() {
        let id = group.id.as_str();
        let at = loc.group(g, &[Seg::Key("id")]);
        match &group.parent {
            Some(parent) if !first_seen.contains_key(parent.as_str()) => {
                errors.push(at, format!("group `{id}`: its parent `{parent}` is not a group listed before it"));
            }
            Some(parent) if !id.strip_prefix(parent.as_str()).is_some_and(|rest| rest.starts_with('.')) => {
                errors.push(at, format!("group `{id}`: the id of a group in `{parent}` starts with `{parent}.`"));
            }
            _ => {}
        }
        let label = group.label();
        if !valid_group_key(label) {
            errors.push(
                at,
                format!("invalid group id {label:?}: use letters, digits, `_` and `-`, at most 250 characters"),
            );
        }
        if let Some(&first) = first_seen.get(id) {
            let (line, _) = loc.group(first, &[Seg::Key("id")]);
            let where_ = if line > 0 { format!(" (first defined on line {line})") } else { String::new() };
            errors.push(at, format!("duplicate group id `{id}`{where_}"));
            continue;
        }
        first_seen.insert(id, g);
        if spec.tasks.iter().any(|t| t.id == id) {
            errors.push(at, format!("group id `{id}` is also the id of a task: they share one namespace"));
        }
        let prefix = format!("{id}.");
        let holds_tasks =
            spec.tasks.iter().any(|t| t.group.as_deref().is_some_and(|tg| tg == id || tg.starts_with(&prefix)));
        if !holds_tasks {
            errors.push(at, format!("group `{id}` has no tasks"));
        }
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        let Some(group) = &task.group else {
            continue;
        };
        let at = loc.task(i, &[Seg::Key("id")]);
        if !first_seen.contains_key(group.as_str()) {
            errors.push(at, format!("task `{}`: unknown group `{group}`", task.id));
            continue;
        }
        match task.id.strip_prefix(group.as_str()).and_then(|rest| rest.strip_prefix('.')) {
            None => {
                errors.push(at, format!("task `{}`: the id of a task in `{group}` starts with `{group}.`", task.id))
            }
            Some(label) if label.contains('.') => errors.push(
                at,
                format!("invalid task id {label:?} in group `{group}`: an id in a group may not contain `.`"),
            ),
            Some(_) => {}
        }
    }
}
