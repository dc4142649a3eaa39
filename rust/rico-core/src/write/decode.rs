//! The decoding stage of a conversion: a patch's files, read by the reading stage
//! ([`crate::write::fetch`]), are decoded and serialised into its [`Record`], which the writing
//! stage puts into LMDB. `rico verify` decodes the same way and compares.

use std::borrow::Cow;

use crate::base::error::{Error, Result};
use crate::base::record::{self, Band};
use crate::write::fetch::{self, FileBytes};
use crate::write::spec::{FileBands, Patch};

/// One decoded patch, ready for the writer.
pub(crate) struct Record {
    /// The record's key: the patch's.
    pub(crate) key: String,
    /// The safetensors bytes of the patch's bands.
    pub(crate) value: Vec<u8>,
    /// Source files decoded.
    pub(crate) files: u64,
    /// Bytes of source files read.
    pub(crate) source_bytes: u64,
}

/// Reads and decodes the files of `patch` and serialises its record.
pub(crate) fn build_record(patch: &Patch) -> Result<Record> {
    decode_patch(patch, fetch::read_patch(patch)?)
}

/// Decodes the files of `patch` (read into `files`) and serialises its record.
pub(crate) fn decode_patch(patch: &Patch, files: Vec<FileBytes>) -> Result<Record> {
    let mut rasters = Vec::with_capacity(patch.files.len());
    let mut source_bytes = 0u64;
    for (file, bytes) in patch.files.iter().zip(&files) {
        source_bytes += bytes.len() as u64;
        let raster =
            rico_raster::decode(bytes).map_err(|e| Error::from(e.with_path(&file.path())))?;
        rasters.push(raster);
    }
    drop(files);
    let mut bands = Vec::new();
    for (file, raster) in patch.files.iter().zip(&rasters) {
        let info = raster.info;
        let shape = [info.height, info.width];
        let band = |name: String, i: usize| Band {
            name,
            dtype: info.dtype,
            shape,
            bytes: Cow::Borrowed(raster.band(i)),
        };
        match &file.bands {
            FileBands::One(name) => {
                if info.bands != 1 {
                    return Err(Error::data(format!(
                        "expected a single-band file for band {name} of patch {}, found {} bands",
                        patch.key, info.bands
                    ))
                    .at(file.path()));
                }
                bands.push(band(name.to_string(), 0));
            }
            FileBands::Names(names) => {
                if names.len() != info.bands {
                    return Err(Error::data(format!(
                        "expected {} bands ({}), found {}",
                        names.len(),
                        names.join(" "),
                        info.bands
                    ))
                    .at(file.path()));
                }
                bands.extend(names.iter().enumerate().map(|(i, n)| band(n.clone(), i)));
            }
            FileBands::Numbered(prefix) => {
                bands.extend((0..info.bands).map(|i| band(format!("{prefix}{}", i + 1), i)));
            }
        }
    }
    let value = record::encode(&patch.key, &bands)?;
    Ok(Record {
        key: patch.key.clone(),
        value,
        files: patch.files.len() as u64,
        source_bytes,
    })
}
