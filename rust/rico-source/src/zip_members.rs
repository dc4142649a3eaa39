//! Zip archives: the central directory is read first (so the root folder is known exactly),
//! then the members in the order they are stored. Over a network the members' bytes are
//! streamed ahead in parts in flight (the ranged, parallel fetching tar archives use), instead
//! of one small request per member header and per block.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::names::{normalize_member_name, RootFinder};
use crate::tar_members::outside_root;
use crate::{too_large, Limits, Member, SourceError, SourceErrorKind, Visitor};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// Reads a zip archive from `reader` (`total` bytes); `path` names it in messages. `ahead`
/// streams the members' bytes ahead of the reads (a remote archive).
pub(crate) fn read_from<V: Visitor, R: Read + std::io::Seek>(
    path: &Path,
    reader: R,
    ahead: &dyn crate::Prefetch,
    total: u64,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let archive = zip::ZipArchive::new(reader).map_err(|e| corrupt(path, None, &e))?;
    let mut archive = refuse_repeated_names(path, archive)?;
    // The names first, from the central directory alone (no member's header is read): the root
    // folder is the one top-level folder every member lies in.
    let mut by_index = Vec::with_capacity(archive.len().min(1 << 20));
    for i in 0..archive.len() {
        let name = archive.name_for_index(i).unwrap_or_default().to_string();
        let normalized = normalize_member_name(&name);
        let is_dir = name.ends_with('/') || name.ends_with('\\');
        if normalized.as_deref().is_some_and(crate::is_os_metadata) {
            continue;
        }
        by_index.push((i, name, normalized, is_dir));
    }
    let top = RootFinder::common_top(
        by_index
            .iter()
            .filter_map(|(_, _, n, d)| n.as_deref().map(|n| (n, *d))),
    );
    let root_name = top.clone().unwrap_or_else(|| crate::archive_stem(path));
    let root = RootFinder::fixed(top);
    visitor.root(&root_name)?;
    // Which members are read, asked once each.
    let wanted: Vec<bool> = by_index
        .iter()
        .map(|(_, _, normalized, is_dir)| {
            !is_dir
                && normalized
                    .as_deref()
                    .and_then(|n| root.relative(n))
                    .is_some_and(|rel| visitor.wants(rel))
        })
        .collect();
    let files = by_index.iter().filter(|(_, _, _, d)| !d).count();
    let reading = wanted.iter().filter(|w| **w).count();
    // Most members read (a whole conversion): everything before the central directory is
    // streamed ahead in parts, in flight. A few members of many (a key list): each is read
    // where it lies.
    if reading > 0 && reading * 4 >= files {
        ahead.stream_ahead(archive.offset()..archive.central_directory_start());
    }
    let mut done_bytes = 0u64;
    for (at, (i, name, normalized, is_dir)) in by_index.iter().enumerate() {
        let Some(normalized) = normalized else {
            return Err(crate::hostile_name(path, name).into());
        };
        let mut entry = archive.by_index(*i).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(m) if m.contains("assword") => {
                encrypted(path, name)
            }
            e => corrupt(path, Some(name), &e),
        })?;
        done_bytes += entry.compressed_size();
        if let Some(mode) = entry.unix_mode() {
            let kind = mode & S_IFMT;
            if kind != 0 && kind != S_IFREG && kind != S_IFDIR {
                let what = if kind == S_IFLNK {
                    "a symbolic link"
                } else {
                    "not a regular file"
                };
                return Err(SourceError::new(
                    SourceErrorKind::Hostile,
                    path,
                    format!("this member is {what}; rico reads only regular files and folders from archives"),
                )
                .member(name)
                .hint("repack the archive with the files the links point to, or unpack it and give the folder")
                .into());
            }
        }
        if *is_dir || entry.is_dir() {
            continue;
        }
        let Some(rel) = root.relative(normalized) else {
            return Err(outside_root(path, &root, name).into());
        };
        if !wanted[at] {
            continue;
        }
        let size = entry.size();
        if size > limits.max_member_bytes {
            return Err(too_large(path, name, size, limits).into());
        }
        // At most the declared size plus one byte: a member that inflates past its declared
        // size (a zip bomb's trick) is caught without holding more.
        // A declared size is a claim: reserve at most MAX_RESERVE before the bytes arrive.
        let mut bytes = Vec::with_capacity(size.min(MAX_RESERVE) as usize);
        (&mut entry)
            .take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(path, Some(name), &zip::result::ZipError::Io(e)))?;
        if bytes.len() as u64 != size {
            return Err(crate::damaged(
                path,
                Some(name),
                &format!(
                    "the member holds {} bytes, not the {size} its header declares",
                    bytes.len()
                ),
            )
            .into());
        }
        visitor.member(Member { rel, name, bytes })?;
        visitor.progress(done_bytes.min(total));
    }
    visitor.progress(total);
    Ok(())
}

