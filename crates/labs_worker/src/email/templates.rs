//! The one layout of every email: a text and an HTML version, checked at compile time by
//! askama (the HTML escapes every value), filled from a feature's [`Message`], so that every
//! email looks the same while its wording lives with its feature.

use askama::Template;
use labs_jobs::jobs::{Action, Message};

/// A message ready to send.
pub(crate) struct Rendered {
    pub(crate) template: String,
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
}

#[derive(Template)]
#[template(path = "message.txt")]
struct Text<'a> {
    paragraphs: &'a [String],
    code: Option<&'a str>,
    action: Option<&'a Action>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct Html<'a> {
    paragraphs: &'a [String],
    code: Option<&'a str>,
    action: Option<&'a Action>,
}

pub(crate) fn render(message: &Message) -> Result<Rendered, askama::Error> {
    let text = Text {
        paragraphs: &message.paragraphs,
        code: message.code.as_deref(),
        action: message.action.as_ref(),
    }
    .render()?;
    let html = Html {
        paragraphs: &message.paragraphs,
        code: message.code.as_deref(),
        action: message.action.as_ref(),
    }
    .render()?;
    Ok(Rendered {
        template: message.template.clone(),
        subject: message.subject.clone(),
        text,
        html,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_text_keeps() {
        let rendered = render(&Message::test("<script>alert(1)</script>")).unwrap();
        assert!(rendered.text.contains("<script>alert(1)</script>"));
        assert!(!rendered.html.contains("<script>"));
        assert!(
            rendered.html.contains("&#60;script&#62;") || rendered.html.contains("&lt;script&gt;")
        );
    }

    #[test]
    fn links_and_codes_appear_in_both_versions() {
        let link = "https://app.example.com/verify-email?token=abc_DEF-123";
        let rendered = render(&Message {
            action: Some(Action {
                label: "Confirm".to_owned(),
                url: link.to_owned(),
            }),
            ..Message::test("ops")
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
        let rendered = render(&Message {
            code: Some("042137".to_owned()),
            ..Message::test("ops")
        })
        .unwrap();
        assert!(rendered.text.contains("042137") && rendered.html.contains("042137"));
    }
}
