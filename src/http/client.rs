//! The client's address: the socket's peer, or, when the peer is a trusted proxy
//! (`--trusted-proxies`), the right-most address of `X-Forwarded-For` (or, without it, of
//! `Forwarded: for=`) that is not a trusted proxy. The header of any other peer is ignored:
//! anyone can send one.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tiny_http::Request;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `127.0.0.1/32,10.0.0.0/8` (a bare address is a range of one).
    pub(crate) fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|range| !range.is_empty())
            .map(|range| {
                range
                    .parse::<IpNet>()
                    .or_else(|_| range.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("{range:?} is not an address range; use CIDRs such as 127.0.0.1/32,10.0.0.0/8")
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The address of the client that sent `request`: `None` only over a Unix socket.
    pub(crate) fn client_of(&self, request: &Request) -> Option<IpAddr> {
        let peer = request.remote_addr()?.ip().to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded = forwarded_for(request);
        let mut nearest = peer;
        for hop in forwarded.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => nearest = *ip,
                Some(ip) => return Some(*ip),
                // Not an address (a proxy's "unknown", or garbage): what is left of it could
                // be anything, so the nearest trusted hop stands for the client.
                None => return Some(nearest),
            }
        }
        Some(nearest)
    }
}

/// The addresses a request was forwarded for, oldest first: `X-Forwarded-For`'s, or else
/// `Forwarded`'s `for=` (each header line in order). `None` for an entry that is no address.
fn forwarded_for(request: &Request) -> Vec<Option<IpAddr>> {
    let lines = |name: &'static str| {
        request
            .headers()
            .iter()
            .filter(move |h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let mut hops: Vec<Option<IpAddr>> = lines("X-Forwarded-For")
        .flat_map(|line| line.split(','))
        .map(|entry| address(entry.trim()))
        .collect();
    if hops.is_empty() {
        hops = lines("Forwarded")
            .flat_map(|line| line.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| address(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    hops
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`.
fn address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .ok_or(())
                .and_then(|ip| ip.parse::<IpAddr>().map_err(drop))
        })
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::{Header, TestRequest};

    fn from(peer: &str, headers: &[(&str, &str)]) -> Request {
        let mut request = TestRequest::new().with_remote_addr(peer.parse().unwrap());
        for (name, value) in headers {
            request =
                request.with_header(Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap());
        }
        request.into()
    }

    fn client(proxies: &str, peer: &str, headers: &[(&str, &str)]) -> String {
        TrustedProxies::parse(proxies)
            .unwrap()
            .client_of(&from(peer, headers))
            .unwrap()
            .to_string()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let xff = [("X-Forwarded-For", "9.9.9.9, 203.0.113.7")];
        // No trusted proxies, or an untrusted peer: the peer.
        assert_eq!(client("", "127.0.0.1:5000", &xff), "127.0.0.1");
        assert_eq!(client("10.0.0.0/8", "127.0.0.1:5000", &xff), "127.0.0.1");
        // From a trusted proxy: the right-most address it did not add itself.
        assert_eq!(
            client("127.0.0.1/32", "127.0.0.1:5000", &xff),
            "203.0.113.7"
        );
        // Chains of trusted proxies are walked through.
        assert_eq!(
            client(
                "127.0.0.1/32,10.0.0.0/8",
                "127.0.0.1:5000",
                &[("X-Forwarded-For", "203.0.113.7, 10.1.2.3")]
            ),
            "203.0.113.7"
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            client(
                "127.0.0.1,10.0.0.0/8",
                "127.0.0.1:5000",
                &[("X-Forwarded-For", "10.0.0.9")]
            ),
            "10.0.0.9"
        );
        // Garbage stops the walk at the nearest trusted hop.
        assert_eq!(
            client(
                "127.0.0.1/32",
                "127.0.0.1:5000",
                &[("X-Forwarded-For", "203.0.113.7, nonsense")]
            ),
            "127.0.0.1"
        );
        // No header from a trusted proxy: the proxy.
        assert_eq!(client("127.0.0.1/32", "127.0.0.1:5000", &[]), "127.0.0.1");
    }

    #[test]
    fn forwarded_for_is_read_when_there_is_no_x_forwarded_for() {
        let forwarded = [(
            "Forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#,
        )];
        assert_eq!(
            client("127.0.0.1/32", "127.0.0.1:1", &forwarded),
            "2001:db8:cafe::17"
        );
        assert_eq!(
            client("127.0.0.1/32,2001:db8::/32", "127.0.0.1:1", &forwarded),
            "192.0.2.60"
        );
    }

    #[test]
    fn bad_ranges_are_refused_with_an_example() {
        let err = TrustedProxies::parse("10.0.0.0/33").unwrap_err();
        assert!(err.contains("CIDRs such as"), "{err}");
        assert!(TrustedProxies::parse("::1, 10.0.0.0/8").is_ok());
    }
}
