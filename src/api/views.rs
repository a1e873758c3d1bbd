//! Wire types: what the routes send, shaped exactly as Writer's API (plus our own added
//! fields, which both SDKs tolerate).

use serde::Serialize;
use utoipa::ToSchema;

use crate::apps::{AppStatus, Application, InputSpec};
use crate::store::{
    ApplicationId, ApplicationVersion, BatchId, BatchRecord, FileId, FileRecord, Inserted, JobId,
    JobRecord, JobState, Priority, rfc3339,
};

/// A job, as `GET /v1/applications/jobs/{id}` and the list show it.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobView {
    id: JobId,
    status: &'static str,
    application_id: ApplicationId,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<ResultView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Ours: when the latest attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// Ours: tokens the completing attempt used, when the backend said.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageView>,
    /// Ours: the internal state (queued, running, retrying, completed, failed).
    state: &'static str,
    /// Ours: attempts started in the current series.
    attempts: u32,
    /// Ours: why the last attempt failed, while the job waits to retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// Ours: `high`, `normal` or `low`.
    priority: Priority,
    /// Ours: the provider that produced the result; null until completed.
    provider: Option<String>,
    /// Ours: the model that produced the result; null until completed (or when unknown).
    model: Option<String>,
    /// Ours: the batch it is an item of (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<BatchId>,
    /// Ours: its name within its batch (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_id: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> Self {
        let completed = job.state == JobState::Completed;
        let failed = job.state == JobState::Failed;
        let data = match (completed, job.suggestion) {
            (true, Some(suggestion)) => Some(ResultView {
                title: job.title,
                suggestion,
            }),
            _ => None,
        };
        let (error, last_error) = if failed {
            (job.error, None)
        } else {
            (None, job.error)
        };
        Self {
            id: job.id,
            status: job.state.writer_status().as_str(),
            application_id: job.application_id,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            completed_at: job.completed_at.map(rfc3339),
            started_at: job.started_at.map(rfc3339),
            usage: job.usage.map(|u| UsageView {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.prompt_tokens + u.completion_tokens,
            }),
            data,
            error,
            state: job.state.as_str(),
            attempts: job.attempt,
            last_error,
            priority: job.priority,
            provider: job.provider,
            model: job.model,
            batch_id: job.batch_id,
            custom_id: job.custom_id,
        }
    }
}

/// `{prompt_tokens, completion_tokens, total_tokens}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct UsageView {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

/// A generation result: `{title?, suggestion}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResultView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    pub(crate) suggestion: String,
}

/// A preview: the system and user prompts as the model gets them, the title, and the
/// model's answer when it was run.
#[derive(Serialize, ToSchema)]
pub(crate) struct PreviewView {
    pub(crate) system: Option<String>,
    pub(crate) user: String,
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answer: Option<ResultView>,
}

/// The answer to a create or a retry: `{id, status, created_at}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobAcceptedView {
    id: JobId,
    status: &'static str,
    created_at: String,
}

impl From<Inserted> for JobAcceptedView {
    fn from(job: Inserted) -> Self {
        Self {
            id: job.id,
            status: job.state.writer_status().as_str(),
            created_at: rfc3339(job.created_at),
        }
    }
}

/// A page of jobs: `{result, totalCount, pagination: {offset, limit}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobListView {
    pub(crate) result: Vec<JobView>,
    #[serde(rename = "totalCount")]
    pub(crate) total_count: u64,
    pub(crate) pagination: PaginationView,
}

/// A batch: `{id, application_id, status, counts, created_at, updated_at, completed_at,
/// cancelled_at, eta, metadata, priority, errors}`; every field is always present (null when
/// not known or not reached).
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchView {
    id: BatchId,
    application_id: ApplicationId,
    status: &'static str,
    counts: BatchCountsView,
    created_at: String,
    updated_at: String,
    completed_at: Option<String>,
    /// Null: batches cannot be cancelled yet.
    cancelled_at: Option<String>,
    /// Null: no estimate is made yet.
    eta: Option<String>,
    metadata: serde_json::Value,
    priority: Priority,
    errors: serde_json::Value,
}

/// A batch's items by state; they add up to `total`.
#[derive(Serialize, ToSchema)]
struct BatchCountsView {
    total: u64,
    in_progress: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

impl From<BatchRecord> for BatchView {
    fn from(batch: BatchRecord) -> Self {
        // Both were written by the server as JSON; they read back as such.
        let json = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        Self {
            id: batch.id,
            status: batch.status().as_str(),
            counts: BatchCountsView {
                total: batch.total,
                in_progress: batch.in_progress(),
                completed: batch.completed,
                failed: batch.failed,
                cancelled: 0,
            },
            created_at: rfc3339(batch.created_at),
            updated_at: rfc3339(batch.updated_at),
            completed_at: batch.completed_at().map(rfc3339),
            cancelled_at: None,
            eta: None,
            metadata: json(&batch.metadata),
            priority: batch.priority,
            errors: json(&batch.errors),
            application_id: batch.application_id,
        }
    }
}

/// A page of batches: `{result, totalCount, pagination: {offset, limit}}`, as jobs are paged.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchListView {
    pub(crate) result: Vec<BatchView>,
    #[serde(rename = "totalCount")]
    pub(crate) total_count: u64,
    pub(crate) pagination: PaginationView,
}

