//! `--sites`: the hosts whose URLs HitMe counts. Any other host's hit is refused with a 403,
//! so that nobody can fill Redis with junk URLs.

use super::error::ApiError;
use crate::host::host_of;

/// The hosts counted: exact names, and `*.name` for any subdomain of a name (not the name
/// itself). Empty: every host, as without the flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sites {
    exact: Vec<String>,
    /// Suffixes `.name` of `*.name` patterns.
    subdomains_of: Vec<String>,
}

impl Sites {
    /// Parses `example.com,*.example.org`.
    pub(crate) fn parse(list: &str) -> Result<Sites, String> {
        let mut sites = Sites::default();
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let pattern = pattern.to_ascii_lowercase();
            let (name, wildcard) = match pattern.strip_prefix("*.") {
                Some(name) => (name.to_string(), true),
                None => (pattern.clone(), false),
            };
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !name.starts_with('.')
                && !name.ends_with('.');
            if !valid {
                return Err(format!(
                    "{pattern:?} is not a host name; list names such as example.com, or *.example.org for its subdomains"
                ));
            }
            match wildcard {
                true => sites.subdomains_of.push(format!(".{name}")),
                false => sites.exact.push(name),
            }
        }
        Ok(sites)
    }

    /// Whether every host is counted (no `--sites`).
    pub(crate) fn all(&self) -> bool {
        self.exact.is_empty() && self.subdomains_of.is_empty()
    }

    /// Whether `host` (lower case, as canonical URLs have it) is counted.
    pub(crate) fn allows(&self, host: &str) -> bool {
        self.all()
            || self.exact.iter().any(|name| name == host)
            || self
                .subdomains_of
                .iter()
                .any(|suffix| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
    }

    /// Checks the host of a canonical `url`: a 403 naming the flag when it is not counted.
    pub(crate) fn check(&self, url: &str) -> Result<(), ApiError> {
        if self.all() {
            return Ok(());
        }
        let host = host_of(url);
        match self.allows(host) {
            true => Ok(()),
            false => Err(ApiError::forbidden(format!(
                "HitMe counts only the hosts in --sites, and {} is not one of them",
                super::error::truncate(host, 200)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_subdomain_wildcards() {
        let sites = Sites::parse("example.com, *.Example.org").unwrap();
        assert!(sites.allows("example.com"));
        assert!(!sites.allows("www.example.com"));
        assert!(sites.allows("a.example.org"));
        assert!(sites.allows("b.a.example.org"));
        assert!(!sites.allows("example.org"));
        assert!(!sites.allows("badexample.org"));
        assert!(sites.check("https://a.example.org:8443/x?y").is_ok());
        let refused = sites.check("http://junk.example/1").unwrap_err();
        assert_eq!(refused.status, 403);
        assert_eq!(
            refused.message,
            "HitMe counts only the hosts in --sites, and junk.example is not one of them"
        );
        assert!(Sites::parse("")
            .unwrap()
            .check("http://any.example/")
            .is_ok());
    }

    #[test]
    fn what_is_not_a_host_name_is_refused() {
        for bad in ["*.", "http://a.example", "a b", ".example.com", "*"] {
            assert!(Sites::parse(bad).is_err(), "{bad}");
        }
    }
}
