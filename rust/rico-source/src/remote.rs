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

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use crate::{SourceError, SourceErrorKind};

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

/// One remote object (or, for a folder over S3, a prefix), with the store that serves it.
pub struct RemoteObject {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
    shown: String,
    options: RemoteOptions,
    meta: Option<ObjectMeta>,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteObject({})", self.shown)
    }
}

impl RemoteObject {
    /// The URL as it may be shown (redacted).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The object's size in bytes (0 for a folder).
    pub fn size(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.size)
    }

    /// The last segment of the URL's path: the object's file name, or the folder's name.
    pub fn name(&self) -> String {
        self.path
            .parts()
            .last()
            .map(|p| p.as_ref().to_string())
            .unwrap_or_default()
    }

    fn error(&self, kind: SourceErrorKind, message: impl Into<String>) -> SourceError {
        SourceError::new(
            kind,
            Path::new(&self.shown),
            scrub(&message.into(), &self.url),
        )
    }

    /// Whether the URL is an `s3://` one (its credentials are AWS's).
    fn is_s3(&self) -> bool {
        let lower = self.url.to_ascii_lowercase();
        lower.starts_with("s3://") || lower.starts_with("s3a://")
    }

    /// An `object_store` error, in words that say what to check.
    fn store_error(&self, e: object_store::Error) -> SourceError {
        use object_store::Error as E;
        let text = e.to_string();
        let status = status_of(&text);
        match e {
            // object_store reads an HTTP server's 405 as "not found": say what it was.
            E::NotFound { .. } if status.is_none_or(|s| s == 404) => self
                .error(SourceErrorKind::Io, "no such object (404)")
                .hint("check the URL: the bucket, the key and its case"),
            E::NotFound { .. } => self
                .error(
                    SourceErrorKind::Io,
                    format!("the server refused the request: {text}"),
                )
                .hint("check the URL; the server does not serve this object with HEAD or ranged GET requests"),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } if self.is_s3() => self
                .error(SourceErrorKind::Io, format!("access denied: {text}"))
                .hint("check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or none for a public bucket) and that they may read this object"),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => self
                .error(SourceErrorKind::Io, format!("access denied: {text}"))
                .hint("the server wants a login: give it in the URL (https://USER:PASSWORD@host/...; it is sent as HTTP Basic authentication and never printed), or check that this user may read the file"),
            E::Precondition { .. } => self
                .error(SourceErrorKind::Corrupt, "the object changed while it was read (its ETag or Last-Modified is not the one the run began with)")
                .hint("wait until the upload is complete, then run the same command again with --resume"),
            _ => self
                .error(SourceErrorKind::Io, format!("cannot fetch: {text}"))
                .hint("check the network and the URL; transient failures were retried with backoff"),
        }
    }

    /// The error of a request that received nothing for the whole retry budget.
    fn stalled(&self, what: &str, waited: Duration) -> SourceError {
        let timeout = self.options.read_timeout.as_secs_f64();
        let budget = self.options.retry_budget().as_secs_f64();
        self.error(
            SourceErrorKind::Io,
            format!(
                "no data arrived for {:.1} s for {what}: each request was abandoned after {timeout} s without a byte and asked again, and the read gives up after {budget} s without any",
                waited.as_secs_f64()
            ),
        )
        .hint("the server stalls or the link is down: check the server and the network, or raise --read-timeout (read_timeout= in Python) for a very slow link")
    }

    /// The error of a server whose ranged GET names another size than its HEAD did.
    fn size_changed(&self, declared: u64, actual: u64) -> SourceError {
        self.error(
            SourceErrorKind::Corrupt,
            format!("the server gave the object's size as {declared} bytes, then as {actual} bytes for a ranged GET"),
        )
        .hint("the server's HEAD answer is wrong or the object is being replaced: check the server, then run the same command again with --resume")
    }

    /// The bytes `range` of the object in one buffer (random reads: zip, Parquet).
    async fn fetch(&self, range: Range<u64>) -> Result<bytes::Bytes, SourceError> {
        let chunks = self.fetch_chunks(range).await?;
        if chunks.len() == 1 {
            return Ok(chunks.into_iter().next().expect("one chunk"));
        }
        let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        Ok(out.into())
    }

    /// The bytes `range` of the object as the network delivered them (no copy), asked for
    /// against its version; a body that breaks off is asked for again from its last byte
    /// received. A range that receives no byte for the retry budget is an error.
    async fn fetch_chunks(&self, range: Range<u64>) -> Result<Vec<bytes::Bytes>, SourceError> {
        let want = range.end - range.start;
        let budget = self.options.retry_budget();
        let mut out: Vec<bytes::Bytes> = Vec::new();
        let mut got = 0u64;
        let mut attempts = 0;
        // The last time a byte arrived (or the start): nothing for `budget` after it ends the read.
        let mut progress_at = tokio::time::Instant::now();
        let what = format!("bytes {}..{}", range.start, range.end);
        while got < want {
            let deadline = progress_at + budget;
            let start = range.start + got;
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..range.end)),
                if_match: self.meta.as_ref().and_then(|m| m.e_tag.clone()),
                if_unmodified_since: self
                    .meta
                    .as_ref()
                    .filter(|m| m.e_tag.is_none())
                    .map(|m| m.last_modified),
                ..GetOptions::default()
            };
            let asked = tokio::time::timeout_at(deadline, self.store.get_opts(&self.path, options));
            let result = match asked.await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if status_of(&e.to_string()) == Some(416) => {
                    let size = self.size();
                    return Err(self.error(
                        SourceErrorKind::Corrupt,
                        format!("the server has no bytes {start}..{} (416 Range Not Satisfiable): the object is shorter than the {size} bytes its HEAD answer declared", range.end),
                    )
                    .hint("the server's HEAD answer is wrong or the object is being replaced: check the server, then run the same command again with --resume"));
                }
                Ok(Err(e)) => return Err(self.store_error(e)),
                Err(_) => return Err(self.stalled(&what, progress_at.elapsed())),
            };
            if let Some(meta) = &self.meta {
                if result.meta.size != meta.size {
                    return Err(self.size_changed(meta.size, result.meta.size));
                }
            }
            let before = got;
            let mut stream = result.into_stream();
            let mut broke = None;
            loop {
                let deadline = progress_at + budget;
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(bytes))) => {
                        got += bytes.len() as u64;
                        if !bytes.is_empty() {
                            progress_at = tokio::time::Instant::now();
                        }
                        out.push(bytes);
                        // A server that sends past the range it was asked for is not held
                        // to the end of its body: the check below names it.
                        if got > want {
                            break;
                        }
                    }
                    Ok(Some(Err(e))) => {
                        broke = Some(e);
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return Err(self.stalled(&what, progress_at.elapsed()));
                    }
                }
            }
            if got > want {
                break;
            }
            if broke.is_some() || got == before {
                // The body broke off (or came back empty): ask again from the last byte received.
                attempts += 1;
                if attempts > 5 {
                    return Err(match broke {
                        Some(e) => self.store_error(e),
                        None => self.error(
                            SourceErrorKind::Corrupt,
                            "the server sent no bytes for a range it has",
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100 << attempts)).await;
            }
        }
        if got != want {
            return Err(self.error(
                SourceErrorKind::Corrupt,
                format!(
                    "asked for bytes {}..{}, received {got}",
                    range.start, range.end
                ),
            ));
        }
        Ok(out)
    }

    /// The whole object at `location` (a file of a folder), as one buffer; a request that
    /// receives nothing for the retry budget is an error.
    async fn fetch_member(
        &self,
        rel: &str,
        location: &ObjectPath,
    ) -> Result<bytes::Bytes, SourceError> {
        let budget = self.options.retry_budget();
        let started = tokio::time::Instant::now();
        let stalled = |_| self.stalled(&format!("the file {rel}"), started.elapsed());
        let result = tokio::time::timeout(budget, self.store.get(location))
            .await
            .map_err(stalled)?
            .map_err(|e| self.store_error(e))?;
        let mut out = Vec::new();
        let mut stream = result.into_stream();
        let mut progress_at = tokio::time::Instant::now();
        loop {
            match tokio::time::timeout_at(progress_at + budget, stream.next()).await {
                Ok(Some(Ok(bytes))) => {
                    progress_at = tokio::time::Instant::now();
                    out.extend_from_slice(&bytes);
                }
                Ok(Some(Err(e))) => return Err(self.store_error(e)),
                Ok(None) => return Ok(out.into()),
                Err(_) => {
                    return Err(self.stalled(&format!("the file {rel}"), progress_at.elapsed()))
                }
            }
        }
    }

    /// The object's size and version: a HEAD request, or, where the server refuses HEAD (some
    /// answer 405, which `object_store` reads as "not found"), a GET of its first byte.
    async fn head(&self) -> Result<ObjectMeta, SourceError> {
        let budget = self.options.retry_budget();
        let started = tokio::time::Instant::now();
        let head = tokio::time::timeout(budget, self.store.head(&self.path));
        let refused = match head.await {
            Ok(Ok(meta)) => return Ok(meta),
            Ok(Err(e @ object_store::Error::NotFound { .. })) if !self.is_s3() => e,
            Ok(Err(e)) => return Err(self.store_error(e)),
            Err(_) => return Err(self.stalled("the HEAD request", started.elapsed())),
        };
        let options = GetOptions {
            range: Some(GetRange::Bounded(0..1)),
            ..GetOptions::default()
        };
        // One budget for both: a server that refuses HEAD and stalls its GET is given up as
        // soon as one that stalls at once.
        let left = budget.saturating_sub(started.elapsed());
        let get = tokio::time::timeout(left, self.store.get_opts(&self.path, options));
        match get.await {
            Ok(Ok(result)) => Ok(result.meta),
            // The GET's own answer says best what is wrong, unless it is a plain 404 after a
            // HEAD refused otherwise.
            Ok(Err(e)) => {
                let head_status = status_of(&refused.to_string());
                if matches!(e, object_store::Error::NotFound { .. })
                    && head_status.is_some_and(|s| s != 404)
                {
                    Err(self.store_error(refused))
                } else {
                    Err(self.store_error(e))
                }
            }
            Err(_) => Err(self.stalled(
                "a GET of the first byte (after a HEAD refused)",
                started.elapsed(),
            )),
        }
    }
}

