//! The server-rendered pages (askama templates in `crates/server/templates`, no JavaScript)
//! and what every page shares: the chrome around the content (navigation, banners, footer),
//! times for people ([`When`]), the SVG charts.

pub mod cdrs;
pub mod chart;
pub mod chrome;
pub mod pages;
pub mod sensors;
pub mod users;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub use self::chrome::{Chrome, When};

/// Renders a template; a template error (a bug, not input) becomes a 500 with a log line.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}
