//! The production policy: settings that development tolerates and production refuses, each
//! refusal naming its variable.
//!
//! Key *material* (development keys in any spelling, keys too regular to be random) is judged
//! by `labs_auth::material`, where keys are parsed; this module judges the *settings* around
//! it. Both run only when `LABS_ENV=production`, before the api role takes a request: a weak
//! setting stops the process at start, where an operator sees it, instead of weakening every
//! request after.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use labs_accounts::AuthConfig;
use labs_auth::KeyConfig;

/// The longest access-token lifetime production accepts. Access tokens are verified without a
/// database round trip once cached, and a stolen one lives until it expires; OWASP and most
/// identity providers keep them to minutes, an hour at most.
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// OWASP's argon2id settings (Password Storage Cheat Sheet), all equally strong, as (memory in
/// KiB, iterations), with one lane.
const OWASP_ARGON2ID: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// Stops the process when there is any problem: one error listing them all, so that an
/// operator fixes every setting in one go rather than one restart at a time.
pub fn refuse(problems: &[String]) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "LABS_ENV=production refuses these settings:\n  - {}",
        problems.join("\n  - ")
    )
}

/// Every reason the api role's settings are unfit for production; empty when there is none.
pub fn api_problems(auth: &AuthConfig) -> Vec<String> {
    let mut problems = key_setting_problems(&auth.keys);
    if auth
        .app_url
        .as_deref()
        .is_none_or(|url| url.trim().is_empty())
    {
        // The development default (this process's own pages on localhost) would put dead
        // links in every email a production service sends.
        problems.push(
            "LABS_APP_URL must be set when LABS_ENV=production: the links in emails open it \
             (the service's own pages: https://<public host><LABS_ROOT_PATH>)"
                .to_owned(),
        );
    }
    if !auth.cookie_secure {
        problems.push(
            "LABS_COOKIE_SECURE=false: production cookies must be Secure (HTTPS only)".to_owned(),
        );
    }
    for net in &auth.trusted_proxies {
        if trusts_everyone(net) {
            problems.push(format!(
                "LABS_TRUSTED_PROXIES holds {net}: every client could then choose its own IP \
                 (and its own rate limits) with X-Forwarded-For; list the reverse proxy's \
                 addresses only"
            ));
        }
    }
    problems
}

/// The problems of the credential settings that are not key material: the argon2id cost and
/// the access-token lifetime. Also used by the commands that hash passwords without serving.
pub fn key_setting_problems(keys: &KeyConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let (memory, iterations) = (keys.argon2_memory_kib, keys.argon2_iterations);
    if !meets_owasp(memory, iterations) {
        let needed = OWASP_ARGON2ID
            .iter()
            .rev()
            .find(|(_, t)| *t <= iterations)
            .map_or(OWASP_ARGON2ID[0].0, |(m, _)| *m);
        problems.push(format!(
            "LABS_ARGON2_MEMORY_KIB={memory} with LABS_ARGON2_ITERATIONS={iterations} is weaker \
             than OWASP's minimum ({needed} KiB at {} iteration(s); the equal settings are \
             47104x1, 19456x2, 12288x3, 9216x4, 7168x5)",
            iterations.max(1)
        ));
    }
    if keys.access_token_ttl > MAX_ACCESS_TOKEN_TTL {
        problems.push(format!(
            "LABS_ACCESS_TOKEN_TTL={} is longer than production allows (1h): a stolen access \
             token lives that long; sessions last through refresh tokens instead",
            humantime::format_duration(keys.access_token_ttl)
        ));
    }
    problems
}

/// At least as costly as one of OWASP's settings: as much memory as a setting with no more
/// iterations. The lane count is not judged: OWASP's table uses one, and more lanes over the
/// same memory do not make an attacker's work cheaper.
fn meets_owasp(memory_kib: u32, iterations: u32) -> bool {
    OWASP_ARGON2ID
        .iter()
        .any(|&(m, t)| iterations >= t && memory_kib >= m)
}

