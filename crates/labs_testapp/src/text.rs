//! Reading what the application sent: emails (quoted-printable, links) and metrics.

/// Undoes quoted-printable (soft line breaks and `=XX`), which lettre uses for long lines.
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first `<page>?token=` link in `message` (decoded).
pub fn link_token(message: &str, page: &str) -> String {
    let marker = format!("/{page}?token=");
    let start = message
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {message}"))
        + marker.len();
    message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The 6-digit code on a line of its own in `message` (a login-code email).
pub fn code_in(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {message}"))
        .to_owned()
}

/// The first link in `message` (decoded) that opens `page`: `http…/<page>?token=…`.
pub fn emailed_link(message: &str, page: &str) -> String {
    let marker = format!("/{page}?token=");
    let at = message
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {message}"));
    let start = message[..at]
        .rfind("http")
        .expect("a link starts with http");
    format!(
        "{}{marker}{}",
        &message[start..at],
        link_token(message, page)
    )
}

/// The value of the series `name` whose labels include all of `labels`, in Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(key, value)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{value}\""))
                });
            matches.then(|| value.parse().ok()).flatten()
        })
}
