//! Member names: what an unpacked folder could hold, and the folder a container stands for.

use std::path::Path;

use crate::CONTAINER_ENDINGS;

/// A member name as an unpacked folder would hold it: `/`-separated, without `./` components,
/// repeated or trailing slashes. `None` for a name no unpacking could produce safely: absolute
/// (`/x`, `C:\x`), with a `..` component, with a NUL or a backslash.
///
/// ```
/// use rico_source::normalize_member_name;
/// assert_eq!(normalize_member_name("./a//b/").as_deref(), Some("a/b"));
/// assert_eq!(normalize_member_name("."), Some(String::new()));
/// assert_eq!(normalize_member_name("../etc/passwd"), None);
/// assert_eq!(normalize_member_name("/etc/passwd"), None);
/// ```
pub fn normalize_member_name(name: &str) -> Option<String> {
    if name.starts_with('/') || name.contains('\0') || name.contains('\\') {
        return None;
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
    }
    Some(out)
}

/// Whether a (normalized) member name is operating-system metadata that an archiver adds
/// beside the files: macOS's `__MACOSX/` folder and `._*` resource forks, and `.DS_Store`.
/// Such members are skipped, as if the archive had been made without them.
///
/// ```
/// use rico_source::is_os_metadata;
/// assert!(is_os_metadata("__MACOSX/EuroSAT_MS/._x.tif"));
/// assert!(is_os_metadata("EuroSAT_MS/AnnualCrop/._AnnualCrop_1.tif"));
/// assert!(is_os_metadata("EuroSAT_MS/.DS_Store"));
/// assert!(!is_os_metadata("EuroSAT_MS/AnnualCrop/AnnualCrop_1.tif"));
/// ```
pub fn is_os_metadata(normalized: &str) -> bool {
    let last = normalized.rsplit('/').next().unwrap_or("");
    normalized.split('/').next() == Some("__MACOSX")
        || last.starts_with("._")
        || last == ".DS_Store"
}

/// The name of the folder a container without one top-level folder stands for: its file name
/// without the container ending (`parts.tar.gz` gives `parts`).
///
/// ```
/// use rico_source::archive_stem;
/// use std::path::Path;
/// assert_eq!(archive_stem(Path::new("/data/s1.tar.gz")), "s1");
/// assert_eq!(archive_stem(Path::new("EuroSAT_MS.ZIP")), "EuroSAT_MS");
/// ```
pub fn archive_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ending in CONTAINER_ENDINGS
        .split(", ")
        .chain(std::iter::once(".tar.zstd"))
    {
        if lower.ends_with(ending) && lower.len() > ending.len() {
            return name[..name.len() - ending.len()].to_string();
        }
    }
    name
}

/// Finds the folder an archive stands for as its members are read in order: the first member
/// decides (a member inside a folder makes that folder the root); every later member must then
/// lie in it.
pub(crate) struct RootFinder {
    top: Option<Option<String>>,
}

impl RootFinder {
    pub(crate) fn new() -> Self {
        RootFinder { top: None }
    }

    /// A root known in advance (a zip archive lists its members first): `top` is the archive's
    /// one top-level folder, if it has one.
    pub(crate) fn fixed(top: Option<String>) -> Self {
        RootFinder { top: Some(top) }
    }

    /// The one top-level folder that every name (normalized; `is_dir` for folders) lies in.
    pub(crate) fn common_top<'n>(names: impl Iterator<Item = (&'n str, bool)>) -> Option<String> {
        let mut top: Option<&str> = None;
        for (name, is_dir) in names {
            let first = match name.split_once('/') {
                Some((t, _)) => t,
                None if is_dir && !name.is_empty() => name,
                None if name.is_empty() => continue,
                None => return None,
            };
            match top {
                None => top = Some(first),
                Some(t) if t == first => {}
                Some(_) => return None,
            }
        }
        top.map(str::to_string)
    }

    /// Decides the root from the first member (normalized; `is_dir` for a directory entry);
    /// returns `Some(name)` the first time. A first entry `./` (normalized to nothing) says the
    /// archive was made from inside the folder: it then stands for a folder named after it.
    pub(crate) fn first(
        &mut self,
        archive: &Path,
        normalized: &str,
        is_dir: bool,
    ) -> Option<String> {
        if self.top.is_some() {
            return None;
        }
        let top = match normalized.split_once('/') {
            Some((t, _)) => Some(t.to_string()),
            None if is_dir && !normalized.is_empty() => Some(normalized.to_string()),
            None => None,
        };
        let name = top.clone().unwrap_or_else(|| archive_stem(archive));
        self.top = Some(top);
        Some(name)
    }

    /// The member's path relative to the root; `None` when it lies outside the root folder.
    pub(crate) fn relative<'n>(&self, normalized: &'n str) -> Option<&'n str> {
        match &self.top {
            Some(Some(top)) => normalized
                .strip_prefix(top.as_str())
                .and_then(|rest| rest.strip_prefix('/')),
            _ => Some(normalized),
        }
    }

    /// The top-level folder, when the archive has one.
    pub(crate) fn top(&self) -> Option<&str> {
        self.top.as_ref().and_then(|t| t.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_member_decides_the_root() {
        let mut r = RootFinder::new();
        assert_eq!(
            r.first(
                Path::new("x/BigEarthNet-S2.tar.zst"),
                "BigEarthNet-S2/a/b.tif",
                false
            )
            .as_deref(),
            Some("BigEarthNet-S2")
        );
        assert_eq!(r.first(Path::new("x"), "other", false), None);
        assert_eq!(r.relative("BigEarthNet-S2/a/b.tif"), Some("a/b.tif"));
        assert_eq!(r.relative("BigEarthNet-S2x/a.tif"), None);
        assert_eq!(r.relative("c.tif"), None);

        let mut flat = RootFinder::new();
        assert_eq!(
            flat.first(Path::new("s1.tar.gz"), "README", false)
                .as_deref(),
            Some("s1")
        );
        assert_eq!(flat.relative("a/b.tif"), Some("a/b.tif"));
        assert_eq!(flat.top(), None);

        let mut dir = RootFinder::new();
        assert_eq!(
            dir.first(Path::new("a.tar"), "s1", true).as_deref(),
            Some("s1")
        );
        assert_eq!(dir.relative("s1/x/B1.tif"), Some("x/B1.tif"));
        let mut dot = RootFinder::new();
        assert_eq!(
            dot.first(Path::new("p.tar"), "", true).as_deref(),
            Some("p")
        );
        assert_eq!(dot.relative("A/x.tif"), Some("A/x.tif"));
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in ["/abs", "a/../../b", "..", "C:\\x", "a\\b", "a\0b"] {
            assert_eq!(normalize_member_name(name), None, "{name:?}");
        }
        assert_eq!(normalize_member_name("a/./b").as_deref(), Some("a/b"));
    }
}
