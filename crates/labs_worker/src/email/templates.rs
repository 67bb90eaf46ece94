//! Email templates: a text and an HTML version of each message, checked at compile time
//! (askama): a missing variable is a build error, not a broken email. HTML templates escape
//! every value.

use askama::Template;
use labs_jobs::jobs::Email;

/// A message ready to send.
pub(crate) struct Rendered {
    pub(crate) template: &'static str,
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
}

#[derive(Template)]
#[template(path = "test.txt")]
struct TestText<'a> {
    requested_by: &'a str,
}

#[derive(Template)]
#[template(path = "test.html")]
struct TestHtml<'a> {
    requested_by: &'a str,
}

pub(crate) fn render(email: &Email) -> Result<Rendered, askama::Error> {
    Ok(match email {
        Email::Test { requested_by } => Rendered {
            template: "test",
            subject: "labs: outgoing mail works".to_owned(),
            text: TestText { requested_by }.render()?,
            html: TestHtml { requested_by }.render()?,
        },
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
}
