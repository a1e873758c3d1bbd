//! The receiver the webhook tests run: a real HTTP server on 127.0.0.1 that checks each
//! delivery's signature with an HMAC written here from the specification (independently of
//! the server's code), answers the first requests 500 if asked to, and keeps what arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub signed: bool,
    pub body: Value,
    pub answered: u16,
}

/// The receiver's state: the secret to check against, how many requests to answer 500,
/// whether to answer at all, and what arrived.
#[derive(Default)]
struct Inbox {
    secret: String,
    failures_left: usize,
    holding: bool,
    received: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1, port 0.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    /// Starts one that checks signatures with `secret` and answers the first `failures`
    /// requests 500, the rest 200.
    pub async fn start(secret: &str, failures: usize) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox {
            secret: secret.to_owned(),
            failures_left: failures,
            holding: false,
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inbox }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Answers 200 from now on.
    pub fn accept(&self) {
        let mut inbox = self.inbox.lock().unwrap();
        inbox.failures_left = 0;
        inbox.holding = false;
    }

    /// Answers nothing from now on (until [`Receiver::accept`]): requests are recorded
    /// (`answered` 0) and left hanging.
    pub fn hold(&self) {
        self.inbox.lock().unwrap().holding = true;
    }

    /// Waits (at most 20 s) until the receiver has answered 200 to `n` requests; answers them.
    pub async fn wait_accepted(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let accepted: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| r.answered == 200)
                .collect();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} deliveries were not accepted within 20 s: {:?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let answered = {
        let mut inbox = inbox.lock().unwrap();
        let signed = verify(
            &inbox.secret,
            &id,
            &timestamp,
            &body,
            &header("webhook-signature"),
        );
        let answered = if inbox.holding {
            0
        } else if inbox.failures_left > 0 {
            inbox.failures_left -= 1;
            500
        } else {
            200
        };
        inbox.received.push(Received {
            id,
            signed,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            answered,
        });
        answered
    };
    match answered {
        0 => std::future::pending().await,
        code => StatusCode::from_u16(code).unwrap(),
    }
}

/// Standard Webhooks verification, written here from the specification: the key is the
/// base64 after `whsec_`; some `v1,` entry of the header is the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`; the timestamp is within five minutes of now.
fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("whsec_")) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now - t).abs() < 300);
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
    fresh && !id.is_empty() && header.split(' ').any(|s| s == expected)
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}
