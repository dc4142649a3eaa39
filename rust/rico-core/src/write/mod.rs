//! The write layer: a conversion, in the order a record flows through it. A dataset's
//! [`spec`] (and its preset in [`datasets`]) names what to read; [`sources`] resolves each
//! source option; [`plan`] groups members into patches; `fetch` reads their bytes;
//! `decode` turns them into records; `commit` writes them into LMDB; [`target`] owns
//! everything on disk. `pipeline` wires the stages, [`sharding`] cuts a run into shards,
//! [`convert`] is the entry point and [`verify`] re-reads a finished conversion. It may use
//! the base and read layers (resume and verify read databases).

pub(crate) mod commit;
pub mod convert;
pub mod datasets;
pub(crate) mod decode;
pub(crate) mod fetch;
pub(crate) mod pipeline;
pub mod plan;
pub mod sharding;
pub mod sources;
pub mod spec;
pub mod target;
pub mod verify;
