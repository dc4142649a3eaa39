//! Dataset specs: which files of a source tree are image data, how they group into patches,
//! how a patch's key is made and what each band is called. Every dataset rico knows is a
//! [`Spec`] (see `datasets`); planning a conversion is walking the tree and applying it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;

use crate::base::error::{Error, Result};
use crate::base::labels::{LabelRule, Labels};

/// How the bands of a matched file are named.
#[derive(Clone, Debug)]
pub enum BandRule {
    /// The pattern's `band` group names the band; the file holds exactly one band.
    FromPath,
    /// Band i of the file (1-based) is called `names[i-1]`; the count must match.
    Names(Vec<String>),
    /// Band i of the file is called `{prefix}{i}` (`B1`, `B2`, ...).
    Numbered(String),
}

/// A key template such as `{key}` or `{root}_{location}_{acquisition}`: `{root}` is the
/// source directory's own name, any other `{name}` a named group of the pattern.
#[derive(Clone, Debug)]
pub struct KeyTemplate {
    parts: Vec<KeyPart>,
}

#[derive(Clone, Debug)]
enum KeyPart {
    Literal(String),
    Root,
    Group(String),
}

impl KeyTemplate {
    /// Parses a template; every `{group}` must be a named group of `pattern`.
    pub fn parse(template: &str, pattern: &Regex) -> Result<KeyTemplate> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(KeyPart::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| {
                Error::usage(format!("key template {template:?} has an unclosed '{{'"))
            })?;
            let name = &rest[open + 1..open + close];
            if name == "root" {
                parts.push(KeyPart::Root);
            } else if pattern.capture_names().flatten().any(|n| n == name) {
                parts.push(KeyPart::Group(name.to_string()));
            } else {
                return Err(Error::usage(format!(
                    "key template {template:?} uses {{{name}}}, which is not a named group of the pattern {:?}",
                    pattern.as_str()
                )));
            }
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(KeyPart::Literal(rest.to_string()));
        }
        Ok(KeyTemplate { parts })
    }

    /// The key of the file whose match is `caps`, below the source directory named `root_name`.
    pub fn render(&self, root_name: &str, caps: &regex::Captures<'_>) -> String {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                KeyPart::Literal(s) => key.push_str(s),
                KeyPart::Root => key.push_str(root_name),
                KeyPart::Group(g) => key.push_str(caps.name(g).map_or("", |m| m.as_str())),
            }
        }
        key
    }
}

/// What a patch is, for one kind of source directory.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Matched (unanchored) against each file's path relative to the source root, with `/`
    /// separators. Files that do not match are not image data and are ignored.
    pub pattern: Regex,
    /// How the key of a patch is made from the match.
    pub key: KeyTemplate,
    /// How the bands of a matched file are named.
    pub bands: BandRule,
    /// With [`BandRule::FromPath`]: the bands every patch must have.
    pub required_bands: Vec<String>,
    /// Words for error messages: what a patch looks like in this source.
    pub describe: String,
    /// Where each patch's labels come from (for the labels table beside the database).
    pub labels: LabelRule,
    /// With [`BandRule::FromPath`] and no `required_bands`: every patch must have every band
    /// that any patch of this source has (a generic guard against incomplete downloads).
    pub uniform_bands: bool,
    /// A hint for the duplicate-key error, when this source can do better than the generic one.
    pub duplicate_hint: Option<String>,
    /// With [`BandRule::FromPath`]: the files of a patch lie in one directory, so that a patch
    /// is complete once its directory is listed (planning then holds one directory at a time).
    pub patch_per_directory: bool,
}

impl Spec {
    /// Builds a spec; `pattern` and `key` are checked.
    pub fn new(pattern: &str, key: &str, bands: BandRule, describe: &str) -> Result<Spec> {
        let pattern = Regex::new(pattern)
            .map_err(|e| Error::usage(format!("invalid pattern {pattern:?}: {e}")))?;
        let key = KeyTemplate::parse(key, &pattern)?;
        if matches!(bands, BandRule::FromPath)
            && pattern.capture_names().flatten().all(|n| n != "band")
        {
            return Err(Error::usage(format!(
                "pattern {:?} has no named group `band` to name the bands by",
                pattern.as_str()
            )));
        }
        Ok(Spec {
            pattern,
            key,
            bands,
            required_bands: Vec::new(),
            describe: describe.to_string(),
            labels: LabelRule::None,
            uniform_bands: false,
            duplicate_hint: None,
            patch_per_directory: false,
        })
    }