/// The offset and limit a job page was read with.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaginationView {
    pub(crate) offset: u64,
    pub(crate) limit: u64,
}

/// An application: `{id, name, type, status, inputs, created_at, updated_at, last_deployed_at?}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApplicationView<'a> {
    #[schema(value_type = String)]
    id: &'a str,
    #[schema(value_type = String)]
    name: &'a str,
    /// Always `generation`.
    #[serde(rename = "type")]
    kind: &'static str,
    status: AppStatus,
    #[schema(value_type = Vec<InputSpec>)]
    inputs: &'a [InputSpec],
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_deployed_at: Option<String>,
}

impl<'a> From<&'a Application> for ApplicationView<'a> {
    fn from(app: &'a Application) -> Self {
        let micros = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64)
        };
        let updated_at = rfc3339(micros(app.updated_at));
        Self {
            id: app.id.as_str(),
            name: &app.name,
            kind: "generation",
            status: app.status,
            inputs: &app.inputs,
            created_at: rfc3339(micros(app.created_at)),
            last_deployed_at: app.last_deployed_at.map(|t| rfc3339(micros(t))),
            updated_at,
        }
    }
}

/// An application as our own routes show it: Writer's object plus its `version` and JSON
/// `definition` (both null for a provisioned application, which has neither) and whether it
/// is `provisioned` (from the apps folder, read-only).
#[derive(Serialize, ToSchema)]
pub(crate) struct StoredApplicationView<'a> {
    #[serde(flatten)]
    app: ApplicationView<'a>,
    version: Option<u32>,
    /// The definition as JSON (see `docs/`); null for a provisioned application.
    #[schema(value_type = Option<Object>)]
    definition: Option<&'a serde_json::Value>,
    provisioned: bool,
}

impl<'a> From<&'a Application> for StoredApplicationView<'a> {
    fn from(app: &'a Application) -> Self {
        Self {
            app: ApplicationView::from(app),
            version: app.version,
            definition: app.definition.as_ref(),
            provisioned: app.version.is_none(),
        }
    }
}

/// One version of an application: `{version, created_at, definition}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionView {
    version: u32,
    created_at: String,
    definition: serde_json::Value,
}

impl From<ApplicationVersion> for VersionView {
    fn from(v: ApplicationVersion) -> Self {
        Self {
            version: v.version,
            created_at: rfc3339(v.created_at),
            definition: serde_json::from_str(&v.definition).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of an application's versions, paged like jobs.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionListView {
    pub(crate) result: Vec<VersionView>,
    #[serde(rename = "totalCount")]
    pub(crate) total_count: u64,
    pub(crate) pagination: PaginationView,
}

/// The answer to an application's delete.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApplicationDeletedView {
    pub(crate) id: String,
    pub(crate) deleted: bool,
}

/// A cursor page of applications: `{data, has_more, first_id?, last_id?}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApplicationListView<'a> {
    pub(crate) data: Vec<ApplicationView<'a>>,
    pub(crate) has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) first_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) last_id: Option<&'a str>,
}

/// `{graph_ids: [...]}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct GraphsView {
    pub(crate) graph_ids: Vec<String>,
}

/// A file, as the Files API shows it: Writer's `{id, created_at, name, graph_ids, status}`
/// plus our own `type`, `size` and, once failed, `error`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FileView {
    id: FileId,
    created_at: String,
    name: String,
    graph_ids: Vec<String>,
    status: &'static str,
    /// Ours: the type found from the name and the bytes, as an extension.
    #[serde(rename = "type")]
    kind: String,
    /// Ours: the size in bytes.
    size: i64,
    /// Ours: why processing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<FileRecord> for FileView {
    fn from(f: FileRecord) -> Self {
        Self {
            id: f.id,
            created_at: rfc3339(f.created_at),
            name: f.name,
            graph_ids: f.graph_ids,
            status: f.status.as_str(),
            kind: f.kind,
            size: f.size,
            error: f.error,
        }
    }
}

/// A cursor page of files.
#[derive(Serialize, ToSchema)]
pub(crate) struct FileListView {
    pub(crate) data: Vec<FileView>,
    pub(crate) has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_id: Option<FileId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_id: Option<FileId>,
}

/// `{"success": true}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SuccessView {
    pub(crate) success: bool,
}

/// The answer to a delete.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeletedView {
    pub(crate) id: FileId,
    pub(crate) deleted: bool,
}
