//! `healthcheck`: asks the server whether it is ready, for the container's health check.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::HealthcheckArgs;

/// A minimal HTTP/1.1 GET, so that the runtime image needs no curl: exit 0 on a 2xx.
pub(super) async fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let mut address = args.bind;
            if address.ip().is_unspecified() {
                address.set_ip(if address.is_ipv4() {
                    [127, 0, 0, 1].into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{address}/health/ready")
        }
    };
    let (authority, path) = split_http_url(&url)?;
    let status = tokio::time::timeout(args.timeout, get_status(authority, path))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {url} within {:?}", args.timeout))
        .and_then(|status| status.with_context(|| format!("cannot ask {url}")));
    let mut stdout = std::io::stdout().lock();
    match status {
        Ok(status) if (200..300).contains(&status) => {
            writeln!(stdout, "ready: {url} answered {status}")?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            writeln!(stdout, "not ready: {url} answered {status}")?;
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            writeln!(stdout, "not ready: {error:#}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_http_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("the health check URL must start with http://, got {url}"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

async fn get_status(authority: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: labs-healthcheck\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // The status line is in the first bytes; the rest of the answer does not matter.
    let mut head = [0_u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        anyhow::ensure!(n > 0, "the connection closed before a status line");
        read += n;
    }
    let line = std::str::from_utf8(&head[..read]).unwrap_or_default();
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::split_http_url;

    #[test]
    fn health_check_urls_are_split_into_authority_and_path() {
        assert_eq!(
            split_http_url("http://127.0.0.1:8080/health/ready").unwrap(),
            ("127.0.0.1:8080", "/health/ready")
        );
        assert_eq!(
            split_http_url("http://localhost:9").unwrap(),
            ("localhost:9", "/")
        );
        assert!(split_http_url("https://example.com/").is_err());
    }
}