    /// Takes each patch's labels by `rule`; a [`LabelRule::Group`] or table row group must be a
    /// named group of the pattern.
    pub fn labels(mut self, rule: LabelRule) -> Result<Spec> {
        let group = match &rule {
            LabelRule::None => None,
            LabelRule::Group(g) | LabelRule::Tables { row: g, .. } => Some(g),
        };
        if let Some(g) = group {
            if self.pattern.capture_names().flatten().all(|n| n != g) {
                return Err(Error::usage(format!(
                    "pattern {:?} has no named group `{g}` to take labels from",
                    self.pattern.as_str()
                )));
            }
        }
        self.labels = rule;
        Ok(self)
    }

    /// Requires every patch to have the bands that any other patch of the source has.
    pub fn uniform_bands(mut self) -> Spec {
        self.uniform_bands = true;
        self
    }

    /// Declares that the files of a patch lie in one directory (see `patch_per_directory`).
    pub fn patch_per_directory(mut self) -> Spec {
        self.patch_per_directory = true;
        self
    }

    /// Replaces the hint of the duplicate-key error.
    pub fn duplicate_hint(mut self, hint: &str) -> Spec {
        self.duplicate_hint = Some(hint.to_string());
        self
    }

    /// Requires every patch to have these bands.
    pub fn require_bands(mut self, bands: &[&str]) -> Spec {
        self.required_bands = bands.iter().map(|b| b.to_string()).collect();
        self
    }
}

/// The bands a file contributes to its patch.
#[derive(Clone, Debug)]
pub enum FileBands {
    /// A single-band file stored under this name (shared by the files of a source that name it).
    One(Arc<str>),
    /// Band i of the file stored as `names[i]`.
    Names(Arc<[String]>),
    /// Band i of the file stored as `{prefix}{i+1}`.
    Numbered(Arc<str>),
}

/// One file of a patch: `dir/name`. The directory is shared by the files of a patch found in
/// it, so that a planned file costs its name, not its whole path.
///
/// A member of an archive or Parquet file has its bytes in `data` (read in the one pass over
/// the container) and a `dir` that names it for messages: `<container>!<member's folder>`.
#[derive(Clone, Debug)]
pub struct PatchFile {
    /// The file's directory (for a container member: `<container>!<folder inside it>`).
    pub dir: Arc<Path>,
    /// The file's name in its directory.
    pub name: Box<str>,
    /// The bands it gives its patch.
    pub bands: FileBands,
    /// A container member's bytes; `None` for a file on disk, read by the reading stage.
    pub data: Option<Arc<HeldBytes>>,
}

/// A container member's bytes, held from the pass over its container until its patch is
/// decoded. Bytes handed to the stages below the planner count against the run's
/// [`InFlight`] budget until they are dropped.
#[derive(Debug)]
pub struct HeldBytes {
    bytes: Vec<u8>,
    budget: Option<Arc<InFlight>>,
}

impl HeldBytes {
    /// Bytes not (yet) counted against a budget.
    pub fn new(bytes: Vec<u8>) -> Self {
        HeldBytes {
            bytes,
            budget: None,
        }
    }
}

impl std::ops::Deref for HeldBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.bytes.len() as u64);
        }
    }
}

/// The bytes of container members in flight between the planner and the decoders, bounded:
/// the planner waits before it hands out a patch that would take them past the limit (one
/// patch always goes, whatever its size). Whatever the archive declares, a run holds at most
/// about the limit, plus one patch, plus what each container's reader holds.
#[derive(Debug)]
pub struct InFlight {
    limit: u64,
    held: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
    closed: std::sync::atomic::AtomicBool,
}

