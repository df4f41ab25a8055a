//! ONNX import: a `ModelProto` (decoded with `onnx-protobuf`) → [`Graph`].
//!
//! ONNX files carry shapes only for the graph inputs (and optionally, often partially, for
//! a few intermediate values), while the graph needs a concrete shape for every tensor. So
//! the importer runs its own shape inference: it walks the nodes in file order (ONNX
//! requires topological order), knows each supported op's output shape rule, and maps the
//! node to a [`GraphOp`] with the sizes its cost depends on.
//!
//! Values are either tensors of the graph or *constants* known at load time
//! (initializers, `Constant`, `ConstantOfShape` and the shape arithmetic built on them:
//! `Shape → Gather → Concat → Reshape`). Constants are folded where an op needs their
//! contents (a reshape target, pads, axes) and become graph tensors only when a compute
//! op consumes them: a float constant becomes a weight (so `params` counts exactly the
//! weights the model uses, including weight-stripped models whose weights are built by
//! `ConstantOfShape`), an integer constant an index tensor. Ops the importer does not
//! know are errors naming the op and the node; nothing is dropped silently.

mod attr;
mod compute;
mod consts;
mod movement;
mod ops;
mod shape;

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphOp, TensorId};
use consts::Const;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use protobuf::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The protobuf messages, for callers (and tests) that build a model in code.
pub use onnx_protobuf as proto;

/// The `ELEMENTWISE_FNS` class of a pointwise ONNX op (shared with the ONNX Runtime
/// profile conversion, `trace::ort_profile`).
pub use compute::elementwise_fn;

/// Errors inside the importer are messages; [`load_bytes`] adds the file and node.
type R<T> = std::result::Result<T, String>;

/// Loads an ONNX model file. `batch` is the size given to a symbolic (`dim_param`) batch
/// dimension of the graph inputs; fixed dimensions keep their value.
pub fn load(path: &Path, batch: u64) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "onnx".into());
    let mut g = load_bytes(&bytes, &path.display().to_string(), batch)?;
    g.name = name;
    Ok(g)
}

/// Loads an ONNX model from memory; `label` names it in errors and becomes the graph name.
pub fn load_bytes(bytes: &[u8], label: &str, batch: u64) -> Result<Graph> {
    let err = |msg: String| Error::File { path: label.to_string(), msg };
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| err(format!("not a valid ONNX model (protobuf: {e})")))?;
    from_model(&model, label, batch)
}

/// Imports a decoded model (see [`load_bytes`]).
pub fn from_model(model: &ModelProto, label: &str, batch: u64) -> Result<Graph> {
    let err = |msg: String| Error::File { path: label.to_string(), msg };
    if batch == 0 {
        return Err(Error::Usage("batch must be at least 1".into()));
    }
    let graph = model.graph.as_ref().filter(|g| !g.node.is_empty()).ok_or_else(|| err("not an ONNX model: it has no graph nodes".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| err("the model imports no version of the default ONNX opset".into()))?;
    let mut imp = Importer::new(label, opset);
    imp.inputs(graph, batch).map_err(err)?;
    for (i, node) in graph.node.iter().enumerate() {
        imp.node(node).map_err(|msg| err(format!("node {i} '{}' ({}): {msg}", node_label(node), op_label(node))))?;
    }
    imp.outputs(&graph.output).map_err(err)?;
    let g = imp.g;
    g.check()?;
    Ok(g)
}

/// A name for a node in messages: its own name, else its first output.
fn node_label(n: &NodeProto) -> &str {
    if !n.name.is_empty() {
        &n.name
    } else {
        n.output.first().map(String::as_str).unwrap_or("")
    }
}

/// The op with its domain when it is not the default one.
fn op_label(n: &NodeProto) -> String {
    if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    }
}

/// A named ONNX value during import.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// A tensor of the graph (input or activation; weights are materialised constants).
    Tensor(TensorId),
    /// A constant known at load time: an index into `Importer::consts`.
    Const(usize),
}

struct Importer {
    g: Graph,
    opset: i64,
    values: HashMap<String, Value>,
    consts: Vec<Const>,
    /// The graph tensor a constant became when a compute op first consumed it.
    materialised: HashMap<usize, TensorId>,
    /// The first graph tensor made from each root constant.
    roots: HashMap<usize, TensorId>,
    node_names: HashSet<String>,
}