/// The HTTP status an `object_store` error's text names ("status code: 405 Method Not
/// Allowed"), if any.
fn status_of(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// The HTTP client of every store: reqwest (TLS by rustls with the system's certificates), with
/// a read timeout (bytes must keep arriving) instead of a total one (a large part on a slow link
/// is fine as long as it moves).
#[derive(Debug)]
struct Connector {
    read_timeout: Duration,
    insecure_tls: bool,
    allow_http: bool,
    headers: reqwest::header::HeaderMap,
}

impl object_store::client::HttpConnector for Connector {
    fn connect(
        &self,
        _options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("rico/", env!("CARGO_PKG_VERSION")))
            .default_headers(self.headers.clone())
            .connect_timeout(self.read_timeout.min(Duration::from_secs(20)))
            .read_timeout(self.read_timeout)
            .danger_accept_invalid_certs(self.insecure_tls)
            .https_only(!self.allow_http)
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "HTTP client",
                source: Box::new(e),
            })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// The `Authorization` header of an HTTP URL's user and password (Basic), if it has them.
fn basic_auth(parsed: &url::Url) -> Option<reqwest::header::HeaderValue> {
    use base64::Engine;
    if parsed.username().is_empty() && parsed.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pair = format!(
        "{}:{}",
        decode(parsed.username()),
        decode(parsed.password().unwrap_or(""))
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Opens `url`: builds its store (credentials from the environment), and asks for the object's
/// size and version (or, with `folder`, checks nothing: a prefix is listed when it is read).
pub fn open_remote(
    url: &str,
    options: &RemoteOptions,
    folder: bool,
) -> Result<Arc<RemoteObject>, SourceError> {
    let shown = redact(url);
    let bad = |message: String| SourceError::new(SourceErrorKind::Io, Path::new(&shown), message);
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a valid URL: {e}")))?;
    // Every request is bounded by the read timeout (object_store's own total timeout would cut
    // a large part on a slow link); its retries stop within the retry budget.
    let client = object_store::ClientOptions::new().with_timeout_disabled();
    let retry = object_store::RetryConfig {
        max_retries: 8,
        retry_timeout: options.retry_budget(),
        ..Default::default()
    };
    let mut connector = Connector {
        read_timeout: options.read_timeout,
        insecure_tls: options.insecure_tls,
        allow_http: false,
        headers: reqwest::header::HeaderMap::new(),
    };
    // The key or path, percent-decoded once: `weird dir/ünï` and `weird%20dir/%C3%BCn%C3%AF`
    // name the same object.
    let object_path = |path: &str| {
        ObjectPath::from_url_path(path).map_err(|e| {
            bad(format!("not a valid object key: {e}"))
                .hint("an object key has no empty segments (//) and no . or .. segments; write a literal % as %25")
        })
    };
    let (store, path): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
        "s3" | "s3a" => {
            let bucket = parsed.host_str().unwrap_or_default();
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            let mut client = client;
            if let Some(endpoint) = &endpoint {
                builder = builder.with_endpoint(endpoint);
                if endpoint.starts_with("http://") {
                    client = client.with_allow_http(true);
                    connector.allow_http = true;
                }
            }
            let (key, secret, token) = crate::credentials::aws_credentials();
            match (key, secret) {
                (Some(key), Some(secret)) => {
                    builder = builder
                        .with_access_key_id(key)
                        .with_secret_access_key(secret);
                    if let Some(token) = token {
                        builder = builder.with_token(token);
                    }
                }
                // No credentials anywhere: a public bucket, read anonymously.
                _ => builder = builder.with_skip_signature(true),
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region(
                    crate::credentials::aws_profile_region().unwrap_or_else(|| "us-east-1".into()),
                );
            }
            let store = builder
                .with_client_options(client)
                .with_http_connector(connector)
                .build()
                .map_err(|e| bad(scrub(&format!("cannot use this S3 URL: {e}"), url)))?;
            (Arc::new(store), object_path(parsed.path())?)
        }
        "http" | "https" => {
            if parsed.query().is_some() {
                return Err(bad("URLs with a query string (signed URLs) are not read: the object store client asks for the path alone".into())
                    .hint("give the object's plain URL, or its s3:// URL with credentials in the environment"));
            }
            // The user and password go in a header, never in the URL the client prints.
            if let Some(auth) = basic_auth(&parsed) {
                connector
                    .headers
                    .insert(reqwest::header::AUTHORIZATION, auth);
            }
            let base = format!(
                "{}://{}",
                parsed.scheme(),
                &parsed[url::Position::BeforeHost..url::Position::AfterPort]
            );
            let client = if parsed.scheme() == "http" {
                connector.allow_http = true;
                client.with_allow_http(true)
            } else {
                client
            };
            let store = object_store::http::HttpBuilder::new()
                .with_url(base)
                .with_client_options(client)
                .with_http_connector(connector)
                .with_retry(retry)
                .build()
                .map_err(|e| bad(scrub(&format!("cannot use this URL: {e}"), url)))?;
            (Arc::new(store), object_path(parsed.path())?)
        }
        other => {
            return Err(bad(format!(
                "rico fetches http://, https:// and s3:// URLs, not {other}://"
            )))
        }
    };
    let mut object = RemoteObject {
        store,
        path,
        url: url.to_string(),
        shown,
        options: options.clone(),
        meta: None,
    };
    if !folder {
        object.meta = Some(runtime().block_on(object.head())?);
    }
    Ok(Arc::new(object))
}

/// The objects under a folder (an S3 prefix), sorted by key: (path relative to the folder,
/// the object's location, size).
fn list_objects(object: &RemoteObject) -> Result<Vec<(String, ObjectPath, u64)>, SourceError> {
    let prefix = object.path.clone();
    let metas: Vec<ObjectMeta> = runtime()
        .block_on(object.store.list(Some(&prefix)).try_collect())
        .map_err(|e| object.store_error(e))?;
    let base = prefix.as_ref().trim_end_matches('/').to_string();
    let mut out: Vec<(String, ObjectPath, u64)> = metas
        .into_iter()
        .filter_map(|m| {
            let key = m.location.as_ref();
            let rel = if base.is_empty() {
                Some(key)
            } else {
                key.strip_prefix(base.as_str())
                    .and_then(|r| r.strip_prefix('/'))
            };
            let rel = rel?.to_string();
            Some((rel, m.location, m.size))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The objects under a folder URL (an S3 prefix), sorted by key: (path relative to the folder,
/// size).
pub fn list_folder(object: &RemoteObject) -> Result<Vec<(String, u64)>, SourceError> {
    Ok(list_objects(object)?
        .into_iter()
        .map(|(rel, _, size)| (rel, size))
        .collect())
}

/// A remote object read front to back: parts fetched ahead, in order, on the fetching runtime,
/// and read as the network delivered them.
pub(crate) struct SequentialRead {
    parts: std::sync::mpsc::Receiver<Result<Vec<bytes::Bytes>, SourceError>>,
    current: std::collections::VecDeque<bytes::Bytes>,
}

impl SequentialRead {
    pub(crate) fn new(object: Arc<RemoteObject>) -> SequentialRead {
        let size = object.size();
        let part = object.options.part_bytes.max(1 << 16);
        let in_flight = object.options.parts_in_flight.max(1);
        // The ranges are made as they are fetched: nothing is sized from the declared size (a
        // server may declare anything, 2^63 - 1 bytes included).
        let ranges = parts_of(0..size, part);
        // `in_flight` parts are being fetched; one more waits for the reader.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            let fetched = futures::stream::iter(ranges)
                .map(|range| {
                    let object = object.clone();
                    async move { object.fetch_chunks(range).await }
                })
                .buffered(in_flight);
            futures::pin_mut!(fetched);
            while let Some(part) = fetched.next().await {
                let failed = part.is_err();
                // The reader blocks on the channel, not the runtime: send from a blocking task.
                let tx = tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(part).is_ok())
                    .await
                    .unwrap_or(false);
                if !sent || failed {
                    break;
                }
            }
        });
        SequentialRead {
            parts: rx,
            current: std::collections::VecDeque::new(),
        }
    }
}

impl Read for SequentialRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.current.front_mut() {
                Some(chunk) if chunk.is_empty() => {
                    self.current.pop_front();
                }
                Some(chunk) => {
                    let n = buf.len().min(chunk.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    bytes::Buf::advance(chunk, n);
                    return Ok(n);
                }
                None => match self.parts.recv() {
                    Ok(Ok(part)) => self.current.extend(part),
                    Ok(Err(e)) => return Err(io::Error::other(e)),
                    Err(_) => return Ok(0),
                },
            }
        }
    }
}

