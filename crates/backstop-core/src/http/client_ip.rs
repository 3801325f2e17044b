//! The client's address behind trusted proxies.

use std::net::IpAddr;

use super::HttpOptions;

impl HttpOptions {
    /// The client's address: the peer's, unless the peer is a trusted proxy, in which
    /// case the forwarding headers are walked from the nearest hop outwards, skipping
    /// trusted proxies; the first untrusted address is the client. Malformed headers
    /// are ignored.
    pub fn client_ip(
        &self,
        peer: Option<IpAddr>,
        x_forwarded_for: Option<&[u8]>,
        forwarded: Option<&[u8]>,
    ) -> Option<IpAddr> {
        self.client_ip_with(peer, || (x_forwarded_for, forwarded))
    }

    /// [`client_ip`](Self::client_ip), reading the `X-Forwarded-For` and `Forwarded`
    /// values only when the peer is a trusted proxy: with none configured (the
    /// default), a request costs no header lookup for them.
    pub fn client_ip_with<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarding: impl FnOnce() -> (Option<&'a [u8]>, Option<&'a [u8]>),
    ) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let (x_forwarded_for, forwarded) = forwarding();
        let hops: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
            (Some(fwd), _) => parse_forwarded(fwd),
            (None, Some(xff)) => parse_x_forwarded_for(xff),
            (None, None) => Vec::new(),
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.is_trusted(hop) {
                break;
            }
        }
        Some(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

fn parse_x_forwarded_for(value: &[u8]) -> Vec<IpAddr> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|hop| parse_ip(hop.trim()))
        .collect()
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`.
fn parse_forwarded(value: &[u8]) -> Vec<IpAddr> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_ip(value.trim().trim_matches('"')))
                    .flatten()
            })
        })
        .collect()
}

/// An address, with or without a port (`192.0.2.1:80`, `[2001:db8::1]:4711`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':')
        .and_then(|(host, _)| host.parse().ok())
}
