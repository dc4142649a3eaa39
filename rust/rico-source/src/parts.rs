//! Archives split into parts (`BigEarthNet-S1.tar.gzaa`, `.tar.gzab`, ... as `split` writes
//! them, or `archive.tar.gz.001`, `.002`, ...), read as one stream in name order: the parts are
//! never joined on disk.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::{container_of, open, Container, SourceError, SourceErrorKind};

/// How a part's name ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suffix {
    /// `aa`, `ab`, ... (`split`'s default), of this many letters.
    Letters(usize),
    /// `.001`, `.002`, ... (or from `.000`), of this many digits.
    Digits(usize),
}

/// A part's name split into the archive's name and the part's suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartName {
    /// The archive's file name once joined (`BigEarthNet-S1.tar.gz`).
    pub archive: String,
    /// The suffix (`aa`, `001`).
    pub suffix: String,
    kind: Suffix,
}

/// The part name of `path`, if it is one: an archive ending (`.tar.gz`, `.tar`, ...) followed
/// by two or more lowercase letters, or by `.` and three or more digits.
pub fn part_name(path: &Path) -> Option<PartName> {
    let name = path.file_name()?.to_str()?;
    let is_archive = |base: &str| {
        matches!(
            container_of(Path::new(base)),
            Some(Container::Tar(_)) | Some(Container::Zip)
        )
    };
    if let Some((base, digits)) = name.rsplit_once('.') {
        if digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()) && is_archive(base) {
            return Some(PartName {
                archive: base.to_string(),
                suffix: digits.to_string(),
                kind: Suffix::Digits(digits.len()),
            });
        }
    }
    let letters = name
        .bytes()
        .rev()
        .take_while(|b| b.is_ascii_lowercase())
        .count();
    for n in 2..=letters.min(4) {
        let (base, suffix) = name.split_at(name.len() - n);
        if is_archive(base) {
            return Some(PartName {
                archive: base.to_string(),
                suffix: suffix.to_string(),
                kind: Suffix::Letters(n),
            });
        }
    }
    None
}

/// The suffix after `suffix`, or `None` after the last one of its width.
fn successor(suffix: &str, kind: Suffix) -> Option<String> {
    match kind {
        Suffix::Digits(width) => {
            let n: u64 = suffix.parse().ok()?;
            let next = format!("{:0width$}", n + 1);
            (next.len() == width).then_some(next)
        }
        Suffix::Letters(_) => {
            let mut b = suffix.as_bytes().to_vec();
            for c in b.iter_mut().rev() {
                if *c < b'z' {
                    *c += 1;
                    return String::from_utf8(b).ok();
                }
                *c = b'a';
            }
            None
        }
    }
}

/// Whether `suffix` is a first part's (`aa...`, `001` or `000`).
fn is_first(suffix: &str, kind: Suffix) -> bool {
    match kind {
        Suffix::Letters(_) => suffix.bytes().all(|b| b == b'a'),
        Suffix::Digits(_) => {
            suffix.bytes().all(|b| b == b'0') || suffix.trim_start_matches('0') == "1"
        }
    }
}

fn missing(path: &Path, why: String) -> SourceError {
    SourceError::new(SourceErrorKind::Io, path, why)
        .hint("give every part of the split archive (a glob such as 'BigEarthNet-S1.tar.gz*', the list of parts, or the first part)")
}

/// Checks that `parts` (paths of parts of one archive, any order) are all of it: one archive,
/// one naming, from the first part on with none missing. Returns them in name order.
pub fn check_parts(parts: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut named: Vec<(PartName, PathBuf)> = Vec::new();
    for p in parts {
        let name = part_name(p).ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Layout,
                p,
                "this is not a part of a split archive (ARCHIVE.tar.gzaa or ARCHIVE.tar.gz.001)",
            )
        })?;
        named.push((name, p.clone()));
    }
    named.sort_by(|a, b| a.1.cmp(&b.1));
    named.dedup_by(|a, b| a.1 == b.1);
    let Some((first, first_path)) = named.first().cloned() else {
        return Ok(Vec::new());
    };
    let dir = first_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for (n, p) in &named {
        if n.archive != first.archive
            || n.kind != first.kind
            || p.parent().map(Path::to_path_buf).unwrap_or_default() != dir
        {
            return Err(SourceError::new(
                SourceErrorKind::Layout,
                p,
                format!(
                    "this part is not of the same split archive as {}",
                    first_path.display()
                ),
            ));
        }
    }
    if !is_first(&first.suffix, first.kind) {
        let want = match first.kind {
            Suffix::Letters(w) => "a".repeat(w),
            Suffix::Digits(w) => format!("{:0w$}", 1),
        };
        return Err(missing(
            &dir.join(format!("{}{}{want}", first.archive, sep(first.kind))),
            format!(
                "the first part of {} is missing (the first given is {})",
                first.archive,
                first_path.display()
            ),
        ));
    }
    let mut expected = first.suffix.clone();
    for (n, _) in named.iter().skip(1) {
        let next = successor(&expected, first.kind).unwrap_or_default();
        if n.suffix != next {
            return Err(missing(
                &dir.join(format!("{}{}{next}", first.archive, sep(first.kind))),
                format!("part {next} of {} is missing", first.archive),
            ));
        }
        expected = next;
    }
    Ok(named.into_iter().map(|(_, p)| p).collect())
}

