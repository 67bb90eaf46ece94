//! Just enough PEM (RFC 7468) to read the keys `openssl genpkey -algorithm ed25519` writes,
//! without a PEM crate.

use base64::Engine;

/// The DER bodies of every `-----BEGIN <label>-----` block in `text`, in order.
pub(crate) fn blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or_else(|| format!("a `{begin}` block has no `{end}` line"))?;
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("a `{label}` block is not valid base64 ({e})"))?;
        found.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(found)
}
