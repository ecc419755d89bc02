"""Train the penguins species classifier with scikit-learn: the `train` task of dags/penguins_sklearn.yaml.

A `command` task with `registers:` gets its training data and an empty model folder from Sluice:
  SLUICE_INPUT      the Parquet file of its first input (lake://features/penguins_sklearn) for the run's date
  SLUICE_MODEL_DIR  the folder of the new model version
and writes there metrics.json (what the deploy gate reads), params.json, and the model: model.onnx, which Sluice
serves, with features.json naming the columns of its one input. When the script exits 0, Sluice registers the folder
as the next version of penguins_sklearn, with the asset event it read, the run and the DAG version.

Needs scikit-learn, skl2onnx, onnx and pyarrow.
"""

import json
import os

import numpy as np
import pyarrow.parquet as pq
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

TARGET = "species"
SEED = 42


def main() -> None:
    table = pq.read_table(os.environ["SLUICE_INPUT"])
    features = [name for name in table.column_names if name != TARGET]
    # The features asset is already prepared by the DAG's transform (imputed, one-hot, standardised): Sluice
    # replays that transform on raw records before the model, as for its own models.
    x = np.column_stack([np.asarray(table.column(name).to_pylist(), dtype=np.float32) for name in features])
    y = np.asarray(table.column(TARGET).to_pylist())
    print(f"training on {len(y)} rows, {len(features)} features: {', '.join(features)}")

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    pipeline = Pipeline([("forest", RandomForestClassifier(random_state=SEED))])
    grid = {"forest__n_estimators": [25, 50], "forest__max_depth": [3, 6]}
    search = GridSearchCV(pipeline, grid, cv=folds, scoring="accuracy").fit(x, y)
    scores = cross_validate(search.best_estimator_, x, y, cv=folds, scoring=["accuracy", "f1_macro"])
    metrics = {"accuracy": float(scores["test_accuracy"].mean()), "f1": float(scores["test_f1_macro"].mean())}
    print(f"best {search.best_params_}: {metrics}")

    # ZipMap off: the probabilities as one [N, classes] tensor, which an ONNX runtime without maps can read.
    onnx = to_onnx(
        search.best_estimator_,
        initial_types=[("features", FloatTensorType([None, len(features)]))],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    out = os.environ["SLUICE_MODEL_DIR"]
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(onnx.SerializeToString())
    write_json(os.path.join(out, "features.json"), features)
    write_json(os.path.join(out, "metrics.json"), metrics)
    params = {k.removeprefix("forest__"): v for k, v in search.best_params_.items()}
    write_json(os.path.join(out, "params.json"), {**params, "cv_folds": 5, "seed": SEED})


def write_json(path: str, value: object) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


if __name__ == "__main__":
    main()
