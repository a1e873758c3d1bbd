//! One attempt at one job: gather its files, render, call the provider, and decide what the
//! outcome means. The first steps ([`prepare`]) are shared with synchronous generation, so an
//! application's inputs become a provider request in one place.

use std::sync::Arc;
use std::time::Duration;

use super::failpoint::{self, FailurePoint};
use crate::apps::{Application, Catalog, Inputs, Prompt, RenderError};
use crate::files::{AttachError, Attachments, Files};
use crate::providers::{Backend, Caller, ChatRequest, ErrorClass, ProviderError, Providers};
use crate::report::Chain;
use crate::store::{ClaimedJob, OutcomeKind, RetryPolicy};

/// A provider request made from an application and its inputs, ready to send.
#[derive(Debug)]
pub struct Prepared {
    /// The backend to send it to, chosen among the application's providers.
    pub provider: Arc<Backend>,
    /// The chat request.
    pub request: ChatRequest,
    /// The rendered title, if the application has one.
    pub title: Option<String>,
}

/// Why an application's inputs could not become a provider request.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A file the inputs name is gone, failed or breaks its input's rules: it never will run.
    #[error("{0}")]
    Unusable(String),
    /// A file is still being processed, or file storage is unavailable: later, it may.
    #[error(transparent)]
    NotYet(AttachError),
    /// A template failed to render with these inputs.
    #[error("template error: {0}")]
    Template(#[source] RenderError),
    /// The application's provider is not configured on this server.
    #[error("provider '{0}' is not configured")]
    NoProvider(String),
}

/// Gathers the files `inputs` name, renders `app`'s prompts and builds the request for the
/// provider it should go to now (the first of the application's providers with room, see
/// [`Providers::route`]); `caller` says whose call it is.
pub async fn prepare(
    app: &Application,
    inputs: &Inputs,
    files: &Files,
    providers: &Providers,
    caller: Caller,
) -> Result<Prepared, PrepareError> {
    let attachments = files.attachments(app, inputs).await.map_err(|e| match e {
        AttachError::Unusable(message) => PrepareError::Unusable(message),
        e @ (AttachError::Pending(_) | AttachError::Store(_) | AttachError::Blob { .. }) => {
            PrepareError::NotYet(e)
        }
    })?;
    let prompt = app
        .render(inputs, &attachments.files)
        .map_err(PrepareError::Template)?;
    let title = prompt.title.clone();
    let request = chat_request(app, prompt, attachments, caller);
    let provider = providers
        .route(&app.providers, &request)
        .map_err(|name| PrepareError::NoProvider(name.to_owned()))?
        .clone();
    Ok(Prepared {
        provider,
        request,
        title,
    })
}

/// Runs one attempt and classifies its end: success, wait for the provider, retry later, or
/// final failure.
pub(super) async fn run(
    apps: &Catalog,
    providers: &Providers,
    files: &Files,
    job: &ClaimedJob,
) -> OutcomeKind {
    // The version the job was created with, even if the application changed since.
    let found = apps
        .pinned(&job.org, &job.application_id, job.application_version)
        .await;
    let app = match found {
        Ok(Some(app)) => app,
        Ok(None) => {
            return failed(format!(
                "application '{}' is no longer served",
                job.application_id
            ));
        }
        Err(e) => return retry_later(job, Chain(&e).to_string(), None),
    };
    let app = app.as_ref();
    let inputs = match serde_json::from_str::<Inputs>(&job.inputs) {
        Ok(inputs) => inputs,
        Err(e) => return failed(format!("stored inputs are unreadable: {}", Chain(&e))),
    };
    let caller = Caller {
        key: job.id.to_string(),
        org: job.org.clone(),
        priority: job.priority,
    };
    let prepared = match prepare(app, &inputs, files, providers, caller).await {
        Ok(prepared) => prepared,
        Err(e @ PrepareError::NotYet(_)) => {
            return retry_later(job, Chain(&e).to_string(), None);
        }
        Err(e) => return failed(Chain(&e).to_string()),
    };
    failpoint::reached(FailurePoint::BeforeModelCall);
    let provider = prepared.provider;
    let answer = provider.complete(prepared.request).await;
    failpoint::reached(FailurePoint::AfterModelCall);
    // Whether a job this provider failed may go to another of the application's at once.
    let elsewhere = || providers.other_has_room(&app.providers, provider.name());
    match answer {
        Ok(done) if !done.text.trim().is_empty() => OutcomeKind::Completed {
            title: prepared.title,
            suggestion: done.text,
            usage: done.usage,
            provider: provider.name().to_owned(),
            model: done.model,
        },
        Ok(_) => retry_or_fail(
            job,
            provider.name(),
            &ProviderError::Retryable {
                class: ErrorClass::Malformed,
                message: "the model returned no text".into(),
                retry_after: None,
            },
            elsewhere(),
        ),
        Err(e) => retry_or_fail(job, provider.name(), &e, elsewhere()),
    }
}

