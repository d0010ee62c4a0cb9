//! What every request passes first: the checks that keep web pages from
//! using a server that serves anonymous callers.
//!
//! A server without a token file serves `system:anonymous`, which the
//! binary allows only on loopback — the usual way to run it on a
//! developer's machine. Loopback alone does not keep a browser out: any
//! page the developer visits can send requests to `http://127.0.0.1:8080`
//! (a cross-site `fetch` with a body and no `Content-Type` is a "simple"
//! request that needs no CORS preflight), and a page served from a domain
//! that the attacker re-points at 127.0.0.1 (DNS rebinding) is even
//! same-origin. With the local executor, a created job runs commands. So,
//! while callers are anonymous:
//!
//! * the `Host` must be an IP address, a loopback name (`localhost`,
//!   `*.localhost`) or a name given with `--allowed-host`. A rebinding
//!   attack always carries the attacker's domain name, never an address;
//! * an `Origin`, when a browser sends one, must be the server itself
//!   (same scheme-less authority as the `Host`). Kubernetes clients send
//!   none.
//!
//! Both are 403 `Forbidden`. With a token file the checks are off: a
//! browser cannot attach a bearer token to a cross-site request.
//!
//! A browser's write must also declare a JSON media type (415 otherwise);
//! that check lives where bodies are read ([`JsonBody`](mxjob_api::wire::JsonBody)).

use http::{HeaderMap, Uri};

use mxjob_api::error::ApiError;

/// The per-request checks; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    /// Whether callers are anonymous (no token file): the checks apply.
    anonymous: bool,
    /// Host names allowed beyond addresses and loopback names, lower-cased.
    allowed_hosts: Vec<String>,
}

impl Gate {
    /// A gate for a server whose callers are anonymous or not.
    pub fn new(anonymous: bool, allowed_hosts: &[String]) -> Self {
        Gate {
            anonymous,
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Admits a request or refuses it with 403.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.anonymous {
            return Ok(());
        }
        // HTTP/2 carries the authority in the URI instead of `Host`.
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()));
        if let Some(host) = &host {
            if !self.host_allowed(host) {
                return Err(ApiError::forbidden_message(format!(
                    "this server serves anonymous callers and does not answer for host \
                     {host:?}: use its address or localhost, or start it with \
                     --allowed-host {}",
                    host_name(host)
                )));
            }
        }
        if let Some(origin) = headers.get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            let same = host
                .as_deref()
                .is_some_and(|host| origin_authority(origin).eq_ignore_ascii_case(host));
            if !same {
                return Err(ApiError::forbidden_message(format!(
                    "this server serves anonymous callers and refuses requests from web pages \
                     of another origin ({origin})"
                )));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        is_address(&name)
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.allowed_hosts.contains(&name)
    }
}

/// `host` of `host:port` (`[::1]:8080` gives `[::1]`).
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether `name` is an IPv4 address or a bracketed IPv6 address.
fn is_address(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<std::net::IpAddr>().is_ok()
}

/// `host:port` of an `Origin` such as `http://localhost:8080`.
fn origin_authority(origin: &str) -> &str {
    origin
        .split_once("://")
        .map_or("", |(_, authority)| authority)
        .trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    fn check(gate: &Gate, pairs: &[(&'static str, &str)]) -> Result<(), u16> {
        gate.check(&Uri::from_static("/api"), &headers(pairs))
            .map_err(|e| e.code())
    }

    #[test]
    fn anonymous_servers_answer_addresses_and_loopback_names_only() {
        let gate = Gate::new(true, &["mxjob.internal".to_string()]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "api.localhost:1",
            "[::1]:8080",
            "10.1.2.3",
            "mxjob.internal:8080",
        ] {
            assert_eq!(check(&gate, &[("host", host)]), Ok(()), "{host}");
        }
        for host in ["evil.example:8080", "evil.example", "127.0.0.1.nip.io:8080"] {
            assert_eq!(check(&gate, &[("host", host)]), Err(403), "{host}");
        }
    }

    #[test]
    fn anonymous_servers_refuse_other_origins() {
        let gate = Gate::new(true, &[]);
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            check(&gate, &[host, ("origin", "http://127.0.0.1:8080")]),
            Ok(())
        );
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:9999",
            "http://localhost:8080",
        ] {
            assert_eq!(
                check(&gate, &[host, ("origin", origin)]),
                Err(403),
                "{origin}"
            );
        }
    }

    #[test]
    fn servers_with_tokens_leave_host_and_origin_alone() {
        let gate = Gate::new(false, &[]);
        assert_eq!(
            check(
                &gate,
                &[("host", "evil.example"), ("origin", "https://evil.example")]
            ),
            Ok(())
        );
    }
}
