//! Typed access to node attributes. Old exporters leave the attribute type unset, so an
//! unset type is accepted; a set type that does not match is an error.

use super::R;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};

const FLOAT: i32 = 1;
const INT: i32 = 2;
const STRING: i32 = 3;
const TENSOR: i32 = 4;
const FLOATS: i32 = 6;
const INTS: i32 = 7;

fn get<'a>(n: &'a NodeProto, name: &str, ty: i32, ty_name: &str) -> R<Option<&'a AttributeProto>> {
    match n.attribute.iter().find(|a| a.name == name) {
        Some(a) if a.type_.value() != 0 && a.type_.value() != ty => Err(format!("attribute '{name}' should be of type {ty_name}")),
        a => Ok(a),
    }
}

pub fn has(n: &NodeProto, name: &str) -> bool {
    n.attribute.iter().any(|a| a.name == name)
}

pub fn int(n: &NodeProto, name: &str, default: i64) -> R<i64> {
    Ok(get(n, name, INT, "INT")?.map_or(default, |a| a.i))
}

pub fn ints(n: &NodeProto, name: &str) -> R<Option<Vec<i64>>> {
    Ok(get(n, name, INTS, "INTS")?.map(|a| a.ints.clone()))
}

pub fn float(n: &NodeProto, name: &str, default: f32) -> R<f32> {
    Ok(get(n, name, FLOAT, "FLOAT")?.map_or(default, |a| a.f))
}

pub fn floats(n: &NodeProto, name: &str) -> R<Option<Vec<f32>>> {
    Ok(get(n, name, FLOATS, "FLOATS")?.map(|a| a.floats.clone()))
}

pub fn string(n: &NodeProto, name: &str) -> R<Option<String>> {
    Ok(get(n, name, STRING, "STRING")?.map(|a| String::from_utf8_lossy(&a.s).into_owned()))
}

pub fn tensor<'a>(n: &'a NodeProto, name: &str) -> R<Option<&'a TensorProto>> {
    match get(n, name, TENSOR, "TENSOR")? {
        Some(a) => a.t.as_ref().map(Some).ok_or_else(|| format!("attribute '{name}' has no tensor")),
        None => Ok(None),
    }
}

/// A list attribute of one entry per spatial axis, or `default` on every axis.
pub fn per_axis(n: &NodeProto, name: &str, rank: usize, default: u64) -> R<Vec<u64>> {
    match ints(n, name)? {
        None => Ok(vec![default; rank]),
        Some(v) if v.len() == rank && v.iter().all(|&x| x >= 0) => Ok(v.iter().map(|&x| x as u64).collect()),
        Some(v) => Err(format!("attribute '{name}' = {v:?} does not give {rank} non-negative values")),
    }
}