/// The chat request for a rendered prompt of `app` with the images of its `attachments`;
/// `caller` says whose call it is.
fn chat_request(
    app: &Application,
    prompt: Prompt,
    attachments: Attachments,
    caller: Caller,
) -> ChatRequest {
    ChatRequest {
        model: app.model.clone(),
        system: prompt.system,
        user: prompt.user,
        images: attachments.images,
        temperature: app.temperature,
        max_tokens: app.max_tokens,
        caller,
    }
}

/// What a provider's error means for the job: backpressure waits for `provider` without
/// spending an attempt (until the job's `max_wait` is used up), only briefly when another of
/// the application's providers has room `elsewhere`; other retryable errors spend an attempt,
/// fatal ones end the job.
fn retry_or_fail(
    job: &ClaimedJob,
    provider: &str,
    e: &ProviderError,
    elsewhere: bool,
) -> OutcomeKind {
    match e {
        ProviderError::Retryable {
            class, retry_after, ..
        } if class.is_backpressure() => {
            // This provider is paused now: the next attempt goes to the other one.
            let retry_after = if elsewhere {
                Some(Duration::ZERO)
            } else {
                *retry_after
            };
            wait_for_provider(job, provider, e, retry_after)
        }
        ProviderError::Retryable { retry_after, .. } => {
            retry_later(job, e.to_string(), *retry_after)
        }
        ProviderError::Fatal { .. } => failed(e.to_string()),
    }
}

/// The provider said "not now": try again after what it asked (else a second), or fail
/// once backpressure has held the job for its `max_wait`.
fn wait_for_provider(
    job: &ClaimedJob,
    provider: &str,
    e: &ProviderError,
    retry_after: Option<Duration>,
) -> OutcomeKind {
    let since = job.waiting_since.unwrap_or(job.claimed_at);
    let waited = Duration::from_micros(job.claimed_at.saturating_sub(since).max(0) as u64);
    let max_wait = Duration::from_millis(job.retry.max_wait_ms);
    if waited >= max_wait {
        return failed(format!(
            "provider '{provider}' was unavailable for {} (the application's max_wait): {e}",
            humantime::format_duration(Duration::from_secs(waited.as_secs().max(1)))
        ));
    }
    // At least a tenth of a second, so a "Retry-After: 0" does not spin; jitter spreads the
    // jobs a pause sent back, so they do not return as one burst.
    let delay = retry_after
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(100))
        .mul_f64(1.0 + fastrand::f64() / 4.0);
    OutcomeKind::Wait {
        delay,
        error: e.to_string(),
    }
}

/// A retryable failure: run again after the backoff (at least `retry_after`), unless this was
/// the last attempt.
fn retry_later(job: &ClaimedJob, error: String, retry_after: Option<Duration>) -> OutcomeKind {
    let attempt = job.lease.attempt;
    if attempt < job.retry.max_attempts {
        let wait = backoff(&job.retry, attempt).max(retry_after.unwrap_or_default());
        OutcomeKind::Retry { delay: wait, error }
    } else {
        failed(format!("{error} (gave up after {attempt} attempts)"))
    }
}

/// The wait before attempt `attempt + 1`: exponential from `backoff_initial_ms`, capped at
/// `backoff_max_ms`, with "equal jitter" (between half and all of it) so a burst of failures
/// does not come back as a burst.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let full = policy
        .backoff_initial_ms
        .saturating_mul(1u64 << exp)
        .min(policy.backoff_max_ms);
    Duration::from_millis(full / 2 + fastrand::u64(0..=full / 2))
}

fn failed(error: String) -> OutcomeKind {
    OutcomeKind::Failed { error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff_initial_ms: 1000,
            backoff_max_ms: 5000,
            max_wait_ms: 0,
        };
        for _ in 0..100 {
            let first = backoff(&policy, 1).as_millis();
            let third = backoff(&policy, 3).as_millis();
            let tenth = backoff(&policy, 10).as_millis();
            assert!((500..=1000).contains(&first));
            assert!((2000..=4000).contains(&third));
            assert!((2500..=5000).contains(&tenth));
        }
    }
}
