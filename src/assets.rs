//! The dashboard's static files, embedded in the binary so HitMe runs from any directory.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../static/index.html"),
};

const FILES: [(&str, Asset); 6] = [
    ("/index.html", INDEX),
    (
        "/app.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            bytes: include_bytes!("../static/app.js"),
        },
    ),
    (
        "/charts.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            bytes: include_bytes!("../static/charts.js"),
        },
    ),
    (
        "/dom.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            bytes: include_bytes!("../static/dom.js"),
        },
    ),
    (
        "/style.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            bytes: include_bytes!("../static/style.css"),
        },
    ),
    (
        "/favicon.svg",
        Asset {
            content_type: "image/svg+xml",
            bytes: include_bytes!("../static/favicon.svg"),
        },
    ),
];

/// The asset served at `path`; `/` is the dashboard.
pub fn lookup(path: &str) -> Option<Asset> {
    if path == "/" {
        return Some(INDEX);
    }
    FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, asset)| *asset)
}
