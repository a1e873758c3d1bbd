//! `mock-llm` (crates/mock-llm), the OpenAI-compatible mock model server: started in process on
//! port 0 (through `serve`, or through `MockLlm::router` where a test reads `stats()`
//! directly) and driven over HTTP with reqwest.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use mock_llm::{MockLlm, MockLlmArgs, OverCapacity, Rate, serve};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running mock and a client for it; stops the mock when dropped.
struct Mock {
    base: String,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
}

/// Starts `serve` with these flags on port 0.
async fn start(args: MockLlmArgs) -> Mock {
    start_serving(args).await.0
}

/// Starts `serve` and also answers its task.
async fn start_serving(args: MockLlmArgs) -> (Mock, JoinHandle<std::io::Result<()>>) {
    let (listener, mock, stopped) = Mock::bind().await;
    let task = tokio::spawn(serve(args, listener, async move {
        let _ = stopped.await;
    }));
    (mock, task)
}

/// Serves an existing mock's router on port 0, so the test can read `stats()` directly.
async fn start_router(llm: &Arc<MockLlm>) -> Mock {
    let (listener, mock, stopped) = Mock::bind().await;
    let served = axum::serve(listener, llm.router()).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    tokio::spawn(async move { served.await });
    mock
}

impl Mock {
    async fn bind() -> (TcpListener, Self, oneshot::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let client = Client::new();
        let mock = Self {
            base,
            client,
            stop: Some(stop),
        };
        (listener, mock, stopped)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        let request = self.client.post(self.url(path)).json(&body);
        request.send().await.unwrap()
    }

    async fn chat(&self, body: Value) -> Response {
        self.post("/v1/chat/completions", body).await
    }

    /// A chat answer that must be JSON.
    async fn answer(&self, body: Value) -> Value {
        self.chat(body).await.json().await.unwrap()
    }

    async fn stats(&self) -> Value {
        let response = self.client.get(self.url("/stats")).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Polls `/stats` until `in_flight` is `n` (at most five seconds); the last stats.
    async fn in_flight(&self, n: u64) -> Value {
        let mut stats = self.stats().await;
        for _ in 0..100 {
            if stats["in_flight"] == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            stats = self.stats().await;
        }
        stats
    }
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": text}]})
}

fn streaming(mut body: Value, include_usage: bool) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": include_usage });
    body
}

fn with(set: impl FnOnce(&mut MockLlmArgs)) -> MockLlmArgs {
    let mut args = MockLlmArgs::default();
    set(&mut args);
    args
}

fn text(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"].as_str().unwrap()
}

/// The `data:` payloads of an event stream, in order.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data:"))
        .map(|data| data.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn a_completion_has_the_openai_shape_and_usage() {
    let mock = start(MockLlmArgs::default()).await;
    let response = mock.chat(ask("hello there")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(text(&body).starts_with("echo: hello there "), "{body}");
    assert_eq!(text(&body).split_whitespace().count(), 32);
    let usage = json!({"prompt_tokens": 2, "completion_tokens": 32, "total_tokens": 34});
    assert_eq!(body["usage"], usage);
}

#[tokio::test]
async fn the_answer_echoes_the_last_user_messages_text_parts() {
    let mock = start(MockLlmArgs::default()).await;
    let image = json!({"url": "data:image/png;base64,iVBORw0KGgo="});
    let body = mock
        .answer(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "an older question"},
            {"role": "user", "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": image},
                {"type": "text", "text": "this picture"},
            ]},
        ]}))
        .await;
    assert!(
        text(&body).starts_with("echo: describe this picture "),
        "{body}"
    );
    assert_eq!(body["model"], "mock-llm", "no model asked: the default");
    assert_eq!(body["usage"]["prompt_tokens"], 2 + 3 + 3 + 85);
    assert_eq!(mock.stats().await["images"], 1);
}

