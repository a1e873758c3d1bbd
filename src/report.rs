//! Errors as a person reads them: [`Cause`], the underlying error an error of this crate
//! keeps, and [`Chain`], an error with all its causes on one line.
//!
//! An error of this crate keeps the error that caused it, walkable with
//! [`Error::source`], instead of that error's text. Its message usually ends with its direct
//! cause's message (thiserror's `"…: {0}"`), and a [`Cause`] with context shows only the
//! context, leaving the rest to its source. So printing an error is not enough to see why
//! it happened, and printing every source would repeat some messages: [`Chain`] prints
//! each message once. Use it wherever an error becomes text for a person (a job's or a
//! file's error, a log line, the message a failed command prints).
//!
//! This module is a leaf: every layer may use it, the store included.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// An underlying error, with the context it happened in (what was being done, or where).
/// Cloning shares the error.
///
/// Its message is the context when there is one, and `source()` is then the error;
/// without context it stands for the error itself: its message and its sources.
#[derive(Clone, Debug)]
pub struct Cause {
    context: Option<Cow<'static, str>>,
    error: Arc<dyn Error + Send + Sync>,
}

impl Cause {
    /// The error `error`, as it is.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self {
            context: None,
            error: Arc::new(error),
        }
    }

    /// The error `error`, which happened while doing `context` (or at `context`).
    pub fn context(
        context: impl Into<Cow<'static, str>>,
        error: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: Some(context.into()),
            error: Arc::new(error),
        }
    }

    /// A cause that is only a message: what went wrong was found here, not reported by an
    /// error from elsewhere.
    pub fn message(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Message(text.into()))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(context) => f.write_str(context),
            None => self.error.fmt(f),
        }
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self.context {
            Some(_) => Some(&*self.error),
            None => self.error.source(),
        }
    }
}

/// The error of [`Cause::message`].
#[derive(Debug)]
struct Message(Cow<'static, str>);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

/// Shows an error and each of its sources, joined by `": "`. A source whose message the
/// previous one's already ends with (an error whose message is `"…: {source}"`) is not
/// shown again.
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            let text = error.to_string();
            if !previous.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            next = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that shows its source's message after its own, as thiserror's `"…: {0}"`.
    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Outer(#[source] Cause);

    fn io(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_owned())
    }

    #[test]
    fn a_cause_with_context_shows_the_context_and_answers_the_error_as_its_source() {
        let cause = Cause::context("cannot open /x", io("denied"));
        assert_eq!(cause.to_string(), "cannot open /x");
        assert_eq!(cause.source().unwrap().to_string(), "denied");
        assert_eq!(Chain(&cause).to_string(), "cannot open /x: denied");
    }

    #[test]
    fn a_cause_without_context_stands_for_its_error() {
        let inner = Cause::context("migration 3", io("syntax error"));
        let cause = Cause::new(inner);
        assert_eq!(cause.to_string(), "migration 3");
        assert_eq!(cause.source().unwrap().to_string(), "syntax error");
        let message = Cause::message("the writer has stopped");
        assert_eq!(message.to_string(), "the writer has stopped");
        assert!(message.source().is_none());
    }

    #[test]
    fn the_chain_shows_each_message_once() {
        let plain = Outer(Cause::new(io("disk full")));
        assert_eq!(plain.to_string(), "database error: disk full");
        assert_eq!(Chain(&plain).to_string(), "database error: disk full");

        let nested = Outer(Cause::context(
            "migration 3",
            Cause::context("cannot read", io("disk full")),
        ));
        assert_eq!(nested.to_string(), "database error: migration 3");
        assert_eq!(
            Chain(&nested).to_string(),
            "database error: migration 3: cannot read: disk full"
        );
        // Cloning shares the error; the chain is the same.
        let cloned = Outer(nested.0.clone());
        assert_eq!(Chain(&cloned).to_string(), Chain(&nested).to_string());
    }
}
