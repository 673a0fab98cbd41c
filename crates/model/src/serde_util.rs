//! Serde helpers shared by the resource types.

use serde::Serializer;

/// Writes a float the way Go's encoding/json does for whole numbers: `100`,
/// not `100.0`, so printed resources match Calico's output.
pub(crate) fn opt_f64<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => s.serialize_i64(*f as i64),
        Some(f) => s.serialize_f64(*f),
        None => s.serialize_none(),
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
