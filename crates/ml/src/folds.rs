//! Assignment of rows to cross-validation folds, deterministic for a seed.
//!
//! Classification folds are stratified: the rows are shuffled with the seed, then each class's rows are
//! dealt round-robin over the folds, the deal carrying on from class to class so that fold sizes differ by
//! at most one. Regression folds deal the shuffled rows round-robin. The generator is xoshiro256++, whose
//! output is fixed by its definition, so a seed gives the same folds on every machine and version.
//!
//! A class with fewer rows than folds is an error here (scikit-learn only warns): some test fold would
//! have no row of that class, and its per-fold recall and ROC AUC would be undefined.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::MlError;
use crate::model::TargetRef;

/// The fold (`0..folds`) of each row.
pub(crate) fn assign(
    target: TargetRef<'_>,
    classes: &[String],
    folds: usize,
    seed: u64,
) -> Result<Vec<usize>, MlError> {
    let n = match target {
        TargetRef::Classes(labels, _) => labels.len(),
        TargetRef::Values(values) => values.len(),
    };
    if folds < 2 {
        return Err(MlError::InvalidSpec(format!("folds must be at least 2, got {folds}")));
    }
    if n < folds {
        return Err(MlError::InvalidData(format!("{n} rows are fewer than the {folds} folds")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
    let mut fold = vec![0; n];
    match target {
        TargetRef::Values(_) => {
            for (position, &row) in order.iter().enumerate() {
                fold[row] = position % folds;
            }
        }
        TargetRef::Classes(labels, n_classes) => {
            let mut members = vec![Vec::new(); n_classes];
            for &row in &order {
                members[labels[row]].push(row);
            }
            if let Some((class, rows)) = members.iter().enumerate().find(|(_, m)| m.len() < folds) {
                let name = classes.get(class).map_or("?", String::as_str);
                return Err(MlError::InvalidData(format!(
                    "class {name:?} has {} rows, fewer than the {folds} folds: each fold needs at least one; \
                     lower folds or drop the class",
                    rows.len()
                )));
            }
            let mut next = 0;
            for rows in members {
                for row in rows {
                    fold[row] = next;
                    next = (next + 1) % folds;
                }
            }
        }
    }
    Ok(fold)
}
