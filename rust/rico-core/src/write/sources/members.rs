//! A container source's members (an archive's, a Parquet file's, either behind a URL), given as
//! the same [`Event`]s as a directory's files: rico-source reads the container in one pass;
//! each wanted member comes with its folder named `<container>!<folder>` and its bytes held.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, ErrorKind, Result};
use crate::write::spec::{HeldBytes, Source};

use super::{Event, Member};

/// Reads the container source `source` (of kind `container`) front to back, giving each
/// member it wants (by the spec's pattern, and the source's keys if it has them) to `visit`.
pub(crate) fn read_members(
    source: &Source<'_>,
    container: rico_source::Container,
    visit: &mut dyn FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    let mut members = Members {
        source,
        visit,
        root_name: super::root_name(&source.root),
        dir: None,
    };
    let limits = rico_source::Limits {
        max_member_bytes: source.max_held_bytes,
    };
    rico_source::read_members_at(&source.location, container, &limits, &mut members)
}

struct Members<'v, 's> {
    source: &'v Source<'s>,
    visit: &'v mut dyn FnMut(Event<'_>) -> Result<()>,
    /// The folder the container stands for, as keys are rendered with it.
    root_name: String,
    /// The last member's folder (as stored) and its `<container>!<folder>` path, shared by the
    /// files of a patch.
    dir: Option<(String, Arc<Path>)>,
}

impl rico_source::Visitor for Members<'_, '_> {
    type Error = Error;

    fn root(&mut self, name: &str) -> Result<()> {
        self.root_name = name.to_string();
        (self.visit)(Event::Root(name))
    }

    fn wants(&mut self, rel: &str) -> bool {
        let spec = self.source.spec;
        match &self.source.keys {
            None => spec.pattern.is_match(rel),
            Some(keys) => spec
                .pattern
                .captures(rel)
                .is_some_and(|caps| keys.contains(&spec.key.render(&self.root_name, &caps))),
        }
    }

    fn member(&mut self, member: rico_source::Member<'_>) -> Result<()> {
        let folder = member.name.rsplit_once('/').map_or("", |(d, _)| d);
        let dir = match &self.dir {
            Some((f, dir)) if f == folder => dir.clone(),
            _ => {
                let dir: Arc<Path> =
                    PathBuf::from(rico_source::member_location(&self.source.root, folder)).into();
                self.dir = Some((folder.to_string(), dir.clone()));
                dir
            }
        };
        (self.visit)(Event::Member(Member {
            dir: &dir,
            rel: member.rel,
            name: member.name,
            held: Some(Arc::new(HeldBytes::new(member.bytes))),
        }))
    }

    fn progress(&mut self, read: u64) {
        // Progress only: the visitor of a container's events never fails on it.
        let _ = (self.visit)(Event::Progress(read));
    }
}

impl From<rico_source::SourceError> for Error {
    fn from(e: rico_source::SourceError) -> Error {
        use rico_source::SourceErrorKind as K;
        let message = match &e.member {
            Some(m) => format!(
                "{}: {}",
                rico_source::member_location(&e.container, m),
                e.message
            ),
            None => e.message.clone(),
        };
        let mut err = match e.kind {
            K::Io => Error::usage(message),
            K::Corrupt | K::Hostile | K::Limit | K::Layout => Error::new(ErrorKind::Data, message),
        };
        if e.damage {
            // A mark for the planner: the records of this container may be wrong
            // (see `with_suspect_keys`, which fills in the keys).
            err.discard = Some(Arc::new(Vec::new()));
        }
        if e.member.is_none() {
            err = err.at(&e.container);
        }
        match e.hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}
