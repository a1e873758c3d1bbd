//! The deterministic mock provider, for tests, demos and benchmarks.
//!
//! The text it returns is built from the rendered prompt (`[model] <user prompt>`, then
//! `[image <mime>, <n> bytes]` for each image), so a test can see exactly which inputs
//! reached the model. Its latency is configurable, and
//! directives written anywhere in the prompt (for instance passed as an input value) make
//! it fail on purpose:
//!
//! | directive | effect |
//! |---|---|
//! | `[[mock:fail]]` | every call fails fatally |
//! | `[[mock:error]]` | every call fails retryably |
//! | `[[mock:fail-first=N]]` | the first N calls for this job fail retryably, later ones succeed |
//! | `[[mock:fatal-first=N]]` | the first N calls for this job fail fatally, later ones succeed |
//! | `[[mock:busy-first=N]]` | the first N calls for this job answer "overloaded" (a 503, Retry-After 1 s) |
//! | `[[mock:sleep=MS]]` | this call takes MS milliseconds instead of the configured latency |
//! | `[[mock:break]]` | a stream sends half the text, then fails retryably |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};

use super::{ChatRequest, Completion, ErrorClass, ProviderError};

/// The mock's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct MockSettings {
    /// How long each call takes.
    pub(crate) latency: Duration,
}

/// The mock provider. Counts calls per job key for the `*-first=N` directives.
#[derive(Debug)]
pub(crate) struct MockProvider {
    settings: MockSettings,
    calls: Mutex<HashMap<String, u32>>,
}

/// The directives found in one prompt.
#[derive(Debug, Default, PartialEq)]
struct Directives {
    fail: bool,
    error: bool,
    fail_first: Option<u32>,
    fatal_first: Option<u32>,
    busy_first: Option<u32>,
    sleep: Option<Duration>,
    break_stream: bool,
}