impl Importer {
    fn new(label: &str, opset: i64) -> Importer {
        Importer {
            g: Graph::new(label, "onnx"),
            opset,
            values: HashMap::new(),
            consts: Vec::new(),
            materialised: HashMap::new(),
            roots: HashMap::new(),
            node_names: HashSet::new(),
        }
    }

    /// Initializers become constants, the remaining graph inputs user inputs. A symbolic
    /// first dimension is the batch; any other symbolic dimension is an error, because the
    /// graph needs concrete shapes and only the batch has an argument.
    fn inputs(&mut self, graph: &GraphProto, batch: u64) -> R<()> {
        for t in &graph.initializer {
            let c = Const::from_tensor(t).map_err(|e| format!("initializer '{}': {e}", t.name))?;
            self.define_const(&t.name, c);
        }
        if !graph.sparse_initializer.is_empty() {
            return Err("sparse initializers are not supported".into());
        }
        let mut symbolic = false;
        for vi in &graph.input {
            if self.values.contains_key(&vi.name) {
                continue; // IR < 4 lists initializers among the inputs too
            }
            let (shape, index, sym) = input_shape(vi, batch).map_err(|e| format!("graph input '{}': {e}", vi.name))?;
            symbolic |= sym;
            let id = self.g.input(vi.name.clone(), shape, index);
            self.values.insert(vi.name.clone(), Value::Tensor(id));
        }
        if batch != 1 && !symbolic {
            self.g.warnings.push(format!("the model's inputs have fixed shapes, so batch {batch} was not applied (the model runs its own batch size)"));
        }
        Ok(())
    }

    fn outputs(&mut self, outputs: &[ValueInfoProto]) -> R<()> {
        for vi in outputs {
            match self.values.get(&vi.name) {
                Some(Value::Tensor(t)) => self.g.outputs.push(*t),
                Some(Value::Const(_)) => self.g.warnings.push(format!("graph output '{}' is a constant; nothing computes it", vi.name)),
                None => return Err(format!("graph output '{}' is not produced by any node", vi.name)),
            }
        }
        Ok(())
    }

