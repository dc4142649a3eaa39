//! One remote object and its fetches: whole ranges, ranges in chunks as they arrive (with a
//! read timeout and a retry budget), members of a folder, and its metadata.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use crate::{SourceError, SourceErrorKind};

use super::{scrub, RemoteOptions};

/// One remote object (or, for a folder over S3, a prefix), with the store that serves it.
pub struct RemoteObject {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) path: ObjectPath,
    pub(super) url: String,
    pub(super) shown: String,
    pub(super) options: RemoteOptions,
    pub(super) meta: Option<ObjectMeta>,
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

    pub(super) fn error(&self, kind: SourceErrorKind, message: impl Into<String>) -> SourceError {
        SourceError::new(
            kind,
            Path::new(&self.shown),
            scrub(&message.into(), &self.url),
        )
    }

    /// Whether the URL is an `s3://` one (its credentials are AWS's).
    pub(super) fn is_s3(&self) -> bool {
        let lower = self.url.to_ascii_lowercase();
        lower.starts_with("s3://") || lower.starts_with("s3a://")
    }

    /// An `object_store` error, in words that say what to check.
    pub(super) fn store_error(&self, e: object_store::Error) -> SourceError {
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
    pub(super) fn stalled(&self, what: &str, waited: Duration) -> SourceError {
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
    pub(super) fn size_changed(&self, declared: u64, actual: u64) -> SourceError {
        self.error(
            SourceErrorKind::Corrupt,
            format!("the server gave the object's size as {declared} bytes, then as {actual} bytes for a ranged GET"),
        )
        .hint("the server's HEAD answer is wrong or the object is being replaced: check the server, then run the same command again with --resume")
    }

    /// The bytes `range` of the object in one buffer (random reads: zip, Parquet).
    pub(super) async fn fetch(&self, range: Range<u64>) -> Result<bytes::Bytes, SourceError> {
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
    pub(super) async fn fetch_chunks(
        &self,
        range: Range<u64>,
    ) -> Result<Vec<bytes::Bytes>, SourceError> {
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
    pub(super) async fn fetch_member(
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
    pub(super) async fn head(&self) -> Result<ObjectMeta, SourceError> {
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
pub(super) fn status_of(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}