impl InFlight {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(InFlight {
            limit,
            held: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The bytes of the container members of `files`.
    pub fn bytes_of(files: &[PatchFile]) -> u64 {
        files
            .iter()
            .map(|f| f.data.as_ref().map_or(0, |d| d.len() as u64))
            .sum()
    }

    /// Counts `n` bytes against the budget, first waiting while other bytes in flight would
    /// take them past the limit. The wait ends when the budget is [closed](Self::close), and
    /// gives up after a few seconds without any release, so that a stage that keeps bytes for
    /// longer cannot stall the run.
    pub fn acquire(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut idle = 0;
        while *held > 0
            && *held + n > self.limit
            && idle < 100
            && !self.closed.load(Ordering::Acquire)
        {
            let before = *held;
            held = self
                .freed
                .wait_timeout(held, std::time::Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            idle = if *held < before { 0 } else { idle + 1 };
        }
        *held += n;
    }

    /// Ends every wait, now and later: the run is over.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.freed.notify_all();
    }

    /// Counts the held bytes of `files` against the budget (see [`Self::acquire`]); they are
    /// released when the files' bytes are dropped.
    pub fn admit(self: &Arc<Self>, files: &mut [PatchFile]) {
        let n = Self::bytes_of(files);
        if n == 0 {
            return;
        }
        self.acquire(n);
        for file in files {
            if let Some(data) = file.data.as_mut() {
                match Arc::get_mut(data) {
                    Some(d) => d.budget = Some(self.clone()),
                    // Shared (never, for a member held once): count it free now.
                    None => self.release(data.len() as u64),
                }
            }
        }
    }

    /// Gives back `n` bytes counted by [`Self::acquire`].
    pub fn release(&self, n: u64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        *held = held.saturating_sub(n);
        drop(held);
        self.freed.notify_all();
    }
}

impl PatchFile {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&*self.name)
    }

    /// Orders files as their paths order (component-wise), without building the paths.
    pub fn cmp_path(&self, other: &PatchFile) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.dir, &other.dir) {
            return self.name.cmp(&other.name);
        }
        let a = self
            .dir
            .components()
            .chain(std::iter::once(std::path::Component::Normal(
                self.name.as_ref().as_ref(),
            )));
        let b = other
            .dir
            .components()
            .chain(std::iter::once(std::path::Component::Normal(
                other.name.as_ref().as_ref(),
            )));
        a.cmp(b)
    }
}

/// A patch: the files whose bands make one record.
#[derive(Clone, Debug)]
pub struct Patch {
    /// The patch's key, made by its spec's key template: the key of its record.
    pub key: String,
    /// Sorted by path.
    pub files: Vec<PatchFile>,
    /// The patch's labels, when its spec has a [`LabelRule`].
    pub labels: Option<Labels>,
    /// The index of the source that gave it, in the order the sources were given.
    pub source: usize,
}

/// One source (a directory, or an archive or Parquet file that stands for one) and the spec
/// that reads it.
pub struct Source<'a> {
    /// The option that named it (`bigearthnet-s2-dir`), for messages.
    pub option: String,
    /// The directory, or the container file.
    pub root: PathBuf,
    /// The spec that reads it.
    pub spec: &'a Spec,
    /// What `root` is when it is not a local directory: an archive or a Parquet file (or a
    /// folder over S3), read in one pass.
    pub container: Option<rico_source::Container>,
    /// Where the source's bytes are: `root` itself, or a URL (then `root` is the URL redacted,
    /// for messages).
    pub location: rico_source::Location,
    /// With a container: the most bytes of incomplete patches held while its members are read
    /// (a patch's files far apart in the archive); past it the run stops and says so.
    pub max_held_bytes: u64,
    /// Only the patches with these keys (a subset of the dataset); `None`: every patch.
    pub keys: Option<Arc<std::collections::HashSet<String>>>,
    /// With a container: the most bytes of its members handed to the stages below at once
    /// (see [`InFlight`]).
    pub in_flight_bytes: u64,
}

