//! Panics of a dependency on damaged input, caught and turned into errors.
//!
//! A decoder that panics on hostile bytes (the parquet crate does on some flipped bits) must
//! not take the process down, nor print a backtrace note that reads like a crash of rico: the
//! caller reports a damaged file instead. [`catch`] runs a closure with its panics caught; while
//! it runs, the panic hook stays quiet on this thread (other threads' panics print as usual).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Installs, once per process, a panic hook that stays silent on a thread inside [`catch`] and
/// otherwise calls the hook that was there before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as `Err` with the panic's message, and the panic
/// hook stays silent for it.
///
/// ```
/// let got = rico_source::catch_panics(|| -> u8 { panic!("hostile bytes") });
/// assert_eq!(got.unwrap_err(), "hostile bytes");
/// ```
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    QUIET.with(|q| q.set(q.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::catch;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        let got =
            catch(|| -> u32 { panic!("index out of bounds: the len is 3 but the index is 7") });
        assert_eq!(
            got.unwrap_err(),
            "index out of bounds: the len is 3 but the index is 7"
        );
        assert_eq!(catch(|| 5).unwrap(), 5);
    }
}
