//! Opening a URL: the HTTP client every store uses, HTTP Basic authentication, the store for
//! `http(s)://` and `s3://`, and the listing of an S3 folder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore};

use crate::{SourceError, SourceErrorKind};

use super::{redact, runtime, scrub, RemoteObject, RemoteOptions};

/// The HTTP client of every store: reqwest (TLS by rustls with the system's certificates), with
/// a read timeout (bytes must keep arriving) instead of a total one (a large part on a slow link
/// is fine as long as it moves).
#[derive(Debug)]
pub(super) struct Connector {
    pub(super) read_timeout: Duration,
    pub(super) insecure_tls: bool,
    pub(super) allow_http: bool,
    pub(super) headers: reqwest::header::HeaderMap,
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
pub(super) fn basic_auth(parsed: &url::Url) -> Option<reqwest::header::HeaderValue> {
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
pub(super) fn list_objects(
    object: &RemoteObject,
) -> Result<Vec<(String, ObjectPath, u64)>, SourceError> {
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
