//! A conversion's options as the user gives them: [`UserOptions`], in the user's units
//! (megabytes, seconds, counts), named as Python's keywords and (with hyphens) the command
//! line's flags. The command line fills its fields from the flags, the Python bindings by name
//! ([`UserOptions::set`]); [`UserOptions::build`] checks them once and turns them into the
//! engine's [`ConvertOptions`] (bytes, durations, [`RemoteOptions`]).

use std::sync::Arc;
use std::time::Duration;

use rico_source::RemoteOptions;

use crate::write::pipeline::ConvertOptions;

/// The longest read timeout (a day), in seconds: longer is a mistake, not a slow link.
pub const MAX_READ_TIMEOUT_SECONDS: f64 = 86_400.0;

/// An option's value as Python gives it, for [`UserOptions::set`].
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// `None`: the option's default.
    Unset,
    /// `True` or `False`.
    Bool(bool),
    /// A whole number (not negative).
    Int(u64),
    /// A number with a fraction.
    Float(f64),
    /// A list of strings.
    Strings(Vec<String>),
}

/// An option refused: an unknown name, a value of the wrong type, a number out of range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// No option has this name.
    Unknown(String),
    /// The option takes another type of value: (name, what it takes).
    Type(String, &'static str),
    /// The value is out of the option's range; the message says which.
    Value(String),
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionError::Unknown(name) => write!(f, "got an unexpected keyword argument '{name}'"),
            OptionError::Type(name, want) => write!(f, "argument '{name}': expected {want}"),
            OptionError::Value(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for OptionError {}

impl From<OptionError> for crate::Error {
    fn from(e: OptionError) -> Self {
        crate::Error::usage(e.to_string())
    }
}

/// The types of [`UserOptions`]' fields, as taken from an [`OptionValue`] and given back.
trait FromValue: Sized {
    /// What the type takes, for an error.
    const WANT: &'static str;
    fn from_value(value: OptionValue) -> Option<Self>;
    fn to_value(&self) -> OptionValue;
}

impl FromValue for bool {
    const WANT: &'static str = "a bool";
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn to_value(&self) -> OptionValue {
        OptionValue::Bool(*self)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const WANT: &'static str = T::WANT;
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Unset => Some(None),
            value => T::from_value(value).map(Some),
        }
    }
    fn to_value(&self) -> OptionValue {
        self.as_ref().map_or(OptionValue::Unset, T::to_value)
    }
}

impl FromValue for u64 {
    const WANT: &'static str = "an int";
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Int(n) => Some(n),
            _ => None,
        }
    }
    fn to_value(&self) -> OptionValue {
        OptionValue::Int(*self)
    }
}

impl FromValue for usize {
    const WANT: &'static str = "an int";
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            // A count past usize is refused as out of range by the engine: saturate.
            OptionValue::Int(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => None,
        }
    }
    fn to_value(&self) -> OptionValue {
        OptionValue::Int(*self as u64)
    }
}

impl FromValue for f64 {
    const WANT: &'static str = "a number";
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Int(n) => Some(n as f64),
            OptionValue::Float(x) => Some(x),
            _ => None,
        }
    }
    fn to_value(&self) -> OptionValue {
        OptionValue::Float(*self)
    }
}

impl FromValue for Vec<String> {
    const WANT: &'static str = "a list of str";
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Strings(s) => Some(s),
            _ => None,
        }
    }
    fn to_value(&self) -> OptionValue {
        OptionValue::Strings(self.clone())
    }
}

/// Declares [`UserOptions`] from its list of fields: the struct, and the setter by name.
macro_rules! user_options {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty,)*) => {
        /// A conversion's options in the user's units, each named as Python's keyword (the
        /// command line's flag with hyphens); the defaults (`None`, `false`) are the engine's.
        /// [`UserOptions::build`] makes the engine's [`ConvertOptions`] of them.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct UserOptions {
            $($(#[doc = $doc])* pub $field: $ty,)*
            /// The dataset's value options (flag, value), e.g. `("pattern", "...")` for `bands`.
            pub params: Vec<(String, String)>,
        }

        impl UserOptions {
            /// The options' names, as Python's keywords.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Sets the option `name` (a Python keyword) to `value`.
            pub fn set(&mut self, name: &str, value: OptionValue) -> Result<(), OptionError> {
                match name {
                    $(stringify!($field) => {
                        self.$field = FromValue::from_value(value).ok_or_else(|| {
                            OptionError::Type(name.to_string(), <$ty as FromValue>::WANT)
                        })?;
                    })*
                    _ => return Err(OptionError::Unknown(name.to_string())),
                }
                Ok(())
            }

            /// Each option that is set (not `None`), by name: what [`UserOptions::set`] takes
            /// to make these options again (the command line's, passed on to Python).
            pub fn values(&self) -> Vec<(&'static str, OptionValue)> {
                [$((stringify!($field), self.$field.to_value())),*]
                    .into_iter()
                    .filter(|(_, value)| *value != OptionValue::Unset)
                    .collect()
            }
        }
    };
}

