//! The deterministic answer: `echo: ` and the last user message's text, and for each of its
//! image parts `[image <mime> <size> bytes sha256:<16 hex>]` (so a test sees what reached
//! the model), then words drawn from a fixed list with a generator seeded by the run's
//! seed and a hash of the messages. The same seed and messages give the same text, streamed
//! or not, on every machine.
//!
//! A token is a whitespace-separated word. The answer stops at `min(max_tokens,
//! --output-tokens)` tokens, but the echo is never cut: usage then reports its real length.

use super::wire::{Answer, ChatRequest, Content, Part};

/// What an image part counts for in `prompt_tokens`.
pub const TOKENS_PER_IMAGE: u64 = 85;

const WORDS: [&str; 48] = [
    "amber", "anchor", "basin", "beacon", "birch", "candle", "canyon", "cedar", "cinder", "copper",
    "delta", "ember", "falcon", "fern", "glacier", "granite", "harbor", "hazel", "island", "ivory",
    "juniper", "kestrel", "lantern", "meadow", "mesa", "nimbus", "oak", "orchid", "pebble",
    "prairie", "quartz", "quill", "raven", "ridge", "saffron", "sparrow", "summit", "thistle",
    "tundra", "umber", "valley", "willow", "wren", "yarrow", "zephyr", "lichen", "marble",
    "scroll",
];

/// What the echo says of an image: for a data URL its MIME type, decoded size and the first
/// 16 hex digits of the SHA-256 of its bytes, so a test can tell the exact image arrived;
/// otherwise the URL.
fn describe_image(url: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let decoded = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .and_then(|(mime, data)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()?;
            Some((mime, bytes))
        });
    match decoded {
        Some((mime, bytes)) => {
            let digest = Sha256::digest(&bytes);
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{mime} {} bytes sha256:{hex}", bytes.len())
        }
        None => url.to_owned(),
    }
}

impl Answer {
    /// The answer to `request` in a run seeded with `seed` that generates `output_tokens`.
    pub fn generate(request: &ChatRequest, seed: u64, output_tokens: u32) -> Self {
        let last_user = request.messages.iter().rev().find(|m| m.role == "user");
        let mut text = format!("echo: {}", last_user.map(|m| m.text()).unwrap_or_default());
        for part in last_user.into_iter().flat_map(|m| m.parts()) {
            if let Part::ImageUrl { image_url } = part {
                text.push_str(&format!(" [image {}]", describe_image(&image_url.url)));
            }
        }
        let echo_tokens = count(&text);
        let natural = u64::from(output_tokens).max(echo_tokens);
        let budget = request
            .limit()
            .map_or(natural, |m| natural.min(u64::from(m)));
        let mut rng = fastrand::Rng::with_seed(seed ^ hash(request));
        for _ in echo_tokens..budget {
            if !text.ends_with(char::is_whitespace) {
                text.push(' ');
            }
            text.push_str(WORDS[rng.usize(..WORDS.len())]);
        }
        Self {
            completion_tokens: echo_tokens.max(budget),
            prompt_tokens: prompt_tokens(request),
            finish_reason: if budget < natural { "length" } else { "stop" },
            text,
        }
    }
}

/// The text cut into one piece per token, each word with the whitespace before it; the
/// pieces concatenate to the text.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut cuts = vec![0];
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && in_word {
            cuts.push(i);
        }
        in_word = !c.is_whitespace();
    }
    if cuts.len() > 1 && !in_word {
        cuts.pop(); // trailing whitespace stays with the last word
    }
    cuts.push(text.len());
    cuts.windows(2)
        .map(|w| &text[w[0]..w[1]])
        .filter(|p| !p.is_empty())
        .collect()
}

fn count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn prompt_tokens(request: &ChatRequest) -> u64 {
    let texts: u64 = request.messages.iter().map(|m| count(&m.text())).sum();
    texts + TOKENS_PER_IMAGE * request.images() as u64
}

/// FNV-1a over roles, texts and image URLs: stable across Rust versions and machines,
/// which `DefaultHasher` does not promise.
fn hash(request: &ChatRequest) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for message in &request.messages {
        feed(message.role.as_bytes());
        match &message.content {
            None => {}
            Some(Content::Text(text)) => feed(text.as_bytes()),
            Some(Content::Parts(parts)) => parts.iter().for_each(|part| match part {
                Part::Text { text } => feed(text.as_bytes()),
                Part::ImageUrl { image_url } => feed(image_url.url.as_bytes()),
                Part::Other => {}
            }),
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(body: serde_json::Value) -> ChatRequest {
        ChatRequest::parse(&body).unwrap()
    }

    #[test]
    fn the_answer_echoes_the_last_user_message_then_fills_the_budget() {
        let r = request(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second question"},
        ]}));
        let a = Answer::generate(&r, 7, 10);
        assert!(a.text.starts_with("echo: second question "), "{}", a.text);
        assert_eq!(a.completion_tokens, 10);
        assert_eq!(count(&a.text), 10);
        assert_eq!(a.prompt_tokens, 4);
        assert_eq!(a.finish_reason, "stop");
        assert_eq!(a, Answer::generate(&r, 7, 10));
        assert_ne!(a.text, Answer::generate(&r, 8, 10).text);
    }

    #[test]
    fn max_tokens_cuts_the_words_but_never_the_echo() {
        let r = request(json!({"max_tokens": 2, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "one two three"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ]},
        ]}));
        let a = Answer::generate(&r, 0, 32);
        assert_eq!(a.text, "echo: one two three [image https://x/y.png]");
        assert_eq!(a.completion_tokens, 6);
        assert_eq!(a.prompt_tokens, 3 + TOKENS_PER_IMAGE);
        assert_eq!(a.finish_reason, "length");
    }

    #[test]
    fn the_echo_describes_each_data_url_image_by_type_size_and_digest() {
        // "hello" in base64; its SHA-256 starts 2cf24dba5fb0a30e.
        let r = request(json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
            ]},
        ]}));
        let a = Answer::generate(&r, 0, 0);
        assert_eq!(
            a.text,
            "echo: look [image image/png 5 bytes sha256:2cf24dba5fb0a30e]"
        );
    }

    #[test]
    fn pieces_hold_one_word_each_and_rebuild_the_text() {
        let text = "echo:  a\nmultiline   text ";
        let pieces = pieces(text);
        assert_eq!(pieces, ["echo:", "  a", "\nmultiline", "   text "]);
        assert_eq!(pieces.concat(), text);
        assert_eq!(super::pieces(" lead"), [" lead"]);
    }
}
