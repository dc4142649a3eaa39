//! Grouping a source's files into patches: by the spec's pattern and key, with the bands each
//! patch must have, until a patch is complete and handed out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::labels::{LabelRule, Labels, TableRows};
use crate::write::sources::root_name;
use crate::write::spec::{
    BandRule, FileBands, HeldBytes, Patch, PatchFile, Source, Spec, MAX_KEY_BYTES,
};

use super::{duplicate, first_file_with_key, key_hash, Planned};

pub(super) struct Pending {
    pub(super) files: Vec<PatchFile>,
    pub(super) whole_file: bool,
    pub(super) labels: Option<Labels>,
}

/// Groups the files of one source into patches.
pub(super) struct Grouper<'s> {
    pub(super) source: &'s Source<'s>,
    pub(super) index: usize,
    pub(super) spec: &'s Spec,
    pub(super) tables: Option<&'s TableRows>,
    pub(super) skip_invalid: bool,
    pub(super) root_name: String,
    pub(super) pending: BTreeMap<String, Pending>,
    /// With `uniform_bands`: every band seen, in order of first appearance.
    pub(super) seen_bands: Vec<String>,
    /// Shared by every file of the source: one allocation, not one per file.
    pub(super) names: Option<Arc<[String]>>,
    pub(super) prefix: Option<Arc<str>>,
    pub(super) band_names: HashSet<Arc<str>>,
    pub(super) group_labels: HashMap<String, Arc<[String]>>,
    /// Bytes of container members held in pending patches, with their bookkeeping.
    pub(super) pending_bytes: u64,
    /// With `skip_invalid`: files left out as they were added (path, reason), for the caller
    /// to report.
    pub(super) skipped: Vec<(String, String)>,
}

/// What a member held in a pending patch costs beside its bytes (its file entry, its name, its
/// patch's share of the map): counted with the bytes, so that a million empty members are
/// bounded by the same limit as a few large ones.
pub(super) const MEMBER_BOOKKEEPING: u64 = 256;

/// What a planned file holds in memory: its container member's bytes and their bookkeeping.
pub(super) fn held_by(file: &PatchFile) -> u64 {
    file.data.as_ref().map_or(0, |d| {
        d.len() as u64 + MEMBER_BOOKKEEPING + file.name.len() as u64
    })
}

impl<'s> Grouper<'s> {
    pub(super) fn new(
        source: &'s Source<'s>,
        index: usize,
        tables: Option<&'s TableRows>,
        skip_invalid: bool,
    ) -> Self {
        let spec = source.spec;
        Grouper {
            source,
            index,
            spec,
            tables,
            skip_invalid,
            root_name: root_name(&source.root),
            pending: BTreeMap::new(),
            seen_bands: Vec::new(),
            names: match &spec.bands {
                BandRule::Names(names) => Some(names.clone().into()),
                _ => None,
            },
            prefix: match &spec.bands {
                BandRule::Numbered(prefix) => Some(prefix.as_str().into()),
                _ => None,
            },
            band_names: HashSet::new(),
            group_labels: HashMap::new(),
            pending_bytes: 0,
            skipped: Vec::new(),
        }
    }

    /// Whether a patch is complete once its directory has been listed: whole-file patches
    /// always are; one-file-per-band patches when the spec says they share a directory.
    pub(super) fn local(&self) -> bool {
        !self.spec.uniform_bands
            && (!matches!(self.spec.bands, BandRule::FromPath) || self.spec.patch_per_directory)
    }

    /// Adds the file at `rel` (in `dir`); returns whether it is image data of this source.
    pub(super) fn add(&mut self, dir: &Arc<Path>, rel: &str) -> Result<bool> {
        Ok(self.add_with(dir, rel, None)?.is_some())
    }