/// The most bytes reserved for a member before its bytes arrive.
const MAX_RESERVE: u64 = 16 << 20;

/// The zip crate keeps one entry per name (the last); an archive whose central directory holds
/// a name twice would then convert one of two different files, silently. Counts the central
/// directory's records and refuses the archive when they outnumber its names, naming the
/// repeated one.
fn refuse_repeated_names<R: Read + Seek>(
    path: &Path,
    archive: zip::ZipArchive<R>,
) -> Result<zip::ZipArchive<R>, SourceError> {
    let names = archive.len();
    let start = archive.central_directory_start();
    let metadata = archive.metadata();
    let mut reader = archive.into_inner();
    let repeated = (|| -> std::io::Result<Option<String>> {
        reader.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::with_capacity(64 << 10, &mut reader);
        let mut seen = std::collections::HashSet::with_capacity(names);
        let mut fixed = [0u8; 46];
        loop {
            match reader.read_exact(&mut fixed) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            if fixed[..4] != [0x50, 0x4b, 0x01, 0x02] {
                return Ok(None);
            }
            let len = |at: usize| u64::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
            let mut name = vec![0u8; len(28) as usize];
            reader.read_exact(&mut name)?;
            std::io::copy(
                &mut (&mut reader).take(len(30) + len(32)),
                &mut std::io::sink(),
            )?;
            if seen.contains(&name) {
                return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
            }
            seen.insert(name);
            if seen.len() > names {
                return Err(std::io::Error::other(format!(
                    "its central directory holds more entries than the {names} its end record declares"
                )));
            }
        }
    })()
    .map_err(|e| {
        crate::damaged(
            path,
            None,
            &format!("cannot read its central directory: {e}"),
        )
    })?;
    if let Some(name) = repeated {
        return Err(SourceError::new(
            SourceErrorKind::Layout,
            path,
            "the archive holds two entries of this name; an unpacked folder holds one file of a name, and rico cannot tell which is meant",
        )
        .member(&name)
        .hint("repack the archive with one copy of each file, or download it again"));
    }
    // SAFETY: `metadata` was read from this very reader, which nothing has changed since.
    Ok(unsafe { zip::ZipArchive::unsafe_new_with_metadata(reader, metadata) })
}

/// The error of an encrypted member.
fn encrypted(path: &Path, name: &str) -> SourceError {
    SourceError::new(
        SourceErrorKind::Layout,
        path,
        "this member is encrypted; rico reads archives without passwords",
    )
    .member(name)
    .hint("unpack it with its password (unzip -P …) and give the folder, or download the dataset's unencrypted archive")
}

fn corrupt(path: &Path, member: Option<&str>, e: &zip::result::ZipError) -> SourceError {
    // A fetching error (a remote archive) says what went wrong better than "damaged".
    if let zip::result::ZipError::Io(io) = e {
        if let Some(fetch) = io.get_ref().and_then(|x| x.downcast_ref::<SourceError>()) {
            let mut err = fetch.clone();
            if let (None, Some(m)) = (&err.member, member) {
                err = err.member(m);
            }
            return err;
        }
    }
    crate::damaged(path, member, &e.to_string())
}
