//! Log in with an API key (checked as the API checks a bearer key), log out.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::Pages;
use super::session::{LoggedIn, cookie, expired_cookie, same_origin};
use super::{UiError, UiState};

/// `GET /ui/login`: the form.
pub(crate) async fn form() -> Result<Response, UiError> {
    Ok(Pages::public("Log in", "login.html", context! { error => false })?.into_response())
}

/// The log-in form's fields.
#[derive(Deserialize)]
pub(crate) struct LogIn {
    key: String,
}

/// `POST /ui/login`: a known, unrevoked key opens a session for its organisation and goes to
/// the overview; any other is the form again, with a 401.
pub(crate) async fn log_in(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<LogIn>,
) -> Result<Response, UiError> {
    // No session yet, so no token: the origin check is what stops a cross-site log-in.
    same_origin(&Method::POST, &headers)?;
    let Some(org) = state.api.keys.authenticate(form.key.trim()).await? else {
        let page = Pages::public("Log in", "login.html", context! { error => true })?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let id = state.sessions.open(org).await?;
    Ok(([(header::SET_COOKIE, cookie(&id))], Redirect::to("/ui/")).into_response())
}

/// The log-out form's field.
#[derive(Deserialize)]
pub(crate) struct LogOut {
    csrf: String,
}

/// `POST /ui/logout`: ends the session (on every node); its cookie no longer opens any page.
pub(crate) async fn log_out(
    State(state): State<UiState>,
    user: LoggedIn,
    Form(form): Form<LogOut>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    state.sessions.close(&user.id).await?;
    Ok((
        [(header::SET_COOKIE, expired_cookie())],
        Redirect::to("/ui/login"),
    )
        .into_response())
}
