//! The features of a few records without a data frame. A real-time prediction usually carries one record, and
//! building a frame for it and running a lazy plan per transform step costs far more than the arithmetic itself.
//! A fitted transform made only of `select`, `rename`, `fill_missing`, `scale` (standardize, min-max) and `one_hot`
//! steps is replayed here value by value, exactly as polars replays it on a frame built from the records. Anything
//! else — another step, a value that polars would have to cast between text and numbers, a missing column, a
//! feature left missing — answers `None`, and the caller replays the transform with polars, which gives the answer
//! or the error it always gave.

use std::borrow::Cow;

use ndarray::Array2;
use serde_json::{Map, Value};
use sluice_core::ops_spec::Literal;

use super::{Signature, request_dtype};
use crate::transform::{FittedStep, FittedTransform};

/// A column's type, as the frame built from the records has it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Text,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Missing,
    Int(i64),
    Float(f64),
    Text(&'a str),
    Bool(bool),
}

#[derive(Debug, Clone)]
struct Column<'a> {
    name: Cow<'a, str>,
    kind: Kind,
    cell: Cell<'a>,
}

type Row<'a> = Vec<Column<'a>>;

/// The feature matrix of `records`, or `None` when polars must replay the transform (see the module doc).
pub(super) fn features(
    transform: &FittedTransform,
    signature: &Signature,
    records: &[Map<String, Value>],
) -> Option<Array2<f64>> {
    let width = signature.features.len();
    let mut matrix = Array2::zeros((records.len(), width));
    for (r, record) in records.iter().enumerate() {
        let mut row = input_row(transform, signature, record)?;
        for step in &transform.steps {
            row = apply(row, step)?;
        }
        for (c, name) in signature.features.iter().enumerate() {
            matrix[[r, c]] = match row.iter().find(|column| column.name == name.as_str())?.cell {
                Cell::Int(i) => i as f64,
                Cell::Float(x) => x,
                Cell::Bool(b) => f64::from(u8::from(b)),
                Cell::Missing | Cell::Text(_) => return None,
            };
        }
    }
    Some(matrix)
}

/// The record's input columns, typed as the signature says, and the target standing as missing if the transform
/// was fitted with it (as `ServedVersion::frame_features` does).
fn input_row<'a>(
    transform: &'a FittedTransform,
    signature: &'a Signature,
    record: &'a Map<String, Value>,
) -> Option<Row<'a>> {
    let mut row: Row<'a> = signature
        .inputs
        .iter()
        .map(|input| {
            let kind = kind(&input.dtype);
            Some(Column { name: Cow::Borrowed(input.name.as_str()), kind, cell: cell(record.get(&input.name), kind) })
        })
        .collect::<Option<_>>()?;
    if let Some(target) = transform.input_schema.iter().find(|c| c.name == signature.target)
        && !row.iter().any(|c| c.name == target.name.as_str())
    {
        let kind = kind(request_dtype(&target.dtype));
        row.push(Column { name: Cow::Borrowed(target.name.as_str()), kind, cell: Cell::Missing });
    }
    Some(row)
}

fn kind(request_dtype: &str) -> Kind {
    match request_dtype {
        "int" => Kind::Int,
        "float" => Kind::Float,
        "bool" => Kind::Bool,
        _ => Kind::Text,
    }
}

/// A record's value as the frame's column of `kind` holds it (a value of another type is missing there too).
fn cell(value: Option<&Value>, kind: Kind) -> Cell<'_> {
    let cell = match kind {
        Kind::Int => value.and_then(Value::as_i64).map(Cell::Int),
        Kind::Float => value.and_then(Value::as_f64).map(Cell::Float),
        Kind::Bool => value.and_then(Value::as_bool).map(Cell::Bool),
        Kind::Text => value.and_then(Value::as_str).map(Cell::Text),
    };
    cell.unwrap_or(Cell::Missing)
}