/// `span` cut into ranges of at most `part` bytes, made one at a time.
fn parts_of(span: Range<u64>, part: u64) -> impl Iterator<Item = Range<u64>> + Send {
    let part = part.max(1);
    let mut next = span.start;
    std::iter::from_fn(move || {
        if next >= span.end {
            return None;
        }
        let start = next;
        next = start.saturating_add(part).min(span.end);
        Some(start..next)
    })
}

/// Parts of an object fetched ahead of a reader that goes forward through them (a zip
/// archive's members): `parts_in_flight` being fetched, one waiting, one being read.
#[derive(Default)]
struct Ahead {
    parts: Option<std::sync::mpsc::Receiver<Result<(u64, bytes::Bytes), SourceError>>>,
    next: Option<(u64, bytes::Bytes)>,
}

/// A remote object read at any position (zip's central directory, Parquet's footer and pages):
/// a block from the position is fetched and kept. Blocks start small (64 KiB: a header, a
/// footer) and double while reads go on where the last block ended, up to the part size.
pub(crate) struct RandomRead {
    object: Arc<RemoteObject>,
    position: u64,
    block: Option<(u64, bytes::Bytes)>,
    next_block: u64,
    /// Byte ranges fetched ahead (a Parquet row group's column chunks), shared by the readers
    /// this one hands out.
    prefetched: Arc<Mutex<Vec<(u64, bytes::Bytes)>>>,
    /// A span streamed ahead in parts (a zip archive's members), shared likewise.
    ahead: Arc<Mutex<Ahead>>,
}

