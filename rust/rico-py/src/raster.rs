//! `read_raster`: a raster file decoded into a new numpy array.

use std::path::PathBuf;

use numpy::{Element, PyArray3, PyArrayMethods};
use pyo3::prelude::*;
use rico_core::{raster, DType, Error};

use crate::errors::to_py_err;

fn array_from_bytes<'py, T: Element>(
    py: Python<'py>,
    shape: [usize; 3],
    bytes: &[u8],
) -> Bound<'py, PyAny> {
    let array = PyArray3::<T>::zeros(py, shape, false);
    // SAFETY: the array is new, C-contiguous and of exactly bytes.len() bytes (shape x size of T);
    // nothing else references it yet.
    unsafe {
        let dst = array.data() as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
    }
    array.into_any()
}

/// A new zero-filled (bands, rows, cols) array with `image` decoded into it. A TIFF decodes
/// straight into the array: no second buffer of the image's size to allocate, fault in and copy
/// (a third of `read_raster`'s time on a Major-TOM band).
fn tiff_into_array<'py, T: Element>(
    py: Python<'py>,
    shape: [usize; 3],
    image: &raster::tiff::TiffImage<'_>,
) -> Result<Bound<'py, PyAny>, raster::RasterError> {
    let array = PyArray3::<T>::zeros(py, shape, false);
    let len = image.decoded_len();
    assert_eq!(
        len,
        shape.iter().product::<usize>() * std::mem::size_of::<T>()
    );
    // SAFETY: the array is new, C-contiguous and exactly `len` bytes; nothing else references it
    // until it is returned, so the slice is the only access while the GIL is released.
    let out = unsafe { std::slice::from_raw_parts_mut(array.data() as *mut u8, len) };
    py.allow_threads(|| image.decode_into(out))?;
    Ok(array.into_any())
}

/// Decodes a raster file into an array of shape (bands, rows, cols).
#[pyfunction]
pub(crate) fn read_raster<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let fail = |e: raster::RasterError| to_py_err(Error::from(e.with_path(&path)));
    let bytes = py.allow_threads(|| std::fs::read(&path)).map_err(|e| {
        fail(raster::RasterError::new(
            raster::ErrorKind::Io,
            format!("cannot read file: {e}"),
        ))
    })?;
    if raster::tiff::is_tiff(&bytes) {
        let image = raster::tiff::TiffImage::parse(&bytes).map_err(fail)?;
        let info = image.info();
        let shape = [info.bands, info.height, info.width];
        let image = &image;
        return match info.dtype {
            DType::U8 => tiff_into_array::<u8>(py, shape, image),
            DType::I8 => tiff_into_array::<i8>(py, shape, image),
            DType::U16 => tiff_into_array::<u16>(py, shape, image),
            DType::I16 => tiff_into_array::<i16>(py, shape, image),
            DType::U32 => tiff_into_array::<u32>(py, shape, image),
            DType::I32 => tiff_into_array::<i32>(py, shape, image),
            DType::U64 => tiff_into_array::<u64>(py, shape, image),
            DType::I64 => tiff_into_array::<i64>(py, shape, image),
            DType::F32 => tiff_into_array::<f32>(py, shape, image),
            DType::F64 => tiff_into_array::<f64>(py, shape, image),
        }
        .map_err(fail);
    }
    // JPEG and PNG: small images, decoded into their own buffer and copied.
    let raster = py.allow_threads(|| raster::decode(&bytes)).map_err(fail)?;
    let info = raster.info;
    let shape = [info.bands, info.height, info.width];
    let data = &raster.data;
    Ok(match info.dtype {
        DType::U8 => array_from_bytes::<u8>(py, shape, data),
        DType::I8 => array_from_bytes::<i8>(py, shape, data),
        DType::U16 => array_from_bytes::<u16>(py, shape, data),
        DType::I16 => array_from_bytes::<i16>(py, shape, data),
        DType::U32 => array_from_bytes::<u32>(py, shape, data),
        DType::I32 => array_from_bytes::<i32>(py, shape, data),
        DType::U64 => array_from_bytes::<u64>(py, shape, data),
        DType::I64 => array_from_bytes::<i64>(py, shape, data),
        DType::F32 => array_from_bytes::<f32>(py, shape, data),
        DType::F64 => array_from_bytes::<f64>(py, shape, data),
    })
}
