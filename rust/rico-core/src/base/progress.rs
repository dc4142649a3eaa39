//! The progress bar on stderr (indicatif), drawn only when a person watches (stderr is a
//! terminal). Its total grows as planning hands out patches, so the bar moves from the first
//! record on; while the walk runs ahead it says how many files it has scanned.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts planned and finished patches.
pub struct Progress {
    bar: ProgressBar,
    start: std::time::Instant,
}

impl Progress {
    /// `enabled = None` draws only when stderr is a terminal.
    pub fn new(enabled: Option<bool>) -> Progress {
        let enabled = enabled.unwrap_or_else(|| std::io::stderr().is_terminal());
        let target = if enabled {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} patches  {per_sec}  ETA {eta}  {msg}",
            )
            .expect("a valid template")
            .progress_chars("#> "),
        );
        Progress {
            bar,
            start: std::time::Instant::now(),
        }
    }

    /// A bar of `total` patches known in advance (verify).
    pub fn with_total(total: u64, enabled: Option<bool>) -> Progress {
        let p = Progress::new(enabled);
        p.bar.set_length(total);
        p
    }

    /// The walk has seen `files` files so far, or a container's bytes have been read so far.
    pub fn scanned(&self, scanned: Scanned) {
        match scanned {
            Scanned::Files(files) => self.bar.set_message(format!("scanning: {files} files")),
            Scanned::Bytes { read, total } => self.bar.set_message(format!(
                "read {:.2} of {:.2} GB ({:.0}%) at {:.0} MB/s",
                read as f64 / 1e9,
                total as f64 / 1e9,
                100.0 * read as f64 / total.max(1) as f64,
                read as f64 / 1e6 / self.start.elapsed().as_secs_f64().max(1e-3)
            )),
        }
    }

    /// Planning handed out `n` more patches: the total grows.
    pub fn planned(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// `n` more patches are done (written, already present or skipped).
    pub fn done(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Clears the bar so the summary prints cleanly.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// How far planning has got, for the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// Files walked so far (directories).
    Files(u64),
    /// Bytes of a container read so far, of its size (archives and Parquet files).
    Bytes {
        /// Bytes read.
        read: u64,
        /// The container's size.
        total: u64,
    },
}
