//! `POST /v1/chat/completions` and Writer's `POST /v1/chat`: one handler, in this order:
//! count the arrival (and keep the body), check the key, parse, take a slot, draw a fault,
//! then answer whole or as a stream after the configured latency.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use super::MockLlm;
use super::admission::admit;
use super::clock::sleep;
use super::error::MockError;
use super::stream;
use super::text::pieces;
use super::wire::{Answer, ChatRequest, Envelope};

/// The chat route.
pub async fn complete(
    State(mock): State<Arc<MockLlm>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (received, request) = match read(body) {
        Ok(json) => {
            let request = ChatRequest::parse(&json);
            (json, request)
        }
        Err((received, e)) => (received, Err(e)),
    };
    mock.ledger().arrive(received, Instant::now());
    let answered = async {
        mock.authorize(&headers)?;
        answer(&mock, request?).await
    };
    answered.await.unwrap_or_else(IntoResponse::into_response)
}

/// The body as JSON; or the error and what to keep in `recent` (the text, if any).
fn read(body: Result<Bytes, BytesRejection>) -> Result<Value, (Value, MockError)> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        let message = rejection.body_text();
        (Value::Null, MockError::Unreadable { status, message })
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let error = MockError::BadRequest(format!("the body is not valid JSON: {e}"));
        (Value::String(text), error)
    })
}

async fn answer(mock: &Arc<MockLlm>, request: ChatRequest) -> Result<Response, MockError> {
    mock.ledger().images(request.images());
    if mock.config.no_images && request.images() > 0 {
        return Err(MockError::BadRequest(format!(
            "model {} does not accept image_url content",
            mock.config.model
        )));
    }
    let mut slot = admit(mock).await?;
    if let Some(fault) = mock.draw_fault() {
        let response = fault.respond(mock, request.streams()).await;
        slot.answered();
        return Ok(response);
    }
    let answer = Answer::generate(&request, mock.config.seed, mock.config.output_tokens);
    let envelope = Envelope {
        id: format!("chatcmpl-mock{:012}", mock.next_id()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: request
            .model
            .clone()
            .unwrap_or_else(|| mock.config.model.clone()),
    };
    if request.streams() {
        return Ok(stream::respond(
            mock,
            slot,
            envelope,
            answer,
            request.includes_usage(),
        ));
    }
    let gaps = u32::try_from(pieces(&answer.text).len().saturating_sub(1)).unwrap_or(u32::MAX);
    sleep(mock.config.ttft + mock.config.per_token * gaps).await;
    slot.complete(&answer);
    Ok(Json(envelope.completion(&answer)).into_response())
}