/// Whether a trusted-proxy range holds every IPv4 or every IPv6 address: `0.0.0.0/0`, `::/0`,
/// or an IPv6 range that covers all of `::ffff:0:0/96` (IPv4-mapped addresses, which is how a
/// dual-stack listener may see IPv4 clients). Narrower public ranges stay allowed: a CDN's
/// published ranges are legitimate proxies.
fn trusts_everyone(net: &IpNet) -> bool {
    const FIRST_MAPPED: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
    const LAST_MAPPED: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff);
    net.prefix_len() == 0
        || (net.contains(&IpAddr::V6(FIRST_MAPPED)) && net.contains(&IpAddr::V6(LAST_MAPPED)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The api settings as the binary parses them, from `args` (no environment involved).
    fn auth(args: &[&str]) -> AuthConfig {
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            auth: AuthConfig,
        }
        let argv = std::iter::once("labs").chain(args.iter().copied());
        <Settings as clap::Parser>::parse_from(argv).auth
    }

    /// The problems of `args`, given an app URL (which production requires).
    fn problems(args: &[&str]) -> Vec<String> {
        let with_url = ["--app-url", "https://app.example.com"];
        api_problems(&auth(&[&with_url[..], args].concat()))
    }

    #[test]
    fn the_defaults_pass() {
        assert_eq!(problems(&[]), Vec::<String>::new());
    }

    #[test]
    fn an_unset_or_empty_app_url_is_refused() {
        for args in [&[][..], &["--app-url", " "][..]] {
            let found = api_problems(&auth(args));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].contains("LABS_APP_URL"), "{found:?}");
        }
    }

    #[test]
    fn insecure_cookies_are_refused() {
        let found = problems(&["--cookie-secure=false"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("LABS_COOKIE_SECURE"), "{found:?}");
    }

    #[test]
    fn argon2_costs_below_each_owasp_setting_are_refused_and_the_settings_pass() {
        for (memory, iterations) in OWASP_ARGON2ID {
            let (m, t) = (memory.to_string(), iterations.to_string());
            let at = ["--argon2-memory-kib", &m, "--argon2-iterations", &t];
            assert_eq!(problems(&at), Vec::<String>::new(), "{m}x{t}");

            let less = (memory - 1).to_string();
            let found = problems(&["--argon2-memory-kib", &less, "--argon2-iterations", &t]);
            assert_eq!(found.len(), 1, "{less}x{t}: {found:?}");
            assert!(found[0].contains("LABS_ARGON2_MEMORY_KIB"), "{found:?}");
            assert!(found[0].contains("LABS_ARGON2_ITERATIONS"), "{found:?}");
        }
        // More passes than the table's last row need no more memory than it.
        let found = problems(&["--argon2-memory-kib=7168", "--argon2-iterations=9"]);
        assert_eq!(found, Vec::<String>::new());
        // Memory makes up for passes only down the table, not across a gap.
        let found = problems(&["--argon2-memory-kib=19455", "--argon2-iterations=2"]);
        assert_eq!(found.len(), 1, "{found:?}");
        let found = problems(&["--argon2-memory-kib=8192", "--argon2-iterations=3"]);
        assert!(found[0].contains("12288 KiB at 3"), "{found:?}");
    }

    #[test]
    fn access_tokens_living_over_an_hour_are_refused() {
        assert_eq!(problems(&["--access-token-ttl=1h"]), Vec::<String>::new());
        let found = problems(&["--access-token-ttl=61m"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("LABS_ACCESS_TOKEN_TTL"), "{found:?}");
    }

    #[test]
    fn trusting_every_address_as_a_proxy_is_refused() {
        for everyone in [
            "0.0.0.0/0",
            "::/0",
            "::ffff:0.0.0.0/96",
            "::/64",
            "10.0.0.0/8,0.0.0.0/0",
        ] {
            let found = problems(&["--trusted-proxies", everyone]);
            assert_eq!(found.len(), 1, "{everyone}: {found:?}");
            assert!(found[0].contains("LABS_TRUSTED_PROXIES"), "{found:?}");
        }
        for proxies in [
            "10.0.0.0/8,fd00::/8",
            "127.0.0.1/32,::1/128",
            "173.245.48.0/20",
            "::ffff:10.0.0.0/104",
        ] {
            assert_eq!(
                problems(&["--trusted-proxies", proxies]),
                Vec::<String>::new(),
                "{proxies}"
            );
        }
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let found = problems(&[
            "--cookie-secure=false",
            "--access-token-ttl=1d",
            "--argon2-memory-kib=1024",
            "--trusted-proxies=0.0.0.0/0",
        ]);
        assert_eq!(found.len(), 4, "{found:?}");
        let error = refuse(&found).unwrap_err().to_string();
        for variable in [
            "LABS_COOKIE_SECURE",
            "LABS_ACCESS_TOKEN_TTL",
            "LABS_ARGON2_MEMORY_KIB",
            "LABS_TRUSTED_PROXIES",
        ] {
            assert!(error.contains(variable), "{error}");
        }
        assert!(refuse(&[]).is_ok());
    }
}
