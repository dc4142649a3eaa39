//! What remote-sensing datasets ship as, read in one pass and never unpacked.
//!
//! A dataset's files arrive as archives (`.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`, `.zip`)
//! or, for Major-TOM, as Parquet files whose rows hold one GeoTIFF per band column. This crate
//! turns each of them into what the unpacked folder would have been: a stream of members, each
//! a `/`-separated path relative to the folder the source stands for, with its bytes.
//!
//! - An archive that holds one top-level folder stands for that folder (`BigEarthNet-S2.tar.zst`
//!   holds `BigEarthNet-S2/`); an archive with files at its top stands for a folder named after
//!   the archive (`parts.tar.gz` for `parts/`).
//! - A Parquet file of Major-TOM's hub schema stands for the folder `filter_download` unpacks
//!   it to: each row's band column `B04` is the member `<grid_cell>/<product_id>/B04.tif`.
//! - rico never creates a file named by a member. Members that could not have come from an
//!   unpacked folder (absolute names, `..`, links, devices) stop the read with
//!   [`SourceErrorKind::Hostile`]; a member above [`Limits::max_member_bytes`] with
//!   [`SourceErrorKind::Limit`].
//!
//! ```
//! use rico_source::{container_of, Compression, Container};
//! use std::path::Path;
//!
//! assert_eq!(container_of(Path::new("BigEarthNet-S2.tar.zst")), Some(Container::Tar(Compression::Zstd)));
//! assert_eq!(container_of(Path::new("EuroSAT_MS.zip")), Some(Container::Zip));
//! assert_eq!(container_of(Path::new("part_00001.parquet")), Some(Container::Parquet));
//! assert_eq!(container_of(Path::new("BigEarthNet-S2")), None);
//! ```
#![warn(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

mod names;
mod parquet_rows;
mod tar_members;
mod zip_members;

pub use names::{archive_stem, normalize_member_name};

/// How a tar archive's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.tar`
    None,
    /// `.tar.gz`, `.tgz`
    Gzip,
    /// `.tar.zst`, `.tzst`
    Zstd,
}

/// What a source file is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// A tar archive.
    Tar(Compression),
    /// A zip archive.
    Zip,
    /// A Parquet file of Major-TOM's hub schema.
    Parquet,
}

/// The file-name endings rico reads as containers, for messages.
pub const CONTAINER_ENDINGS: &str = ".tar, .tar.gz, .tgz, .tar.zst, .tzst, .zip, .parquet";

/// The container a path names by its ending (case-insensitive), or `None` for anything else
/// (a directory, or a file rico does not read as a container).
pub fn container_of(path: &Path) -> Option<Container> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let kinds = [
        (".tar.gz", Container::Tar(Compression::Gzip)),
        (".tgz", Container::Tar(Compression::Gzip)),
        (".tar.zst", Container::Tar(Compression::Zstd)),
        (".tar.zstd", Container::Tar(Compression::Zstd)),
        (".tzst", Container::Tar(Compression::Zstd)),
        (".tar", Container::Tar(Compression::None)),
        (".zip", Container::Zip),
        (".parquet", Container::Parquet),
    ];
    kinds
        .into_iter()
        .find(|(ending, _)| name.ends_with(ending) && name.len() > ending.len())
        .map(|(_, kind)| kind)
}

/// Bounds on what one member may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest member read into memory (its declared size, checked before reading, and its
    /// real size, checked while reading): a member above it stops the read.
    pub max_member_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_member_bytes: 1 << 30,
        }
    }
}

/// What went wrong reading a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// The file cannot be opened or read.
    Io,
    /// The container is truncated or damaged.
    Corrupt,
    /// A member could not come from an unpacked folder: a link, a device, an absolute name, `..`.
    Hostile,
    /// A member is larger than [`Limits::max_member_bytes`].
    Limit,
    /// The container's layout is not one rico can stand for a folder (two top-level folders;
    /// a Parquet file without Major-TOM's columns).
    Layout,
}

/// An error reading a container, naming it and, where there is one, the member.
#[derive(Clone, Debug)]
pub struct SourceError {
    /// What kind of error.
    pub kind: SourceErrorKind,
    /// The container's path.
    pub container: PathBuf,
    /// The member's name inside the container, as stored.
    pub member: Option<String>,
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl SourceError {
    pub(crate) fn new(kind: SourceErrorKind, container: &Path, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            container: container.to_path_buf(),
            member: None,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn member(mut self, member: &str) -> Self {
        self.member = Some(member.to_string());
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `container!member` (or the container alone): where the error is.
    pub fn location(&self) -> String {
        match &self.member {
            Some(m) => member_location(&self.container, m),
            None => self.container.display().to_string(),
        }
    }
}

/// How a member is named in messages and reports: `container!member`.
pub fn member_location(container: &Path, member: &str) -> String {
    format!("{}!{member}", container.display())
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

impl std::error::Error for SourceError {}

/// One member of a container, as the unpacked folder would hold it.
#[derive(Debug)]
pub struct Member<'a> {
    /// The path relative to the folder the container stands for, `/`-separated.
    pub rel: &'a str,
    /// The name inside the container, as stored (for messages: `container!name`).
    pub name: &'a str,
    /// The member's bytes.
    pub bytes: Vec<u8>,
}

/// What reads a container's members. The reader calls [`Visitor::root`] once, then, for each
/// regular member in the container's order, [`Visitor::wants`] and (when it does)
/// [`Visitor::member`]; members not wanted are never held in memory.
pub trait Visitor {
    /// The visitor's error; a [`SourceError`] converts into it.
    type Error: From<SourceError>;
    /// The name of the folder the container stands for (its top-level folder, or its stem).
    fn root(&mut self, name: &str) -> Result<(), Self::Error>;
    /// Whether the member at `rel` (relative to the root folder) is read.
    fn wants(&mut self, rel: &str) -> bool;
    /// A wanted member, with its bytes.
    fn member(&mut self, member: Member<'_>) -> Result<(), Self::Error>;
    /// Bytes of the container file read so far (for progress): called now and then.
    fn progress(&mut self, _container_bytes: u64) {}
}

/// Reads the members of the container at `path` (of kind `container`) in one pass.
pub fn read_members<V: Visitor>(
    path: &Path,
    container: Container,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    match container {
        Container::Tar(compression) => tar_members::read(path, compression, limits, visitor),
        Container::Zip => zip_members::read(path, limits, visitor),
        Container::Parquet => parquet_rows::read(path, limits, visitor),
    }
}

/// Opens a container file, with an error that names it.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, SourceError> {
    let file = std::fs::File::open(path).map_err(|e| {
        SourceError::new(SourceErrorKind::Io, path, format!("cannot open: {e}"))
            .hint("check the path; it must exist and be readable")
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(SourceError::new(
            SourceErrorKind::Io,
            path,
            "not a regular file",
        )),
        Err(e) => Err(SourceError::new(
            SourceErrorKind::Io,
            path,
            format!("cannot open: {e}"),
        )),
    }
}

/// The error of a member above the limit.
pub(crate) fn too_large(path: &Path, name: &str, size: u64, limits: &Limits) -> SourceError {
    SourceError::new(
        SourceErrorKind::Limit,
        path,
        format!(
            "this member is {size} bytes, above the limit of {} bytes for one member",
            limits.max_member_bytes
        ),
    )
    .member(name)
    .hint("raise the limit with --max-held-mb (max_held_mb= in Python) if the file is genuine")
}

/// The size of an open container file, for progress.
pub(crate) fn file_len(file: &std::fs::File) -> u64 {
    file.metadata().map_or(0, |m| m.len())
}
