//! Blocking readers over a remote object, for the one-pass container readers: front to back
//! with parts fetched ahead in order ([`SequentialRead`]), and with seeks ([`RandomRead`], for
//! zip and Parquet), plus the objects of an S3 folder read as a container's members.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;

use crate::{SourceError, SourceErrorKind};

use super::open::list_objects;
use super::{runtime, RemoteObject};

/// A remote object read front to back: parts fetched ahead, in order, on the fetching runtime,
/// and read as the network delivered them.
pub(crate) struct SequentialRead {
    pub(super) parts: std::sync::mpsc::Receiver<Result<Vec<bytes::Bytes>, SourceError>>,
    pub(super) current: std::collections::VecDeque<bytes::Bytes>,
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
        let rx = fetch_in_order(ranges, in_flight, 1, move |range| {
            let object = object.clone();
            async move { object.fetch_chunks(range).await }
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
pub(super) fn parts_of(span: Range<u64>, part: u64) -> impl Iterator<Item = Range<u64>> + Send {
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
pub(super) struct Ahead {
    pub(super) parts: Option<std::sync::mpsc::Receiver<Result<(u64, bytes::Bytes), SourceError>>>,
    pub(super) next: Option<(u64, bytes::Bytes)>,
}

/// A remote object read at any position (zip's central directory, Parquet's footer and pages):
/// a block from the position is fetched and kept. Blocks start small (64 KiB: a header, a
/// footer) and double while reads go on where the last block ended, up to the part size.
pub(crate) struct RandomRead {
    pub(super) object: Arc<RemoteObject>,
    pub(super) position: u64,
    pub(super) block: Option<(u64, bytes::Bytes)>,
    pub(super) next_block: u64,
    /// Byte ranges fetched ahead (a Parquet row group's column chunks), shared by the readers
    /// this one hands out.
    pub(super) prefetched: Arc<Mutex<Vec<(u64, bytes::Bytes)>>>,
    /// A span streamed ahead in parts (a zip archive's members), shared likewise.
    pub(super) ahead: Arc<Mutex<Ahead>>,
}

pub(super) const FIRST_BLOCK: u64 = 64 << 10;

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
    pub(super) fn cached(&self, start: u64, len: u64) -> Option<bytes::Bytes> {
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
    pub(super) fn streamed_part(&self, position: u64) -> io::Result<Option<(u64, bytes::Bytes)>> {
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
        let rx = fetch_in_order(ranges, in_flight, 1, move |range| {
            let object = object.clone();
            async move { Ok((range.start, object.fetch(range).await?)) }
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

/// Fetches `items` with `fetch`, up to `in_flight` at once on the fetching runtime, and hands
/// the results on in order through a channel of `queue` places (the reader blocks on the
/// channel, not the runtime). The first error is the last result sent.
fn fetch_in_order<I, T, F, Fut>(
    items: I,
    in_flight: usize,
    queue: usize,
    fetch: F,
) -> std::sync::mpsc::Receiver<Result<T, SourceError>>
where
    I: IntoIterator + Send + 'static,
    I::IntoIter: Send,
    I::Item: Send,
    T: Send + 'static,
    F: Fn(I::Item) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, SourceError>> + Send,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(queue);
    runtime().spawn(async move {
        let fetched = futures::stream::iter(items)
            .map(fetch)
            .buffered(in_flight.max(1));
        futures::pin_mut!(fetched);
        while let Some(result) = fetched.next().await {
            let failed = result.is_err();
            // Sent from a blocking task: the channel may be full while the reader works.
            let tx = tx.clone();
            let sent = tokio::task::spawn_blocking(move || tx.send(result).is_ok())
                .await
                .unwrap_or(false);
            if !sent || failed {
                break;
            }
        }
    });
    rx
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
    let names: Vec<String> = wanted.iter().map(|(r, _)| r.clone()).collect();
    let fetching = object.clone();
    let rx = fetch_in_order(wanted, in_flight, in_flight, move |(rel, location)| {
        let object = fetching.clone();
        async move { object.fetch_member(&rel, &location).await }
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