#[tokio::test]
async fn max_tokens_caps_completion_tokens_and_finishes_with_length() {
    let mock = start(MockLlmArgs::default()).await;
    let mut body = ask("cap me");
    body["max_tokens"] = json!(5);
    let capped = mock.answer(body).await;
    assert_eq!(capped["usage"]["completion_tokens"], 5);
    assert_eq!(capped["choices"][0]["finish_reason"], "length");
    assert_eq!(text(&capped).split_whitespace().count(), 5);

    let mut body = ask("a long question that will not be cut");
    body["max_tokens"] = json!(2);
    let echo = mock.answer(body).await;
    assert_eq!(text(&echo), "echo: a long question that will not be cut");
    assert_eq!(
        echo["usage"]["completion_tokens"], 9,
        "the echo's real length"
    );
}

#[tokio::test]
async fn a_stream_reassembles_to_the_non_stream_text_and_ends_with_usage_and_done() {
    let mock = start(with(|a| a.seed = 42)).await;
    let whole = mock.answer(ask("stream me")).await;
    let response = mock.chat(streaming(ask("stream me"), true)).await;
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = events(&response.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text(&whole));
    let [.., last, usage] = chunks.as_slice() else {
        panic!("too few chunks: {chunks:?}");
    };
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
}

#[tokio::test]
async fn a_stream_on_writers_path_without_include_usage_has_no_usage_chunk() {
    let mock = start(MockLlmArgs::default()).await;
    let mut body = streaming(ask("x"), false);
    body["max_tokens"] = json!(3);
    let events = events(&mock.post("/v1/chat", body).await.text().await.unwrap());
    // The role with the first token, two tokens, the finish, [DONE].
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(events.iter().all(|e| !e.contains("usage")));
    assert!(events[3].contains(r#""finish_reason":"length""#));
}

#[tokio::test]
async fn writers_chat_path_answers_like_the_openai_path() {
    let mock = start(MockLlmArgs::default()).await;
    let writer: Value = mock
        .post("/v1/chat", ask("same"))
        .await
        .json()
        .await
        .unwrap();
    let openai = mock.answer(ask("same")).await;
    assert_eq!(writer["choices"], openai["choices"]);
    assert_eq!(mock.stats().await["requests"], 2);
}

#[tokio::test]
async fn models_lists_the_configured_model() {
    let mock = start(with(|a| a.model = "palmyra-x5".into())).await;
    let response = mock.client.get(mock.url("/v1/models")).send().await;
    let body: Value = response.unwrap().json().await.unwrap();
    let model = json!({"id": "palmyra-x5", "object": "model", "owned_by": "scriptorium"});
    assert_eq!(body, json!({"object": "list", "data": [model]}));
}

#[tokio::test]
async fn an_api_key_is_required_when_one_is_set() {
    let mock = start(with(|a| a.api_key = Some("sk-test".into()))).await;
    let missing = mock.chat(ask("hi")).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "invalid_api_key");
    for (key, status) in [("sk-nope", 401), ("sk-test", 200)] {
        let request = mock.client.post(mock.url("/v1/chat/completions"));
        let response = request.bearer_auth(key).json(&ask("hi")).send().await;
        assert_eq!(response.unwrap().status().as_u16(), status, "{key}");
    }
}

#[tokio::test]
async fn a_body_without_messages_and_an_unknown_path_get_openai_errors() {
    let mock = start(MockLlmArgs::default()).await;
    let response = mock.chat(json!({"model": "m"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("messages"), "{message}");
    let response = mock.post("/v1/embeddings", json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Invalid URL (POST /v1/embeddings)"
    );
}

#[tokio::test]
async fn injected_500s_and_503s_answer_openai_errors_and_are_counted() {
    for (status, args) in [
        (500, with(|a| a.fail_500 = Rate::ALWAYS)),
        (503, with(|a| a.fail_503 = Rate::ALWAYS)),
    ] {
        let mock = start(args).await;
        let response = mock.chat(ask("fail")).await;
        assert_eq!(response.status().as_u16(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "server_error");
        let stats = mock.stats().await;
        assert_eq!(stats["faults"][status.to_string()], 1);
        assert_eq!(stats["completed"], 0);
    }
}

#[tokio::test]
async fn an_injected_429_asks_for_retry_after_in_seconds_and_milliseconds() {
    let mock = start(with(|a| {
        a.fail_429 = Rate::ALWAYS;
        a.retry_after = Duration::from_millis(1500);
    }))
    .await;
    let response = mock.chat(ask("slow down")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn a_malformed_answer_is_a_200_that_is_not_json() {
    let mock = start(with(|a| a.fail_malformed = Rate::ALWAYS)).await;
    let response = mock.chat(ask("x")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    assert_eq!(mock.stats().await["faults"]["malformed"], 1);
}

#[tokio::test]
async fn a_dropped_connection_is_a_request_error_without_a_status() {
    let mock = start(with(|a| a.fail_drop = Rate::ALWAYS)).await;
    let request = mock.client.post(mock.url("/v1/chat/completions"));
    let error = request.json(&ask("x")).send().await.unwrap_err();
    assert!(error.status().is_none());
    // hyper reports an incomplete message: the connection closed before any answer.
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert_eq!(mock.stats().await["faults"]["drop"], 1);
}

#[tokio::test]
async fn a_hung_request_times_the_client_out_and_is_counted_out_when_it_leaves() {
    let mock = start(with(|a| a.fail_hang = Rate::ALWAYS)).await;
    let request = mock.client.post(mock.url("/v1/chat/completions"));
    let request = request.timeout(Duration::from_millis(300)).json(&ask("x"));
    let error = request.send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let stats = mock.in_flight(0).await;
    assert_eq!(
        stats["in_flight"], 0,
        "the hung request was not counted out"
    );
    assert_eq!(stats["peak_in_flight"], 1);
    assert_eq!(stats["faults"]["hang"], 1);
    assert_eq!(stats["abandoned"], 1, "{stats}");
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_counted_out_and_not_completed() {
    let mock = start(with(|a| a.per_token = Duration::from_millis(200))).await;
    let mut response = mock.chat(streaming(ask("stream slowly"), false)).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains(r#""role":"assistant""#));
    assert_eq!(mock.stats().await["in_flight"], 1);
    drop(response);
    let stats = mock.in_flight(0).await;
    assert_eq!(stats["in_flight"], 0, "the stream was not counted out");
    assert_eq!(stats["completed"], 0);
    assert_eq!(stats["abandoned"], 1, "{stats}");
}

#[tokio::test]
async fn stopping_the_server_releases_a_hung_request() {
    let (mut mock, server) = start_serving(with(|a| a.fail_hang = Rate::ALWAYS)).await;
    let request = mock.client.post(mock.url("/v1/chat/completions"));
    let hung = tokio::spawn(request.json(&ask("x")).send());
    assert_eq!(mock.in_flight(1).await["in_flight"], 1);
    mock.stop.take().unwrap().send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(served.expect("serve did not stop").unwrap().is_ok());
    let answer = tokio::time::timeout(Duration::from_secs(10), hung).await;
    assert!(
        answer.unwrap().unwrap().is_err(),
        "a hung request has no answer"
    );
}

#[tokio::test]
async fn the_same_seed_draws_the_same_faults() {
    let statuses = |seed| async move {
        let mock = start(with(|a| {
            a.seed = seed;
            a.fail_500 = Rate::new(0.5).unwrap();
        }))
        .await;
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(mock.chat(ask("x")).await.status().as_u16());
        }
        statuses
    };
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await);
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
}

/// Fires `n` requests at once and returns their statuses.
async fn burst(mock: &Mock, n: usize) -> Vec<StatusCode> {
    let sends = (0..n).map(|i| mock.chat(ask(&format!("request {i}"))));
    join_all(sends).await.iter().map(Response::status).collect()
}

#[tokio::test]
async fn over_capacity_with_reject_answers_429_and_never_serves_more_than_capacity() {
    let llm = MockLlm::new(with(|a| {
        a.capacity = 2;
        a.over_capacity = OverCapacity::Reject;
        a.ttft = Duration::from_millis(800);
    }));
    let statuses = burst(&start_router(&llm).await, 6).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let (ok, rejected) = (count(StatusCode::OK), count(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(ok + rejected, 6, "{statuses:?}");
    assert!(ok >= 2 && rejected >= 1, "{statuses:?}");
    let stats = llm.stats();
    assert!(stats.peak_in_flight <= 2, "{stats:?}");
    assert_eq!(stats.faults["over_capacity"], rejected as u64);
    assert_eq!(stats.completed, ok as u64);
}

#[tokio::test]
async fn over_capacity_with_queue_serves_everyone_but_never_more_than_capacity_at_once() {
    let llm = MockLlm::new(with(|a| {
        a.capacity = 2;
        a.ttft = Duration::from_millis(100);
    }));
    let statuses = burst(&start_router(&llm).await, 8).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let stats = llm.stats();
    assert!((1..=2).contains(&stats.peak_in_flight), "{stats:?}");
    assert_eq!((stats.completed, stats.in_flight), (8, 0));
}

#[tokio::test]
async fn past_the_queue_limit_a_request_is_answered_503_at_once() {
    let llm = MockLlm::new(with(|a| {
        a.capacity = 1;
        a.queue_limit = 2;
        a.ttft = Duration::from_millis(800);
    }));
    let statuses = burst(&start_router(&llm).await, 6).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let (ok, full) = (
        count(StatusCode::OK),
        count(StatusCode::SERVICE_UNAVAILABLE),
    );
    assert_eq!(ok + full, 6, "{statuses:?}");
    assert!(ok >= 3 && full >= 1, "{statuses:?}");
    let stats = llm.stats();
    assert!(
        stats.peak_queued <= 2 && stats.peak_in_flight == 1,
        "{stats:?}"
    );
    assert_eq!(stats.faults["queue_full"], full as u64);
    assert_eq!((stats.completed, stats.abandoned), (ok as u64, 0));
}

#[tokio::test]
async fn a_client_that_leaves_while_queued_is_counted_abandoned() {
    let mock = start(with(|a| {
        a.capacity = 1;
        a.ttft = Duration::from_millis(1500);
    }))
    .await;
    let first = tokio::spawn(
        mock.client
            .post(mock.url("/v1/chat/completions"))
            .json(&ask("first"))
            .send(),
    );
    assert_eq!(mock.in_flight(1).await["in_flight"], 1);
    let second = mock.client.post(mock.url("/v1/chat/completions"));
    let error = second
        .timeout(Duration::from_millis(300))
        .json(&ask("second"))
        .send()
        .await;
    assert!(error.unwrap_err().is_timeout());
    let mut stats = mock.stats().await;
    for _ in 0..100 {
        if stats["abandoned"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = mock.stats().await;
    }
    assert_eq!(
        (stats["abandoned"].clone(), stats["queued"].clone()),
        (json!(1), json!(0)),
        "{stats}"
    );
    assert_eq!(stats["peak_queued"], 1);
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn stats_count_requests_and_tokens_and_a_reset_zeroes_them() {
    let mock = start(with(|a| a.output_tokens = 10)).await;
    mock.chat(ask("one two")).await;
    mock.chat(json!({"messages": "not a list"})).await;
    let stats = mock.stats().await;
    let counts = [
        "requests",
        "completed",
        "prompt_tokens",
        "completion_tokens",
    ];
    let counted = |stats: &Value| counts.map(|name| stats[name].as_u64().unwrap());
    assert_eq!(counted(&stats), [2, 1, 2, 10]);
    assert_eq!(stats["peak_in_flight"], 1);
    let recent = json!([ask("one two"), {"messages": "not a list"}]);
    assert_eq!(stats["recent"], recent, "the bodies as sent, newest last");
    let reset: Value = mock
        .post("/stats/reset", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reset, mock.stats().await);
    assert_eq!(counted(&reset), [0; 4]);
    assert_eq!(reset["recent"], json!([]));
    assert_eq!(reset["faults"]["over_capacity"], 0);
}

#[tokio::test]
async fn a_request_right_after_a_429_is_counted_early() {
    // When a request is early, and when it is on time, is the ledger's unit test (with the
    // time given); here the count reaches the stats over HTTP.
    let mock = start(with(|a| {
        a.fail_429 = Rate::ALWAYS;
        a.retry_after = Duration::from_secs(1);
    }))
    .await;
    let first = mock.chat(ask("x")).await.status();
    assert_eq!(first, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_millis(50)).await;
    mock.chat(ask("too soon")).await;
    let stats = mock.stats().await;
    assert_eq!(stats["early_after_429"], 1);
    assert_eq!(stats["faults"]["429"], 2);
}
