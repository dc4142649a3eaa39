//! What a source option names: a directory, an archive or Parquet file that stands for one, a
//! glob of archive parts (`hyspecnet-11k-*.tar.gz`), or, for Major-TOM, a folder of Parquet
//! files as the hub publishes them (`images/part_XXXXX.parquet`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The container a source path is, by its ending; `None` for a directory.
pub fn container(path: &Path) -> Option<rico_source::Container> {
    if path.is_dir() {
        return None;
    }
    rico_source::container_of(path)
}

/// The sources a path given with `--<flag>` of dataset `dataset` stands for, in name order.
pub fn expand(flag: &str, path: &Path, dataset: &str) -> Result<Vec<PathBuf>> {
    if path.exists() {
        if dataset == "major-tom-core" && path.is_dir() {
            if let Some(files) = parquet_files(path)? {
                return Ok(files);
            }
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let text = path.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let bad = |e: &dyn std::fmt::Display| {
        Error::usage(format!("--{flag} is not a valid glob pattern: {e}")).at(path)
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in glob::glob(&text).map_err(|e| bad(&e))? {
        found.push(entry.map_err(|e| bad(&e))?);
    }
    if found.is_empty() {
        return Err(Error::usage(format!("no file matches the pattern given with --{flag}"))
            .at(path)
            .hint("check the pattern; quote it so that rico, not the shell, expands it, or give each part with its own --{flag}"));
    }
    found.sort();
    Ok(found)
}

/// The Parquet files of a Major-TOM folder: its own `*.parquet` files, or those of its
/// `images/` folder; `None` when it holds none (an unpacked folder of GeoTIFFs).
fn parquet_files(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    for folder in [dir.to_path_buf(), dir.join("images")] {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file() && rico_source::container_of(p) == Some(rico_source::Container::Parquet)
            })
            .collect();
        if !files.is_empty() {
            files.sort();
            return Ok(Some(files));
        }
    }
    Ok(None)
}