const FIRST_BLOCK: u64 = 64 << 10;

impl RandomRead {
    pub(crate) fn new(object: Arc<RemoteObject>) -> RandomRead {
        RandomRead {
            object,
            position: 0,
            block: None,
            next_block: FIRST_BLOCK,
            prefetched: Arc::default(),
            ahead: Arc::default(),
        }
    }

    /// A reader of the same object sharing this one's prefetched ranges.
    pub(crate) fn share(&self) -> RandomRead {
        RandomRead {
            object: self.object.clone(),
            position: 0,
            block: None,
            next_block: FIRST_BLOCK,
            prefetched: self.prefetched.clone(),
            ahead: self.ahead.clone(),
        }
    }

    /// The prefetched bytes `start..start + len`, if one prefetched range holds them.
    fn cached(&self, start: u64, len: u64) -> Option<bytes::Bytes> {
        let cache = self.prefetched.lock().ok()?;
        cache.iter().find_map(|(at, bytes)| {
            let end = at + bytes.len() as u64;
            (start >= *at && start + len <= end)
                .then(|| bytes.slice((start - at) as usize..(start + len - at) as usize))
        })
    }

    /// The bytes `range`, fetched now.
    pub(crate) fn range(&self, range: Range<u64>) -> Result<bytes::Bytes, SourceError> {
        runtime().block_on(self.object.fetch(range))
    }

