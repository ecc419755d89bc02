//! ONNX models that users' own code exports (scikit-learn through skl2onnx, PyTorch, ...), run by tract, a pure-Rust
//! ONNX runtime, so that serving them needs no Python and no C++ library.
//!
//! Sluice feeds a model the same prepared feature matrix as its own models, and reads its answer the way the usual
//! exporters shape it:
//! - **inputs**: either one input per feature (`[N]` or `[N, 1]`, named after the feature), or one `[N, F]` input
//!   whose columns the caller names (the `features.json` a task writes beside `model.onnx`). Inputs are numbers
//!   (float, double, int64, int32); a string input would need encoders that tract does not run.
//! - **outputs**: a classifier has a label output (strings or integers, `[N]`) and a `[N, C]` float output of class
//!   probabilities (skl2onnx with `zipmap: False`); the classes are the classifier node's `classlabels_*`. A model
//!   without either is a regressor: its first float output, one value per row.

use std::io::Cursor;

use ndarray::{Array2, ArrayView2};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::{MlError, Predictions};

/// A loaded ONNX model, optimised for any number of rows.
pub struct OnnxModel {
    plan: TypedRunnableModel<TypedModel>,
    /// The feature names, in the column order of the matrices [`OnnxModel::predict`] takes.
    features: Vec<String>,
    /// One `[N, F]` input (true), or one input per feature.
    matrix: bool,
    /// The type and rank of each input.
    input_types: Vec<(DatumType, usize)>,
    classes: Option<Vec<String>>,
    /// The label output holds indices into `classes` (see [`number_string_classes`]).
    labels_are_indices: bool,
    outputs: Outputs,
}

/// Which outputs answer what.
#[derive(Debug, Clone, Copy)]
struct Outputs {
    label: Option<usize>,
    probabilities: Option<usize>,
    values: Option<usize>,
}

/// One graph input as the file declares it.
struct GraphInput {
    name: String,
    dtype: Option<DatumType>,
    /// The dimensions, `None` where unknown (the batch).
    dims: Vec<Option<usize>>,
}

