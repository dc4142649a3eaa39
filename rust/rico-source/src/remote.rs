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
//! - Every part is asked for with the object's ETag (`If-Match`) or, without one, its
//!   Last-Modified (`If-Unmodified-Since`): an object replaced during the run is an error, not a
//!   mix of two versions.
//! - The async runtime lives here, on its own threads; callers see blocking `Read`s.
//! - URLs are shown redacted ([`redact`]): no user, password or query string in any message.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
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
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            parts_in_flight: 4,
            part_bytes: 4 << 20,
            insecure_tls: false,
        }
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

    /// An `object_store` error, in words that say what to check.
    fn store_error(&self, e: object_store::Error) -> SourceError {
        use object_store::Error as E;
        let text = e.to_string();
        match e {
            E::NotFound { .. } => self
                .error(SourceErrorKind::Io, "no such object (404)")
                .hint("check the URL: the bucket, the key and its case"),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => self
                .error(SourceErrorKind::Io, format!("access denied: {text}"))
                .hint("check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or none for a public bucket) and that they may read this object"),
            E::Precondition { .. } => self
                .error(SourceErrorKind::Corrupt, "the object changed while it was read (its ETag or Last-Modified is not the one the run began with)")
                .hint("wait until the upload is complete, then run the same command again with --resume"),
            _ => self
                .error(SourceErrorKind::Io, format!("cannot fetch: {text}"))
                .hint("check the network and the URL; transient failures were retried with backoff"),
        }
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
    /// received.
    async fn fetch_chunks(&self, range: Range<u64>) -> Result<Vec<bytes::Bytes>, SourceError> {
        let want = range.end - range.start;
        let mut out: Vec<bytes::Bytes> = Vec::new();
        let mut got = 0u64;
        let mut attempts = 0;
        while got < want {
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
            let result = match self.store.get_opts(&self.path, options).await {
                Ok(r) => r,
                Err(e) => return Err(self.store_error(e)),
            };
            let before = got;
            let mut stream = result.into_stream();
            let mut broke = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        got += bytes.len() as u64;
                        out.push(bytes);
                    }
                    Err(e) => {
                        broke = Some(e);
                        break;
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
    let client = object_store::ClientOptions::new()
        .with_allow_invalid_certificates(options.insecure_tls)
        .with_timeout(Duration::from_secs(60))
        .with_connect_timeout(Duration::from_secs(20));
    let retry = object_store::RetryConfig {
        max_retries: 8,
        retry_timeout: Duration::from_secs(300),
        ..Default::default()
    };
    let (store, path): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(retry);
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            let mut client = client;
            if let Some(endpoint) = &endpoint {
                builder = builder.with_endpoint(endpoint);
                if endpoint.starts_with("http://") {
                    client = client.with_allow_http(true);
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
                .build()
                .map_err(|e| bad(scrub(&format!("cannot use this S3 URL: {e}"), url)))?;
            let key = parsed.path().trim_start_matches('/');
            (Arc::new(store), ObjectPath::from(key))
        }
        "http" | "https" => {
            if parsed.query().is_some() {
                return Err(bad("URLs with a query string (signed URLs) are not read: the object store client asks for the path alone".into())
                    .hint("give the object's plain URL, or its s3:// URL with credentials in the environment"));
            }
            let base = format!(
                "{}://{}",
                parsed.scheme(),
                &parsed[url::Position::BeforeUsername..url::Position::AfterPort]
            );
            let client = if parsed.scheme() == "http" {
                client.with_allow_http(true)
            } else {
                client
            };
            let store = object_store::http::HttpBuilder::new()
                .with_url(base)
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| bad(scrub(&format!("cannot use this URL: {e}"), url)))?;
            let path = ObjectPath::from_url_path(parsed.path())
                .map_err(|e| bad(format!("not a valid object path: {e}")))?;
            (Arc::new(store), path)
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
        let meta = runtime()
            .block_on(object.store.head(&object.path))
            .map_err(|e| object.store_error(e))?;
        object.meta = Some(meta);
    }
    Ok(Arc::new(object))
}

/// The objects under a folder URL (an S3 prefix), sorted by key: (path relative to the folder,
/// size).
pub fn list_folder(object: &RemoteObject) -> Result<Vec<(String, u64)>, SourceError> {
    let prefix = object.path.clone();
    let metas: Vec<ObjectMeta> = runtime()
        .block_on(object.store.list(Some(&prefix)).try_collect())
        .map_err(|e| object.store_error(e))?;
    let base = prefix.as_ref().trim_end_matches('/').to_string();
    let mut out: Vec<(String, u64)> = metas
        .into_iter()
        .filter_map(|m| {
            let key = m.location.as_ref();
            let rel = if base.is_empty() {
                Some(key)
            } else {
                key.strip_prefix(base.as_str())
                    .and_then(|r| r.strip_prefix('/'))
            };
            rel.map(|r| (r.to_string(), m.size))
        })
        .collect();
    out.sort();
    Ok(out)
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
        let ranges: Vec<Range<u64>> = (0..size.div_ceil(part))
            .map(|i| i * part..((i + 1) * part).min(size))
            .collect();
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
    prefetched: Arc<std::sync::Mutex<Vec<(u64, bytes::Bytes)>>>,
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
    let listed = list_folder(object)?;
    visitor.root(&object.name())?;
    let mut wanted: Vec<(String, u64)> = Vec::new();
    for (rel, size) in listed {
        if visitor.wants(&rel) {
            if size > limits.max_member_bytes {
                return Err(crate::too_large(Path::new(&object.shown), &rel, size, limits).into());
            }
            wanted.push((rel, size));
        }
    }
    let in_flight = (object.options.parts_in_flight * 8).max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel(in_flight);
    let names: Vec<String> = wanted.iter().map(|(r, _)| r.clone()).collect();
    let fetching = object.clone();
    runtime().spawn(async move {
        let base = fetching.path.as_ref().trim_end_matches('/').to_string();
        let fetched = futures::stream::iter(wanted)
            .map(|(rel, _)| {
                let object = fetching.clone();
                let key = if base.is_empty() {
                    rel.clone()
                } else {
                    format!("{base}/{rel}")
                };
                async move {
                    let path = ObjectPath::from(key);
                    match object.store.get(&path).await {
                        Ok(r) => r.bytes().await.map_err(|e| object.store_error(e)),
                        Err(e) => Err(object.store_error(e)),
                    }
                }
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