    /// Adds the file at `rel` (in `dir`, with a container member's bytes in `data`); returns
    /// the key of its patch when it is image data of this source.
    pub(super) fn add_with(
        &mut self,
        dir: &Arc<Path>,
        rel: &str,
        data: Option<Arc<HeldBytes>>,
    ) -> Result<Option<String>> {
        let spec = self.spec;
        let Some(caps) = spec.pattern.captures(rel) else {
            return Ok(None);
        };
        let key = spec.key.render(&self.root_name, &caps);
        if self
            .source
            .keys
            .as_ref()
            .is_some_and(|keys| !keys.contains(&key))
        {
            return Ok(None);
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            let reason = format!(
                "the key made for this file is {} bytes long; LMDB keys must be 1 to {MAX_KEY_BYTES} bytes",
                key.len()
            );
            // A container's member is named `container!member`, a file by its path.
            let shown = match self.source.container {
                Some(_) => {
                    let stored = match self.root_name.as_str() {
                        "" => rel.to_string(),
                        root => format!("{root}/{rel}"),
                    };
                    rico_source::member_location(&self.source.root, &stored)
                }
                None => self.source.root.join(rel).display().to_string(),
            };
            if self.skip_invalid {
                self.skipped.push((shown, reason));
                return Ok(None);
            }
            return Err(Error::data(reason).at(shown));
        }
        let name = rel.rsplit_once('/').map_or(rel, |(_, n)| n);
        let bands = match &spec.bands {
            BandRule::FromPath => {
                let band = caps.name("band").map_or("", |m| m.as_str());
                FileBands::One(match self.band_names.get(band) {
                    Some(band) => band.clone(),
                    None => {
                        let arc: Arc<str> = band.into();
                        self.band_names.insert(arc.clone());
                        arc
                    }
                })
            }
            BandRule::Names(_) => {
                FileBands::Names(self.names.clone().expect("set for BandRule::Names"))
            }
            BandRule::Numbered(_) => {
                FileBands::Numbered(self.prefix.clone().expect("set for BandRule::Numbered"))
            }
        };
        let whole_file = !matches!(bands, FileBands::One(_));
        let file = PatchFile {
            dir: dir.clone(),
            name: name.into(),
            bands,
            data,
        };
        if let (true, FileBands::One(band)) = (spec.uniform_bands, &file.bands) {
            if !self.seen_bands.iter().any(|b| b.as_str() == &**band) {
                self.seen_bands.push(band.to_string());
            }
        }
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            files: Vec::new(),
            whole_file,
            labels: None,
        });
        // Two whole-file patches, or the same band twice, under one key: refuse, naming both.
        let clash = entry.files.iter().find(|f| {
            whole_file
                || entry.whole_file
                || matches!((&f.bands, &file.bands), (FileBands::One(a), FileBands::One(b)) if a == b)
        });
        if let Some(other) = clash {
            return Err(duplicate(spec, &key, &other.path(), &file.path()));
        }
        if entry.labels.is_none() {
            entry.labels = match (&spec.labels, self.tables) {
                (LabelRule::Group(g), _) => {
                    let name = caps.name(g).map_or("", |m| m.as_str());
                    let names = match self.group_labels.get(name) {
                        Some(names) => names.clone(),
                        None => {
                            let names = Labels::one(name).names;
                            self.group_labels.insert(name.to_string(), names.clone());
                            names
                        }
                    };
                    Some(Labels {
                        names,
                        values: vec![true],
                    })
                }
                (LabelRule::Tables { row, .. }, Some(tables)) => {
                    Some(tables.get(caps.name(row).map_or("", |m| m.as_str()), &file.path())?)
                }
                _ => None,
            };
        }
        self.pending_bytes += held_by(&file);
        entry.files.push(file);
        Ok(Some(key))
    }

    /// Takes the pending patch `key` out when it is complete whatever comes next: a whole-file
    /// patch, or one that has every band its spec lists.
    pub(super) fn take_if_complete(&mut self, key: &str) -> Option<Pending> {
        let pending = self.pending.get(key)?;
        let complete = pending.whole_file
            || (!self.spec.required_bands.is_empty()
                && self.spec.required_bands.iter().all(|band| {
                    pending
                        .files
                        .iter()
                        .any(|f| matches!(&f.bands, FileBands::One(b) if **b == **band))
                }));
        if complete {
            self.pending.remove(key)
        } else {
            None
        }
    }

    /// Hands out every pending patch, in the order of their first files.
    pub(super) fn flush(
        &mut self,
        sources: &[Source<'_>],
        emitted: &mut HashSet<u64>,
        emit: &mut dyn FnMut(Planned) -> Result<()>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ready: Vec<(String, Pending)> = std::mem::take(&mut self.pending).into_iter().collect();
        self.hand_out(ready, sources, emitted, emit)
    }

    /// Hands out `ready` patches (taken out of `pending`), in the order of their first files.
    pub(super) fn hand_out(
        &mut self,
        mut ready: Vec<(String, Pending)>,
        sources: &[Source<'_>],
        emitted: &mut HashSet<u64>,
        emit: &mut dyn FnMut(Planned) -> Result<()>,
    ) -> Result<()> {
        for (_, pending) in &ready {
            let held: u64 = pending.files.iter().map(held_by).sum();
            self.pending_bytes -= held;
        }
        for (_, pending) in &mut ready {
            pending.files.sort_by(PatchFile::cmp_path);
        }
        ready.sort_by(|a, b| a.1.files[0].cmp_path(&b.1.files[0]));
        let spec = self.spec;
        let listed = !spec.required_bands.is_empty();
        let required = if listed {
            Some(&spec.required_bands)
        } else if spec.uniform_bands {
            Some(&self.seen_bands)
        } else {
            None
        };
        // Bands are checked for every ready patch before any is handed out: a source handed out
        // at its end (see `local`) then fails before any of its records is written.
        let mut missing: Vec<Option<Error>> = Vec::with_capacity(ready.len());
        for (key, pending) in &ready {
            let mut err = None;
            if let Some(required) = required {
                if let Some(band) = required.iter().find(|band| {
                    !pending
                        .files
                        .iter()
                        .any(|f| matches!(&f.bands, FileBands::One(b) if **b == ***band))
                }) {
                    let why = if listed {
                        ""
                    } else {
                        " (other patches of this source have one)"
                    };
                    let e = Error::data(format!("patch {key} has no file for band {band}{why}"))
                        .at(&pending.files[0].dir)
                        .hint("the download is probably incomplete; re-download this patch (or pass --skip-invalid to leave it out)");
                    if !self.skip_invalid {
                        return Err(e);
                    }
                    err = Some(e);
                }
            }
            missing.push(err);
        }
        for ((key, pending), missing) in ready.into_iter().zip(missing) {
            if !emitted.insert(key_hash(&key)) {
                let this = pending.files[0].path();
                if let Some(first) = first_file_with_key(sources, &key, &this)? {
                    return Err(duplicate(spec, &key, &first, &this));
                }
                if sources.iter().any(|s| s.container.is_some()) {
                    // Containers are read once: the earlier file is not looked for again.
                    return Err(duplicate(spec, &key, Path::new("an earlier file"), &this));
                }
                // Two keys with one hash (about one chance in 10^19): not a duplicate.
            }
            if let Some(err) = missing {
                emit(Planned::Skipped(key, err.to_string()))?;
                continue;
            }
            let mut files = pending.files;
            files.shrink_to_fit();
            emit(Planned::Patch(Patch {
                key,
                files,
                labels: pending.labels,
                source: self.index,
            }))?;
        }
        Ok(())
    }
}
