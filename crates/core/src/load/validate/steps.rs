//! Checks of transform steps that read more than column names: the assets `join` steps read and the SQL of `derive`
//! steps, reported at the step in the file.

use super::{Errors, Locator, check_asset_uri, is_template};
use crate::load::node::Seg;
use crate::ops_spec::{Step, check_sql_expression};
use crate::spec::TaskSpec;

pub(super) fn check_steps(i: usize, task: &TaskSpec, loc: &Locator<'_>, errors: &mut Errors<'_>) {
    let id = &task.id;
    for (j, step) in task.steps.iter().flatten().enumerate() {
        let at = |rest: &[Seg<'_>]| {
            let mut path = vec![Seg::Key("steps"), Seg::Index(j)];
            path.extend_from_slice(rest);
            loc.task(i, &path)
        };
        match step {
            Step::Join(join) => {
                if let Err(reason) = check_asset_uri(&join.asset) {
                    let uri = &join.asset;
                    errors.push(
                        at(&[Seg::Key("join"), Seg::Key("asset")]),
                        format!("task `{id}`: invalid asset URI {uri:?} to join: {reason}"),
                    );
                }
                if join.on.is_empty() {
                    errors.push(
                        at(&[Seg::Key("join"), Seg::Key("on")]),
                        format!("task `{id}`: a join needs key columns in `on`"),
                    );
                }
            }
            Step::Derive(columns) => {
                for (column, expression) in columns {
                    // A template is rendered when the task runs; its SQL is only known then.
                    let checked = if is_template(expression) { Ok(()) } else { check_sql_expression(expression) };
                    if let Err(reason) = checked {
                        errors.push(
                            at(&[Seg::Key("derive"), Seg::Key(column)]),
                            format!("task `{id}`: derived column {column:?}: invalid SQL expression {expression:?}: {reason}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