impl OnnxModel {
    /// Reads an ONNX file. `features` names the columns of a model with one `[N, F]` input; for a model with one
    /// input per feature it may be given, and must then be the inputs' names.
    pub fn from_bytes(bytes: &[u8], features: Option<&[String]>) -> Result<OnnxModel, MlError> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| MlError::Onnx(format!("not an ONNX model: {e}")))?;
        let graph = proto.graph.as_mut().ok_or_else(|| MlError::Onnx("the ONNX model has no graph".into()))?;
        let classes = class_labels(graph);
        let labels_are_indices = number_string_classes(graph);
        let graph = &*graph;
        let inputs = graph_inputs(graph);
        let (features, matrix) = feature_layout(&inputs, features)?;
        let input_types = inputs
            .iter()
            .map(|i| {
                i.dtype.map(|dt| (dt, i.dims.len().max(1))).ok_or_else(|| {
                    MlError::Onnx(format!(
                        "input {:?} is not a tensor of numbers (float, double, int64 or int32): encode strings \
                         before the model",
                        i.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut model =
            onnx.model_for_proto_model(&proto).map_err(|e| MlError::Onnx(format!("tract cannot read it: {e:#}")))?;
        let rows = model.symbols.sym("N");
        for (ix, (input, (dtype, _))) in inputs.iter().zip(&input_types).enumerate() {
            let mut shape: TVec<TDim> = tvec![rows.to_dim()];
            shape.extend(input.dims.iter().skip(1).map(|d| d.unwrap_or(features.len()).to_dim()));
            model
                .set_input_fact(ix, InferenceFact::dt_shape(*dtype, shape))
                .map_err(|e| MlError::Onnx(format!("input {:?}: {e:#}", input.name)))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| MlError::Onnx(format!("tract cannot run it: {e:#}")))?;
        let outputs = read_outputs(plan.model(), classes.is_some())?;
        Ok(OnnxModel { plan, features, matrix, input_types, classes, labels_are_indices, outputs })
    }

    pub fn feature_names(&self) -> &[String] {
        &self.features
    }

    /// The classes, in the order of the probabilities; `None` for a regressor.
    pub fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// Predicts each row of `x`, whose columns are [`OnnxModel::feature_names`] in order.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Predictions, MlError> {
        if x.ncols() != self.features.len() {
            return Err(MlError::ColumnCount {
                expected: self.features.len(),
                got: x.ncols(),
                names: self.features.join(", "),
            });
        }
        let rows = x.nrows();
        let run_err = |e: TractError| MlError::Onnx(format!("the ONNX model failed: {e:#}"));
        let inputs: TVec<TValue> = if self.matrix {
            let values: Vec<f64> = x.iter().copied().collect();
            tvec![self.typed(&[rows, x.ncols()], &values, 0)?]
        } else {
            x.columns()
                .into_iter()
                .enumerate()
                .map(|(c, column)| self.typed(&[rows, 1], &column.to_vec(), c))
                .collect::<Result<_, _>>()?
        };
        let outputs = self.plan.run(inputs).map_err(run_err)?;
        let output = |ix: usize| outputs.get(ix).ok_or_else(|| MlError::Onnx(format!("no output {ix}")));
        let probabilities = self.outputs.probabilities.map(|ix| floats(output(ix)?, rows)).transpose()?;
        let labels = match (self.outputs.label, &probabilities) {
            (Some(ix), _) => Some(self.labels(output(ix)?)?),
            (None, Some(p)) => self.classes.as_ref().map(|classes| {
                crate::model::argmax_rows(p).into_iter().map(|i| classes.get(i).cloned().unwrap_or_default()).collect()
            }),
            (None, None) => None,
        };
        let values = match self.outputs.values {
            Some(ix) => Some(floats(output(ix)?, rows)?.into_iter().collect::<Vec<f64>>()),
            None => None,
        };
        Ok(Predictions { labels, values, probabilities })
    }

    /// `values` as the type of input `ix` wants.
    fn typed(&self, shape: &[usize], values: &[f64], ix: usize) -> Result<TValue, MlError> {
        let (dtype, rank) = self.input_types[ix];
        let tensor = Tensor::from_shape(&shape[..rank], values).map_err(|e| MlError::Onnx(e.to_string()))?;
        let tensor = tensor.cast_to_dt(dtype).map_err(|e| MlError::Onnx(e.to_string()))?.into_owned();
        Ok(tensor.into_tvalue())
    }

    /// A label output as text.
    fn labels(&self, value: &TValue) -> Result<Vec<String>, MlError> {
        if value.datum_type() == DatumType::String {
            return Ok(value.as_slice::<String>().map_err(|e| MlError::Onnx(e.to_string()))?.to_vec());
        }
        let ints = value.cast_to::<i64>().map_err(|e| MlError::Onnx(e.to_string()))?;
        let ints = ints.as_slice::<i64>().map_err(|e| MlError::Onnx(e.to_string()))?;
        match (&self.classes, self.labels_are_indices) {
            (Some(classes), true) => ints
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| classes.get(i).cloned())
                        .ok_or_else(|| MlError::Onnx(format!("the model predicted class index {i}")))
                })
                .collect(),
            _ => Ok(ints.iter().map(i64::to_string).collect()),
        }
    }
}

/// Replaces a classifier's string class labels by their indices: tract 0.22 cannot type a tree classifier with
/// string labels (it needs a zero string for its lookup), and the labels are known here anyway. Whether it did.
fn number_string_classes(graph: &mut pb::GraphProto) -> bool {
    let mut replaced = false;
    for node in graph.node.iter_mut().filter(|n| n.op_type.ends_with("Classifier")) {
        for attribute in node.attribute.iter_mut().filter(|a| a.name == "classlabels_strings") {
            let count = i64::try_from(attribute.strings.len()).unwrap_or(i64::MAX);
            attribute.name = "classlabels_int64s".to_owned();
            attribute.strings.clear();
            attribute.ints = (0..count).collect();
            attribute.r#type = pb::attribute_proto::AttributeType::Ints as i32;
            replaced = true;
        }
    }
    replaced
}

/// The inputs of the graph, without the initializers that older exporters list among them.
fn graph_inputs(graph: &pb::GraphProto) -> Vec<GraphInput> {
    let initialized: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initialized.contains(&i.name.as_str()))
        .map(|input| {
            let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(pb::type_proto::Value::TensorType(tensor)) => Some(tensor),
                _ => None,
            };
            let dims = tensor
                .and_then(|t| t.shape.as_ref())
                .map(|shape| {
                    shape
                        .dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            // TensorProto.DataType: FLOAT 1, INT32 6, INT64 7, DOUBLE 11.
            let dtype = match tensor.map(|t| t.elem_type) {
                Some(1) => Some(DatumType::F32),
                Some(6) => Some(DatumType::I32),
                Some(7) => Some(DatumType::I64),
                Some(11) => Some(DatumType::F64),
                _ => None,
            };
            GraphInput { name: input.name.clone(), dtype, dims }
        })
        .collect()
}