fn sep(kind: Suffix) -> &'static str {
    match kind {
        Suffix::Letters(_) => "",
        Suffix::Digits(_) => ".",
    }
}

/// Every part of the split archive that `part` is a part of: its siblings of the same archive
/// and naming, checked as [`check_parts`] does. Also when `part` is not the first one.
pub fn find_parts(part: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let Some(name) = part_name(part) else {
        return Ok(vec![part.to_path_buf()]);
    };
    let dir = match part.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        SourceError::new(
            SourceErrorKind::Io,
            &dir,
            format!("cannot list the folder: {e}"),
        )
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if let Some(n) = part_name(&p) {
            if n.archive == name.archive && n.kind == name.kind {
                found.push(if part.parent().is_some_and(|d| d.as_os_str().is_empty()) {
                    PathBuf::from(entry.file_name())
                } else {
                    p
                });
            }
        }
    }
    check_parts(&found)
}

/// The parts read one after the other as one stream; a part that cannot be opened is an error
/// that names it.
pub struct Chain {
    parts: Vec<PathBuf>,
    next: usize,
    current: Option<File>,
}

impl Chain {
    /// A reader of `parts`, in this order.
    pub fn new(parts: Vec<PathBuf>) -> Chain {
        Chain {
            parts,
            next: 0,
            current: None,
        }
    }
}

impl Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.parts.get(self.next) else {
                    return Ok(0);
                };
                self.next += 1;
                let file = open(path).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("part {}: {}", path.display(), e.message),
                    )
                })?;
                self.current = Some(file);
            }
            let n = self.current.as_mut().map_or(Ok(0), |f| f.read(buf))?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        let n = part_name(Path::new("d/BigEarthNet-S1.tar.gzab")).unwrap();
        assert_eq!(
            (n.archive.as_str(), n.suffix.as_str()),
            ("BigEarthNet-S1.tar.gz", "ab")
        );
        let n = part_name(Path::new("x.tar.zst.002")).unwrap();
        assert_eq!(
            (n.archive.as_str(), n.suffix.as_str()),
            ("x.tar.zst", "002")
        );
        assert!(part_name(Path::new("x.tar.gz")).is_none());
        assert!(part_name(Path::new("x.txtaa")).is_none());
        assert!(part_name(Path::new("x.tar.gz.01")).is_none());
        assert_eq!(successor("az", Suffix::Letters(2)).as_deref(), Some("ba"));
        assert_eq!(successor("zz", Suffix::Letters(2)), None);
        assert_eq!(successor("009", Suffix::Digits(3)).as_deref(), Some("010"));
    }

    #[test]
    fn parts_are_checked_and_chained_in_name_order() {
        let dir = std::env::temp_dir().join(format!("rico-parts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (s, text) in [("ab", "world"), ("aa", "hello "), ("ac", "!")] {
            std::fs::write(dir.join(format!("a.tar.gz{s}")), text).unwrap();
        }
        let parts = find_parts(&dir.join("a.tar.gzab")).unwrap();
        assert_eq!(parts.len(), 3);
        let mut text = String::new();
        Chain::new(parts).read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world!");
        std::fs::remove_file(dir.join("a.tar.gzab")).unwrap();
        let err = find_parts(&dir.join("a.tar.gzaa")).unwrap_err();
        assert!(err.message.contains("part ab"), "{}", err.message);
        assert!(err.container.ends_with("a.tar.gzab"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
