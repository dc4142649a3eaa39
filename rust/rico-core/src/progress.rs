//! A progress bar on stderr, drawn only when a person watches (stderr is a terminal).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts finished patches and redraws at most ten times a second.
pub struct ProgressBar {
    total: u64,
    start: Instant,
    state: Mutex<(u64, Instant)>,
    enabled: bool,
}

impl ProgressBar {
    /// `enabled = None` draws only when stderr is a terminal.
    pub fn new(total: u64, enabled: Option<bool>) -> ProgressBar {
        let enabled = enabled.unwrap_or_else(|| std::io::stderr().is_terminal());
        let now = Instant::now();
        ProgressBar {
            total,
            start: now,
            state: Mutex::new((0, now - Duration::from_secs(1))),
            enabled,
        }
    }

    /// Sets the number of finished patches.
    pub fn set(&self, done: u64) {
        if !self.enabled {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.0 = done;
        if state.1.elapsed() >= Duration::from_millis(100) || done == self.total {
            state.1 = Instant::now();
            self.draw(done);
        }
    }

    fn draw(&self, done: u64) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let frac = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let width = 30;
        let filled = ((frac * width as f64) as usize).min(width);
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(done)) as f64 / rate
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}{}] {done}/{} patches  {rate:.0}/s  ETA {eta:.0}s  ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        let _ = err.flush();
    }

    /// Clears the line so the summary prints cleanly.
    pub fn finish(&self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(80));
            let _ = err.flush();
        }
    }
}
