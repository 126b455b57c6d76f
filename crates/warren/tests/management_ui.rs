//! The management web UI's page and assets through a real socket: each path answers 200 with its content type, the
//! page loads the script and stylesheet it names, and the UI's routes leave the API's 404 for unknown paths alone.
//! The UI's behaviour in a real browser is tested by interop-tests/webui.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use warren::server::RunningServer;

fn base(server: &RunningServer) -> String {
    let addr = server.management_addr.expect("management API enabled");
    format!("http://{addr}")
}

/// GETs `path` without credentials (the UI's assets need none: the page logs in itself).
async fn get(server: &RunningServer, path: &str) -> (StatusCode, String, String) {
    let response = reqwest::get(format!("{}{path}", base(server)))
        .await
        .expect("request sent");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.text().await.expect("body read");
    (status, content_type, body)
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_content_types() {
    let server = common::start_server().await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/js/app.js", "text/javascript; charset=utf-8"),
        ("/css/style.css", "text/css; charset=utf-8"),
    ] {
        let (status, got_type, body) = get(&server, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(got_type, content_type, "{path}");
        assert!(!body.is_empty(), "{path} is empty");
    }
}

#[tokio::test]
async fn the_page_references_the_script_and_stylesheet_it_is_served_with() {
    let server = common::start_server().await;
    let (_, _, html) = get(&server, "/").await;
    assert!(
        html.contains(r#"<script src="js/app.js"></script>"#),
        "{html}"
    );
    assert!(html.contains(r#"href="css/style.css""#), "{html}");
    for id in [
        "login-form",
        "login-error",
        "queue-form",
        "publish-form",
        "get-form",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "no #{id}");
    }
    let (_, _, script) = get(&server, "/js/app.js").await;
    assert!(
        script.contains("\"/whoami\""),
        "the script logs in through /api/whoami"
    );
}

#[tokio::test]
async fn unknown_api_paths_are_still_rabbitmqs_404_and_the_api_still_needs_credentials() {
    let server = common::start_server().await;
    let (status, content_type, body) = get(&server, "/api/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(
        body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let (status, _, _) = get(&server, "/api/overview").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&server, "/js/missing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
