"""Writes the ONNX fixtures of tests/onnx.rs and prints the answers scikit-learn gives (the tests' known answers).

Run with scikit-learn 1.9.1, skl2onnx 1.20.0 and onnx 1.23.2 (the versions of scripts/test.sh).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier

# forest.onnx: a random forest of 3 classes on one [N, 3] input, as dags/penguins_sklearn.py exports its model.
rng = np.random.RandomState(7)
x = rng.rand(90, 3).astype(np.float32)
y = np.where(x[:, 0] + x[:, 1] > 1.2, "high", np.where(x[:, 2] > 0.5, "mid", "low"))
forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(x, y)
model = to_onnx(
    forest,
    initial_types=[("features", FloatTensorType([None, 3]))],
    options={"zipmap": False},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
with open("forest.onnx", "wb") as f:
    f.write(model.SerializeToString())
queries = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.9], [0.2, 0.1, 0.1]], dtype=np.float32)
print(list(forest.classes_), forest.predict(queries).tolist(), forest.predict_proba(queries).round(6).tolist())

# linear.onnx: y = 2a - 3b + 0.5 with one [N, 1] input per feature, a regressor built by hand.
a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1])
b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1])
out = helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])
weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [2.0, -3.0])
intercept = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.5])
nodes = [
    helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
    helper.make_node("MatMul", ["ab", "w"], ["m"]),
    helper.make_node("Add", ["m", "c"], ["variable"]),
]
graph = helper.make_graph(nodes, "linear", [a, b], [out], [weights, intercept])
linear = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(linear)
with open("linear.onnx", "wb") as f:
    f.write(linear.SerializeToString())
