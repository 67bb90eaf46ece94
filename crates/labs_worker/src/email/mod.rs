//! Email: the SMTP transport (or the log, in development), the templates, and the
//! `send_email` job's handler.

mod templates;

use std::time::Duration;

use labs_jobs::jobs::SendEmail;
use labs_jobs::{Handler, JobError};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::WorkerContext;

/// How the worker sends email.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Email")]
pub struct MailConfig {
    /// SMTP server URL, with the TLS mode in it: `smtps://user:pass@host:465` (TLS from the
    /// first byte), `smtp://user:pass@host:587?tls=required` (STARTTLS, refused without it),
    /// `smtp://host:25` (plain, for a local relay only). Not set in development: messages are
    /// written to the log instead of sent. Required in production.
    #[arg(long, env = "LABS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// A PEM file of extra root certificates to trust for the SMTP server's TLS certificate,
    /// for a relay with a private CA. The system's roots are trusted either way.
    #[arg(long, env = "LABS_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// The sender of every message.
    #[arg(
        long,
        env = "LABS_MAIL_FROM",
        default_value = "labs <noreply@localhost>"
    )]
    pub mail_from: String,

    /// Deadline of each SMTP command.
    #[arg(long, env = "LABS_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Duration,
}

/// Why the mail settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("LABS_MAIL_FROM is not a valid mailbox ({0})")]
    From(lettre::address::AddressError),
    #[error("LABS_SMTP_URL is not a valid SMTP URL ({0})")]
    Url(lettre::transport::smtp::Error),
    #[error("LABS_SMTP_CA_FILE cannot be used ({0})")]
    CaFile(String),
}

/// Sends messages: through SMTP, or into the log in development.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("smtp", &self.transport.is_some())
            .finish()
    }
}

impl Mailer {
    /// A mailer for `config`; without an SMTP URL, one that logs messages.
    pub fn new(config: &MailConfig) -> Result<Self, MailConfigError> {
        let from: Mailbox = config.mail_from.parse().map_err(MailConfigError::From)?;
        let transport = match &config.smtp_url {
            None => None,
            Some(url) => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                        .map_err(MailConfigError::Url)?
                        .timeout(Some(config.smtp_timeout));
                if let Some(ca_file) = &config.smtp_ca_file {
                    builder = builder.tls(tls_trusting(url.expose_secret(), ca_file)?);
                }
                Some(builder.build())
            }
        };
        Ok(Self { from, transport })
    }

    /// Renders and sends one email. An address that cannot be sent to is a permanent failure:
    /// logged and dropped (`Ok`), not retried.
    pub async fn send(&self, to: &str, email: &labs_jobs::jobs::Email) -> Result<(), JobError> {
        let rendered = templates::render(email)?;
        // The rule every stored address passed at the API (one rule, labs_domain's). An address
        // that fails it (stored before the rule, or queued by hand) fails the same way on every
        // attempt: retrying it for hours with backoff helps nobody and hides it among transient
        // errors. The queue has no "permanent error" to return instead of Ok; the error log
        // line is where it shows.
        let Some(to) = labs_domain::Email::parse(to)
            .ok()
            .and_then(|to| to.as_str().parse::<Mailbox>().ok())
        else {
            tracing::error!(
                email.template = rendered.template,
                "email not sent: the recipient is not an address we can send to; dropped, not retried"
            );
            return Ok(());
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html,
            ))?;
        match &self.transport {
            Some(transport) => {
                transport.send(message).await?;
                tracing::info!(
                    email.template = rendered.template,
                    email.domain = to.email.domain(),
                    "email sent"
                );
            }
            // Development only: the whole message, so that a developer can follow its links.
            None => tracing::info!(
                email.template = rendered.template,
                email.to = %to,
                email.subject = rendered.subject,
                email.text = rendered.text,
                "email not sent (no LABS_SMTP_URL): logged instead"
            ),
        }
        Ok(())
    }
}

/// The TLS mode the URL asks for (lettre's reading of it: `smtps://` is TLS from the first
/// byte, `?tls=required` STARTTLS or fail, `?tls=opportunistic` STARTTLS if offered), with the
/// extra roots of `ca_file` trusted too.
fn tls_trusting(url: &str, ca_file: &std::path::Path) -> Result<Tls, MailConfigError> {
    let fail = |message: String| MailConfigError::CaFile(message);
    let parsed = url::Url::parse(url).map_err(|e| fail(format!("LABS_SMTP_URL: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| fail("LABS_SMTP_URL has no host".to_owned()))?;
    let pem = std::fs::read(ca_file).map_err(|e| fail(format!("{}: {e}", ca_file.display())))?;
    let certificate =
        Certificate::from_pem(&pem).map_err(|e| fail(format!("{}: {e}", ca_file.display())))?;
    let parameters = TlsParameters::builder(host.to_owned())
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|e| fail(e.to_string()))?;
    let mode = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        ("smtp", Some("required")) => Ok(Tls::Required(parameters)),
        ("smtp", Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err(fail(
            "the URL asks for no TLS (use smtps:// or ?tls=required)".to_owned(),
        )),
    }
}

impl Handler<WorkerContext> for SendEmail {
    /// Idempotence: SMTP cannot take a message back, so a worker that crashes after the server
    /// accepted the message and before the job was acknowledged sends it twice. That is the
    /// at-least-once trade-off for email; the messages we send are safe to receive twice.
    async fn handle(self, ctx: &WorkerContext) -> Result<(), JobError> {
        ctx.mailer.send(&self.to, &self.email).await
    }
}
