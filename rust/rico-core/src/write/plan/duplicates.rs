//! A key given twice: the error that stops the run, naming both files (the first found by
//! walking the sources again).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::write::sources::walk::walk_dirs;
use crate::write::sources::{root_name, Event, Member};
use crate::write::spec::{Source, Spec};

/// Whether `e` is planning's duplicate-key error.
pub fn is_duplicate_key(e: &Error) -> bool {
    e.kind == crate::base::error::ErrorKind::Data && e.message.starts_with(DUPLICATE)
}

const DUPLICATE: &str = "duplicate key ";

pub(super) fn duplicate(spec: &Spec, key: &str, first: &Path, second: &Path) -> Error {
    Error::data(format!(
        "{DUPLICATE}{key:?}: both {} and {} would be stored under it",
        first.display(),
        second.display()
    ))
    .hint(spec.duplicate_hint.clone().unwrap_or_else(|| {
        "keys must be unique within one database; convert these sources into separate databases, or rename one of them".to_string()
    }))
}

/// The first file (other than `not`) whose key is `key`: walks the sources again. Only for
/// the error of a duplicate key, which stops the run.
pub(super) fn first_file_with_key(
    sources: &[Source<'_>],
    key: &str,
    not: &Path,
) -> Result<Option<PathBuf>> {
    let mut order: Vec<&Source<'_>> = sources.iter().filter(|s| s.container.is_none()).collect();
    order.sort_by(|a, b| a.root.cmp(&b.root));
    for source in order {
        let root_name = root_name(&source.root);
        let mut found = None;
        let root: Arc<Path> = source.root.clone().into();
        let _ = walk_dirs(&root, &mut String::new(), 0, true, &mut |event| {
            if let Event::Member(Member { rel, .. }) = event {
                if let Some(caps) = source.spec.pattern.captures(rel) {
                    let path = source.root.join(rel);
                    if source.spec.key.render(&root_name, &caps) == key && path != not {
                        found = Some(path);
                        // Stops the walk: the error is dropped.
                        return Err(Error::data("found"));
                    }
                }
            }
            Ok(())
        });
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
