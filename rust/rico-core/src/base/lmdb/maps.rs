//! This process's memory mappings, read from `/proc/self/maps`: where an environment's map lies
//! (for the SIGBUS guard), and whether a file is mapped.

/// A file as `/proc/self/maps` names it.
pub(super) struct FileId {
    pub(super) dev: (u32, u32),
    pub(super) ino: u64,
    pub(super) path: Option<Vec<u8>>,
}

impl FileId {
    pub(super) fn names(&self, m: &Mapping<'_>) -> bool {
        (m.dev == self.dev && m.ino == self.ino) || self.path.as_deref() == Some(m.path)
    }
}

/// One line of `/proc/self/maps`.
pub(super) struct Mapping<'a> {
    pub(super) start: usize,
    pub(super) end: usize,
    /// MAP_SHARED (not private).
    pub(super) shared: bool,
    pub(super) offset: usize,
    pub(super) dev: (u32, u32),
    pub(super) ino: u64,
    pub(super) path: &'a [u8],
}

impl<'a> Mapping<'a> {
    /// `start-end perms offset major:minor inode   path` (the path may be any bytes).
    pub(super) fn parse(line: &'a [u8]) -> Option<Mapping<'a>> {
        let mut rest = line;
        let mut field = || {
            let at = rest.iter().position(|&b| b != b' ')?;
            rest = &rest[at..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let (f, r) = rest.split_at(end);
            rest = r;
            std::str::from_utf8(f).ok()
        };
        let (start, end) = field()?.split_once('-')?;
        let perms = field()?;
        let offset = field()?;
        let (major, minor) = field()?.split_once(':')?;
        let ino = field()?.parse().ok()?;
        let path = rest.trim_ascii_start();
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            shared: perms.as_bytes().get(3) == Some(&b's'),
            offset: usize::from_str_radix(offset, 16).ok()?,
            dev: (
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            ),
            ino,
            path,
        })
    }
}

/// Calls `find` on each mapping of this process until it returns something.
pub(super) fn mappings<T>(mut find: impl FnMut(&Mapping<'_>) -> Option<T>) -> Option<T> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    maps.split(|&b| b == b'\n')
        .filter_map(Mapping::parse)
        .find_map(|m| find(&m))
}

/// Where a read-only environment's map lies, and its registration with the SIGBUS handler.
#[derive(Default)]
pub(super) struct MapWatch {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) _watch: Option<crate::base::fault::Watch>,
}
