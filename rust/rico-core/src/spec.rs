//! Dataset specs: which files of a source tree are image data, how they group into patches,
//! how a patch's key is made and what each band is called. Every dataset rico knows is a
//! [`Spec`] (see `datasets`); planning a conversion is walking the tree and applying it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;

use crate::error::{Error, Result};

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
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| Error::usage(format!("key template {template:?} has an unclosed '{{'")))?;
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

    fn render(&self, root_name: &str, caps: &regex::Captures<'_>) -> String {
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
}

impl Spec {
    /// Builds a spec; `pattern` and `key` are checked.
    pub fn new(pattern: &str, key: &str, bands: BandRule, describe: &str) -> Result<Spec> {
        let pattern = Regex::new(pattern)
            .map_err(|e| Error::usage(format!("invalid pattern {pattern:?}: {e}")))?;
        let key = KeyTemplate::parse(key, &pattern)?;
        if matches!(bands, BandRule::FromPath) && pattern.capture_names().flatten().all(|n| n != "band") {
            return Err(Error::usage(format!(
                "pattern {:?} has no named group `band` to name the bands by",
                pattern.as_str()
            )));
        }
        Ok(Spec { pattern, key, bands, required_bands: Vec::new(), describe: describe.to_string() })
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
    /// A single-band file stored under this name.
    One(String),
    /// Band i of the file stored as `names[i]`.
    Names(Arc<[String]>),
    /// Band i of the file stored as `{prefix}{i+1}`.
    Numbered(Arc<str>),
}

/// One file of a patch.
#[derive(Clone, Debug)]
pub struct PatchFile {
    pub path: PathBuf,
    pub bands: FileBands,
}

/// A patch: the files whose bands make one record.
#[derive(Clone, Debug)]
pub struct Patch {
    pub key: String,
    /// Sorted by path.
    pub files: Vec<PatchFile>,
}

/// One source directory and the spec that reads it.
pub struct Source<'a> {
    /// The option that named it (`bigearthnet-s2-dir`), for messages.
    pub option: String,
    pub root: PathBuf,
    pub spec: &'a Spec,
}

/// LMDB's limit on key length (bytes).
pub const MAX_KEY_BYTES: usize = 511;

/// Walks every source and groups its files into patches, sorted by source path. Fails before
/// anything is written when a source is missing or empty, a key repeats, or a band is missing.
pub fn plan(sources: &[Source<'_>]) -> Result<Vec<Patch>> {
    struct Pending {
        files: Vec<PatchFile>,
        required: Option<(usize, Vec<String>)>, // (source index, required bands)
        whole_file: bool,
    }
    let mut patches: BTreeMap<String, Pending> = BTreeMap::new();

    // Check every source before walking any: a typo in the third option should not cost a long walk.
    for source in sources {
        check_source_dir(source)?;
    }
    for (index, source) in sources.iter().enumerate() {
        let root_name = source.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut found = 0usize;
        for rel in walk(&source.root)? {
            let Some(caps) = source.spec.pattern.captures(&rel) else { continue };
            let key = source.spec.key.render(&root_name, &caps);
            let path = source.root.join(&rel);
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(Error::data(format!(
                    "the key made for this file is {} bytes long; LMDB keys must be 1 to {MAX_KEY_BYTES} bytes",
                    key.len()
                ))
                .at(&path));
            }
            let bands = match &source.spec.bands {
                BandRule::FromPath => FileBands::One(caps.name("band").map_or("", |m| m.as_str()).to_string()),
                BandRule::Names(names) => FileBands::Names(names.clone().into()),
                BandRule::Numbered(prefix) => FileBands::Numbered(prefix.as_str().into()),
            };
            let whole_file = !matches!(bands, FileBands::One(_));
            found += 1;
            let entry = patches.entry(key.clone()).or_insert_with(|| Pending {
                files: Vec::new(),
                required: (!source.spec.required_bands.is_empty())
                    .then(|| (index, source.spec.required_bands.clone())),
                whole_file,
            });
            // Two whole-file patches, or the same band twice, under one key: refuse, naming both.
            let clash = entry.files.iter().find(|f| {
                whole_file
                    || entry.whole_file
                    || matches!((&f.bands, &bands), (FileBands::One(a), FileBands::One(b)) if a == b)
            });
            if let Some(other) = clash {
                return Err(Error::data(format!(
                    "duplicate key {key:?}: both {} and {} would be stored under it",
                    other.path.display(),
                    path.display()
                ))
                .hint("keys must be unique within one database; convert these sources into separate databases, or rename one of them"));
            }
            entry.files.push(PatchFile { path, bands });
        }
        if found == 0 {
            return Err(Error::usage(format!(
                "no patch found in this {} directory (given with --{}); expected {}",
                source.option.trim_end_matches("-dir"),
                source.option,
                source.spec.describe
            ))
            .at(&source.root)
            .hint("check that the option points at the dataset's root directory"));
        }
    }

    let mut out = Vec::with_capacity(patches.len());
    for (key, mut pending) in patches {
        if let Some((_, required)) = &pending.required {
            for band in required {
                let present = pending.files.iter().any(|f| matches!(&f.bands, FileBands::One(b) if b == band));
                if !present {
                    let dir = pending.files[0].path.parent().map(Path::to_path_buf).unwrap_or_default();
                    return Err(Error::data(format!("patch {key} has no file for band {band}"))
                        .at(dir)
                        .hint("the download is probably incomplete; re-download this patch (or pass --skip-invalid to leave it out)"));
                }
            }
        }
        pending.files.sort_by(|a, b| a.path.cmp(&b.path));
        out.push(Patch { key, files: pending.files });
    }
    out.sort_by(|a, b| a.files[0].path.cmp(&b.files[0].path));
    Ok(out)
}

fn check_source_dir(source: &Source<'_>) -> Result<()> {
    match fs::metadata(&source.root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::usage(format!("--{} must be a directory, this is a file", source.option)).at(&source.root)),
        Err(e) => Err(Error::usage(format!("cannot open the directory given with --{}: {e}", source.option))
            .at(&source.root)
            .hint("check the path; it must exist and be readable")),
    }
}

/// Every file below `root`, as `/`-separated paths relative to it, in sorted order.
/// Symbolic links to files and directories are followed.
pub fn walk(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > 64 {
            return Err(Error::data("directory nesting deeper than 64 levels (a symbolic link loop?)").at(&dir));
        }
        let entries = fs::read_dir(&dir).map_err(|e| Error::data(format!("cannot list directory: {e}")).at(&dir))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::data(format!("cannot list directory: {e}")).at(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                is_dir = fs::metadata(entry.path()).map(|m| m.is_dir()).unwrap_or(false);
            }
            names.push((name, is_dir));
        }
        names.sort();
        // Push directories in reverse so that they pop in order; files are collected and sorted at the end.
        for (name, is_dir) in names.into_iter().rev() {
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            if is_dir {
                stack.push((dir.join(&name), rel, depth + 1));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
