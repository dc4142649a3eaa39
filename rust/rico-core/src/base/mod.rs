//! The base layer: what every other layer shares — errors, the LMDB wrapper and its SIGBUS
//! guard, record encoding, labels, progress, aligned buffers, the names of files on disk and
//! thread counts. It imports no other layer.

pub mod buffer;
pub mod error;
pub(crate) mod fault;
pub(crate) mod fork;
pub mod labels;
pub mod layout;
pub mod lmdb;
pub mod progress;
pub mod record;
pub mod threads;