user_options! {
    /// Decoder threads; `None` = one per core.
    threads: Option<usize>,
    /// Source files read at once, apart from the decoders; `None` =
    /// [`crate::write::convert::DEFAULT_IO_DEPTH`].
    io_depth: Option<usize>,
    /// Megabytes of source files and records held at once; `None` = 64.
    buffer_mb: Option<usize>,
    /// With archives and Parquet files: the most megabytes of incomplete patches held while a
    /// container is read, and the largest member read; `None` = 1024.
    max_held_mb: Option<u64>,
    /// With URLs: ranged requests in flight for one object; `None` = 4.
    fetch_parts: Option<usize>,
    /// With URLs: megabytes asked for by one ranged request; `None` = 4.
    fetch_part_mb: Option<u64>,
    /// With URLs: seconds a request may go without a byte before it is retried; `None` = 30.
    /// Above 0, at most [`MAX_READ_TIMEOUT_SECONDS`].
    read_timeout: Option<f64>,
    /// With `https://` URLs: accept certificates that do not verify.
    insecure_tls: bool,
    /// Convert only the patches with these keys (`None`: every patch).
    keys: Option<Vec<String>>,
    /// Draw a progress bar on stderr: `None` = only when stderr is a terminal.
    progress: Option<bool>,
    /// Finish an interrupted conversion: keep the records present, add the missing ones.
    resume: bool,
    /// Leave out patches with bad files, listed in `rico-skipped.tsv`.
    skip_invalid: bool,
    /// Cut the sorted patch list into this many contiguous shards.
    shards: Option<usize>,
    /// With `shards`: write only this shard (one task of a cluster run).
    shard_index: Option<usize>,
}

/// A read timeout in `seconds`, as `--read-timeout` and `read_timeout=` take it: a number above
/// 0 and at most [`MAX_READ_TIMEOUT_SECONDS`].
pub fn read_timeout(seconds: f64) -> Result<Duration, OptionError> {
    if !(seconds > 0.0 && seconds <= MAX_READ_TIMEOUT_SECONDS) {
        return Err(OptionError::Value(format!(
            "the read timeout must be a number of seconds above 0 and at most {MAX_READ_TIMEOUT_SECONDS}, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl UserOptions {
    /// The engine's options: megabytes as bytes, seconds as a duration, the URL options as
    /// [`RemoteOptions`] (its defaults where unset); a read timeout out of range is refused.
    pub fn build(self) -> Result<ConvertOptions, OptionError> {
        let mut remote = RemoteOptions::default();
        if let Some(parts) = self.fetch_parts {
            remote.parts_in_flight = parts;
        }
        if let Some(mb) = self.fetch_part_mb {
            remote.part_bytes = mb << 20;
        }
        remote.insecure_tls = self.insecure_tls;
        if let Some(seconds) = self.read_timeout {
            remote.read_timeout = read_timeout(seconds)?;
        }
        Ok(ConvertOptions {
            threads: self.threads,
            io_depth: self.io_depth,
            buffer_bytes: self.buffer_mb.map(|mb| mb.saturating_mul(1 << 20)),
            resume: self.resume,
            skip_invalid: self.skip_invalid,
            progress: self.progress,
            params: self.params,
            shards: self.shards,
            shard_index: self.shard_index,
            cancel: None,
            max_held_bytes: self.max_held_mb.map(|mb| mb << 20),
            remote,
            keys: self.keys.map(|keys| Arc::new(keys.into_iter().collect())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_by_name_then_build() {
        let mut options = UserOptions::default();
        options.set("fetch_parts", OptionValue::Int(2)).unwrap();
        options.set("read_timeout", OptionValue::Int(5)).unwrap();
        options
            .set("insecure_tls", OptionValue::Bool(true))
            .unwrap();
        options.set("threads", OptionValue::Unset).unwrap();
        let built = options.clone().build().unwrap();
        assert_eq!(built.remote.parts_in_flight, 2);
        assert_eq!(built.remote.read_timeout, Duration::from_secs(5));
        assert!(built.remote.insecure_tls && built.threads.is_none());
        assert_eq!(
            UserOptions::default().set("nope", OptionValue::Unset),
            Err(OptionError::Unknown("nope".into()))
        );
        assert!(UserOptions::default()
            .set("resume", OptionValue::Int(1))
            .is_err());
        assert!(UserOptions::NAMES.len() > 10);
        let mut again = UserOptions::default();
        for (name, value) in options.values() {
            again.set(name, value).unwrap();
        }
        assert_eq!(again, options);
    }

    #[test]
    fn a_read_timeout_out_of_range_is_refused() {
        for seconds in [0.0, -1.0, f64::NAN, f64::INFINITY, 86_401.0] {
            let options = UserOptions {
                read_timeout: Some(seconds),
                ..UserOptions::default()
            };
            let e = options.build().unwrap_err().to_string();
            assert!(e.contains("read timeout"), "{e}");
        }
    }
}