    /// The part streamed ahead that holds `position`, if the stream has it next: parts that
    /// end before `position` are dropped (the reader has gone past them); a part that starts
    /// after it is kept for later.
    fn streamed_part(&self, position: u64) -> io::Result<Option<(u64, bytes::Bytes)>> {
        let Ok(mut ahead) = self.ahead.lock() else {
            return Ok(None);
        };
        loop {
            if let Some((start, bytes)) = &ahead.next {
                let end = start + bytes.len() as u64;
                if position >= *start && position < end {
                    return Ok(ahead.next.clone());
                }
                if position < *start {
                    return Ok(None);
                }
                ahead.next = None;
            }
            let Some(parts) = &ahead.parts else {
                return Ok(None);
            };
            match parts.recv() {
                Ok(Ok(part)) => ahead.next = Some(part),
                Ok(Err(e)) => {
                    ahead.parts = None;
                    return Err(io::Error::other(e));
                }
                Err(_) => {
                    ahead.parts = None;
                    return Ok(None);
                }
            }
        }
    }
}

impl Read for RandomRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.object.size();
        if self.position >= size || buf.is_empty() {
            return Ok(0);
        }
        let cached = matches!(&self.block, Some((start, b)) if self.position >= *start && self.position < start + b.len() as u64);
        if !cached {
            // Inside a prefetched range: serve from it, up to its end.
            let hit = self.prefetched.lock().ok().and_then(|cache| {
                cache.iter().find_map(|(at, bytes)| {
                    let end = at + bytes.len() as u64;
                    (self.position >= *at && self.position < end).then(|| (*at, bytes.clone()))
                })
            });
            if let Some(block) = hit {
                self.block = Some(block);
            } else if let Some(block) = self.streamed_part(self.position)? {
                self.block = Some(block);
            }
        }
        let cached = matches!(&self.block, Some((start, b)) if self.position >= *start && self.position < start + b.len() as u64);
        if !cached {
            let follows =
                matches!(&self.block, Some((start, b)) if start + b.len() as u64 == self.position);
            self.next_block = if follows {
                (self.next_block * 2).min(self.object.options.part_bytes.max(FIRST_BLOCK))
            } else {
                FIRST_BLOCK
            };
            let end = (self.position + self.next_block).min(size);
            let bytes = self.range(self.position..end).map_err(io::Error::other)?;
            self.block = Some((self.position, bytes));
        }
        let (start, block) = self.block.as_ref().expect("a block is cached");
        let at = (self.position - start) as usize;
        let n = buf.len().min(block.len() - at);
        buf[..n].copy_from_slice(&block[at..at + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RandomRead {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let size = self.object.size() as i128;
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(n) => size + n as i128,
            SeekFrom::Current(n) => self.position as i128 + n as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        self.position = target as u64;
        Ok(self.position)
    }
}

impl crate::Prefetch for RandomRead {
    fn stream_ahead(&self, span: Range<u64>) {
        let object = self.object.clone();
        let in_flight = object.options.parts_in_flight.max(1);
        let ranges = parts_of(span, object.options.part_bytes.max(FIRST_BLOCK));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            let fetched = futures::stream::iter(ranges)
                .map(|range| {
                    let object = object.clone();
                    async move { Ok::<_, SourceError>((range.start, object.fetch(range).await?)) }
                })
                .buffered(in_flight);
            futures::pin_mut!(fetched);
            while let Some(part) = fetched.next().await {
                let failed = part.is_err();
                let tx = tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(part).is_ok())
                    .await
                    .unwrap_or(false);
                if !sent || failed {
                    break;
                }
            }
        });
        if let Ok(mut ahead) = self.ahead.lock() {
            *ahead = Ahead {
                parts: Some(rx),
                next: None,
            };
        }
    }

    fn prefetch(&self, ranges: Vec<Range<u64>>) -> Result<(), SourceError> {
        let in_flight = self.object.options.parts_in_flight.max(1);
        let object = self.object.clone();
        let fetched: Vec<(u64, bytes::Bytes)> = runtime().block_on(
            futures::stream::iter(ranges)
                .map(|range| {
                    let object = object.clone();
                    async move { Ok::<_, SourceError>((range.start, object.fetch(range).await?)) }
                })
                .buffered(in_flight)
                .try_collect(),
        )?;
        if let Ok(mut cache) = self.prefetched.lock() {
            *cache = fetched;
        }
        Ok(())
    }
}

