//! The write layer: a conversion, in the order a record flows through it. A dataset's
//! [`spec`] (and its preset in [`datasets`]) names what to read; [`sources`] resolves each
//! source option; [`plan`] groups members into patches; `fetch` reads their bytes;
//! `decode` turns them into records; `commit` writes them into LMDB; [`target`] owns
//! everything on disk. `pipeline` wires the stages, [`sharding`] cuts a run into shards,
//! [`convert`] is the entry point ([`options`] the user's options of it) and [`verify`] re-reads a finished conversion. It may use
//! the base and read layers (resume and verify read databases).

pub(crate) mod commit;
pub mod convert;
pub mod datasets;
pub(crate) mod decode;
pub(crate) mod fetch;
pub mod options;
pub(crate) mod pipeline;
pub mod plan;
pub mod sharding;
pub mod sources;
pub mod spec;
pub mod target;
pub mod verify;

/// Scratch source trees for the stages' unit tests.
#[cfg(test)]
pub(crate) mod scratch {
    use std::fs;
    use std::path::PathBuf;

    /// A scratch source tree of empty files under the temporary directory (planning never
    /// opens image files): `rico-{name}-{pid}/` holding `files`.
    pub(crate) fn tree(name: &str, files: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("rico-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for f in files {
            let path = root.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"").unwrap();
        }
        root
    }
}