impl<'a> Source<'a> {
    /// A source directory read by `spec`.
    pub fn directory(option: &str, root: &Path, spec: &'a Spec) -> Source<'a> {
        Source {
            option: option.to_string(),
            root: root.to_path_buf(),
            spec,
            container: None,
            location: rico_source::Location::Local(root.to_path_buf()),
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            keys: None,
            in_flight_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }

    /// What the source is, in words: "directory", "archive" or "Parquet file".
    pub fn what(&self) -> &'static str {
        match self.container {
            None => "directory",
            Some(rico_source::Container::Parquet) => "Parquet file",
            Some(rico_source::Container::Folder) => "folder",
            Some(_) => "archive",
        }
    }
}

/// The default of [`Source::max_held_bytes`]: 1 GiB.
pub const DEFAULT_MAX_HELD_BYTES: u64 = 1 << 30;

pub use crate::base::record::MAX_KEY_BYTES;

/// Every file below `root`, as `/`-separated paths relative to it, in sorted order.
/// Symbolic links to files and directories are followed. (Planning uses [`walk_each`], which
/// does not hold the list.)
pub fn walk(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    walk_each(root, &mut |rel| {
        out.push(rel.to_string());
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with every file below `root`, as a `/`-separated path relative to it, in sorted
/// (byte-wise string) order, as the walk finds them: one directory listing is held per level,
/// never the whole tree. Symbolic links to files and directories are followed. The first error
/// of `f` stops the walk and is returned.
pub fn walk_each(root: &Path, f: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    let mut rel = String::new();
    walk_dir(root, &mut rel, 0, f)
}

/// When `target` (the directory a symbolic link found in `dir` leads to) is `dir` itself or one
/// of its parents up to the walk's root, `depth` levels up, that directory: following the link
/// would walk the same directories again and again (as `find -L`, `fd` and walkdir do, a link
/// is followed unless it leads back to a directory on the current path). Costs nothing where
/// there are no links to directories: only then are the parents looked up.
pub(crate) fn link_loop(dir: &Path, depth: usize, target: &fs::Metadata) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors()
        .take(depth + 1)
        .find(|a| fs::metadata(a).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino()))
        .map(Path::to_path_buf)
}

fn walk_dir(
    dir: &Path,
    rel: &mut String,
    depth: usize,
    f: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    if depth > 64 {
        return Err(
            Error::data("directory nesting deeper than 64 levels (a symbolic link loop?)").at(dir),
        );
    }
    let entries = fs::read_dir(dir)
        .map_err(|e| Error::data(format!("cannot list directory: {e}")).at(dir))?;
    // (sort key, is_dir): a directory sorts as `name/`, where its files fall among the paths of
    // its siblings, so that visiting in this order yields every path in sorted string order.
    let mut names: Vec<(String, bool)> = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::data(format!("cannot list directory: {e}")).at(dir))?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        let mut is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            match fs::metadata(entry.path()) {
                // A link loop is not followed (the planning walk reports it).
                Ok(m) if m.is_dir() && link_loop(dir, depth, &m).is_some() => continue,
                Ok(m) => is_dir = m.is_dir(),
                Err(_) => is_dir = false,
            }
        }
        if is_dir {
            name.push('/');
        }
        names.push((name, is_dir));
    }
    names.sort_unstable();
    let len = rel.len();
    for (name, is_dir) in &names {
        if *is_dir {
            let name = &name[..name.len() - 1];
            rel.push_str(name);
            rel.push('/');
            walk_dir(&dir.join(name), rel, depth + 1, f)?;
        } else {
            rel.push_str(name);
            f(rel)?;
        }
        rel.truncate(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::plan::plan;

    #[test]
    fn key_template_renders_root_and_groups() {
        let re = Regex::new(r"^(?P<loc>[^/]+)/(?P<acq>[^/]+)/(?P<band>[^/]+)\.tif$").unwrap();
        let t = KeyTemplate::parse("{root}_{loc}_{acq}", &re).unwrap();
        let caps = re.captures("0000200/2020T1/B1.tif").unwrap();
        assert_eq!(t.render("s2c", &caps), "s2c_0000200_2020T1");
    }

    #[test]
    fn key_template_rejects_unknown_group() {
        let re = Regex::new(r"(?P<key>x)").unwrap();
        let err = KeyTemplate::parse("{nope}", &re).unwrap_err();
        assert!(err.message.contains("nope"), "{}", err.message);
    }

    /// A scratch source tree of empty files (planning never opens image files).
    fn tree(name: &str, files: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("rico-spec-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for f in files {
            let path = root.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"").unwrap();
        }
        root
    }

    fn source<'a>(root: &Path, spec: &'a Spec) -> Source<'a> {
        Source::directory("dataset-dir", root, spec)
    }

    #[test]
    fn walk_yields_paths_in_sorted_string_order() {
        // `a/...` sorts after `a-b` and `a.txt` but before `a0`: directories are visited where
        // their paths fall among their siblings', not before or after all files.
        let files = ["a/x", "a/y/z", "a-b", "a.txt", "a0", "ab/c", "b", "a/x-1"];
        let root = tree("walk-order", &files);
        let got = walk(&root).unwrap();
        let mut want: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn uniform_bands_require_every_band_seen_in_the_source() {
        let spec = Spec::new(
            r"(?P<key>[^/]+)_(?P<band>B\d+)\.tif$",
            "{key}",
            BandRule::FromPath,
            "x",
        )
        .unwrap()
        .uniform_bands();
        let root = tree(
            "uniform",
            &["a_B1.tif", "a_B2.tif", "b_B1.tif", "b_B2.tif", "c_B1.tif"],
        );
        let err = plan(&[source(&root, &spec)]).unwrap_err();
        assert!(
            err.message.contains("patch c has no file for band B2"),
            "{}",
            err.message
        );
        fs::write(root.join("c_B2.tif"), b"").unwrap();
        let patches = plan(&[source(&root, &spec)]).unwrap();
        assert_eq!(
            patches.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(patches
            .iter()
            .all(|p| p.files.len() == 2 && p.labels.is_none()));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn group_labels_and_the_duplicate_hint() {
        let spec = Spec::new(
            r"(?:^|/)(?P<class>[^/]+)/(?P<key>[^/]+)\.png$",
            "{key}",
            BandRule::Numbered("B".into()),
            "x",
        )
        .unwrap()
        .labels(LabelRule::Group("class".into()))
        .unwrap()
        .duplicate_hint("use --key-parents");
        let root = tree("group", &["forest/a.png", "river/b.png", "notes.txt"]);
        let patches = plan(&[source(&root, &spec)]).unwrap();
        assert_eq!(patches[0].labels, Some(Labels::one("forest")));
        assert_eq!(patches[1].labels, Some(Labels::one("river")));
        fs::write(root.join("river/a.png"), b"").unwrap();
        let err = plan(&[source(&root, &spec)]).unwrap_err();
        assert!(
            err.message.contains("duplicate key \"a\"") && err.message.contains("forest/a.png"),
            "{}",
            err.message
        );
        assert_eq!(err.hint.as_deref(), Some("use --key-parents"));
        assert!(spec
            .clone()
            .labels(LabelRule::Group("nope".into()))
            .is_err());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn table_labels_are_looked_up_by_file_name() {
        let tables = Regex::new(r"(?:^|/)labels/[^/]+\.csv$").unwrap();
        let spec = Spec::new(
            r"(?:^|/)(?P<name>(?P<key>[^/]+)\.jpg)$",
            "{key}",
            BandRule::Numbered("B".into()),
            "x",
        )
        .unwrap()
        .labels(LabelRule::Tables {
            tables,
            row: "name".into(),
        })
        .unwrap();
        let root = tree("tables", &["Images/a/a_1.jpg", "Images/b/b_1.jpg"]);
        fs::create_dir_all(root.join("labels")).unwrap();
        fs::write(root.join("labels/a.csv"), "image,x,y\na_1.jpg,1,0\n").unwrap();
        fs::write(root.join("labels/b.csv"), "image,x,y\nb_2.jpg,0,1\n").unwrap();
        let err = plan(&[source(&root, &spec)]).unwrap_err();
        assert!(
            err.message.contains("no labels row for \"b_1.jpg\""),
            "{}",
            err.message
        );
        assert_eq!(
            err.path.as_deref(),
            Some(root.join("Images/b/b_1.jpg").as_path())
        );
        fs::write(root.join("labels/b.csv"), "image,x,y\nb_1.jpg,0,1\n").unwrap();
        let patches = plan(&[source(&root, &spec)]).unwrap();
        assert_eq!(
            patches[1].labels.as_ref().map(|l| l.values.clone()),
            Some(vec![false, true])
        );
        fs::remove_dir_all(root).unwrap();
    }
}
