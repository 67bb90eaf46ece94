//! A real SMTP server (aiosmtpd) that records what it receives.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, test_python, unique_name};

/// A real SMTP server (aiosmtpd, from PyPI) that stores what it receives in a maildir.
///
/// Its Python comes from `LABS_TEST_PYTHON` (set by `make test`, which installs aiosmtpd into
/// the tools venv), else the CI venv's.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Plain SMTP.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With aiosmtpd's TLS options, e.g. `["--tlscert", cert, "--tlskey", key]` (STARTTLS,
    /// required) or `["--smtpscert", cert, "--smtpskey", key]` (TLS from the first byte).
    pub fn start_with(tls: &[&str]) -> Self {
        let python = test_python();
        let port = free_port();
        let maildir = std::env::temp_dir().join(unique_name("maildir"));
        let child = Command::new(&python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .args(tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start aiosmtpd with {python} ({e}); `make test` installs it")
            });
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (is it installed in {python}?)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            maildir,
            child,
        }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, as a local relay.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw (headers and MIME parts).
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `count` messages arrived, failing after `timeout`.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} emails arrived within {timeout:?}",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
