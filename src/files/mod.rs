//! Uploaded files: their bytes in blob storage, their metadata in the store, their text
//! extracted in the background, and what jobs take from them.
//!
//! - [`kind`]: what a file is, from its name and its bytes (never the client's Content-Type);
//! - [`extract`]: text from documents (txt, md, csv, html, pdf, docx, ...);
//! - [`blobs`]: where the bytes live, a directory or an S3-compatible bucket, named by id;
//! - [`disposition`]: the upload's file name from `Content-Disposition`;
//! - [`rules`]: the checks of file and media inputs against the files they name.
//!
//! - [`worker`]: text extraction, as leased work on the durable queue.
//!
//! # Lifecycle
//! An upload streams to a temporary file, becomes a blob, then is recorded as `in_progress`
//! (so every recorded file has its bytes). The extraction [`worker`] of some node claims it,
//! extracts its text and records `completed` or `failed`; a node that dies mid-extraction
//! leaves a lease that lapses, and the file is claimed again. Jobs that name a file still
//! `in_progress` wait for it ([`Files::attachments`]).

pub mod blobs;
pub(crate) mod disposition;
pub(crate) mod extract;
pub(crate) mod kind;
pub(crate) mod rules;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use crate::apps::{Application, InputFile, InputFiles, InputType, Inputs};
use crate::providers::Image;
use crate::report::Chain;
use crate::store::{
    FileId, FileInserted, FileRecord, NewFile, OrgId, Store, StoreError, WriterStatus,
};
use blobs::{BlobError, BlobStream, Blobs, Spool};
pub(crate) use kind::FileKind;
pub(crate) use worker::Extraction;

/// How often a job waiting for a file checks the store (another node may process it).
const WAIT_POLL: Duration = Duration::from_millis(200);
/// How long a job (or a synchronous generation) waits for its files to finish processing
/// before it gives up for now.
const PROCESSING_WAIT: Duration = Duration::from_secs(60);
/// Uploads whose bytes one node holds in memory at once, to learn their type.
const UPLOADS_IN_MEMORY: usize = 4;

/// Limits on what an organisation may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileLimits {
    /// Largest upload, in bytes; larger ones answer 413.
    pub(crate) max_upload_bytes: u64,
    /// Bytes an organisation's files may take in all.
    pub(crate) org_quota_bytes: u64,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// The organisation's files would take more than its quota.
    #[error(
        "storing this file ({size} bytes) would exceed the organisation's quota of {quota} bytes ({used} bytes used)"
    )]
    OverQuota {
        /// The upload's size.
        size: u64,
        /// Bytes already used.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// Blob storage failed.
    #[error("file storage failed: {0}")]
    Blob(#[from] BlobError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a job cannot have its files (yet).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    /// A file is gone, failed or breaks the input's rules: the job cannot run.
    #[error("{0}")]
    Unusable(String),
    /// A file is still being processed after the wait; try again later.
    #[error("{0}")]
    Pending(String),
    /// The store failed; try again later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image's bytes cannot be read from blob storage; try again later.
    #[error("input '{input}': file '{file}' cannot be read: {source}")]
    Blob {
        /// The media input that names the file.
        input: String,
        /// The file's id.
        file: FileId,
        /// Why its bytes cannot be read.
        source: BlobError,
    },
}

/// What a job takes from its files: their text for the templates, and the images.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    /// Each file and media input's files, for the templates' `files` variable.
    pub(crate) files: InputFiles,
    /// The images of media inputs, in input then value order.
    pub(crate) images: Vec<Image>,
}

/// The files service: uploads, downloads, deletion, processing, and attachments for jobs.
/// Cloning is one reference count (every request's state holds a clone).
#[derive(Clone)]
pub(crate) struct Files(Arc<Service>);

/// What the files service holds.
pub(crate) struct Service {
    store: Arc<dyn Store>,
    blobs: Blobs,
    limits: FileLimits,
    /// Signalled whenever this node finishes processing a file.
    processed: Notify,
    /// Uploads whose bytes this node holds in memory at once (to learn their type): they
    /// stream to disk, and extraction has its own limit, so this bounds what uploads take.
    in_memory: Semaphore,
    /// How the extraction worker paces itself.
    extraction: Extraction,
    /// Signalled when this node records files to extract (an upload, a retry).
    wake: Notify,
    /// The leases of the files this node is extracting.
    extracting: worker::Extracting,
    /// The most files this node extracted at once.
    peak: AtomicUsize,
}

