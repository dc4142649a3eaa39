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
#![warn(clippy::undocumented_unsafe_blocks)]

use std::fmt;
use std::path::{Path, PathBuf};

mod credentials;
mod names;
mod parquet_rows;
pub mod parts;
mod quiet_panics;
mod remote;
mod tar_members;
mod zip_members;

pub use names::{archive_stem, is_os_metadata, normalize_member_name};
pub use quiet_panics::catch as catch_panics;
pub use remote::{
    is_url, list_folder, open_remote, redact, RemoteObject, RemoteOptions, DEFAULT_READ_TIMEOUT,
};

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
    /// A folder of files over S3 (the objects under a prefix), read like an archive's members.
    Folder,
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
    /// The container's own bytes failed a check (a checksum, an end before the end): members
    /// already read from a compressed stream may be wrong. A fetching error (the bytes did not
    /// arrive) is not such damage.
    pub damage: bool,
}

impl SourceError {
    pub(crate) fn new(kind: SourceErrorKind, container: &Path, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            container: container.to_path_buf(),
            member: None,
            message: message.into(),
            hint: None,
            damage: false,
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
        Container::Zip => {
            let file = open(path)?;
            let total = file_len(&file);
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            zip_members::read_from(path, reader, &NoPrefetch, total, limits, visitor)
        }
        Container::Parquet => {
            let file = open(path)?;
            let total = file_len(&file);
            parquet_rows::read_from(path, file, &NoPrefetch, total, limits, visitor)
        }
        Container::Folder => Err(SourceError::new(
            SourceErrorKind::Layout,
            path,
            "a local folder is walked, not read as a container",
        )
        .into()),
    }
}

/// Where a source's bytes are: a local file, or a remote object (or, for a folder over S3, a
/// remote prefix).
#[derive(Clone, Debug)]
pub enum Location {
    /// A file on a local (or mounted) filesystem.
    Local(PathBuf),
    /// An object behind an `http://`, `https://` or `s3://` URL.
    Remote(std::sync::Arc<RemoteObject>),
    /// The objects under an `s3://` prefix, read as the files of a folder.
    RemoteFolder(std::sync::Arc<RemoteObject>),
    /// The parts of a split archive (`X.tar.gzaa`, `X.tar.gzab`, ...), read as one stream in
    /// this order.
    Parts(Vec<PathBuf>),
}

impl Location {
    /// How the location is named in messages (a URL redacted).
    pub fn shown(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            Location::Remote(o) | Location::RemoteFolder(o) => PathBuf::from(o.shown()),
            Location::Parts(parts) => parts.first().cloned().unwrap_or_default(),
        }
    }

    /// Its size in bytes, where known (0 for a folder).
    pub fn size(&self) -> u64 {
        match self {
            Location::Local(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            Location::Remote(o) => o.size(),
            Location::RemoteFolder(_) => 0,
            Location::Parts(parts) => parts
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum(),
        }
    }
}

/// Reads the members of the source at `location` in one pass: a container of kind
/// `container` (local or remote), or a remote folder (`container` is then ignored).
pub fn read_members_at<V: Visitor>(
    location: &Location,
    container: Container,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let object = match location {
        Location::Local(path) => return read_members(path, container, limits, visitor),
        Location::RemoteFolder(object) => return remote::read_folder(object, limits, visitor),
        Location::Parts(paths) => {
            let shown = location.shown();
            return match container {
                Container::Tar(compression) => tar_members::read_from(
                    &shown,
                    Box::new(parts::Chain::new(paths.clone())),
                    compression,
                    limits,
                    visitor,
                ),
                _ => Err(SourceError::new(
                    SourceErrorKind::Layout,
                    &shown,
                    "only tar archives (.tar, .tar.gz, .tar.zst) are read from parts",
                )
                .into()),
            };
        }
        Location::Remote(object) => object,
    };
    let shown = PathBuf::from(object.shown());
    match container {
        Container::Tar(compression) => {
            let raw = Box::new(remote::SequentialRead::new(object.clone()));
            tar_members::read_from(&shown, raw, compression, limits, visitor)
        }
        Container::Zip => {
            let reader = remote::RandomRead::new(object.clone());
            let ahead = reader.share();
            zip_members::read_from(&shown, reader, &ahead, object.size(), limits, visitor)
        }
        Container::Parquet => {
            let reader = remote::RandomRead::new(object.clone());
            let prefetch = reader.share();
            parquet_rows::read_from(&shown, reader, &prefetch, object.size(), limits, visitor)
        }
        Container::Folder => remote::read_folder(object, limits, visitor),
    }
}

