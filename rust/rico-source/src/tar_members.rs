//! Tar archives, plain or compressed, read front to back in one pass.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use tar::EntryType;

use crate::names::{normalize_member_name, RootFinder};
use crate::{open, too_large, Compression, Limits, Member, SourceError, SourceErrorKind, Visitor};

/// Counts the bytes read from the archive file (compressed bytes, for progress).
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Notes whether the tar stream ran dry: a tar archive ends with its end-of-archive blocks, so a
/// stream that ends before them is truncated (the `tar` crate takes either as the end).
struct Tracked<R> {
    inner: R,
    dry: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.dry.set(true);
        }
        Ok(n)
    }
}

/// The most bytes reserved for a member before its bytes arrive: a header's size is a claim,
/// and a hostile one (1 TiB) must not be allocated up front. Larger members grow as they read.
const MAX_RESERVE: u64 = 16 << 20;

/// Reads the archive file in large blocks: a cold disk or a network filesystem then streams.
const READ_BUFFER: usize = 1 << 20;

pub(crate) fn read<V: Visitor>(
    path: &Path,
    compression: Compression,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let file = open(path)?;
    read_from(path, Box::new(file), compression, limits, visitor)
}

/// Reads a tar archive from `raw` (its bytes as stored); `path` names it in messages.
pub(crate) fn read_from<V: Visitor>(
    path: &Path,
    raw: Box<dyn Read>,
    compression: Compression,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let count = Rc::new(Cell::new(0u64));
    let counted = Counted {
        inner: raw,
        count: count.clone(),
    };
    let buffered = BufReader::with_capacity(READ_BUFFER, counted);
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(buffered),
        // Multi-member: pigz and concatenated parts write several gzip members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| corrupt(path, None, &e))?,
        ),
    };
    let dry = Rc::new(Cell::new(false));
    let tracked = Tracked {
        inner: reader,
        dry: dry.clone(),
    };
    let mut archive = tar::Archive::new(tracked);
    let entries = archive.entries().map_err(|e| corrupt(path, None, &e))?;
    let mut root = RootFinder::new();
    let mut last: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(path, last.as_deref(), &e))?;
        let raw = entry.path_bytes();
        let Ok(name) = std::str::from_utf8(&raw) else {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            return Err(SourceError::new(
                SourceErrorKind::Layout,
                path,
                "this member's name is not valid UTF-8; rico matches patterns and makes keys from UTF-8 names",
            )
            .member(&shown)
            .into());
        };
        let name = name.to_string();
        drop(raw);
        let kind = entry.header().entry_type();
        let regular = matches!(
            kind,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse
        );
        match kind {
            _ if regular => {}
            EntryType::Directory => {}
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => continue,
            other => return Err(not_regular(path, &name, other).into()),
        }
        let Some(normalized) = normalize_member_name(&name) else {
            return Err(crate::hostile_name(path, &name).into());
        };
        if crate::is_os_metadata(&normalized) {
            continue;
        }
        if let Some(root_name) = root.first(path, &normalized, !regular) {
            visitor.root(&root_name)?;
        }
        last = Some(name.clone());
        if !regular {
            if normalized.is_empty() || root.top() == Some(normalized.as_str()) {
                continue;
            }
            if root.relative(&normalized).is_none() {
                return Err(outside_root(path, &root, &name).into());
            }
            continue;
        }
        let Some(rel) = root.relative(&normalized) else {
            return Err(outside_root(path, &root, &name).into());
        };
        if !visitor.wants(rel) {
            visitor.progress(count.get());
            continue;
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| corrupt(path, Some(&name), &e))?;
        if size > limits.max_member_bytes {
            return Err(too_large(path, &name, size, limits).into());
        }
        let mut bytes = Vec::with_capacity(size.min(MAX_RESERVE) as usize);
        (&mut entry)
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(path, Some(&name), &e))?;
        if (bytes.len() as u64) < size {
            return Err(corrupt(
                path,
                Some(&name),
                &io::Error::new(io::ErrorKind::UnexpectedEof, "the member ends early"),
            )
            .into());
        }
        visitor.member(Member {
            rel,
            name: &name,
            bytes,
        })?;
        visitor.progress(count.get());
    }
    if dry.get() {
        return Err(crate::damaged(
            path,
            None,
            "it ends before its end-of-archive blocks (the last member read was complete, but the archive is cut after it)",
        )
        .into());
    }
    // The rest of the stream (the end blocks' padding, then the compression's trailer) is read
    // to its end, so that the decompressor checks it: the gzip CRC and size of every member,
    // the zstd content checksum of every frame that has one.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| {
        let err = corrupt(path, None, &e);
        match e.get_ref().and_then(|x| x.downcast_ref::<SourceError>()) {
            Some(_) => err,
            None => crate::damaged(
                path,
                None,
                &format!("its compressed stream fails its integrity check ({e})"),
            ),
        }
    })?;
    if root.top().is_none() && last.is_none() {
        // An empty archive: still a folder (with nothing in it).
        if let Some(root_name) = root.first(path, "", false) {
            visitor.root(&root_name)?;
        }
    }
    visitor.progress(count.get());
    Ok(())
}

fn corrupt(path: &Path, member: Option<&str>, e: &io::Error) -> SourceError {
    // A fetching error (a remote source) says what went wrong better than "truncated".
    if let Some(fetch) = e.get_ref().and_then(|x| x.downcast_ref::<SourceError>()) {
        let mut err = fetch.clone();
        if let (None, Some(m)) = (&err.member, member) {
            err = err.member(m);
        }
        return err;
    }
    crate::damaged(path, member, &e.to_string())
}

fn not_regular(path: &Path, name: &str, kind: EntryType) -> SourceError {
    let what = match kind {
        EntryType::Symlink => "a symbolic link",
        EntryType::Link => "a hard link",
        EntryType::Char | EntryType::Block => "a device",
        EntryType::Fifo => "a FIFO (named pipe)",
        _ => "not a regular file",
    };
    SourceError::new(
        SourceErrorKind::Hostile,
        path,
        format!("this member is {what}; rico reads only regular files and folders from archives"),
    )
    .member(name)
    .hint("repack the archive with the files the link points to (tar --dereference), or unpack it and give the folder")
}

pub(crate) fn outside_root(path: &Path, root: &RootFinder, name: &str) -> SourceError {
    let top = root.top().unwrap_or("");
    SourceError::new(
        SourceErrorKind::Layout,
        path,
        format!(
            "this member lies outside {top}/, the top-level folder of the archive's first member; \
             rico reads an archive with one top-level folder as that folder"
        ),
    )
    .member(name)
    .hint("repack it with one top-level folder (tar -C <parent> -cf <archive> <folder>) or from inside the folder (tar -C <folder> -cf <archive> .)")
}