impl parquet::file::reader::Length for RandomRead {
    fn len(&self) -> u64 {
        self.object.size()
    }
}

impl parquet::file::reader::ChunkReader for RandomRead {
    type T = RandomRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        // Read lazily, a part at a time, from `start`: never the rest of the file at once.
        Ok(RandomRead {
            object: self.object.clone(),
            position: start,
            block: None,
            next_block: FIRST_BLOCK,
            prefetched: self.prefetched.clone(),
            ahead: self.ahead.clone(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        if let Some(bytes) = self.cached(start, length as u64) {
            return Ok(bytes);
        }
        self.range(start..start + length as u64)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
    }
}

/// Reads the objects of a folder URL (an S3 prefix) as the members of a container: sorted by
/// key, the wanted ones fetched `parts_in_flight * 8` at a time, handed on in order.
pub(crate) fn read_folder<V: crate::Visitor>(
    object: &Arc<RemoteObject>,
    limits: &crate::Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let listed = list_objects(object)?;
    visitor.root(&object.name())?;
    let mut wanted: Vec<(String, ObjectPath)> = Vec::new();
    for (rel, location, size) in listed {
        if visitor.wants(&rel) {
            if size > limits.max_member_bytes {
                return Err(crate::too_large(Path::new(&object.shown), &rel, size, limits).into());
            }
            wanted.push((rel, location));
        }
    }
    let in_flight = (object.options.parts_in_flight * 8).max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel(in_flight);
    let names: Vec<String> = wanted.iter().map(|(r, _)| r.clone()).collect();
    let fetching = object.clone();
    runtime().spawn(async move {
        let fetched = futures::stream::iter(wanted)
            .map(|(rel, location)| {
                let object = fetching.clone();
                async move { object.fetch_member(&rel, &location).await }
            })
            .buffered(in_flight);
        futures::pin_mut!(fetched);
        while let Some(member) = fetched.next().await {
            let tx = tx.clone();
            let failed = member.is_err();
            let sent = tokio::task::spawn_blocking(move || tx.send(member).is_ok())
                .await
                .unwrap_or(false);
            if !sent || failed {
                break;
            }
        }
    });
    let mut done = 0u64;
    for rel in names {
        let bytes = match rx.recv() {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(e.member(&rel).into()),
            Err(_) => {
                return Err(object
                    .error(SourceErrorKind::Io, "the fetching stopped")
                    .member(&rel)
                    .into())
            }
        };
        done += bytes.len() as u64;
        visitor.member(crate::Member {
            rel: &rel,
            name: &rel,
            bytes: bytes.to_vec(),
        })?;
        visitor.progress(done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
