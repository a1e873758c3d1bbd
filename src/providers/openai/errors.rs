//! How the failures of an OpenAI-compatible server become [`ProviderError`]s: transport
//! failures, unreadable answers, and error statuses with their bodies and `Retry-After`. Used
//! by the client and by the stream reader alike; it uses neither.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::providers::{ErrorClass, ProviderError};
use crate::report::Chain;

/// Characters of an error body kept in a job's error.
const MAX_ERROR_CHARS: usize = 500;

/// A transport failure: connection errors and timeouts are always worth another attempt.
pub(super) fn transport(e: reqwest::Error) -> ProviderError {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Connect
    };
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "connection failed"
    };
    ProviderError::Retryable {
        class,
        message: format!("model server {what}: {}", Chain(&e)),
        retry_after: None,
    }
}

/// An answer (or a piece of a stream) that cannot be read: worth another attempt.
pub(super) fn malformed(message: &str) -> ProviderError {
    ProviderError::Retryable {
        class: ErrorClass::Malformed,
        message: format!("unreadable answer from the model server: {message}"),
        retry_after: None,
    }
}

/// Sorts an error status: 408, 429 and 5xx are retryable, with the wait the server asked
/// for; 429 says we send too much, 503 and 529 that the server is overloaded (both are
/// backpressure, not failure); other statuses are fatal and carry the backend's own message.
pub(super) async fn status_error(response: Response) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let message = format!(
        "model server answered {}: {}",
        status.as_u16(),
        error_message(&text)
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::Retryable {
            class: ErrorClass::RateLimited,
            message,
            retry_after,
        },
        StatusCode::SERVICE_UNAVAILABLE => ProviderError::Retryable {
            class: ErrorClass::Overloaded,
            message,
            retry_after,
        },
        s if s.as_u16() == 529 => ProviderError::Retryable {
            class: ErrorClass::Overloaded,
            message,
            retry_after,
        },
        StatusCode::REQUEST_TIMEOUT => ProviderError::Retryable {
            class: ErrorClass::Server,
            message,
            retry_after,
        },
        s if s.is_server_error() => ProviderError::Retryable {
            class: ErrorClass::Server,
            message,
            retry_after,
        },
        _ => ProviderError::Fatal {
            class: ErrorClass::Rejected,
            message,
        },
    }
}

/// The human part of an error body: `error.message`, `error`, `message` or `detail` of a
/// JSON body, else the text itself, shortened.
fn error_message(text: &str) -> String {
    let from_json = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        [
            &v["error"]["message"],
            &v["error"],
            &v["message"],
            &v["detail"],
        ]
        .into_iter()
        .find_map(|field| field.as_str().map(str::to_owned))
    });
    let message = from_json.unwrap_or_else(|| text.trim().to_owned());
    let message = if message.is_empty() {
        "(no body)".to_owned()
    } else {
        message
    };
    message.chars().take(MAX_ERROR_CHARS).collect()
}

/// `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(seconds.max(0.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_json_or_text() {
        assert_eq!(
            error_message(r#"{"error": {"message": "bad model"}}"#),
            "bad model"
        );
        assert_eq!(error_message(r#"{"error": "nope"}"#), "nope");
        assert_eq!(error_message(r#"{"detail": "missing"}"#), "missing");
        assert_eq!(
            error_message("<html>502 Bad Gateway</html>"),
            "<html>502 Bad Gateway</html>"
        );
        assert_eq!(error_message(""), "(no body)");
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut dated = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        dated.insert("retry-after", later.parse().unwrap());
        let wait = retry_after(&dated).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }
}
