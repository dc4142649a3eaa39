//! The reading stage of a conversion: source files read on their own threads, many reads in
//! flight (`--io-depth`), apart from the decode threads.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use rayon::prelude::*;

use crate::base::error::{Error, Result};
use crate::write::spec::{Patch, PatchFile};

/// A source file's bytes: read from disk by this stage, or held since a container was read.
#[derive(Debug)]
pub(crate) enum FileBytes {
    /// Read from a file on disk.
    Read(Vec<u8>),
    /// A container member's bytes, shared with its planned patch.
    Held(std::sync::Arc<crate::write::spec::HeldBytes>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Held(v) => v,
        }
    }
}

/// A chunk of patches with their files read (or the error of reading them): what this stage
/// produces for the decoders.
pub(crate) type Fetched = Vec<(Patch, Result<Vec<FileBytes>>)>;

/// The bytes of one planned file: its container member's, or the file's read from disk.
fn file_bytes(file: &PatchFile) -> Result<FileBytes> {
    match &file.data {
        Some(data) => Ok(FileBytes::Held(data.clone())),
        None => read_source_file(&file.path()).map(FileBytes::Read),
    }
}

/// Reads a source file. Opens without blocking (a FIFO named like a band file must not hang
/// the run) and refuses anything that is not a regular file; asks the kernel to read the whole
/// file ahead (cold disks and network filesystems then fetch it in one go).
pub(crate) fn read_source_file(path: &Path) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| {
        if crate::base::error::is_out_of_descriptors(&e) {
            return crate::base::error::out_of_descriptors("reading a source file");
        }
        Error::data(format!("cannot read file: {e}"))
            .at(path)
            .hint("check that the file exists and is readable by this user")
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        let t = meta.file_type();
        let what = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Error::data(format!(
            "this is {what}, not a regular file; rico reads band data only from regular files"
        ))
        .at(path)
        .hint("remove or replace it, or pass --skip-invalid to leave its patch out (listed in rico-skipped.tsv)"));
    }
    // SAFETY: a hint on a descriptor this function owns; failure is harmless.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}

/// Reads the files of `patch`, in order.
pub(crate) fn read_patch(patch: &Patch) -> Result<Vec<FileBytes>> {
    patch.files.iter().map(file_bytes).collect()
}

/// The threads that read files (`--io-depth` of them), apart from the decode threads: reads
/// wait on the disk, not on a CPU, so there are many more of them than cores.
pub(crate) struct FileReaders {
    pool: Option<rayon::ThreadPool>,
}

impl FileReaders {
    /// Starts `count` reader threads; without them (the system refused threads), chunks are
    /// read on the calling thread.
    pub fn start(count: usize) -> FileReaders {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count.max(1))
            .thread_name(|i| format!("rico-read-{i}"))
            .build()
            .ok();
        FileReaders { pool }
    }

    /// The number of reads in flight at most.
    pub fn count(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }

    /// Reads the files of a chunk of patches, file by file (not patch by patch: a patch's 15
    /// files would otherwise be read one after another, and the readers that finish first
    /// would wait for the others at the end of every chunk).
    pub fn read_chunk(&self, chunk: Vec<Patch>) -> Fetched {
        let files: Vec<&PatchFile> = chunk.iter().flat_map(|patch| &patch.files).collect();
        let read: Vec<Result<FileBytes>> = match &self.pool {
            // Held bytes need no reader thread.
            Some(pool) if files.iter().any(|f| f.data.is_none()) => pool.install(|| {
                files
                    .par_iter()
                    .with_max_len(2)
                    .map(|file| file_bytes(file))
                    .collect()
            }),
            _ => files.iter().map(|file| file_bytes(file)).collect(),
        };
        let mut read = read.into_iter();
        chunk
            .into_iter()
            .map(|patch| {
                // The patch's files in order; its first error, as `read_patch` gives. (All of its
                // results are taken before the first error is picked: collecting into a `Result`
                // would stop there and leave the rest for the next patch.)
                let mine: Vec<Result<FileBytes>> = read.by_ref().take(patch.files.len()).collect();
                let files: Result<Vec<FileBytes>> = mine.into_iter().collect();
                (patch, files)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorKind;

    #[test]
    fn a_fifo_is_refused_by_name_without_blocking() {
        let dir = std::env::temp_dir().join(format!("rico-fifo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("p_B01.tif");
        let _ = fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Nobody writes into the FIFO: an ordinary open would wait forever.
        let err = read_source_file(&fifo).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Data);
        assert!(err.message.contains("FIFO"), "{}", err.message);
        assert_eq!(err.path.as_deref(), Some(fifo.as_path()));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_chunk_keeps_each_patch_with_its_own_files_and_first_error() {
        let dir: std::sync::Arc<Path> = std::env::temp_dir()
            .join(format!("rico-chunk-{}", std::process::id()))
            .into();
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in [("a1", "A1"), ("b1", "B1"), ("b2", "B2"), ("c1", "C1")] {
            fs::write(dir.join(name), bytes).unwrap();
        }
        let patch = |key: &str, names: &[&str]| Patch {
            key: key.into(),
            files: names
                .iter()
                .map(|n| crate::write::spec::PatchFile {
                    dir: dir.clone(),
                    name: (*n).into(),
                    bands: crate::write::spec::FileBands::One((*n).into()),
                    data: None,
                })
                .collect(),
            labels: None,
            source: 0,
        };
        // Patch "a" misses its second and third files: its error is the first missing one, and
        // the files after it still belong to "a", not to "b".
        let chunk = vec![
            patch("a", &["a1", "a2-missing", "a3-missing"]),
            patch("b", &["b1", "b2"]),
            patch("c", &["c1"]),
        ];
        for readers in [FileReaders::start(4), FileReaders { pool: None }] {
            let fetched = readers.read_chunk(chunk.clone());
            let keys: Vec<&str> = fetched.iter().map(|(p, _)| p.key.as_str()).collect();
            assert_eq!(keys, ["a", "b", "c"]);
            let err = fetched[0].1.as_ref().unwrap_err();
            assert_eq!(err.path.as_deref(), Some(dir.join("a2-missing").as_path()));
            let bytes = |i: usize| -> Vec<Vec<u8>> {
                fetched[i]
                    .1
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|b| b.to_vec())
                    .collect()
            };
            assert_eq!(bytes(1), [b"B1".to_vec(), b"B2".to_vec()]);
            assert_eq!(bytes(2), [b"C1".to_vec()]);
        }
        fs::remove_dir_all(&*dir).unwrap();
    }
}
