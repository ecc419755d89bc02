//! The dashboard: the files of `web/`, embedded in the binary at build time, served at `/`.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::AppState;

#[derive(RustEmbed)]
#[folder = "../../web/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
struct Assets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| serve("index.html".to_string())))
        .route("/docs", get(|| serve("docs.html".to_string())))
        .route("/{*path}", get(asset))
}

async fn asset(Path(path): Path<String>) -> Response {
    serve(path).await
}

async fn serve(path: String) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let mime = mime_guess::from_path(&path).first_or_octet_stream();
            ([(header::CONTENT_TYPE, mime.as_ref().to_string())], file.data.into_owned()).into_response()
        }
        None => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"detail": format!("{path} not found")})))
            .into_response(),
    }
}
