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
        Some(self.walk(peer, x_forwarded_for, forwarded).0)
    }

    /// The client's address and the scheme it used: `https` when the connection is
    /// TLS, or when a trusted proxy says so (`Forwarded: proto=` of the client's hop,
    /// else `X-Forwarded-Proto`). `header` is asked for the forwarding headers only
    /// when the peer is a trusted proxy.
    pub fn client_and_scheme<'a>(
        &self,
        peer: Option<IpAddr>,
        tls: bool,
        header: impl Fn(&'static str) -> Option<&'a [u8]>,
    ) -> (Option<IpAddr>, &'static str) {
        let scheme = |https: bool| if https { "https" } else { "http" };
        let Some(peer) = peer.filter(|peer| self.is_trusted(*peer)) else {
            return (peer, scheme(tls));
        };
        let (client, proto) = self.walk(peer, header("x-forwarded-for"), header("forwarded"));
        let proto = proto.or_else(|| {
            let value = std::str::from_utf8(header("x-forwarded-proto")?).ok()?;
            // The proxy nearest the client names its scheme first.
            Some(value.split(',').next()?.trim())
        });
        let https = tls || proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        (Some(client), scheme(https))
    }

    /// Walks the forwarding headers from the nearest hop outwards, past trusted
    /// proxies: the client, and the scheme its hop named (`Forwarded` only).
    fn walk<'a>(
        &self,
        peer: IpAddr,
        x_forwarded_for: Option<&'a [u8]>,
        forwarded: Option<&'a [u8]>,
    ) -> (IpAddr, Option<&'a str>) {
        let hops: Vec<(IpAddr, Option<&str>)> = match (forwarded, x_forwarded_for) {
            (Some(fwd), _) => parse_forwarded(fwd),
            (None, Some(xff)) => parse_x_forwarded_for(xff),
            (None, None) => Vec::new(),
        };
        let mut client = (peer, None);
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.is_trusted(hop.0) {
                break;
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

fn parse_x_forwarded_for(value: &[u8]) -> Vec<(IpAddr, Option<&str>)> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|hop| Some((parse_ip(hop.trim())?, None)))
        .collect()
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`. Each
/// element's address, with the scheme it names, if any.
fn parse_forwarded(value: &[u8]) -> Vec<(IpAddr, Option<&str>)> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|element| {
            let mut client = None;
            let mut proto = None;
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim() {
                    key if key.eq_ignore_ascii_case("for") => client = parse_ip(value),
                    key if key.eq_ignore_ascii_case("proto") => proto = Some(value),
                    _ => {}
                }
            }
            Some((client?, proto))
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
