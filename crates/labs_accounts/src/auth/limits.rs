//! Rate limits on credential endpoints (in Redis, per replica while Redis is down), and the
//! client they key on.
//!
//! Two shapes. [`check`] counts every request of a family per client and per account: for the
//! endpoints that send email or create something. [`guess`] is for the endpoints that check a
//! secret (password, emailed code): every attempt counts per client, but against the account
//! only *wrong* guesses count, per (account, client) and, with a much higher ceiling, per
//! account. So a stranger's wrong passwords spend the stranger's budget, not the owner's. The
//! ceiling (against guessing from many clients) could still be spent by strangers; it does not
//! apply to a *known client*, one that logged in to the account before (remembered for the
//! refresh-token lifetime), which only its own (account, client) budget limits. The owner is
//! refused by strangers' failures only on a client he never logged in from, and only while
//! they keep the ceiling spent (docs/SECURITY.md).
//!
//! A client is an IPv4 address or an IPv6 prefix (a /64 by default: one subscriber gets a
//! whole /64, so keying on single IPv6 addresses would give one attacker 2^64 budgets), with
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) read as the IPv4 address they are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use ipnet::Ipv6Net;
use labs_db::ratelimit::{Decision, Quota};
use labs_http::ApiError;

use crate::Accounts;

/// The client's IP: the TCP peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not itself a trusted proxy. (The left-most entry is
/// whatever the client wrote; only entries appended by our own proxies can be believed.)
/// IPv4-mapped IPv6 addresses are canonical IPv4 here, so that a dual-stack listener's
/// `::ffff:203.0.113.9` and a proxy's `203.0.113.9` are one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl ClientIp {
    /// The rate-limit subject: the IPv4 address, or the IPv6 address's `/prefix` network.
    pub(crate) fn bucket(self, ipv6_prefix: u8) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => Ipv6Net::new(v6, ipv6_prefix.min(128))
                .map_or_else(|_| v6.to_string(), |net| net.trunc().to_string()),
        }
    }
}

/// Generic over the state: any state that offers [`Accounts`] (the trusted proxies) by `FromRef`.
impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let accounts = Accounts::from_ref(state);
        let auth = &accounts.auth;
        // No peer address only happens in in-process tests that skip the listener.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, |ip| {
            auth.is_trusted_proxy(ip)
        })))
    }
}

pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    // Canonical first: a trusted proxy reaching a dual-stack listener over IPv4 shows as
    // `::ffff:10.0.0.2`, and must still match `10.0.0.2/32`.
    let peer = peer.to_canonical();
    if !trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|hop| hop.to_canonical())
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