impl MockProvider {
    /// A mock with these settings.
    pub(crate) fn new(settings: MockSettings) -> Self {
        Self {
            settings,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Waits the latency, then answers or fails as the prompt's directives say.
    pub(crate) async fn complete(
        &self,
        request: &ChatRequest,
    ) -> Result<Completion, ProviderError> {
        let directives = Directives::parse(request);
        let latency = directives.sleep.unwrap_or(self.settings.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.check(request, &directives)?;
        Ok(Completion {
            text: text_for(request),
            usage: None,
            model: None,
        })
    }

    /// Like [`Self::complete`], but a few words at a time.
    pub(crate) fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxStream<'static, Result<String, ProviderError>> {
        let directives = Directives::parse(&request);
        let delay = directives.sleep.unwrap_or(self.settings.latency);
        let checked = self.check(&request, &directives);
        let text = text_for(&request);
        let mut pieces: Vec<Result<String, ProviderError>> = chunks(&text).map(Ok).collect();
        if directives.break_stream {
            pieces.truncate(pieces.len() / 2);
            pieces.push(Err(retryable("mock: stream broken on purpose")));
        }
        let pieces = match checked {
            Ok(()) => pieces,
            Err(e) => vec![Err(e)],
        };
        stream::once(tokio::time::sleep(delay))
            .flat_map(move |()| stream::iter(pieces.clone()))
            .boxed()
    }

    /// One line for the startup log.
    pub(crate) fn describe(&self) -> String {
        format!("mock (deterministic, latency {:?})", self.settings.latency)
    }

    fn check(&self, request: &ChatRequest, d: &Directives) -> Result<(), ProviderError> {
        if d.fail {
            return Err(fatal("mock: failed on purpose"));
        }
        if d.error {
            return Err(retryable("mock: retryable error on purpose"));
        }
        if d.fail_first.is_none() && d.fatal_first.is_none() && d.busy_first.is_none() {
            return Ok(());
        }
        let call = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let n = calls.entry(request.caller.key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if d.fatal_first.is_some_and(|n| call <= n) {
            return Err(fatal(&format!(
                "mock: call {call} failed fatally on purpose"
            )));
        }
        if d.busy_first.is_some_and(|n| call <= n) {
            return Err(ProviderError::Retryable {
                class: ErrorClass::Overloaded,
                message: format!("mock: call {call} found the server overloaded on purpose"),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        if d.fail_first.is_some_and(|n| call <= n) {
            return Err(retryable(&format!("mock: call {call} failed on purpose")));
        }
        Ok(())
    }
}

impl Directives {
    fn parse(request: &ChatRequest) -> Self {
        let mut d = Self::default();
        let texts = request.system.iter().chain(std::iter::once(&request.user));
        for text in texts {
            for directive in text
                .split("[[mock:")
                .skip(1)
                .filter_map(|s| s.split_once("]]"))
            {
                d.apply(directive.0.trim());
            }
        }
        d
    }

    fn apply(&mut self, directive: &str) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let number = value.trim().parse::<u32>().ok();
        match name.trim() {
            "fail" => self.fail = true,
            "error" => self.error = true,
            "break" => self.break_stream = true,
            "fail-first" => self.fail_first = number,
            "fatal-first" => self.fatal_first = number,
            "busy-first" => self.busy_first = number,
            "sleep" => self.sleep = number.map(|ms| Duration::from_millis(ms.into())),
            _ => {}
        }
    }
}

fn retryable(message: &str) -> ProviderError {
    ProviderError::Retryable {
        class: ErrorClass::Server,
        message: message.to_owned(),
        retry_after: None,
    }
}

fn fatal(message: &str) -> ProviderError {
    ProviderError::Fatal {
        class: ErrorClass::Rejected,
        message: message.to_owned(),
    }
}

fn text_for(request: &ChatRequest) -> String {
    let mut text = format!(
        "[{}] {}",
        request.model.as_deref().unwrap_or("mock"),
        request.user
    );
    for image in &request.images {
        text.push_str(&format!(
            " [image {}, {} bytes]",
            image.mime,
            image.data.len()
        ));
    }
    text
}

/// Splits text into pieces of a few words, keeping every character.
fn chunks(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .char_indices()
            .filter(|(_, c)| *c == ' ')
            .nth(3)
            .map_or(rest.len(), |(i, _)| i + 1);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::providers::Caller;
    use crate::store::{OrgId, Priority};

    fn request(user: &str) -> ChatRequest {
        ChatRequest {
            model: Some("m".into()),
            system: None,
            user: user.into(),
            images: Vec::new(),
            temperature: None,
            max_tokens: None,
            caller: Caller {
                key: "job-1".into(),
                org: OrgId::from("org"),
                priority: Priority::Normal,
            },
        }
    }

    #[tokio::test]
    async fn the_text_echoes_the_prompt() {
        let mock = MockProvider::new(MockSettings::default());
        let done = mock.complete(&request("hello there")).await.unwrap();
        assert_eq!(done.text, "[m] hello there");
    }

    #[tokio::test]
    async fn fail_first_fails_that_many_calls_then_succeeds() {
        let mock = MockProvider::new(MockSettings::default());
        let req = request("x [[mock:fail-first=2]]");
        assert!(mock.complete(&req).await.unwrap_err().is_retryable());
        assert!(mock.complete(&req).await.unwrap_err().is_retryable());
        assert!(mock.complete(&req).await.is_ok());
    }

    #[tokio::test]
    async fn fail_is_fatal() {
        let mock = MockProvider::new(MockSettings::default());
        let err = mock.complete(&request("[[mock:fail]]")).await.unwrap_err();
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_stream_reassembles_to_the_whole_text() {
        let mock = MockProvider::new(MockSettings::default());
        let req = request("one two three four five six seven eight nine");
        let pieces: Vec<_> = mock.stream(req.clone()).collect().await;
        let joined: String = pieces.into_iter().map(Result::unwrap).collect();
        assert_eq!(joined, text_for(&req));
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_an_error() {
        let mock = MockProvider::new(MockSettings::default());
        let pieces: Vec<_> = mock
            .stream(request("a b c d e f g h i j k l [[mock:break]]"))
            .collect()
            .await;
        assert!(pieces.first().is_some_and(Result::is_ok));
        assert!(pieces.last().is_some_and(Result::is_err));
    }
}
