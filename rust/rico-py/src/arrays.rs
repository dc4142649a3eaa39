//! numpy arrays over memory rico owns: a view whose base object keeps the memory alive.

use std::os::raw::{c_int, c_void};

use numpy::npyffi::{
    npy_intp, NpyTypes, NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_WRITEABLE, NPY_TYPES, PY_ARRAY_API,
};
use pyo3::prelude::*;
use safetensors::tensor::Dtype;

/// numpy's type number of a safetensors dtype; `None` where numpy has no such type.
pub(crate) fn typenum(dtype: Dtype) -> Option<NPY_TYPES> {
    Some(match dtype {
        Dtype::BOOL => NPY_TYPES::NPY_BOOL,
        Dtype::U8 => NPY_TYPES::NPY_UBYTE,
        Dtype::I8 => NPY_TYPES::NPY_BYTE,
        Dtype::U16 => NPY_TYPES::NPY_USHORT,
        Dtype::I16 => NPY_TYPES::NPY_SHORT,
        Dtype::U32 => NPY_TYPES::NPY_UINT,
        Dtype::I32 => NPY_TYPES::NPY_INT,
        Dtype::U64 => NPY_TYPES::NPY_ULONGLONG,
        Dtype::I64 => NPY_TYPES::NPY_LONGLONG,
        Dtype::F16 => NPY_TYPES::NPY_HALF,
        Dtype::F32 => NPY_TYPES::NPY_FLOAT,
        Dtype::F64 => NPY_TYPES::NPY_DOUBLE,
        _ => return None,
    })
}

#[cfg(target_endian = "big")]
compile_error!(
    "rico's zero-copy views assume a little-endian machine (safetensors is little-endian)"
);

/// A numpy array over `bytes` whose base object is `owner` (read-only unless `writeable`).
///
/// # Safety
/// `bytes` must stay valid while `owner` lives, and hold exactly product(shape) x itemsize
/// bytes of `dtype` (and be writable memory if `writeable`).
pub(crate) unsafe fn view<'py, O>(
    py: Python<'py>,
    owner: &Py<O>,
    dtype: NPY_TYPES,
    shape: &[usize],
    bytes: *const u8,
    writeable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let subtype = PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type);
    // flags without NPY_ARRAY_WRITEABLE: the array is read-only; numpy works out alignment itself.
    let raw = PY_ARRAY_API.PyArray_New(
        py,
        subtype,
        dims.len() as c_int,
        dims.as_mut_ptr(),
        dtype as c_int,
        std::ptr::null_mut(),
        bytes as *mut c_void,
        0,
        if writeable {
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE
        } else {
            NPY_ARRAY_C_CONTIGUOUS
        },
        std::ptr::null_mut(),
    );
    let array = Bound::from_owned_ptr_or_err(py, raw)?;
    // SetBaseObject steals a reference to the owner.
    if PY_ARRAY_API.PyArray_SetBaseObject(py, raw as *mut _, owner.clone_ref(py).into_ptr()) != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(array)
}