/// The feature names, and whether they are the columns of one matrix input.
fn feature_layout(inputs: &[GraphInput], named: Option<&[String]>) -> Result<(Vec<String>, bool), MlError> {
    let input_names = || inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    match inputs {
        [] => Err(MlError::Onnx("the ONNX model has no input".into())),
        [one] if one.dims.len() == 2 && one.dims[1] != Some(1) => {
            let names = named.ok_or_else(|| {
                MlError::Onnx(format!(
                    "the ONNX model takes one matrix {:?} of {} columns: name its columns, in order, in features.json \
                     (a JSON list of names), or give the model one input per feature",
                    one.name,
                    one.dims[1].map_or_else(|| "N".to_owned(), |n| n.to_string())
                ))
            })?;
            if let Some(width) = one.dims[1]
                && width != names.len()
            {
                return Err(MlError::Onnx(format!(
                    "features.json names {} columns, the ONNX input {:?} has {width}",
                    names.len(),
                    one.name
                )));
            }
            Ok((names.to_vec(), true))
        }
        _ => {
            if let Some(bad) = inputs.iter().find(|i| i.dims.len() > 2 || (i.dims.len() == 2 && i.dims[1] != Some(1))) {
                return Err(MlError::Onnx(format!(
                    "the ONNX model has {} inputs, and {:?} is not one column ([N] or [N, 1]): give it one input per \
                     feature, or one [N, F] input with its columns named in features.json",
                    inputs.len(),
                    bad.name
                )));
            }
            if let Some(names) = named
                && names != input_names().as_slice()
            {
                return Err(MlError::Onnx(format!(
                    "features.json names {} but the ONNX model's inputs are {}: features.json only names the columns \
                     of a model with one [N, F] input",
                    names.join(", "),
                    input_names().join(", ")
                )));
            }
            Ok((input_names(), false))
        }
    }
}

/// The class labels of the graph's classifier node, in the order of its probabilities.
fn class_labels(graph: &pb::GraphProto) -> Option<Vec<String>> {
    graph.node.iter().filter(|n| n.op_type.ends_with("Classifier")).find_map(|node| {
        node.attribute.iter().find_map(|a| match a.name.as_str() {
            "classlabels_strings" if !a.strings.is_empty() => {
                Some(a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
            }
            "classlabels_int64s" if !a.ints.is_empty() => Some(a.ints.iter().map(i64::to_string).collect()),
            _ => None,
        })
    })
}

/// Which outputs hold the labels, the probabilities or the values.
fn read_outputs(model: &TypedModel, classifier: bool) -> Result<Outputs, MlError> {
    let facts: Vec<(DatumType, usize)> = (0..model.outputs.len())
        .map(|ix| model.output_fact(ix).map(|f| (f.datum_type, f.rank())))
        .collect::<TractResult<_>>()
        .map_err(|e| MlError::Onnx(e.to_string()))?;
    let is_float = |dt: DatumType| dt.is_float();
    let label = facts.iter().position(|(dt, rank)| {
        *rank <= 2 && (*dt == DatumType::String || *dt == DatumType::I64 || *dt == DatumType::I32)
    });
    let outputs = if classifier || label.is_some() {
        let probabilities = facts.iter().position(|(dt, rank)| is_float(*dt) && *rank == 2);
        Outputs { label, probabilities, values: None }
    } else {
        let values = facts.iter().position(|(dt, rank)| is_float(*dt) && *rank <= 2);
        Outputs { label: None, probabilities: None, values }
    };
    if outputs.label.is_none() && outputs.probabilities.is_none() && outputs.values.is_none() {
        return Err(MlError::Onnx(
            "the ONNX model has no output Sluice can read: a classifier needs a label output or a [N, C] float \
             output of probabilities (skl2onnx: options={'zipmap': False}), a regressor a float output"
                .into(),
        ));
    }
    Ok(outputs)
}

/// A float output as `rows` rows: `[N]` or `[N, k]`.
fn floats(value: &TValue, rows: usize) -> Result<Array2<f64>, MlError> {
    let tensor = value.cast_to::<f64>().map_err(|e| MlError::Onnx(e.to_string()))?;
    let data = tensor.as_slice::<f64>().map_err(|e| MlError::Onnx(e.to_string()))?;
    let columns = data.len().checked_div(rows).unwrap_or(0);
    Array2::from_shape_vec((rows, columns), data.to_vec())
        .map_err(|_| MlError::Onnx(format!("an output has {} values for {rows} rows", data.len())))
}
