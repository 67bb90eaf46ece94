//! Email content: one layout (a text and an HTML version, checked at compile time by askama;
//! the HTML escapes every value) filled by one function per message, so that every email
//! looks the same and a new one is a few lines here.

use askama::Template;
use labs_jobs::jobs::Email;

/// A message ready to send.
pub(crate) struct Rendered {
    pub(crate) template: &'static str,
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
}

/// A link the reader is asked to follow.
struct Action<'a> {
    label: &'a str,
    url: &'a str,
}

/// What a message says.
struct Content<'a> {
    template: &'static str,
    subject: &'a str,
    paragraphs: Vec<String>,
    code: Option<&'a str>,
    action: Option<Action<'a>>,
}

#[derive(Template)]
#[template(path = "message.txt")]
struct Text<'a> {
    paragraphs: &'a [String],
    code: Option<&'a str>,
    action: Option<&'a Action<'a>>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct Html<'a> {
    paragraphs: &'a [String],
    code: Option<&'a str>,
    action: Option<&'a Action<'a>>,
}

fn content(email: &Email) -> Content<'_> {
    match email {
        Email::Test { requested_by } => Content {
            template: "test",
            subject: "labs: outgoing mail works",
            paragraphs: vec![format!(
                "This message was sent by labs because {requested_by} asked for a test of outgoing mail. \
                 If you can read it, the SMTP settings of this deployment work."
            )],
            code: None,
            action: None,
        },
        Email::VerifyEmail { link } => Content {
            template: "verify_email",
            subject: "Confirm your email address",
            paragraphs: vec![
                "Please confirm that this address is yours to finish creating your account.".to_owned(),
                "If you did not sign up, ignore this message: no account will be activated.".to_owned(),
            ],
            code: None,
            action: Some(Action { label: "Confirm my email address", url: link }),
        },
        Email::AlreadyRegistered { reset_link } => Content {
            template: "already_registered",
            subject: "You already have an account",
            paragraphs: vec![
                "Someone (hopefully you) tried to sign up with this address, which already has an account."
                    .to_owned(),
                "If you forgot your password, you can choose a new one. Otherwise, ignore this message."
                    .to_owned(),
            ],
            code: None,
            action: Some(Action { label: "Choose a new password", url: reset_link }),
        },
        Email::LoginCode { code, valid_minutes } => Content {
            template: "login_code",
            subject: "Your login code",
            paragraphs: vec![format!(
                "Here is your one-time login code. It is valid for {valid_minutes} minutes and works once. \
                 If you did not ask for it, ignore this message."
            )],
            code: Some(code),
            action: None,
        },
        Email::PasswordReset { link } => Content {
            template: "password_reset",
            subject: "Choose a new password",
            paragraphs: vec![
                "Someone asked to reset the password of your account. The link below works once, for a short time."
                    .to_owned(),
                "If it was not you, ignore this message: your password stays as it is.".to_owned(),
            ],
            code: None,
            action: Some(Action { label: "Choose a new password", url: link }),
        },
        Email::PasswordChanged {} => Content {
            template: "password_changed",
            subject: "Your password was changed",
            paragraphs: vec![
                "The password of your account was just changed, and your other devices were signed out.".to_owned(),
                "If this was not you, reset your password now and contact us.".to_owned(),
            ],
            code: None,
            action: None,
        },
        Email::TotpDisabled {} => Content {
            template: "totp_disabled",
            subject: "Two-factor authentication was turned off",
            paragraphs: vec![
                "Two-factor authentication (TOTP) was just turned off for your account: a password alone now logs in.".to_owned(),
                "If this was not you, reset your password now, turn two-factor authentication back on, and contact us.".to_owned(),
            ],
            code: None,
            action: None,
        },
        Email::RecoveryCodesReplaced {} => Content {
            template: "recovery_codes_replaced",
            subject: "New recovery codes were made",
            paragraphs: vec![
                "New recovery codes were just made for your account; the old ones no longer work.".to_owned(),
                "If this was not you, reset your password now and contact us.".to_owned(),
            ],
            code: None,
            action: None,
        },
    }
}

/// The template name of `email` (for logs and metrics).
pub(crate) fn name(email: &Email) -> &'static str {
    content(email).template
}

pub(crate) fn render(email: &Email) -> Result<Rendered, askama::Error> {
    let content = content(email);
    let text = Text {
        paragraphs: &content.paragraphs,
        code: content.code,
        action: content.action.as_ref(),
    }
    .render()?;
    let html = Html {
        paragraphs: &content.paragraphs,
        code: content.code,
        action: content.action.as_ref(),
    }
    .render()?;
    Ok(Rendered {
        template: content.template,
        subject: content.subject.to_owned(),
        text,
        html,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_text_keeps() {
        let rendered = render(&Email::Test {
            requested_by: "<script>alert(1)</script>".to_owned(),
        })
        .unwrap();
        assert!(rendered.text.contains("<script>alert(1)</script>"));
        assert!(!rendered.html.contains("<script>"));
        assert!(
            rendered.html.contains("&#60;script&#62;") || rendered.html.contains("&lt;script&gt;")
        );
    }

    #[test]
    fn links_and_codes_appear_in_both_versions() {
        let link = "https://app.example.com/verify-email?token=abc_DEF-123";
        let rendered = render(&Email::VerifyEmail {
            link: link.to_owned(),
        })
        .unwrap();
        assert!(rendered.text.contains(link), "{}", rendered.text);
        assert!(
            rendered
                .html
                .contains("href=\"https://app.example.com/verify-email?token=abc_DEF-123\""),
            "{}",
            rendered.html
        );
        let rendered = render(&Email::LoginCode {
            code: "042137".to_owned(),
            valid_minutes: 10,
        })
        .unwrap();
        assert!(rendered.text.contains("042137") && rendered.html.contains("042137"));
        assert!(rendered.text.contains("10 minutes"));
    }
}
