//! Unit tests of `wire` (a file of their own, so that the module reads in one screen).

use super::*;

#[test]
fn a_host_is_a_host_and_optional_port() {
    for ok in [
        "labs",
        "labs.example.com:8443",
        "127.0.0.1:8080",
        "[::1]:80",
        "",
    ] {
        assert!(is_valid_host(&HeaderValue::from_static(ok)), "{ok}");
    }
    for bad in ["user@labs", "a b", "labs/path", "labs:port"] {
        assert!(!is_valid_host(&HeaderValue::from_static(bad)), "{bad}");
    }
}

#[test]
fn only_a_bare_error_head_counts_as_canned() {
    let date = "date: Tue, 01 Dec 2026 19:00:00 GMT";
    let canned = format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\n\r\n");
    assert_eq!(
        canned_status(canned.as_bytes()),
        Some(StatusCode::BAD_REQUEST)
    );
    let too_large = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n{date}\r\n\r\n"
    );
    assert_eq!(
        canned_status(too_large.as_bytes()),
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    // Ours: a body, or any header of our own.
    let ours = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n{date}\r\n\r\n"
    );
    assert_eq!(canned_status(ours.as_bytes()), None);
    assert_eq!(canned_status(format!("{canned}{{}}").as_bytes()), None);
    assert_eq!(
        canned_status(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        None
    );
}