/// The Redis key part naming `account` (an email or a user id), hashed: the keys name no
/// email address.
fn account_key(account: &str) -> String {
    let digest = labs_auth::token::hash_token(&account.to_lowercase());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts one attempt of `family` from `ip`, and against `account` if known (an email or a
/// user id). 429 when either budget is spent. A Redis outage does not switch the limits off
/// nor fail the request: they are kept per replica until Redis answers again.
pub(crate) async fn check(
    state: &Accounts,
    family: Family,
    ip: ClientIp,
    account: Option<&str>,
) -> Result<(), ApiError> {
    let config = &state.auth.config;
    let namespace = &config.rate_limit_namespace;
    let client = ip.bucket(config.rate_limit_ipv6_prefix);
    let mut checks = vec![(
        format!("{namespace}:{}:ip:{client}", family.name()),
        config.rate_limit_per_ip,
    )];
    if let Some(account) = account {
        checks.push((
            format!(
                "{namespace}:{}:acct:{}",
                family.name(),
                account_key(account)
            ),
            config.rate_limit_per_account,
        ));
    }
    for (key, quota) in checks {
        count(state, family, &key, quota).await?;
    }
    Ok(())
}

/// A guess at `account`'s secret, counted as a wrong one until [`Guess::succeeded`] says
/// otherwise.
#[must_use = "a right guess must be given back with `succeeded`"]
pub(crate) struct Guess {
    failures: Vec<(String, Quota)>,
    /// The key that makes this client known to the account once it succeeds.
    known: String,
}

/// Counts one guess of `family` from `ip` at `account`'s secret (an email): against the
/// client's budget for the family (every attempt), and, as a wrong guess, against the
/// (account, client) budget and, unless the client is known to the account, the account's
/// ceiling. 429 when any is spent, before the secret is checked. Through a Redis outage, as
/// [`check`].
///
/// Counted before the check and given back after a right one, not counted after a wrong one:
/// counting afterwards would let a client send a hundred guesses at once, all checked before
/// the first failure is recorded.
pub(crate) async fn guess(
    state: &Accounts,
    family: Family,
    ip: ClientIp,
    account: &str,
) -> Result<Guess, ApiError> {
    let config = &state.auth.config;
    let namespace = &config.rate_limit_namespace;
    let client = ip.bucket(config.rate_limit_ipv6_prefix);
    let family_name = family.name();
    count(
        state,
        family,
        &format!("{namespace}:{family_name}:ip:{client}"),
        config.rate_limit_per_ip,
    )
    .await?;
    let account = account_key(account);
    let mut guess = Guess {
        failures: Vec::with_capacity(2),
        known: format!("{namespace}:known:{account}:{client}"),
    };
    let known = state.limiter.remembered(&guess.known).await;
    let mut budgets = vec![(
        format!("{namespace}:{family_name}:fail:{account}:{client}"),
        config.rate_limit_failures_per_client,
    )];
    if !known {
        budgets.push((
            format!("{namespace}:{family_name}:fail:{account}"),
            config.rate_limit_failures_per_account,
        ));
    }
    for (key, quota) in budgets {
        if let Err(refused) = count(state, family, &key, quota).await {
            // A guess refused is not a guess made: what it counted so far goes back.
            guess.give_back(state).await;
            return Err(refused);
        }
        guess.failures.push((key, quota));
    }
    Ok(guess)
}

impl Guess {
    /// The guess was right: it was not a failure, and the client is now known to the account.
    pub(crate) async fn succeeded(self, state: &Accounts) {
        self.give_back(state).await;
        let ttl = state.auth.config.refresh_token_ttl;
        state.limiter.remember(&self.known, ttl).await;
    }

    /// Takes back what this guess counted.
    async fn give_back(&self, state: &Accounts) {
        for (key, quota) in &self.failures {
            state.limiter.refund(key, *quota).await;
        }
    }
}

/// Counts one request against `quota` for `key`: 429 when spent. Never fails for Redis: while
/// it does not answer, the limiter decides in this process (see [`labs_db::ratelimit::Limiter`]).
async fn count(state: &Accounts, family: Family, key: &str, quota: Quota) -> Result<(), ApiError> {
    match state.limiter.check(key, quota).await {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            metrics::counter!("labs_auth_rate_limited_total", "family" => family.name())
                .increment(1);
            Err(ApiError::TooManyRequests { retry_after })
        }
    }
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

    #[test]
    fn ipv4_mapped_addresses_are_ipv4_for_the_peer_and_forwarded_hops() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = |ip: IpAddr| ip == proxy;
        let mapped_proxy: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("::ffff:203.0.113.9"),
        );
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(mapped_proxy, &headers, trusted), client);
        let mapped_client: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(mapped_client, &HeaderMap::new(), trusted), client);
        assert_eq!(
            ClientIp(client_ip(mapped_client, &HeaderMap::new(), trusted)).bucket(64),
            ClientIp(client).bucket(64)
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_prefix() {
        let bucket = |ip: &str, prefix| ClientIp(ip.parse().unwrap()).bucket(prefix);
        assert_eq!(bucket("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:aaaa::1", 64),
            bucket("2001:db8:1:2:ffff:1:2:3", 64)
        );
        assert_ne!(bucket("2001:db8:1:2::1", 64), bucket("2001:db8:1:3::1", 64));
        assert_eq!(bucket("2001:db8:1:2::1", 56), "2001:db8:1::/56");
        assert_eq!(bucket("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(bucket("203.0.113.9", 64), "203.0.113.9");
    }
}
