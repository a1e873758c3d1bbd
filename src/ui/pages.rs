//! Rendering: the templates, compiled in and parsed once, and the layout every page shares
//! (its `<nav>`, the log-out form with the session's CSRF token).
//!
//! Templates are `.html`, so minijinja escapes every value it prints: text from models,
//! users and files can never become markup. A page is rendered in two steps (its body, then
//! the layout around it) rather than by template inheritance, which the minijinja features
//! this crate builds with leave out.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::Html;
use minijinja::{Environment, Value, context};

use super::UiError;
use super::session::LoggedIn;
use crate::api::{ApiError, ErrorCode};

/// The sections of the `<nav>`: path and label.
const SECTIONS: &[(&str, &str)] = &[
    ("/ui/", "Overview"),
    ("/ui/applications", "Applications"),
    ("/ui/jobs", "Jobs"),
    ("/ui/batches", "Batches"),
];

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("when", when);
    env.add_filter("from_now", from_now);
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("live.html", include_str!("templates/live.html")),
        (
            "applications.html",
            include_str!("templates/applications.html"),
        ),
        (
            "application.html",
            include_str!("templates/application.html"),
        ),
        ("editor.html", include_str!("templates/editor.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("batches.html", include_str!("templates/batches.html")),
        ("batch.html", include_str!("templates/batch.html")),
        ("batch_live.html", include_str!("templates/batch_live.html")),
        ("batch_new.html", include_str!("templates/batch_new.html")),
    ] {
        // The templates are part of the binary; one that does not parse is a build mistake
        // that the first test of any page reports.
        if let Err(e) = env.add_template(name, source) {
            panic!("template {name}: {e:#}");
        }
    }
    env
});

/// An RFC 3339 timestamp as a person reads it: `2026-12-03 11:07:53`.
fn when(value: Option<String>) -> String {
    match value {
        Some(t) if t.len() >= 19 => t[..19].replacen('T', " ", 1),
        Some(t) => t,
        None => "—".to_owned(),
    }
}

/// How far ahead an RFC 3339 timestamp is, as a person says it: `in about 3 min`.
fn from_now(value: Option<String>) -> String {
    let Some(text) = value else {
        return "—".to_owned();
    };
    let Ok(then) = humantime::parse_rfc3339_weak(&text) else {
        return when(Some(text));
    };
    let seconds = then
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |d| d.as_secs());
    match seconds {
        0..5 => "any moment now".to_owned(),
        5..90 => format!("in about {seconds} s"),
        90..5400 => format!("in about {} min", (seconds + 30) / 60),
        _ => format!("in about {} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// The renderer of the dashboard's pages.
pub(crate) struct Pages;

impl Pages {
    /// A page of `section` (its path in the nav): `template` rendered with `ctx` (plus the
    /// session's `csrf` token), inside the layout.
    pub(crate) fn page(
        user: &LoggedIn,
        section: &str,
        title: &str,
        template: &str,
        ctx: Value,
    ) -> Result<Html<String>, UiError> {
        let csrf = user.session.csrf.as_str();
        let body = render(template, context! { csrf, ..ctx })?;
        layout(title, section, Some(csrf), body).map(Html)
    }

    /// A part of a page, for the script that refreshes it: `template` with `ctx` alone.
    pub(crate) fn fragment(template: &str, ctx: Value) -> Result<Html<String>, UiError> {
        render(template, ctx).map(Html)
    }

    /// A page for someone not logged in (the log-in form), with `ctx`.
    pub(crate) fn public(title: &str, template: &str, ctx: Value) -> Result<Html<String>, UiError> {
        let body = render(template, ctx)?;
        layout(title, "", None, body).map(Html)
    }

    /// The page of an error: its status and what went wrong.
    pub(crate) fn error(status: StatusCode, messages: &[String]) -> Html<String> {
        let title = status.canonical_reason().unwrap_or("Error");
        let body = render(
            "error.html",
            context! { status => status.as_u16(), title, messages },
        );
        match body.and_then(|body| layout(title, "", None, body)) {
            Ok(html) => Html(html),
            // Only a broken template gets here; say what happened without markup.
            Err(_) => Html(format!("{} {title}", status.as_u16())),
        }
    }
}

fn layout(title: &str, section: &str, csrf: Option<&str>, body: String) -> Result<String, UiError> {
    let nav: Vec<Value> = SECTIONS
        .iter()
        .map(|(path, label)| context! { path, label, current => *path == section })
        .collect();
    render(
        "layout.html",
        context! { title, nav, csrf, body => Value::from_safe_string(body) },
    )
}

fn render(template: &str, ctx: Value) -> Result<String, UiError> {
    TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| {
            tracing::error!(template, error = %format!("{e:#}"), "a dashboard template failed");
            UiError::Api(ApiError::new(ErrorCode::Internal, "internal server error"))
        })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::from_now;

    fn ahead(seconds: u64) -> Option<String> {
        let at = SystemTime::now() + Duration::from_secs(seconds);
        Some(humantime::format_rfc3339_micros(at).to_string())
    }

    #[test]
    fn an_eta_reads_as_the_time_left_in_words() {
        assert_eq!(from_now(ahead(185)), "in about 3 min");
        assert_eq!(
            from_now(ahead(2 * 3600 + 10 * 60 + 20)),
            "in about 2 h 10 min"
        );
        assert_eq!(
            from_now(Some("2020-01-01T00:00:00.000000Z".to_owned())),
            "any moment now"
        );
        assert_eq!(from_now(None), "—");
    }
}
