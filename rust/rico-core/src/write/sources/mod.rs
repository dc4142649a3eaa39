//! What a source option names: a directory, an archive or Parquet file that stands for one, a
//! glob of archive parts (`hyspecnet-11k-*.tar.gz`), for Major-TOM a folder of Parquet files as
//! the hub publishes them (`images/part_XXXXX.parquet`), or any of these behind a URL
//! (`https://`, `s3://`; over S3 a folder too).
//!
//! A source gives its files as one stream of `Event`s, the same `Member` for every kind:
//! a directory's files from `walk` (their bytes read later, by the fetch stage), a
//! container's members from `members` (their bytes held, read in the container's one pass).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rico_source::{Container, Location, RemoteOptions};

use crate::base::error::{Error, Result};
use crate::base::labels::{LabelRule, TableRows};
use crate::write::spec::{HeldBytes, Source};

pub(crate) mod members;
pub(crate) mod walk;

/// One file of a source, as every kind of source gives it.
pub(crate) struct Member<'a> {
    /// Its folder: a directory, or `<container>!<folder>` for a container's member.
    pub dir: &'a Arc<Path>,
    /// Its `/`-separated path relative to the source's root.
    pub rel: &'a str,
    /// Its name as stored (in a container: with the container's top folder), for messages.
    pub name: &'a str,
    /// A container member's bytes, read with the container; `None` for a directory's file,
    /// read by the fetch stage.
    pub held: Option<Arc<HeldBytes>>,
}

/// What a source gives, in its order.
pub(crate) enum Event<'a> {
    /// A container's name for the folder it stands for (keys are rendered with it).
    Root(&'a str),
    /// A file of the source.
    Member(Member<'a>),
    /// A directory's files have all been given (its subdirectories come next).
    DirDone,
    /// With `skip_invalid`: a path left out (escaped), with the reason.
    Invalid(String, String),
    /// Bytes of a container read so far.
    Progress(u64),
}

/// The name of the folder a source stands for until a container names its own: the last
/// component of its root.
pub(crate) fn root_name(root: &Path) -> String {
    root.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

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

/// The sources a path given with `--<flag>` stands for, in name order; with `parquet_folders`
/// (the source's spec says so: Major-TOM) a folder of Parquet files stands for its files.
pub fn expand(
    flag: &str,
    path: &Path,
    parquet_folders: bool,
    remote: &RemoteOptions,
) -> Result<Vec<Resolved>> {
    let text = path.to_string_lossy();
    if rico_source::is_url(&text) {
        return expand_url(flag, &text, parquet_folders, remote);
    }
    if path.is_file() && rico_source::parts::part_name(path).is_some() {
        // One part of a split archive (any of them): all of its parts, in name order.
        return Ok(vec![parts(rico_source::parts::find_parts(path)?)]);
    }
    if path.exists() {
        if parquet_folders && path.is_dir() {
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

/// A URL: an archive or Parquet object (by its ending), or over S3 a folder of files (or, with
/// `parquet_folders`, of Parquet files).
fn expand_url(
    flag: &str,
    url: &str,
    parquet_folders: bool,
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
    if parquet_folders {
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

/// The label tables of a source whose labels come from tables (read before any image is
/// looked up in them); `None` for other sources.
pub(crate) fn read_tables(source: &Source<'_>) -> Result<Option<TableRows>> {
    let LabelRule::Tables { tables, .. } = &source.spec.labels else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    crate::write::spec::walk_each(&source.root, &mut |rel| {
        if tables.is_match(rel) {
            paths.push(source.root.join(rel));
        }
        Ok(())
    })?;
    if paths.is_empty() {
        return Err(Error::usage(format!(
            "no label table found in the directory given with --{} (files whose path matches {:?})",
            source.option,
            tables.as_str()
        ))
        .at(&source.root)
        .hint("point the option at the dataset's root, the directory that holds both the images and the labels directory"));
    }
    Ok(Some(TableRows::read(&paths)?))
}

/// Checks that a source can be opened, before any is walked: a typo in the third option
/// should not cost a long walk.
pub(crate) fn check_source(source: &Source<'_>) -> Result<()> {
    if !matches!(source.location, rico_source::Location::Local(_)) {
        return Ok(()); // opened (and its size and version asked for) when it was resolved
    }
    if source.container.is_some() {
        return match fs::File::open(&source.root) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::usage(format!(
                "cannot open the {} given with --{}: {e}",
                source.what(),
                source.option
            ))
            .at(&source.root)
            .hint("check the path; it must exist and be readable")),
        };
    }
    match fs::metadata(&source.root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::usage(format!(
            "--{} must be a directory, an archive ({}) or a Parquet file; this is another kind of file",
            source.option,
            rico_source::CONTAINER_ENDINGS
        ))
        .at(&source.root)),
        Err(e) => Err(Error::usage(format!(
            "cannot open the directory given with --{}: {e}",
            source.option
        ))
        .at(&source.root)
        .hint("check the path; it must exist and be readable")),
    }
}
