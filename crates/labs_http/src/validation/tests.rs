//! Unit tests of `validation` (a file of their own, so that the module reads in one screen).

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Signup {
    email: labs_domain::Email,
    password: labs_domain::Password,
    age: u8,
    #[serde(default)]
    nick: Option<String>,
    #[serde(default)]
    address: Option<Address>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Address {
    city: String,
    post_code: u32,
}

fn errors(body: Value) -> Vec<(String, String)> {
    json_object::<Signup>(body)
        .unwrap_err()
        .into_iter()
        .map(|e| (e.pointer, e.code))
        .collect()
}

fn pair(pointer: &str, code: &str) -> (String, String) {
    (pointer.to_owned(), code.to_owned())
}

#[test]
fn every_failing_field_is_listed_with_its_rule() {
    let found = errors(serde_json::json!({
        "email": "not-an-address",
        "password": "short",
        "age": "eleven",
        "colour": "red",
    }));
    assert_eq!(
        found,
        [
            pair("/age", "invalid-type"),
            pair("/colour", "unknown-field"),
            pair("/email", "invalid-email"),
            pair("/password", "too-short"),
        ]
    );
}

#[test]
fn every_missing_field_is_listed_not_only_the_first() {
    let found = errors(serde_json::json!({ "nick": 7 }));
    assert_eq!(
        found,
        [
            pair("/age", "missing"),
            pair("/email", "missing"),
            pair("/nick", "invalid-type"),
            pair("/password", "missing"),
        ]
    );
}

#[test]
fn nested_fields_are_located_by_their_pointer() {
    let found = errors(serde_json::json!({
        "email": "ada@example.com",
        "password": "long enough",
        "age": 300,
        "address": { "postCode": "x", "a/b": 1 },
    }));
    assert_eq!(
        found,
        [
            pair("/address/a~1b", "unknown-field"),
            pair("/address/city", "missing"),
            pair("/address/postCode", "invalid-type"),
            pair("/age", "invalid-value"),
        ]
    );
}

#[test]
fn a_valid_body_reads_as_before() {
    let read = json_object::<Signup>(serde_json::json!({
        "email": "Ada@Example.com",
        "password": "long enough",
        "age": 36,
    }))
    .unwrap();
    assert_eq!(read.email.as_str(), "ada@example.com");
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Page {
    #[serde(default)]
    offset: u32,
    #[serde(default)]
    limit: u32,
    sort: Option<String>,
}

#[test]
fn every_failing_query_parameter_is_listed_by_name() {
    let found: Vec<(String, String)> =
        urlencoded::<Page>(b"offset=-1&limit=x&sort=a", |f| f.to_owned())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.pointer, e.code))
            .collect();
    assert_eq!(
        found,
        [
            pair("limit", "invalid-value"),
            pair("offset", "invalid-value")
        ]
    );
    let page = urlencoded::<Page>(b"limit=3", str::to_owned).unwrap();
    assert_eq!((page.offset, page.limit), (0, 3));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Login {
    email: String,
}

/// A form's fields are named by RFC 6901 pointers (as the JSON body's are): `~` and `/` in a
/// field's name are escaped, so that the pointer names that field and no other.
#[test]
fn form_fields_are_named_by_escaped_pointers() {
    let found: Vec<(String, String)> =
        urlencoded::<Login>(b"email=a&a%2Fb~c=1", super::member_pointer)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.pointer, e.code))
            .collect();
    assert_eq!(found, [pair("/a~1b~0c", "unknown-field")]);
    assert_eq!(super::member_pointer("email"), "/email");
}
