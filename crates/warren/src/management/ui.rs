//! The management web UI: one HTML page, its script and its stylesheet, compiled into the binary so the UI needs no
//! files on disk, no build step and no network. The page is a client of the `/api` routes like any other: it logs in
//! with HTTP basic auth and draws what the API answers (docs/management.md, "Web UI").

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::ApiState;

/// The page: the login form and one section per tab.
const INDEX_HTML: &str = include_str!("ui/index.html");
/// Everything the page does: login, tabs, forms, polling and the canvas charts.
const APP_JS: &str = include_str!("ui/app.js");
/// The page's look.
const STYLE_CSS: &str = include_str!("ui/style.css");

/// The UI's paths: `/` (and `/index.html`, as RabbitMQ serves it) and the two assets under RabbitMQ's `/js/` and
/// `/css/` prefixes. Everything else falls through to the API's 404.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/js/app.js", get(script))
        .route("/css/style.css", get(style))
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// An embedded asset. `no-cache` makes a browser revalidate after an upgrade of the broker instead of running an old
/// script against a new API; `nosniff` and the frame ban keep the page from being reinterpreted or framed by
/// another site (it holds the user's credentials in its session storage).
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}
