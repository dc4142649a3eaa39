//! What a source option names: a directory, an archive or Parquet file that stands for one, a
//! glob of archive parts (`hyspecnet-11k-*.tar.gz`), for Major-TOM a folder of Parquet files as
//! the hub publishes them (`images/part_XXXXX.parquet`), or any of these behind a URL
//! (`https://`, `s3://`; over S3 a folder too).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rico_source::{Container, Location, RemoteOptions};

use crate::base::error::{Error, Result};

/// One source a path stands for.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// How it is named in messages (a URL redacted).
    pub shown: PathBuf,
    /// Where its bytes are.
    pub location: Location,
    /// What it is when it is not a local directory.
    pub container: Option<Container>,
}

/// The container a local source path is, by its ending; `None` for a directory.
pub fn container(path: &Path) -> Option<Container> {
    if path.is_dir() {
        return None;
    }
    rico_source::container_of(path)
}

/// The parts of a split archive, as one source (the container of the joined archive).
fn parts(paths: Vec<PathBuf>) -> Resolved {
    let container = paths
        .first()
        .and_then(|p| rico_source::parts::part_name(p))
        .and_then(|n| rico_source::container_of(Path::new(&n.archive)));
    let location = Location::Parts(paths);
    Resolved {
        shown: location.shown(),
        container,
        location,
    }
}

fn local(path: PathBuf) -> Resolved {
    Resolved {
        shown: path.clone(),
        container: container(&path),
        location: Location::Local(path),
    }
}

/// The sources a path given with `--<flag>` of dataset `dataset` stands for, in name order.
pub fn expand(
    flag: &str,
    path: &Path,
    dataset: &str,
    remote: &RemoteOptions,
) -> Result<Vec<Resolved>> {
    let text = path.to_string_lossy();
    if rico_source::is_url(&text) {
        return expand_url(flag, &text, dataset, remote);
    }
    if path.is_file() && rico_source::parts::part_name(path).is_some() {
        // One part of a split archive (any of them): all of its parts, in name order.
        return Ok(vec![parts(rico_source::parts::find_parts(path)?)]);
    }
    if path.exists() {
        if dataset == "major-tom-core" && path.is_dir() {
            if let Some(files) = parquet_files(path)? {
                return Ok(files.into_iter().map(local).collect());
            }
        }
        return Ok(vec![local(path.to_path_buf())]);
    }
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![local(path.to_path_buf())]);
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
            .hint(format!("check the pattern; quote it so that rico, not the shell, expands it, or give each part with its own --{flag}")));
    }
    found.sort();
    if found
        .iter()
        .all(|p| rico_source::parts::part_name(p).is_some())
    {
        // The parts of one split archive, given as a glob: one source, none missing.
        return Ok(vec![parts(rico_source::parts::check_parts(&found)?)]);
    }
    Ok(found.into_iter().map(local).collect())
}

/// A URL: an archive or Parquet object (by its ending), or over S3 a folder of files (or, for
/// Major-TOM, of Parquet files).
fn expand_url(
    flag: &str,
    url: &str,
    dataset: &str,
    remote: &RemoteOptions,
) -> Result<Vec<Resolved>> {
    let shown = PathBuf::from(rico_source::redact(url));
    let path_part = url.split(['?', '#']).next().unwrap_or(url);
    if let Some(container) = rico_source::container_of(Path::new(path_part)) {
        let object = rico_source::open_remote(url, remote, false)?;
        return Ok(vec![Resolved {
            shown,
            location: Location::Remote(object),
            container: Some(container),
        }]);
    }
    if !url.to_ascii_lowercase().starts_with("s3://") {
        return Err(Error::usage(format!(
            "the URL given with --{flag} names neither an archive ({}) nor a Parquet file; over HTTP(S) rico reads files, not folders",
            rico_source::CONTAINER_ENDINGS
        ))
        .at(&shown)
        .hint("give the URL of the archive the dataset ships as, or an s3:// folder"));
    }
    let folder = rico_source::open_remote(url, remote, true)?;
    if dataset == "major-tom-core" {
        let listed = rico_source::list_folder(&folder)?;
        let parquet = |dir: &str| -> Vec<String> {
            listed
                .iter()
                .map(|(rel, _)| rel.as_str())
                .filter(|rel| {
                    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
                    parent == dir && name.to_ascii_lowercase().ends_with(".parquet")
                })
                .map(str::to_string)
                .collect()
        };
        let mut files = parquet("");
        if files.is_empty() {
            files = parquet("images");
        }
        if !files.is_empty() {
            let base = url.trim_end_matches('/');
            let mut out = Vec::new();
            for rel in files {
                // The URL's path is percent-decoded once: a key's own %, ? and # are escaped.
                let escaped = rel
                    .replace('%', "%25")
                    .replace('?', "%3F")
                    .replace('#', "%23");
                let object_url = format!("{base}/{escaped}");
                out.push(Resolved {
                    shown: PathBuf::from(rico_source::redact(&object_url)),
                    location: Location::Remote(rico_source::open_remote(
                        &object_url,
                        remote,
                        false,
                    )?),
                    container: Some(Container::Parquet),
                });
            }
            return Ok(out);
        }
    }
    Ok(vec![Resolved {
        shown,
        location: Location::RemoteFolder(Arc::clone(&folder)),
        container: Some(Container::Folder),
    }])
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
            .filter(|p| p.is_file() && rico_source::container_of(p) == Some(Container::Parquet))
            .collect();
        if !files.is_empty() {
            files.sort();
            return Ok(Some(files));
        }
    }
    Ok(None)
}