/// Fetches byte ranges ahead of reading them: a Parquet row group's column chunks, asked for
/// at once instead of page by page, or a zip archive's members, streamed in parts in flight
/// while the reader goes forward through them (a local file needs nothing).
pub(crate) trait Prefetch {
    fn prefetch(&self, _ranges: Vec<std::ops::Range<u64>>) -> Result<(), SourceError> {
        Ok(())
    }
    /// Starts fetching `span` in parts, ahead of reads that go forward through it.
    fn stream_ahead(&self, _span: std::ops::Range<u64>) {}
}

/// A local file: read where it lies.
pub(crate) struct NoPrefetch;

impl Prefetch for NoPrefetch {}

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

/// The error of a truncated or damaged archive (`message` says how), at `member` if known.
pub(crate) fn damaged(path: &Path, member: Option<&str>, message: &str) -> SourceError {
    let err = SourceError::new(
        SourceErrorKind::Corrupt,
        path,
        format!("the archive is truncated or damaged: {message}"),
    )
    .hint("download it again (compare its checksum with the one the dataset publishes); records committed so far are kept, finish with --resume");
    let err = SourceError {
        damage: true,
        ..err
    };
    match member {
        Some(m) => err.member(m),
        None => err,
    }
}

/// The error of a member named as no unpacked folder could hold it (absolute, `..`).
pub(crate) fn hostile_name(path: &Path, name: &str) -> SourceError {
    SourceError::new(
        SourceErrorKind::Hostile,
        path,
        "this member's name is absolute or climbs out of the archive (..); an unpacked folder cannot hold it",
    )
    .member(name)
    .hint("the archive is not a dataset as published; download it again from the dataset's own record")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a read gives: the root, then (rel, name, bytes) of each wanted member.
    #[derive(Debug, Default)]
    struct Collect {
        root: String,
        members: Vec<(String, String, Vec<u8>)>,
    }

    impl Visitor for Collect {
        type Error = SourceError;
        fn root(&mut self, name: &str) -> Result<(), SourceError> {
            self.root = name.to_string();
            Ok(())
        }
        fn wants(&mut self, rel: &str) -> bool {
            rel.ends_with(".tif")
        }
        fn member(&mut self, m: Member<'_>) -> Result<(), SourceError> {
            self.members
                .push((m.rel.to_string(), m.name.to_string(), m.bytes));
            Ok(())
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rico-source-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A tar archive of (name, bytes) regular members, built with the `tar` crate.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn read_tar(path: &Path, limits: &Limits) -> Result<Collect, SourceError> {
        let mut c = Collect::default();
        read_members(path, container_of(path).unwrap(), limits, &mut c)?;
        Ok(c)
    }

    #[test]
    fn a_tar_zst_stands_for_its_top_level_folder() {
        let dir = scratch("top");
        let raw = tar_of(&[
            ("s1/0000200/x/VH.tif", b"vh"),
            ("s1/0000200/x/notes.txt", b"skipped"),
            ("s1/0000200/x/VV.tif", b"vv"),
        ]);
        let path = dir.join("ssl4eo-s1.tar.zst");
        std::fs::write(&path, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
        let got = read_tar(&path, &Limits::default()).unwrap();
        assert_eq!(got.root, "s1");
        let rels: Vec<(&str, &[u8])> = got
            .members
            .iter()
            .map(|(r, _, b)| (r.as_str(), b.as_slice()))
            .collect();
        assert_eq!(
            rels,
            [
                ("0000200/x/VH.tif", &b"vh"[..]),
                ("0000200/x/VV.tif", &b"vv"[..])
            ]
        );
        assert_eq!(got.members[0].1, "s1/0000200/x/VH.tif");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tar_cut_at_a_member_boundary_or_with_a_bad_checksum_is_damaged() {
        let dir = scratch("ends");
        let raw = tar_of(&[("d/a.tif", &[7u8; 5000]), ("d/b.tif", &[8u8; 5000])]);
        // Cut right before the second member's header: every member read is whole.
        let boundary = 512 * (1 + 10);
        let cut = dir.join("cut.tar");
        std::fs::write(&cut, &raw[..boundary]).unwrap();
        let err = read_tar(&cut, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Corrupt, "{err}");
        assert!(err.message.contains("end-of-archive"), "{err}");
        // The whole archive reads, compressed or not.
        for (name, bytes) in [
            ("whole.tar", raw.clone()),
            ("whole.tar.zst", zstd::encode_all(&raw[..], 3).unwrap()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(
                read_tar(&path, &Limits::default()).unwrap().members.len(),
                2
            );
        }
        // A gzip whose CRC (the trailer's first 4 bytes) is off by one bit: the data inflates
        // right, only the check can tell.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let mut gz = gz.finish().unwrap();
        let at = gz.len() - 8;
        gz[at] ^= 4;
        let bad = dir.join("bad.tar.gz");
        std::fs::write(&bad, gz).unwrap();
        let err = read_tar(&bad, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Corrupt, "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_zip_naming_a_member_twice_is_refused_and_macos_metadata_is_skipped() {
        use std::io::Write;
        let dir = scratch("zip");
        let zip_of = |entries: &[(&str, &[u8])]| {
            let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (name, bytes) in entries {
                z.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                z.write_all(bytes).unwrap();
            }
            z.finish().unwrap().into_inner()
        };
        let path = dir.join("x.zip");
        std::fs::write(
            &path,
            zip_of(&[
                ("d/a.tif", b"a"),
                ("__MACOSX/d/._a.tif", b"fork"),
                ("d/._a.tif", b"fork"),
                ("d/.DS_Store", b"Bud1"),
            ]),
        )
        .unwrap();
        let got = read_tar(&path, &Limits::default()).unwrap();
        assert_eq!(got.root, "d");
        assert_eq!(
            got.members,
            [("a.tif".into(), "d/a.tif".into(), b"a".to_vec())]
        );
        // The zip crate refuses to write a name twice: the central directory is edited to
        // name the second member as the first.
        let mut twice = zip_of(&[("d/a.tif", b"a"), ("d/b.tif", b"b")]);
        let central = twice.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        twice[central + 46 + 2] = b'a';
        std::fs::write(&path, twice).unwrap();
        let err = read_tar(&path, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Layout, "{err}");
        assert_eq!(err.member.as_deref(), Some("d/a.tif"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_links_and_oversized_members_stop_the_read_naming_them() {
        let dir = scratch("bad");
        let raw = tar_of(&[("d/a.tif", &[7u8; 5000]), ("d/b.tif", &[8u8; 5000])]);
        // Truncated in the second member's data.
        let cut = dir.join("cut.tar");
        std::fs::write(&cut, &raw[..512 * 14]).unwrap();
        let err = read_tar(&cut, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Corrupt, "{err}");
        assert_eq!(err.member.as_deref(), Some("d/b.tif"));
        assert!(err.location().starts_with(&format!("{}!", cut.display())));
        // Above the member limit.
        let whole = dir.join("whole.tar");
        std::fs::write(&whole, &raw).unwrap();
        let small = Limits {
            max_member_bytes: 4096,
        };
        let err = read_tar(&whole, &small).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Limit);
        assert!(err.hint.unwrap().contains("--max-held-mb"));
        // A symbolic link.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "d/c.tif", "/etc/passwd")
            .unwrap();
        let link = dir.join("link.tar");
        std::fs::write(&link, builder.into_inner().unwrap()).unwrap();
        let err = read_tar(&link, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, SourceErrorKind::Hostile);
        assert!(err.message.contains("symbolic link"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
