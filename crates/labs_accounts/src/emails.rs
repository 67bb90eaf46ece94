//! The emails of the accounts feature, their wording with them: each is a [`Message`] in the
//! platform's one layout (`labs_worker` renders it, `labs_jobs::jobs::SendEmail` carries it).
//! A new email is a variant here and its arm in [`AccountEmail::message`].

use labs_jobs::jobs::{Action, Message};

/// What the accounts feature tells an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEmail {
    /// The link that proves an address belongs to its new account.
    VerifyEmail { link: String },
    /// Someone signed up with an address that already has an account: tell its owner
    /// instead of telling the visitor (who may not be the owner).
    AlreadyRegistered { reset_link: String },
    /// A one-time login code.
    LoginCode { code: String, valid_minutes: u32 },
    /// The link to choose a new password.
    PasswordReset { link: String },
    /// The password was changed (by a reset, or by its owner): the other sessions were ended.
    PasswordChanged,
    /// TOTP was turned off: the account is back to one factor.
    TotpDisabled,
    /// New recovery codes were made: the old ones stopped working.
    RecoveryCodesReplaced,
}

impl AccountEmail {
    /// The message, in the shared layout. The notices of a change to the account's security
    /// bypass the address's cap (see [`Message::bypasses_address_cap`]); the others do not.
    pub fn message(&self) -> Message {
        let (template, subject, paragraphs, code, action): (_, _, Vec<String>, _, _) = match self
        {
            Self::VerifyEmail { link } => (
                "verify_email",
                "Confirm your email address",
                vec![
                    "Please confirm that this address is yours to finish creating your account.".to_owned(),
                    "If you did not sign up, ignore this message: no account will be activated.".to_owned(),
                ],
                None,
                Some(("Confirm my email address", link)),
            ),
            Self::AlreadyRegistered { reset_link } => (
                "already_registered",
                "You already have an account",
                vec![
                    "Someone (hopefully you) tried to sign up with this address, which already has an account."
                        .to_owned(),
                    "If you forgot your password, you can choose a new one. Otherwise, ignore this message."
                        .to_owned(),
                ],
                None,
                Some(("Choose a new password", reset_link)),
            ),
            Self::LoginCode { code, valid_minutes } => (
                "login_code",
                "Your login code",
                vec![format!(
                    "Here is your one-time login code. It is valid for {valid_minutes} minutes and works once. \
                     If you did not ask for it, ignore this message."
                )],
                Some(code.clone()),
                None,
            ),
            Self::PasswordReset { link } => (
                "password_reset",
                "Choose a new password",
                vec![
                    "Someone asked to reset the password of your account. The link below works once, for a short time."
                        .to_owned(),
                    "If it was not you, ignore this message: your password stays as it is.".to_owned(),
                ],
                None,
                Some(("Choose a new password", link)),
            ),
            Self::PasswordChanged => (
                "password_changed",
                "Your password was changed",
                vec![
                    "The password of your account was just changed, and your other devices were signed out.".to_owned(),
                    "If this was not you, reset your password now and contact us.".to_owned(),
                ],
                None,
                None,
            ),
            Self::TotpDisabled => (
                "totp_disabled",
                "Two-factor authentication was turned off",
                vec![
                    "Two-factor authentication (TOTP) was just turned off for your account: a password alone now logs in.".to_owned(),
                    "If this was not you, reset your password now, turn two-factor authentication back on, and contact us.".to_owned(),
                ],
                None,
                None,
            ),
            Self::RecoveryCodesReplaced => (
                "recovery_codes_replaced",
                "New recovery codes were made",
                vec![
                    "New recovery codes were just made for your account; the old ones no longer work.".to_owned(),
                    "If this was not you, reset your password now and contact us.".to_owned(),
                ],
                None,
                None,
            ),
        };
        Message {
            template: template.to_owned(),
            subject: subject.to_owned(),
            paragraphs,
            code,
            action: action.map(|(label, url): (&str, &String)| Action {
                label: label.to_owned(),
                url: url.clone(),
            }),
            bypasses_address_cap: matches!(
                self,
                Self::PasswordChanged | Self::TotpDisabled | Self::RecoveryCodesReplaced
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_security_notices_bypass_the_address_cap() {
        let link = "https://app.example.com/x?token=t".to_owned();
        let capped = [
            AccountEmail::VerifyEmail { link: link.clone() },
            AccountEmail::AlreadyRegistered {
                reset_link: link.clone(),
            },
            AccountEmail::LoginCode {
                code: "042137".to_owned(),
                valid_minutes: 10,
            },
            AccountEmail::PasswordReset { link },
        ];
        for email in capped {
            assert!(!email.message().bypasses_address_cap, "{email:?}");
        }
        for email in [
            AccountEmail::PasswordChanged,
            AccountEmail::TotpDisabled,
            AccountEmail::RecoveryCodesReplaced,
        ] {
            assert!(email.message().bypasses_address_cap, "{email:?}");
        }
    }

    #[test]
    fn links_and_codes_travel_in_the_message() {
        let link = "https://app.example.com/verify-email?token=abc_DEF-123";
        let message = AccountEmail::VerifyEmail {
            link: link.to_owned(),
        }
        .message();
        assert_eq!(message.action.unwrap().url, link);
        let code = AccountEmail::LoginCode {
            code: "042137".to_owned(),
            valid_minutes: 10,
        }
        .message();
        assert_eq!(code.code.as_deref(), Some("042137"));
        assert!(code.paragraphs[0].contains("10 minutes"));
    }
}
