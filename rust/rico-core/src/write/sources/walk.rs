//! A directory source's files, walked: each directory's files first (sorted), then its
//! subdirectories, as [`Event`]s.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, ErrorKind, Result};

use super::{Event, Member};

/// A path's bytes, printable: valid UTF-8 as it is, other bytes as `\xNN`.
pub fn escape_path(path: &Path) -> String {
    path.as_os_str()
        .as_bytes()
        .utf8_chunks()
        .map(|chunk| {
            let mut s = chunk.valid().to_string();
            for b in chunk.invalid() {
                s.push_str(&format!("\\x{b:02X}"));
            }
            s
        })
        .collect()
}

/// What is wrong with a link loop: `link` leads back to `holder`, a directory that holds it.
pub(crate) fn link_loop_reason(link: &Path, holder: &Path) -> String {
    format!(
        "{}: a symbolic link loop: this link leads back to {}, a directory that holds it, so following it would list the same files again without end",
        escape_path(link),
        escape_path(holder)
    )
}

/// Lists `dir`: its files first (sorted), then each subdirectory (sorted), recursively.
/// Symbolic links to files and directories are followed, except a link to a directory that
/// holds it (a link loop, see [`crate::write::spec::link_loop`]): that stops the walk naming the link,
/// or with `skip_invalid` is left out and listed. With `skip_invalid`, a directory below the
/// root that cannot be listed is left out and listed too.
pub(crate) fn walk_dirs(
    dir: &Arc<Path>,
    rel: &mut String,
    depth: usize,
    skip_invalid: bool,
    visit: &mut dyn FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    if depth > 64 {
        return Err(
            Error::data("directory nesting deeper than 64 levels (a symbolic link loop?)").at(dir),
        );
    }
    let unlistable = |e: std::io::Error| {
        if crate::base::error::is_out_of_descriptors(&e) {
            return crate::base::error::out_of_descriptors("listing a source directory");
        }
        Error::data(format!("cannot list directory: {e}"))
            .at(dir)
            .hint("check that this user may read it, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)")
    };
    // A directory below the root that cannot be listed: with skip_invalid, its patches are
    // left out (whatever it held is unknown) and it is listed; else the walk stops.
    let entries = match fs::read_dir(dir).map_err(unlistable) {
        Ok(entries) => entries,
        Err(e) if skip_invalid && depth > 0 && e.kind == ErrorKind::Data => {
            return visit(Event::Invalid(escape_path(dir), e.message));
        }
        Err(e) => return Err(e),
    };
    let mut files: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    // Links that lead back to a directory holding them: (name, that directory).
    let mut loops: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry.map_err(unlistable) {
            Ok(entry) => entry,
            Err(e) if skip_invalid && depth > 0 && e.kind == ErrorKind::Data => {
                return visit(Event::Invalid(escape_path(dir), e.message));
            }
            Err(e) => return Err(e),
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            let shown = escape_path(&dir.join(&os_name));
            let reason = format!(
                "{shown}: this name is not valid UTF-8 (bytes shown as \\xNN); rico matches patterns and makes keys from UTF-8 names"
            );
            if skip_invalid {
                visit(Event::Invalid(shown, reason))?;
                continue;
            }
            return Err(Error::data(reason).hint(
                "rename it to a UTF-8 name, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)",
            ));
        };
        let file_type = entry.file_type().ok();
        let mut is_dir = file_type.is_some_and(|t| t.is_dir());
        if file_type.is_some_and(|t| t.is_symlink()) {
            let target = fs::metadata(entry.path()).ok().filter(|m| m.is_dir());
            if let Some(target) = target {
                if let Some(holder) = crate::write::spec::link_loop(dir, depth, &target) {
                    loops.push((name.to_string(), holder));
                    continue;
                }
                is_dir = true;
            }
        }
        if is_dir {
            dirs.push(name.to_string());
        } else {
            files.push(name.to_string());
        }
    }
    // In name order, so that the loop reported is the same on every run.
    loops.sort_unstable();
    for (name, holder) in loops {
        let link = dir.join(name);
        let reason = link_loop_reason(&link, &holder);
        if !skip_invalid {
            return Err(Error::data(reason).hint(
                "remove the link, or pass --skip-invalid to leave it out (it is listed in rico-skipped.tsv)",
            ));
        }
        visit(Event::Invalid(escape_path(&link), reason))?;
    }
    files.sort_unstable();
    dirs.sort_unstable();
    let len = rel.len();
    for name in &files {
        rel.push_str(name);
        visit(Event::Member(Member {
            dir,
            rel,
            name: rel,
            held: None,
        }))?;
        rel.truncate(len);
    }
    drop(files);
    visit(Event::DirDone)?;
    for name in &dirs {
        rel.push_str(name);
        rel.push('/');
        let sub: Arc<Path> = dir.join(name).into();
        walk_dirs(&sub, rel, depth + 1, skip_invalid, visit)?;
        rel.truncate(len);
    }
    Ok(())
}
