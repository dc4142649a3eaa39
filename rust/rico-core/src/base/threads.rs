//! Thread and queue counts: the defaults (one per core) and the bounds every count option is
//! checked against.

use crate::base::error::{Error, Result};

/// The most threads rico starts for one pool (decoders, readers, batch assembly, file reads in
/// flight). Every count of threads a caller gives is checked against it by [`thread_count`] or
/// [`check_count`]: an absurd count (`threads=100000`) is refused before any thread starts,
/// instead of starting thousands of threads that bring the machine to a halt.
pub const MAX_THREADS: usize = 1024;

/// The number of cores this process may use (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The number of threads to use: the requested count, or one per core (at most
/// [`MAX_THREADS`]). A requested count outside `1..=MAX_THREADS` is a usage error naming
/// `threads` and the allowed range.
pub fn thread_count(requested: Option<usize>) -> Result<usize> {
    match requested {
        None => Ok(cores().min(MAX_THREADS)),
        Some(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        Some(n) => Err(count_out_of_range("threads", n)),
    }
}

/// `value` if it is within `1..=MAX_THREADS`; otherwise a usage error naming the argument
/// `name` (e.g. `io_depth`), the value given and the allowed range.
pub fn check_count(name: &str, value: usize) -> Result<usize> {
    if (1..=MAX_THREADS).contains(&value) {
        Ok(value)
    } else {
        Err(count_out_of_range(name, value))
    }
}

/// The usage error of a count `value` of argument `name` outside `1..=MAX_THREADS`; `value`
/// is shown as given (a binding may pass a negative number).
pub fn count_out_of_range(name: &str, value: impl std::fmt::Display) -> Error {
    let default = if name == "threads" {
        format!(" (one per core: {} here)", cores())
    } else {
        String::new()
    };
    Error::usage(format!(
        "{name} must be between 1 and {MAX_THREADS}, not {value}; leave it unset for the default{default}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorKind;

    #[test]
    fn thread_counts_outside_the_range_are_usage_errors_naming_the_argument() {
        assert_eq!(thread_count(Some(3)).unwrap(), 3);
        assert_eq!(thread_count(Some(MAX_THREADS)).unwrap(), MAX_THREADS);
        assert!((1..=MAX_THREADS).contains(&thread_count(None).unwrap()));
        for bad in [0, MAX_THREADS + 1, 100_000] {
            let e = thread_count(Some(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Usage);
            assert!(e.to_string().contains(&format!(
                "threads must be between 1 and {MAX_THREADS}, not {bad}"
            )));
        }
        let e = check_count("io_depth", 0).unwrap_err();
        assert!(
            e.to_string().starts_with("io_depth must be between 1 and"),
            "{e}"
        );
    }
}
