//! Where a webhook may point: an absolute http(s) URL whose host is not, and does not resolve
//! to, an internal address (unless the operator allows private ones).
//!
//! The check runs twice: at the batch's create (a clear 400), and at every delivery inside
//! the HTTP client's resolver ([`CheckedResolver`]), so the connection goes to exactly the
//! addresses that were checked: a name that resolved to a public address at create and to
//! 127.0.0.1 later (DNS rebinding) is refused then. Literal IP hosts never reach a resolver;
//! [`refused_literal`] checks those before a request is sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest webhook URL accepted.
const MAX_URL: usize = 2048;

/// Whether `ip` is loopback, private, link-local, unique-local, multicast, unspecified,
/// shared (CGNAT), reserved, documentation or benchmarking address space, or an IPv6 form
/// that embeds such an IPv4 address: anything but the public internet.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || a >= 240 // reserved
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to any IPv4 address
        || (s[0] == 0x2002 && internal_v4(embedded_v4(s[1], s[2]))) // 6to4
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && internal_v4(embedded_v4(s[6], s[7]))) // NAT64
        || (s[..6] == [0; 6]) // IPv4-compatible (deprecated) and the like
}

/// Parses and checks a webhook URL at create: absolute, http or https, with a host; unless
/// `allow_private`, a host that is not `localhost` and resolves only to public addresses.
/// The error says what is wrong, for a 400.
pub(crate) async fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    if raw.len() > MAX_URL {
        return Err(format!("webhook.url is over {MAX_URL} characters"));
    }
    let url =
        Url::parse(raw).map_err(|e| format!("webhook.url {raw:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "webhook.url must be http or https, not {}",
            url.scheme()
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("webhook.url {raw:?} has no host"));
    };
    if allow_private {
        return Ok(url);
    }
    if let Some(refusal) = refused_literal(&url) {
        return Err(refusal);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(internal(host, "loopback"));
    }
    if literal_ip(&url).is_none() {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("webhook.url's host {host} cannot be resolved: {e}"))?;
        if let Some(bad) = addrs.map(|a| a.ip()).find(|ip| is_internal(*ip)) {
            return Err(internal(host, &bad.to_string()));
        }
    }
    Ok(url)
}

/// The refusal of a URL whose host is a literal internal IP address, if it is one.
pub(crate) fn refused_literal(url: &Url) -> Option<String> {
    let ip = literal_ip(url)?;
    is_internal(ip).then(|| internal(&ip.to_string(), &ip.to_string()))
}

/// The URL's host, when it is an IP address (an IPv6 one is written in brackets).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

fn internal(host: &str, address: &str) -> String {
    format!(
        "webhook.url's host {host} is (or resolves to) {address}, an internal address; \
         webhooks go to public addresses only (a server run with --webhook-allow-private \
         accepts internal ones)"
    )
}

/// The delivery client's resolver: resolves with the system's resolver and, unless private
/// addresses are allowed, fails when any address is internal, so the client never connects
/// to an address that was not checked.
#[derive(Debug)]
pub(crate) struct CheckedResolver {
    /// Whether internal addresses are allowed (`--webhook-allow-private`).
    pub(crate) allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
                return Err(internal(&host, &bad.ip().to_string()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised_and_public_ones_pass() {
        for internal in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "2002:7f00:1::",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn urls_naming_internal_hosts_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/hook",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://localhost/",
            "https://api.localhost:8443/x",
            "http://[::ffff:192.168.0.1]/",
        ] {
            let refusal = check_url(url, false).await.unwrap_err();
            assert!(refusal.contains("internal address"), "{url}: {refusal}");
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn urls_that_are_not_absolute_http_are_refused_even_when_private_is_allowed() {
        for url in [
            "/relative",
            "ftp://example.com/",
            "mailto:a@example.com",
            "http://",
        ] {
            assert!(check_url(url, true).await.is_err(), "{url}");
        }
        assert!(
            check_url(&format!("https://x.example/{}", "a".repeat(3000)), true)
                .await
                .is_err()
        );
    }
}