fn apply<'a>(mut row: Row<'a>, step: &'a FittedStep) -> Option<Row<'a>> {
    match step {
        FittedStep::Select(names) => {
            let selected: Row<'a> =
                names.iter().map(|name| find(&row, name).map(|i| row[i].clone())).collect::<Option<_>>()?;
            unique(selected)
        }
        FittedStep::Rename(mapping) => {
            let at: Vec<usize> = mapping.keys().map(|old| find(&row, old)).collect::<Option<_>>()?;
            for (i, new) in at.into_iter().zip(mapping.values()) {
                row[i].name = Cow::Borrowed(new.as_str());
            }
            unique(row)
        }
        FittedStep::FillMissing(values) => {
            for (name, value) in values {
                let i = find(&row, name)?;
                row[i] = fill(&row[i], value)?;
            }
            Some(row)
        }
        FittedStep::Scale(params) => {
            for (name, affine) in params {
                let i = find(&row, name)?;
                let column = &mut row[i];
                let x = match column.cell {
                    Cell::Int(i) => Some(i as f64),
                    Cell::Float(x) => Some(x),
                    Cell::Missing if matches!(column.kind, Kind::Int | Kind::Float) => None,
                    _ => return None,
                };
                column.kind = Kind::Float;
                // Times the reciprocal, as polars computes a division by a constant: the same bits.
                column.cell = x.map_or(Cell::Missing, |x| Cell::Float((x - affine.center) * (1.0 / affine.scale)));
            }
            Some(row)
        }
        FittedStep::OneHot(categories) => {
            for (name, values) in categories {
                let column = &row[find(&row, name)?];
                let value = match (column.kind, column.cell) {
                    (Kind::Text, Cell::Text(text)) => Some(text),
                    (Kind::Text, Cell::Missing) => None,
                    _ => return None,
                };
                for category in values {
                    let indicator = Column {
                        name: Cow::Owned(format!("{name}_{category}")),
                        kind: Kind::Int,
                        cell: Cell::Int(i64::from(value == Some(category.as_str()))),
                    };
                    // As polars' `with_columns`: a column of the same name is replaced.
                    match find(&row, &indicator.name) {
                        Some(i) => row[i] = indicator,
                        None => row.push(indicator),
                    }
                }
            }
            row.retain(|column| !categories.contains_key(column.name.as_ref()));
            Some(row)
        }
        _ => None,
    }
}

/// The column filled with `value` where it is missing; the column takes the type polars gives it (an integer
/// column filled with a float becomes a float column). Text and numbers never meet here.
fn fill<'a>(column: &Column<'a>, value: &'a Literal) -> Option<Column<'a>> {
    let (kind, cell) = match (column.kind, column.cell, value) {
        (Kind::Int, Cell::Missing, Literal::Int(i)) => (Kind::Int, Cell::Int(*i)),
        (Kind::Int, Cell::Int(i), Literal::Int(_)) => (Kind::Int, Cell::Int(i)),
        (Kind::Int | Kind::Float, Cell::Missing, Literal::Float(x)) => (Kind::Float, Cell::Float(*x)),
        (Kind::Float, Cell::Missing, Literal::Int(i)) => (Kind::Float, Cell::Float(*i as f64)),
        (Kind::Int, Cell::Int(i), Literal::Float(_)) => (Kind::Float, Cell::Float(i as f64)),
        (Kind::Float, Cell::Float(x), Literal::Int(_) | Literal::Float(_)) => (Kind::Float, Cell::Float(x)),
        (Kind::Text, Cell::Missing, Literal::String(s)) => (Kind::Text, Cell::Text(s.as_str())),
        (Kind::Text, Cell::Text(t), Literal::String(_)) => (Kind::Text, Cell::Text(t)),
        (Kind::Bool, Cell::Missing, Literal::Bool(b)) => (Kind::Bool, Cell::Bool(*b)),
        (Kind::Bool, Cell::Bool(b), Literal::Bool(_)) => (Kind::Bool, Cell::Bool(b)),
        _ => return None,
    };
    Some(Column { name: column.name.clone(), kind, cell })
}

fn find(row: &Row<'_>, name: &str) -> Option<usize> {
    row.iter().position(|column| column.name == name)
}

