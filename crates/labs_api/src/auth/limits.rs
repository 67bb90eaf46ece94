//! Rate limits on credential endpoints (per client IP and per account, in Redis), and the
//! client IP they key on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use labs_db::ratelimit::{self, Decision};
use labs_http::ApiError;

use crate::ApiState;

/// The client's IP: the TCP peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not itself a trusted proxy. (The left-most entry is
/// whatever the client wrote; only entries appended by our own proxies can be believed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl FromRequestParts<ApiState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        // No peer address only happens in in-process tests that skip the listener.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, |ip| {
            state.auth.is_trusted_proxy(ip)
        })))
    }
}

pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted(**ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The endpoint families, each with its own budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Family {
    Signup,
    Login,
    Otp,
    Totp,
    Reset,
    Verification,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Otp => "otp",
            Self::Totp => "totp",
            Self::Reset => "reset",
            Self::Verification => "verification",
        }
    }
}

/// Counts one attempt of `family` from `ip`, and against `account` if known (an email or a
/// user id). 429 when either budget is spent. Fails closed (503) when Redis cannot be asked:
/// an outage must not switch brute-force protection off.
pub(crate) async fn check(
    state: &ApiState,
    family: Family,
    ip: ClientIp,
    account: Option<&str>,
) -> Result<(), ApiError> {
    let config = &state.auth.config;
    let namespace = &config.rate_limit_namespace;
    let mut redis = state.app.redis.clone();
    let mut checks = vec![(
        format!("{namespace}:{}:ip:{}", family.name(), ip.0),
        config.rate_limit_per_ip,
    )];
    if let Some(account) = account {
        // Hashed: the keys name no email address.
        let digest = labs_auth::token::hash_token(&account.to_lowercase());
        let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        checks.push((
            format!("{namespace}:{}:acct:{short}", family.name()),
            config.rate_limit_per_account,
        ));
    }
    for (key, quota) in checks {
        match ratelimit::check(&mut redis, &key, quota).await {
            Ok(Decision::Allowed) => {}
            Ok(Decision::Limited { retry_after }) => {
                metrics::counter!("labs_auth_rate_limited_total", "family" => family.name())
                    .increment(1);
                return Err(ApiError::TooManyRequests { retry_after });
            }
            Err(error) => {
                metrics::counter!("labs_redis_errors_total", "operation" => "rate_limit")
                    .increment(1);
                tracing::warn!(%error, "rate limiter unavailable");
                return Err(ApiError::Unavailable(
                    "The rate limiter is not answering; try again shortly.",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = |ip: IpAddr| ip == proxy || ip == "10.0.0.3".parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.3"),
        );
        assert_eq!(
            client_ip(proxy, &headers, trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &headers, trusted),
            stranger,
            "spoofed header ignored"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), trusted), proxy);
    }
}