    /// Imports one node: the op's own function computes its outputs.
    fn node(&mut self, n: &NodeProto) -> R<()> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!("unsupported op '{}' from domain '{}'", n.op_type, n.domain));
        }
        let outs = ops::import(self, n)?;
        for (name, v) in n.output.iter().zip(outs) {
            if !name.is_empty() {
                self.values.insert(name.clone(), v);
            }
        }
        Ok(())
    }

    fn define_const(&mut self, name: &str, c: Const) {
        let v = self.new_const(c);
        self.values.insert(name.to_string(), v);
    }

    /// Stores a constant; one without a root is its own root.
    fn new_const(&mut self, mut c: Const) -> Value {
        let i = self.consts.len();
        if c.root == usize::MAX {
            c.root = i;
        }
        self.consts.push(c);
        Value::Const(i)
    }

    /// Input `i` of the node; an error when it is missing or undefined.
    fn input(&self, n: &NodeProto, i: usize) -> R<Value> {
        self.opt_input(n, i)?.ok_or_else(|| format!("missing input {i}"))
    }

    /// Optional input `i` (absent or named "").
    fn opt_input(&self, n: &NodeProto, i: usize) -> R<Option<Value>> {
        match n.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self
                .values
                .get(name)
                .copied()
                .map(Some)
                .ok_or_else(|| format!("input '{name}' is not a graph input, an initializer or the output of an earlier supported node")),
        }
    }

    fn shape(&self, v: Value) -> &[u64] {
        match v {
            Value::Tensor(t) => self.g.shape(t),
            Value::Const(c) => &self.consts[c].shape,
        }
    }

    fn konst(&self, v: Value) -> Option<&Const> {
        match v {
            Value::Const(c) => Some(&self.consts[c]),
            Value::Tensor(_) => None,
        }
    }

    /// The contents of a constant input the shape inference needs (a reshape target,
    /// axes, pads): an error when the value is computed at run time.
    fn const_data(&self, n: &NodeProto, i: usize) -> R<Vec<i64>> {
        let v = self.input(n, i)?;
        let c = self.konst(v).ok_or_else(|| format!("input '{}' must be a constant known at load time (its value decides a shape)", n.input[i]))?;
        c.ints().ok_or_else(|| format!("the value of constant '{}' is not stored in the file", n.input[i]))
    }

    /// The graph tensor behind a value. A constant becomes a weight (float) or an index
    /// tensor (integer: no gradient, not a parameter) the first time a compute op reads
    /// it; a second view of the same initializer (tied embeddings read transposed) is a
    /// `View` of the first, so its parameters count once.
    fn tensor(&mut self, v: Value) -> R<TensorId> {
        let c = match v {
            Value::Tensor(t) => return Ok(t),
            Value::Const(c) => c,
        };
        if let Some(&t) = self.materialised.get(&c) {
            return Ok(t);
        }
        let k = &self.consts[c];
        if k.numel() == 0 {
            return Err(format!("constant '{}' is empty (shape {:?})", k.name, k.shape));
        }
        let (name, shape, int, root) = (k.name.clone(), k.shape.clone(), k.int, k.root);
        let t = match self.roots.get(&root) {
            Some(&first) => {
                let t = self.g.activation(name.clone(), shape);
                let node = self.unique_name(&name);
                self.g.node_multi(node, GraphOp::View, &[first], vec![t]);
                t
            }
            None if int => self.g.input(name, shape, true),
            None => self.g.weight(name, shape),
        };
        self.roots.entry(root).or_insert(t);
        self.materialised.insert(c, t);
        Ok(t)
    }

    /// Appends a node computing `op` from `inputs`, with one activation per output shape
    /// named after the node's ONNX outputs.
    fn emit(&mut self, n: &NodeProto, op: GraphOp, inputs: &[Value], shapes: Vec<Vec<u64>>) -> R<Vec<Value>> {
        let ins = inputs.iter().map(|&v| self.tensor(v)).collect::<R<Vec<_>>>()?;
        let name = self.unique_name(match node_label(n) {
            "" => &n.op_type,
            s => s,
        });
        let mut outs = Vec::with_capacity(shapes.len());
        for (i, s) in shapes.into_iter().enumerate() {
            shape::check_activation(&s)?;
            let tname = match n.output.get(i).map(String::as_str) {
                Some(o) if !o.is_empty() => o.to_string(),
                _ => format!("{name}:{i}"),
            };
            outs.push(self.g.activation(tname, s));
        }
        self.g.node_multi(name, op, &ins, outs.clone());
        Ok(outs.into_iter().map(Value::Tensor).collect())
    }

    /// Node names are unique (ONNX names may be empty or repeated).
    fn unique_name(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.node_names.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }
}

/// Shape of a graph input: (dims, integer-typed, used the batch argument).
fn input_shape(vi: &ValueInfoProto, batch: u64) -> R<(Vec<u64>, bool, bool)> {
    use proto::type_proto::Value as T;
    use proto::tensor_shape_proto::dimension::Value as D;
    let tt = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(tt)) => tt,
        Some(_) => return Err("only tensor inputs are supported (not sequences, maps or optionals)".into()),
        None => return Err("has no type".into()),
    };
    let dims = match tt.shape.as_ref() {
        Some(s) => &s.dim,
        None => return Err("has no shape".into()),
    };
    let mut shape = Vec::with_capacity(dims.len());
    let mut symbolic = false;
    for (i, d) in dims.iter().enumerate() {
        let v = match &d.value {
            Some(D::DimValue(v)) if *v > 0 => *v as u64,
            Some(D::DimValue(v)) => return Err(format!("dimension {i} is {v}")),
            _ if i == 0 => {
                symbolic = true;
                batch
            }
            Some(D::DimParam(p)) => return Err(format!("dimension {i} is symbolic ('{p}'); only the first (batch) dimension may be")),
            _ => return Err(format!("dimension {i} is unknown; only the first (batch) dimension may be")),
        };
        shape.push(v);
    }
    Ok((shape, consts::is_int_type(tt.elem_type), symbolic))
}
