//! Sources where datasets are published: `http://`, `https://` and `s3://` URLs, fetched with
//! Apache Arrow's `object_store` client (TLS by rustls) and streamed straight into the one-pass
//! readers: nothing is stored on disk.
//!
//! - A large object is fetched as ranged requests of [`RemoteOptions::part_bytes`], up to
//!   [`RemoteOptions::parts_in_flight`] at once, so that one TCP stream does not cap throughput
//!   on a long link; memory holds at most that many parts.
//! - Each request is retried with backoff (`object_store`'s retries, for 5xx, timeouts and
//!   dropped connections); a part whose body breaks off is asked for again from its last byte
//!   received, with a Range request.
//! - Bytes must keep arriving: a request that receives nothing for
//!   [`RemoteOptions::read_timeout`] is abandoned and retried, and a range that gets no byte for
//!   [`RemoteOptions::retry_budget`] (three read timeouts) stops the read with an error that says
//!   what was asked, how often and for how long. Nothing is sized from what a server declares
//!   before the bytes arrive: ranges are made as they are fetched.
//! - Every part is asked for with the object's ETag (`If-Match`) or, without one, its
//!   Last-Modified (`If-Unmodified-Since`): an object replaced during the run is an error, not a
//!   mix of two versions.
//! - The async runtime lives here, on its own threads; callers see blocking `Read`s.
//! - URLs are shown redacted ([`redact`]): no user, password or query string in any message. A
//!   user and password in an `http(s)://` URL are sent as HTTP Basic authentication.
//! - An S3 key is the URL's path after the bucket, percent-decoded once: `s3://b/weird dir/x`
//!   and `s3://b/weird%20dir/x` name the same object, as the AWS CLI's `s3://b/weird dir/x`.

use std::sync::OnceLock;
use std::time::Duration;

mod object;
mod open;
mod read;

pub use object::RemoteObject;
pub use open::{list_folder, open_remote};
pub(crate) use read::{read_folder, RandomRead, SequentialRead};

/// How remote objects are fetched.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Ranged requests in flight for one object (default 4).
    pub parts_in_flight: usize,
    /// Bytes asked for by one ranged request (default 4 MiB).
    pub part_bytes: u64,
    /// Accept TLS certificates that do not verify (default false: verification is on).
    pub insecure_tls: bool,
    /// A request that receives no byte for this long (its response headers, or the next bytes
    /// of its body) is abandoned and retried (default 30 s).
    pub read_timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            parts_in_flight: 4,
            part_bytes: 4 << 20,
            insecure_tls: false,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// The default [`RemoteOptions::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl RemoteOptions {
    /// How long one request (a HEAD, or a range with all its retries) may go without receiving a
    /// byte before the read stops with an error: three read timeouts (90 s by default).
    pub fn retry_budget(&self) -> Duration {
        self.read_timeout.saturating_mul(3)
    }
}

/// Whether `text` is a URL rico fetches (`http://`, `https://`, `s3://`).
pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://", "s3://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// `url` without what must not be printed: user, password and query string.
///
/// ```
/// use rico_source::redact;
/// assert_eq!(
///     redact("https://user:secret@host/a.tar.zst?X-Amz-Signature=abc"),
///     "https://host/a.tar.zst?<redacted>"
/// );
/// assert_eq!(redact("s3://bucket/BigEarthNet-S2.tar.zst"), "s3://bucket/BigEarthNet-S2.tar.zst");
/// ```
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let had_query = parsed.query().is_some();
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            let mut shown = parsed.to_string();
            if had_query {
                shown.push_str("?<redacted>");
            }
            shown
        }
        Err(_) => "<a URL that does not parse>".to_string(),
    }
}

/// Replaces every secret part of `url` (user info, query string) found in `text`.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    if let Ok(parsed) = url::Url::parse(url) {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(q) = parsed.query() {
            secrets.push(q.to_string());
        }
        if !parsed.username().is_empty() {
            secrets.push(parsed.username().to_string());
        }
        if let Some(p) = parsed.password() {
            secrets.push(p.to_string());
        }
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            out = out.replace(secret.as_str(), "<redacted>");
        }
    }
    out
}

/// The runtime of every fetch: a few threads of its own, started on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rico-fetch")
            .enable_all()
            .build()
            .expect("the fetching runtime starts")
    })
}

#[cfg(test)]
mod tests {
    use super::object::status_of;
    use super::open::basic_auth;
    use super::read::parts_of;
    use super::*;

    #[test]
    fn ranges_are_made_as_they_are_fetched_whatever_the_declared_size() {
        // 2^63 - 1 bytes in 4 MiB parts: 2^41 ranges, never held at once.
        let mut parts = parts_of(0..u64::MAX >> 1, 4 << 20);
        assert_eq!(parts.next(), Some(0..4 << 20));
        assert_eq!(parts.next(), Some(4 << 20..8 << 20));
        let last: Vec<_> = parts_of(u64::MAX - 10..u64::MAX, 4).collect();
        assert_eq!(
            last,
            [
                u64::MAX - 10..u64::MAX - 6,
                u64::MAX - 6..u64::MAX - 2,
                u64::MAX - 2..u64::MAX
            ]
        );
        assert_eq!(parts_of(5..5, 4).count(), 0);
    }

    #[test]
    fn a_stalled_server_is_given_up_within_two_minutes_by_default() {
        let options = RemoteOptions::default();
        assert_eq!(options.read_timeout, Duration::from_secs(30));
        assert!(options.retry_budget() <= Duration::from_secs(120));
        assert!(options.retry_budget() >= options.read_timeout * 2);
    }

    #[test]
    fn the_status_an_error_names() {
        let text = "Generic HTTP error: Error performing HEAD http://h/x in 1ms - Server returned non-2xx status code: 405 Method Not Allowed: ";
        assert_eq!(status_of(text), Some(405));
        assert_eq!(status_of("error sending request"), None);
    }

    #[test]
    fn a_login_in_the_url_is_basic_authentication() {
        let parsed = url::Url::parse("http://reader:hunter2%20%C3%BC@host/x.zip").unwrap();
        let value = basic_auth(&parsed).unwrap();
        assert!(value.is_sensitive());
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode("reader:hunter2 ü");
        assert_eq!(value.to_str().unwrap(), format!("Basic {encoded}"));
        assert!(basic_auth(&url::Url::parse("http://host/x.zip").unwrap()).is_none());
        assert_eq!(
            redact("http://reader:hunter2@host/x.zip"),
            "http://host/x.zip"
        );
    }
}
