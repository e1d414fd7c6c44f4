//! The dashboard's static files and the API's description, embedded in the binary so HitMe
//! runs from any directory.

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asset {
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `(path, content type, bytes)` of every file under `static/`.
macro_rules! embedded {
    ($(($path:literal, $content_type:expr, $file:literal)),* $(,)?) => {
        [$(($path, Asset { content_type: $content_type, bytes: include_bytes!(concat!("../static/", $file)) })),*]
    };
}

const FILES: [(&str, Asset); 7] = embedded![
    ("/hitme.js", JS, "hitme.js"),
    ("/index.html", HTML, "index.html"),
    ("/app.js", JS, "app.js"),
    ("/charts.js", JS, "charts.js"),
    ("/dom.js", JS, "dom.js"),
    ("/style.css", CSS, "style.css"),
    ("/favicon.svg", SVG, "favicon.svg"),
];

/// HitMe's OpenAPI description, served at `/openapi.json` (written by scripts/openapi-json
/// from docs/openapi.yaml; scripts/test-openapi checks the server against it).
const OPENAPI: Asset = Asset {
    content_type: "application/json",
    bytes: include_bytes!("../docs/openapi.json"),
};

/// The asset served at `path`; `/` is the dashboard.
pub(crate) fn lookup(path: &str) -> Option<Asset> {
    if path == "/openapi.json" {
        return Some(OPENAPI);
    }
    let path = if path == "/" { "/index.html" } else { path };
    FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, asset)| *asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_and_its_files_are_served() {
        assert_eq!(
            lookup("/").unwrap().bytes,
            lookup("/index.html").unwrap().bytes
        );
        assert_eq!(lookup("/app.js").unwrap().content_type, JS);
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/missing.js").is_none());
    }
}
