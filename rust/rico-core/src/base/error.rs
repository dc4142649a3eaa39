//! rico's error type: what failed, on which file, and what the user can do about it.

use std::fmt;
use std::path::{Path, PathBuf};

/// The class of an error; it decides the exit code of the `rico` binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or call is wrong: missing/unknown options, a source directory that does
    /// not exist or holds no patch, a target that is not an LMDB directory. Exit code 2.
    Usage,
    /// A source file is bad: unreadable, truncated, corrupt, unsupported, a band missing, a
    /// duplicate key. Exit code 1.
    Data,
    /// Writing the database failed (disk full, LMDB error). Exit code 3.
    Output,
}

impl ErrorKind {
    /// The process exit code documented in `rico --help`.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Data => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Output => 3,
        }
    }
}

/// An error with context.
#[derive(Clone, Debug)]
pub struct Error {
    /// The class of the error, hence the exit code.
    pub kind: ErrorKind,
    /// What went wrong, without the path.
    pub message: String,
    /// The file or directory concerned, when known; shown before the message.
    pub path: Option<PathBuf>,
    /// What the user can do about it; shown on its own line after the message.
    pub hint: Option<String>,
    /// The keys whose records this run must not keep: those made from a container whose
    /// compressed stream failed its integrity check after their members were read (the
    /// damage may lie in any of them). The writer removes the ones this run wrote.
    pub discard: Option<std::sync::Arc<Vec<String>>>,
}

impl Error {
    /// An error of `kind` with `message`, without a path or hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            path: None,
            hint: None,
            discard: None,
        }
    }
    /// An [`ErrorKind::Usage`] error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    /// An [`ErrorKind::Data`] error.
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }
    /// An [`ErrorKind::Output`] error.
    pub fn output(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Output, message)
    }
    /// Attaches the path of the file or directory concerned.
    pub fn at(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }
    /// Attaches a hint: what the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// True when `e` is a lack of file descriptors: this process's limit (EMFILE, `ulimit -n`) or
/// the system's (ENFILE). That is no fault of the file being opened.
pub fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The error of running out of file descriptors while `doing` something: a resource limit,
/// reported with the limit and how to raise it (never as a bad file or a damaged database).
pub fn out_of_descriptors(doing: &str) -> Error {
    // SAFETY: getrlimit fills a plain struct.
    let limit = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0).then_some(limit.rlim_cur)
    };
    let limit = match limit {
        Some(n) if n != libc::RLIM_INFINITY => format!(" (`ulimit -n` is {n})"),
        _ => String::new(),
    };
    Error::usage(format!(
        "too many open files{limit}: this process has no file descriptor left for {doing}"
    ))
    .hint("raise the limit on open files (e.g. `ulimit -n 4096` in the shell that starts rico), or close other open databases and files")
}

impl From<rico_raster::RasterError> for Error {
    fn from(e: rico_raster::RasterError) -> Self {
        use rico_raster::ErrorKind as K;
        let hint = match e.kind {
            K::Io => "check that the file exists and is readable by this user",
            K::NotRaster => "the file is not a raster rico reads; remove it from the source tree or re-download it",
            K::Unsupported => "convert the file to a supported encoding first (e.g. `gdal_translate -co COMPRESS=DEFLATE`)",
            K::Corrupt => "the file is truncated or damaged; re-download it (or pass --skip-invalid to leave its patch out)",
            K::TooLarge => "the file's header claims sizes beyond rico's safety limits; it is most likely damaged",
        };
        Error {
            kind: ErrorKind::Data,
            message: e.message,
            path: e.path,
            hint: Some(hint.to_string()),
            discard: None,
        }
    }
}

/// The result of a rico operation.
pub type Result<T> = std::result::Result<T, Error>;
