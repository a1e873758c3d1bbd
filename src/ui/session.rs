//! Who is logged in: sessions opened with an API key, the cookie that names them, and the
//! checks every form passes (its CSRF token, and the request's origin).
//!
//! A session is a random 256-bit id, sent as an `HttpOnly; SameSite=Strict` cookie scoped to
//! `/ui/`, and kept in this process's memory with its organisation and its CSRF token. Memory,
//! not the store: a session is worth only a log-in, so losing them on restart costs a
//! person one more log-in, and a page view never writes to the database. The price is that a
//! cluster of nodes behind one address needs sticky sessions (or a person logs in once per
//! node); docs/dashboard.md says so.
//!
//! Every unsafe request (POST) must come from our own pages: its `Origin` (or, failing that,
//! its `Referer`) must name the host it was sent to, a browser's `Sec-Fetch-Site` must not
//! say `cross-site`, and, once logged in, it must carry the session's CSRF token (a form's
//! hidden `csrf` field or the `X-CSRF-Token` header of a script's request).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{UiError, UiState};
use crate::store::OrgId;

/// The cookie's name.
const COOKIE: &str = "scriptorium_session";
/// How long a session lasts after its log-in.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; past this, expired ones are dropped at the next log-in, and if
/// none has expired the oldest goes.
const MAX_SESSIONS: usize = 10_000;

/// The open sessions of this process.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// One logged-in browser.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The organisation of the key it logged in with: everything shown is scoped to it.
    pub(crate) org: OrgId,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    expires: Instant,
}

impl Sessions {
    /// Opens a session for `org`; answers its id (the cookie's value).
    pub(crate) fn open(&self, org: OrgId) -> Result<String, getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            org,
            csrf: random_token()?,
            expires: Instant::now() + LIFETIME,
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= MAX_SESSIONS {
            let now = Instant::now();
            open.retain(|_, s| s.expires > now);
            if open.len() >= MAX_SESSIONS
                && let Some(oldest) = open
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(id, _)| id.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session with this id.
    fn get(&self, id: &str) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session with this id, if there is one.
    pub(crate) fn close(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
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
        let found = cookie_value(&parts.headers)
            .and_then(|id| state.sessions.get(id).map(|s| (id.to_owned(), s)));
        match found {
            Some((id, session)) => Ok(LoggedIn { id, session }),
            None => Err(Redirect::to("/ui/login").into_response()),
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

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::default();
        let id = sessions.open(OrgId::from("acme")).unwrap();
        assert!(sessions.get(&id).is_some());
        sessions.open.lock().unwrap().get_mut(&id).unwrap().expires =
            Instant::now() - Duration::from_secs(1);
        assert!(sessions.get(&id).is_none());
        sessions.close(&id);
    }
}
