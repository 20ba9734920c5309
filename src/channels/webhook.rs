//! Where a webhook URL leads. Unless allowed (`WEBHOOK_ALLOW_PRIVATE`), a URL whose host
//! resolves to a loopback, private, shared, link-local (cloud metadata) or unspecified address is
//! refused (SSRF): on create and edit with a 400, and again at each delivery, since DNS answers
//! change. A delivery is then pinned to the addresses that were checked, without following
//! redirects, so neither a second DNS answer nor a 3xx can lead elsewhere.

use crate::domain::notifications::is_private_ip;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a delivery cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Never deliverable as it stands (recorded as skipped).
    Refused(String),
    /// Maybe later (DNS failed): retried.
    NotNow(String),
}

pub const PRIVATE: &str =
    "the webhook URL points to a private network (loopback, private, shared or link-local addresses are refused)";

/// The addresses `url` leads to, each checked.
pub async fn resolve(url: &url::Url, allow_private: bool) -> Result<Vec<SocketAddr>, Refusal> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Domain(d)) => {
            match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((d, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(Refusal::NotNow(format!("webhook host {d}: {e}"))),
                Err(_) => return Err(Refusal::NotNow(format!("webhook host {d}: no DNS answer in time"))),
            }
        }
        Some(url::Host::Ipv4(ip)) => vec![(ip, port).into()],
        Some(url::Host::Ipv6(ip)) => vec![(ip, port).into()],
        None => return Err(Refusal::Refused("the webhook URL has no host".into())),
    };
    if addrs.is_empty() {
        return Err(Refusal::NotNow("the webhook host has no address".into()));
    }
    if !allow_private && addrs.iter().any(|a| is_private_ip(a.ip())) {
        return Err(Refusal::Refused(PRIVATE.into()));
    }
    Ok(addrs)
}

/// For create and edit: `Err` with the message when the URL is refused. A host that does not
/// resolve now is let through (it is checked again at each delivery).
pub async fn check_target(raw: &str, allow_private: bool) -> Result<(), String> {
    let Ok(url) = url::Url::parse(raw) else { return Err("the webhook URL is not a URL".into()) };
    match resolve(&url, allow_private).await {
        Err(Refusal::Refused(why)) => Err(why),
        _ => Ok(()),
    }
}

/// A client that can reach only the checked addresses of `url`, and follows no redirect.
pub async fn client(url: &url::Url, allow_private: bool) -> Result<reqwest::Client, Refusal> {
    let addrs = resolve(url, allow_private).await?;
    let mut builder = reqwest::Client::builder()
        .user_agent(crate::state::USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(url::Host::Domain(d)) = url.host() {
        builder = builder.resolve_to_addrs(d, &addrs);
    }
    builder.build().map_err(|e| Refusal::NotNow(format!("webhook client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        assert_eq!(check_target("http://127.0.0.1:8080/x", false).await, Err(PRIVATE.to_owned()));
        assert_eq!(check_target("http://[::1]/x", false).await, Err(PRIVATE.to_owned()));
        assert_eq!(check_target("http://169.254.169.254/latest", false).await, Err(PRIVATE.to_owned()));
        assert_eq!(check_target("http://localhost:9/x", false).await, Err(PRIVATE.to_owned()));
        assert!(check_target("http://127.0.0.1:8080/x", true).await.is_ok());
        assert!(check_target("https://8.8.8.8/hook", false).await.is_ok());
    }
}
