//! The host of a canonical URL: what names its site, for `--sites` and for a site's
//! visitors (`--visits`).

/// The host of a canonical URL (`scheme://host[:port]/...`, lower case, no user info).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.strip_prefix('[') {
        // An IPv6 literal: up to its closing bracket.
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_canonical_urls() {
        assert_eq!(host_of("http://a.example/x"), "a.example");
        assert_eq!(host_of("http://a.example:81"), "a.example");
        assert_eq!(host_of("http://[::1]:80/x"), "::1");
        assert_eq!(host_of("https://a.example?q#f"), "a.example");
    }
}
