//! The explorer web page, served at `GET /explorer/` from files embedded in the binary.
//!
//! The files are the committed bundle `explorer/dist/` (made by `scripts/build-explorer` from
//! `explorer/src/` and `clients/js/src/`; no Node.js is needed to build or run the relay). Each
//! answer carries its content type, an `ETag` (a hash of the file; `If-None-Match` gets a 304),
//! `Cache-Control: no-cache` (revalidate: a new relay version serves new files at the same
//! URLs), `X-Content-Type-Options: nosniff` and a Content Security Policy that allows only the
//! page's own scripts, styles and connections (no inline script).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../explorer/dist/", $name)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("explorer.js", "text/javascript; charset=utf-8"),
    asset!("explorer.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The page's policy: its own files only; connections to this relay (HTTP and WebSocket).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&dephy_log::hash::leaf_hash(a.body)[..12]))).collect()
    })
}

/// `GET /explorer` → redirect to `/explorer/` (relative URLs in the page resolve under it).
pub async fn redirect() -> Response {
    Redirect::permanent("/explorer/").into_response()
}

/// `GET /explorer/`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /explorer/{file}`: one of the page's files, 404 for anything else.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such explorer file; the page is at /explorer/ (files: {})\n", names()),
        )
            .into_response();
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex etag is a valid header"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

fn names() -> String {
    ASSETS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_tagged_distinctly() {
        let tags = etags();
        for (a, t) in ASSETS.iter().zip(tags) {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert_eq!(t.len(), 26, "{t}");
        }
        let mut unique = tags.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ASSETS.len());
    }

    #[test]
    fn if_none_match_gets_304_and_unknown_files_404() {
        let mut h = HeaderMap::new();
        assert_eq!(serve("index.html", &h).status(), StatusCode::OK);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etags()[0]).unwrap());
        assert_eq!(serve("index.html", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