impl std::ops::Deref for Files {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.0
    }
}

impl Files {
    /// The service over `store` and `blobs`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        blobs: Blobs,
        limits: FileLimits,
        extraction: Extraction,
    ) -> Self {
        Self(Arc::new(Service {
            store,
            blobs,
            limits,
            processed: Notify::new(),
            in_memory: Semaphore::new(UPLOADS_IN_MEMORY),
            extraction,
            wake: Notify::new(),
            extracting: worker::Extracting::default(),
            peak: AtomicUsize::new(0),
        }))
    }

    /// The limits uploads are held to.
    pub(crate) fn limits(&self) -> FileLimits {
        self.limits
    }

    /// A temporary file for an upload to stream into, to hand to [`Files::upload`].
    pub(crate) fn spool(&self) -> Result<Spool, UploadError> {
        Ok(self.blobs.spool()?)
    }

    /// Stores an upload of `org`, streamed into `spool`, and starts extracting its text.
    /// Answers the file as recorded (`in_progress`).
    pub(crate) async fn upload(
        &self,
        org: &OrgId,
        name: String,
        mut spool: Spool,
        graph_ids: Vec<String>,
    ) -> Result<FileRecord, UploadError> {
        let permit = self.in_memory.acquire().await.expect("never closed");
        let bytes = spool.read().await?;
        let kind = FileKind::detect(&name, &bytes);
        let id = FileId::generate();
        let size = bytes.len() as u64;
        self.blobs
            .put_spooled(&id.to_string(), spool, bytes)
            .await?;
        drop(permit);
        let file = NewFile {
            id,
            org: org.clone(),
            name,
            kind: kind.extension().to_owned(),
            size: size as i64,
            graph_ids,
        };
        let quota = self.limits.org_quota_bytes;
        match self.store.insert_file(file, quota as i64).await {
            Ok(FileInserted::Stored(record)) => {
                self.wake.notify_one();
                Ok(record)
            }
            Ok(FileInserted::OverQuota { used }) => {
                self.forget_blob(id).await;
                Err(UploadError::OverQuota {
                    size,
                    used: used.max(0) as u64,
                    quota,
                })
            }
            Err(e) => {
                self.forget_blob(id).await;
                Err(e.into())
            }
        }
    }

    /// A file of `org` and its bytes, or `None`.
    pub(crate) async fn download(
        &self,
        org: &OrgId,
        id: FileId,
    ) -> Result<Option<(FileRecord, Bytes)>, UploadError> {
        let Some(record) = self.get(org, id).await? else {
            return Ok(None);
        };
        match self.blobs.get(&id.to_string()).await {
            Ok(bytes) => Ok(Some((record, bytes))),
            // Deleted between the two reads.
            Err(BlobError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A file of `org` and its bytes as a stream, or `None`.
    pub(crate) async fn open(
        &self,
        org: &OrgId,
        id: FileId,
    ) -> Result<Option<(FileRecord, BlobStream)>, UploadError> {
        let Some(record) = self.get(org, id).await? else {
            return Ok(None);
        };
        match self.blobs.stream(&id.to_string()).await {
            Ok(bytes) => Ok(Some((record, bytes))),
            // Deleted between the two reads.
            Err(BlobError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A file of `org`, or `None`.
    pub(crate) async fn get(
        &self,
        org: &OrgId,
        id: FileId,
    ) -> Result<Option<FileRecord>, StoreError> {
        let mut found = self.store.get_files(Some(org), &[id], false).await?;
        Ok(found.pop())
    }

    /// Deletes a file of `org`: its record first (so no new job can name it), then its bytes.
    pub(crate) async fn delete(&self, org: &OrgId, id: FileId) -> Result<bool, StoreError> {
        let deleted = self.store.delete_file(org, id).await?;
        if deleted {
            self.forget_blob(id).await;
        }
        Ok(deleted)
    }

    /// Processes again those of `ids` (of `org`) that failed. Answers how many it restarted.
    pub(crate) async fn retry(&self, org: &OrgId, ids: &[FileId]) -> Result<usize, StoreError> {
        let reset = self.store.retry_files(org, ids).await?;
        if !reset.is_empty() {
            self.wake.notify_one();
        }
        Ok(reset.len())
    }

    /// Deletes a blob, logging (not failing) when that does not work: an orphaned blob
    /// costs space, never correctness.
    async fn forget_blob(&self, id: FileId) {
        if let Err(e) = self.blobs.delete(&id.to_string()).await {
            tracing::warn!(file = %id, error = %Chain(&e), "cannot delete a file's bytes");
        }
    }

    /// Checks the file and media inputs of a job being submitted by `org`: every id names a
    /// file of `org` that suits its input ([`rules`]).
    pub(crate) async fn check_inputs(
        &self,
        org: &OrgId,
        app: &Application,
        inputs: &Inputs,
    ) -> Result<(), rules::Refusal> {
        let ids = file_ids(app, inputs);
        let records = if ids.is_empty() {
            Vec::new()
        } else {
            self.store.get_files(Some(org), &ids, false).await?
        };
        let found = by_id(&records);
        for (spec, ids) in app.file_inputs(inputs) {
            for id in ids {
                rules::check_at_submit(spec, id, record_of(&found, id))?;
            }
        }
        Ok(())
    }

    /// Loads what a job's file and media inputs give the model: each file's name and text,
    /// and each image's bytes. Files still `in_progress` are waited for up to
    /// [`PROCESSING_WAIT`] (the caller's lease is renewed meanwhile, as for any attempt).
    pub(crate) async fn attachments(
        &self,
        app: &Application,
        inputs: &Inputs,
    ) -> Result<Attachments, AttachError> {
        let ids = file_ids(app, inputs);
        let records = if ids.is_empty() {
            Vec::new()
        } else {
            self.ready_files(&ids, PROCESSING_WAIT).await?
        };
        let found = by_id(&records);
        let mut attachments = Attachments::default();
        for (spec, ids) in app.file_inputs(inputs) {
            let mut files = Vec::with_capacity(ids.len());
            for id in ids {
                let record = rules::check_at_run(spec, id, record_of(&found, id))
                    .map_err(AttachError::Unusable)?;
                if spec.input_type == InputType::Media {
                    attachments
                        .images
                        .push(self.image(spec.name.as_str(), record).await?);
                }
                files.push(InputFile {
                    id: record.id.to_string(),
                    name: record.name.clone(),
                    kind: record.kind.clone(),
                    text: record.text.clone().unwrap_or_default(),
                });
            }
            attachments.files.insert(spec.name.clone(), files);
        }
        Ok(attachments)
    }

    /// The records (with text) of `ids`, once none is `in_progress` or `wait` has passed.
    async fn ready_files(
        &self,
        ids: &[FileId],
        wait: Duration,
    ) -> Result<Vec<FileRecord>, AttachError> {
        let deadline = Instant::now() + wait;
        loop {
            let processed = self.processed.notified();
            let records = self.store.get_files(None, ids, true).await?;
            let pending = records
                .iter()
                .find(|r| r.status == WriterStatus::InProgress);
            let Some(pending) = pending else {
                return Ok(records);
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(AttachError::Pending(format!(
                    "file '{}' is still being processed",
                    pending.id
                )));
            }
            let nap = WAIT_POLL.min(deadline - now);
            let _ = tokio::time::timeout(nap, processed).await;
        }
    }

    /// The bytes of an image file, as an image part.
    async fn image(&self, input: &str, record: &FileRecord) -> Result<Image, AttachError> {
        let mime = FileKind::from_extension(&record.kind)
            .map_or("application/octet-stream", FileKind::mime);
        match self.blobs.get(&record.id.to_string()).await {
            Ok(data) => Ok(Image { mime, data }),
            Err(BlobError::NotFound) => Err(AttachError::Unusable(format!(
                "input '{input}': file '{}' was deleted",
                record.id
            ))),
            Err(source) => Err(AttachError::Blob {
                input: input.to_owned(),
                file: record.id,
                source,
            }),
        }
    }
}

/// Every file id given to `app`'s file and media inputs, in input order. A value that is no
/// file id names no file: it is left out here, and the rules refuse it as missing.
fn file_ids(app: &Application, inputs: &Inputs) -> Vec<FileId> {
    app.file_inputs(inputs)
        .flat_map(|(_, ids)| ids.iter().filter_map(|id| FileId::parse(id)))
        .collect()
}

/// The records by id.
fn by_id(records: &[FileRecord]) -> HashMap<FileId, &FileRecord> {
    records.iter().map(|r| (r.id, r)).collect()
}

/// The record of the file an input's value names, if the value is a file id found.
fn record_of<'a>(found: &HashMap<FileId, &'a FileRecord>, value: &str) -> Option<&'a FileRecord> {
    FileId::parse(value).and_then(|id| found.get(&id).copied())
}
