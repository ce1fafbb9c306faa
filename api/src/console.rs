//! The web console's listener (`--console-listen`, SPEC §21): the console's
//! files, embedded in `otcd` at build time, and the same gRPC services as
//! gRPC-Web, so the browser calls exactly what `otcctl` calls, with the same
//! bearer tokens and role checks.
//!
//! Static files are routed around tonic-web's layer (which answers 400 to any
//! plain HTTP/1.1 request that is not gRPC-Web). Every response carries a
//! strict Content-Security-Policy (no inline script, no other origin),
//! `X-Content-Type-Options: nosniff`, no referrer, no framing, and
//! same-origin opener and resource policies.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tonic::service::Routes;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// Every file under `api/console/`, by its URL path.
pub use embedded::ASSETS;

/// Messages, enums and methods of `otc.proto`, for the console's codec.
pub const SCHEMA: &str = include_str!(concat!(env!("OUT_DIR"), "/console_schema.json"));

/// What the console's pages may load and run: scripts and styles from this
/// origin only (no inline script or style), images from here or from blobs
/// the page made (evidence), calls to this origin only, no framing; and the
/// browser refuses any string-to-HTML sink (Trusted Types) outright.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

/// The console's routes: the embedded files and, for anything else, the gRPC
/// services as gRPC-Web, behind the same [`crate::gate`] as on the gRPC
/// listener.
pub fn router(grpc: Routes, gate: crate::gate::GateLayer, limits: Limits) -> Router {
    let mut files = Router::new().route("/", axum::routing::get(file));
    for (path, _) in ASSETS {
        files = files.route(path, axum::routing::get(file));
    }
    let limits = limits.json();
    files = files
        .route("/schema.json", axum::routing::get(schema))
        .route(
            "/limits.json",
            axum::routing::get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    limits,
                )
                    .into_response()
            }),
        )
        .fallback(not_found);
    grpc.into_axum_router()
        .layer(gate)
        .layer(tonic_web::GrpcWebLayer::new())
        .fallback_service(files)
        .layer(axum::middleware::map_response(secure_headers))
}

/// The server's settings the console's pages follow (SPEC §18), served as
/// `/limits.json`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--page-size-max`: the console asks for no more per page.
    pub page_size_max: u32,
    /// `--text-chars-max`: the longest note the server takes, the note
    /// inputs' `maxlength`.
    pub text_chars_max: usize,
}

impl Limits {
    fn json(self) -> String {
        format!(
            "{{\"page_size_max\":{},\"text_chars_max\":{}}}",
            self.page_size_max, self.text_chars_max
        )
    }
}

/// The content type of a console file, from its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The embedded file at `path` (`/` is `/index.html`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

async fn file(uri: Uri) -> Response {
    let path = if uri.path() == "/" {
        "/index.html"
    } else {
        uri.path()
    };
    match asset(path) {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                // The files change with the binary: always revalidate.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => not_found().await,
    }
}

async fn schema() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCHEMA,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A page that opened the console (a link in a chat message, say) keeps no
    // handle to its window; another origin may not load its files.
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_and_its_scripts_are_embedded() {
        let index = asset("/").expect("index.html is embedded");
        let text = String::from_utf8_lossy(index);
        assert!(text.contains("/js/main.js"), "index.html loads main.js");
        assert!(asset("/js/main.js").is_some());
        assert!(asset("/app.css").is_some());
        assert!(asset("/nope.js").is_none());
    }

    #[test]
    fn no_console_file_uses_inline_script_or_html_injection() {
        for (path, bytes) in ASSETS {
            let text = String::from_utf8_lossy(bytes);
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!text.contains(bad), "{path} uses {bad}");
            }
            if path.ends_with(".html") {
                let lower = text.to_lowercase();
                assert!(!lower.contains("<script>"), "{path} has an inline script");
                assert!(!lower.contains(" style="), "{path} has an inline style");
                assert!(!lower.contains("<style"), "{path} has a style block");
                assert!(!lower.contains(" onclick="), "{path} has an inline handler");
            }
        }
    }

    #[test]
    fn the_schema_names_every_method_and_the_timestamp() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
        let method = &v["methods"]["/otc.v1.SupportService/StreamAppealQueue"];
        assert_eq!(method["server_streaming"], true);
        assert_eq!(method["input"], "otc.v1.StreamEventsRequest");
        let ts = v["messages"]["google.protobuf.Timestamp"]
            .as_array()
            .expect("Timestamp is in the schema");
        assert_eq!(ts[0]["name"], "seconds");
        assert_eq!(ts[0]["type"], "int64");
        let trade = v["messages"]["otc.v1.Trade"].as_array().expect("Trade");
        let timeline = trade
            .iter()
            .find(|f| f["name"] == "timeline")
            .expect("timeline field");
        assert_eq!(timeline["repeated"], true);
        assert_eq!(timeline["ref"], "otc.v1.TimelineEntry");
        assert_eq!(v["enums"]["otc.v1.TradeState"]["3"], "TRADE_STATE_APPEALED");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/js/a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