/// The row if its names are unique (polars refuses a frame with two columns of one name).
fn unique(row: Row<'_>) -> Option<Row<'_>> {
    let clash = row.iter().enumerate().any(|(i, a)| row[..i].iter().any(|b| a.name == b.name));
    (!clash).then_some(row)
}

#[cfg(test)]
mod tests {
    use polars::df;
    use polars::prelude::*;
    use serde_json::json;
    use sluice_core::serving::InputColumn;

    use super::*;
    use crate::lake::Lake;

    /// A frame like the penguins: an integer column with missing values and an odd count (its median has a
    /// fraction), a float column, two text columns with missing values, the target.
    fn training() -> DataFrame {
        df!(
            "species" => ["a", "b", "a", "c", "b"],
            "island" => [Some("x"), Some("y"), None, Some("z"), Some("x")],
            "sex" => [Some("m"), None, Some("f"), Some("f"), Some("m")],
            "mass" => [Some(3000i64), Some(4001), None, Some(5000), Some(3500)],
            "bill" => [Some(39.1f64), None, Some(45.2), Some(50.0), Some(41.0)],
        )
        .unwrap()
    }

    fn penguin_steps() -> serde_json::Value {
        json!([
            {"select": ["species", "island", "sex", "mass", "bill"]},
            {"fill_missing": {"columns": ["mass", "bill"], "strategy": "median"}},
            {"fill_missing": {"columns": ["sex"], "strategy": "mode"}},
            {"one_hot": {"columns": ["island", "sex"]}},
            {"standardize": {"columns": ["mass", "bill"]}},
        ])
    }

    fn fitted(steps: serde_json::Value) -> (FittedTransform, Signature) {
        let steps = serde_json::from_value::<Vec<sluice_core::ops_spec::Step>>(steps).unwrap();
        let (out, transform) =
            crate::transform::fit(training(), &steps, &Lake::new("/no/lake/needed"), crate::test_util::ds()).unwrap();
        let features = out.get_column_names().iter().map(|c| c.to_string()).filter(|c| c != "species").collect();
        let inputs = transform
            .required_inputs("species")
            .into_iter()
            .map(|c| InputColumn { name: c.name, dtype: request_dtype(&c.dtype).to_owned() })
            .collect();
        let signature = Signature {
            inputs,
            features,
            target: "species".into(),
            classes: None,
            has_transform: true,
            format: super::super::ModelFormat::Sluice,
        };
        (transform, signature)
    }

    fn records(values: serde_json::Value) -> Vec<Map<String, Value>> {
        serde_json::from_value(values).unwrap()
    }

    #[test]
    fn records_get_the_features_polars_gives_them() {
        let (transform, signature) = fitted(penguin_steps());
        let records = records(json!([
            {"island": "y", "sex": "f", "mass": 4200, "bill": 44.4},
            {"island": null, "sex": null, "mass": null, "bill": null},
            {"island": "unseen", "sex": "m", "mass": 3000, "bill": 39},
        ]));
        let fast = features(&transform, &signature, &records).expect("these steps replay without polars");
        let polars = super::super::serve::polars_features(Some(&transform), &signature, &records).unwrap();
        assert_eq!(fast, polars);
        // The median of four masses has a fraction: the filled integer column became a float column.
        assert!(fast.iter().any(|x| x.fract() != 0.0));
        assert_eq!(fast.nrows(), 3);
    }

    #[test]
    fn other_steps_and_types_are_left_to_polars() {
        let (transform, signature) = fitted(json!([{"drop_duplicates": {}}, {"one_hot": {"columns": ["island"]}}]));
        let record = records(json!([{"island": "x", "sex": "m", "mass": 1, "bill": 2.0}]));
        assert_eq!(features(&transform, &signature, &record), None);

        // One-hot of a number would have polars cast it to text.
        let (transform, signature) =
            fitted(json!([{"select": ["species", "mass"]}, {"one_hot": {"columns": ["mass"]}}]));
        let record = records(json!([{"mass": 3000}]));
        assert_eq!(features(&transform, &signature, &record), None);

        // A feature still missing after the transform is polars' error to give.
        let (transform, signature) =
            fitted(json!([{"select": ["species", "mass", "bill"]}, {"standardize": {"columns": ["bill"]}}]));
        let record = records(json!([{"mass": 1, "bill": null}]));
        assert_eq!(features(&transform, &signature, &record), None);
        let record = records(json!([{"mass": 1, "bill": 2.0}]));
        assert!(features(&transform, &signature, &record).is_some());
    }
}
