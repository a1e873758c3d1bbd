//! Who is logged in: sessions opened with an API key, the cookie that names them, and the
//! checks every form passes (its CSRF token, and the request's origin).
//!
//! A session is a random 256-bit id, sent as an `HttpOnly; SameSite=Strict` cookie scoped to
//! `/ui/`, and kept in the store (only the SHA-256 of its id, with its organisation, its CSRF
//! token and its expiry), so every node sharing a database knows it: behind a load balancer a
//! person stays logged in whichever node answers, and a restart logs nobody out. Each node
//! keeps the sessions it has read for a few seconds ([`CACHED_FOR`]), so page views and the
//! overview's refresh do not read the database each time; an unsafe request (POST) always
//! reads it, so a session closed on one node changes nothing anywhere from then on, and opens
//! no page on another node after at most [`CACHED_FOR`].
//!
//! Every unsafe request (POST) must come from our own pages: its `Origin` (or, failing that,
//! its `Referer`) must name the host it was sent to, a browser's `Sec-Fetch-Site` must not
//! say `cross-site`, and, once logged in, it must carry the session's CSRF token (a form's
//! hidden `csrf` field or the `X-CSRF-Token` header of a script's request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{UiError, UiState};
use crate::api::{ApiError, ErrorCode};
use crate::store::{OrgId, Store, StoredSession, after, now_micros};

/// The cookie's name.
const COOKIE: &str = "scriptorium_session";
/// How long a session lasts after its log-in.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a node trusts a session it read from the store before reading it again (for
/// page views; unsafe requests always read it).
pub(crate) const CACHED_FOR: Duration = Duration::from_secs(5);
/// Sessions a node keeps in its cache at most; past this the cache starts afresh.
const MAX_CACHED: usize = 10_000;

/// The sessions, in the store, and the ones this node read lately.
pub(crate) struct Sessions {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, (Session, Instant)>>,
}

/// One logged-in browser.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The organisation of the key it logged in with: everything shown is scoped to it.
    pub(crate) org: OrgId,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    /// When it ends (microseconds since the epoch).
    expires_at: i64,
}

impl Sessions {
    /// The sessions kept in `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::default(),
        }
    }

    /// Opens a session for `org`; answers its id (the cookie's value).
    pub(crate) async fn open(&self, org: OrgId) -> Result<String, UiError> {
        let (id, csrf) = (random_token()?, random_token()?);
        let session = Session {
            org,
            csrf,
            expires_at: after(now_micros(), LIFETIME),
        };
        let stored = StoredSession {
            id_hash: hash(&id),
            org: session.org.clone(),
            csrf: session.csrf.clone(),
            expires_at: session.expires_at,
        };
        self.store.dashboard().open_session(stored).await?;
        self.remember(&id, session);
        Ok(id)
    }

    /// The live session with this id: from this node's cache when `fresh` is false and it
    /// was read lately, else from the store.
    async fn get(&self, id: &str, fresh: bool) -> Result<Option<Session>, UiError> {
        if !fresh {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((session, read)) = cache.get(id)
                && read.elapsed() < CACHED_FOR
                && session.expires_at > now_micros()
            {
                return Ok(Some(session.clone()));
            }
        }
        let stored = self.store.dashboard().session(hash(id)).await?;
        let session = stored.map(|s| Session {
            org: s.org,
            csrf: s.csrf,
            expires_at: s.expires_at,
        });
        match &session {
            Some(session) => self.remember(id, session.clone()),
            None => self.forget(id),
        }
        Ok(session)
    }

    /// Ends the session with this id, if there is one, on every node.
    pub(crate) async fn close(&self, id: &str) -> Result<(), UiError> {
        self.forget(id);
        self.store.dashboard().close_session(hash(id)).await?;
        Ok(())
    }

    fn remember(&self, id: &str, session: Session) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, read)| read.elapsed() < CACHED_FOR);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(id.to_owned(), (session, Instant::now()));
    }

    fn forget(&self, id: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(id);
    }
}

/// What the store keeps of a session's id.
fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a session");
        ApiError::new(ErrorCode::Internal, "internal server error")
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `Set-Cookie` value that gives the browser this session.
pub(crate) fn cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub(crate) fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id the request's cookie names, if any.
pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// A request made with a live session: the extractor every page but the log-in takes. A
/// request without one is sent to the log-in page; an unsafe request from another site is
/// refused before anything reads the session.
pub(crate) struct LoggedIn {
    /// The session's id.
    pub(crate) id: String,
    /// The session.
    pub(crate) session: Session,
}

impl LoggedIn {
    /// The session's organisation, as the API's handlers take it.
    pub(crate) fn principal(&self) -> crate::api::extract::Principal {
        crate::api::extract::Principal {
            org: self.session.org.clone(),
        }
    }

    /// Refuses a form or script request that does not carry this session's CSRF token.
    pub(crate) fn check(&self, token: &str) -> Result<(), UiError> {
        if same_bytes(token.as_bytes(), self.session.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(UiError::Forbidden(
                "this form has expired or did not come from this dashboard; reload the page",
            ))
        }
    }

    /// Refuses a script request whose `X-CSRF-Token` header is not this session's token.
    pub(crate) fn check_header(&self, headers: &HeaderMap) -> Result<(), UiError> {
        let token = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.check(token)
    }
}

/// Compares in time that does not depend on where the first difference is.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<UiState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, Response> {
        same_origin(&parts.method, &parts.headers).map_err(IntoResponse::into_response)?;
        let login = || Redirect::to("/ui/login").into_response();
        let Some(id) = cookie_value(&parts.headers) else {
            return Err(login());
        };
        let safe = parts.method == Method::GET || parts.method == Method::HEAD;
        match state.sessions.get(id, !safe).await {
            Ok(Some(session)) => Ok(LoggedIn {
                id: id.to_owned(),
                session,
            }),
            Ok(None) => Err(login()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Refuses an unsafe request that a browser says comes from another site: a `Sec-Fetch-Site`
/// of `cross-site`, or an `Origin` (else a `Referer`) whose host is not the `Host` the
/// request was sent to. Safe methods (GET, HEAD) pass: they change nothing.
pub(crate) fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), UiError> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = UiError::Forbidden("cross-site requests are refused");
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err(refused);
    }
    let Some(host) = text(header::HOST) else {
        return Err(refused);
    };
    let source = text(header::ORIGIN)
        .filter(|o| *o != "null")
        .or_else(|| text(header::REFERER));
    match source {
        // Neither header: not a browser's cross-site form (browsers send Origin on every
        // POST); the CSRF token still has to match.
        None => Ok(()),
        Some(url) if origin_host(url) == Some(host) => Ok(()),
        Some(_) => Err(refused),
    }
}

/// The `host[:port]` of an absolute URL.
fn origin_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post_from(origin: Option<&str>, host: &str) -> Result<(), UiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        same_origin(&Method::POST, &headers)
    }

    #[test]
    fn a_post_from_another_origin_is_refused_and_one_from_ours_passes() {
        assert!(post_from(Some("http://127.0.0.1:8080"), "127.0.0.1:8080").is_ok());
        assert!(post_from(Some("https://evil.example"), "127.0.0.1:8080").is_err());
        assert!(post_from(Some("http://127.0.0.1:9999"), "127.0.0.1:8080").is_err());
        assert!(post_from(None, "127.0.0.1:8080").is_ok());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; scriptorium_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&headers), Some("abc"));
    }
}
