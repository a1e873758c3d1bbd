//! The OpenAI chat wire format: the request as parsed (content as a string or as parts) and
//! the answers built from an [`Answer`] (which [`super::text`] generates): a whole `chat.completion` or
//! the `chat.completion.chunk`s of a stream.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::MockError;

/// `POST /v1/chat/completions` (and Writer's `POST /v1/chat`), the fields the mock reads.
/// Others (`temperature`, `tools`, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The model asked for; the answer names it back.
    pub model: Option<String>,
    /// The conversation; at least one message.
    pub messages: Vec<Message>,
    /// The output limit.
    pub max_tokens: Option<u32>,
    /// The newer name of the output limit, used when `max_tokens` is absent.
    pub max_completion_tokens: Option<u32>,
    /// Whether to answer as server-sent events.
    pub stream: Option<bool>,
    /// Stream options: `include_usage`.
    pub stream_options: Option<StreamOptions>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// Text, or parts; absent for some assistant messages.
    pub content: Option<Content>,
}

/// A message's content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<Part>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// A piece of text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or data URL.
    ImageUrl {
        /// Where the image is.
        image_url: ImageUrl,
    },
    /// A part the mock does not model (audio, files): accepted and ignored.
    #[serde(other)]
    Other,
}

/// The `image_url` object of an image part.
#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    /// The URL or data URL.
    pub url: String,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    /// Whether to send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: bool,
}

impl ChatRequest {
    /// Parses a body already read as JSON.
    pub fn parse(body: &Value) -> Result<Self, MockError> {
        if body.get("messages").is_none_or(Value::is_null) {
            return Err(MockError::BadRequest(
                "'messages' is a required property".into(),
            ));
        }
        let request = Self::deserialize(body)
            .map_err(|e| MockError::BadRequest(format!("invalid chat request: {e}")))?;
        if request.messages.is_empty() {
            return Err(MockError::BadRequest("'messages' must not be empty".into()));
        }
        Ok(request)
    }

    /// Whether to answer as a stream.
    pub fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a stream ends with a usage chunk.
    pub fn includes_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The output limit the client set, if any.
    pub fn limit(&self) -> Option<u32> {
        self.max_tokens.or(self.max_completion_tokens)
    }

    /// The number of image parts in all messages.
    pub fn images(&self) -> usize {
        self.parts()
            .filter(|p| matches!(p, Part::ImageUrl { .. }))
            .count()
    }

    /// Every part of every message whose content is a list of parts.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.messages.iter().flat_map(Message::parts)
    }
}

impl Message {
    /// The message's parts, when its content is a list of parts.
    pub fn parts(&self) -> &[Part] {
        match &self.content {
            Some(Content::Parts(parts)) => parts,
            _ => &[],
        }
    }

    /// The message's text: the string, or its text parts joined by spaces.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                texts.join(" ")
            }
        }
    }
}

/// What every answer of one request shares: id, creation time, model.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model named back.
    pub model: String,
}

impl Envelope {
    /// The whole answer, `chat.completion`.
    pub fn completion(&self, answer: &Answer) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }],
            "usage": usage(answer),
        })
    }

    /// One `chat.completion.chunk` with this delta and finish reason.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    }

    /// The last chunk of a stream that asked for usage: no choices, the usage.
    pub fn usage_chunk(&self, answer: &Answer) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage(answer),
        })
    }
}

fn usage(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_may_be_a_string_or_parts_with_images() {
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                {"type": "input_audio", "input_audio": {}},
                {"type": "text", "text": "this?"},
            ]},
        ]});
        let request = ChatRequest::parse(&body).unwrap();
        assert_eq!(request.messages[0].text(), "be brief");
        assert_eq!(request.messages[1].text(), "what is this?");
        assert_eq!(request.images(), 1);
    }

    #[test]
    fn a_body_without_messages_is_a_bad_request() {
        for body in [json!({"model": "m"}), json!({"messages": []}), json!([1])] {
            assert!(matches!(
                ChatRequest::parse(&body),
                Err(MockError::BadRequest(_))
            ));
        }
    }
}

/// A generated answer and its usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The text.
    pub text: String,
    /// Words in all text parts, plus [`TOKENS_PER_IMAGE`](super::text::TOKENS_PER_IMAGE) per image.
    pub prompt_tokens: u64,
    /// Words in `text`.
    pub completion_tokens: u64,
    /// `length` when the client's limit cut the answer short, else `stop`.
    pub finish_reason: &'static str,
}
