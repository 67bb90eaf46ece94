//! Every failing field of a request's content, not only the first (docs/API-CONVENTIONS.md,
//! "Validation errors").
//!
//! serde stops at the first error. To name them all, content that failed is read again: each
//! error's field is recorded and taken out, and the rest read again, until it passes or only
//! missing fields are left. serde checks an object's missing fields only after every present
//! one has passed, so a "missing" answer means the object is done. The fields missing from
//! the start come from the body's schema (its `required` list), since serde names only the
//! first of them. The list is in pointer order, whatever the order of the content.
//!
//! The happy path pays nothing: content is first read directly, as before, and only refused
//! content is read again (at most [`MAX_ERRORS`] times). The rejected alternative, validating
//! the JSON against the OpenAPI schema with a JSON Schema crate, would add a dependency and a
//! second set of rules beside serde's, which could disagree with what the handler receives.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_path_to_error::Segment;
use utoipa::ToSchema;

/// The most field errors one answer lists (and so the most times a body is read again).
pub const MAX_ERRORS: usize = 32;

/// One failing part of a request's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "pointer": "/email",
    "code": "invalid-email",
    "detail": "`email` is not a valid email address."
}))]
pub struct FieldError {
    /// Where: a JSON Pointer (RFC 6901) into the body, such as `/email` (`""` for the body as
    /// a whole), or the name of the query or path parameter, such as `limit`.
    pub pointer: String,
    /// Which rule, machine-readable and stable: `missing`, `unknown-field`, `invalid-type`,
    /// `invalid-value`, `invalid-email`, `too-short`, `too-long`, `out-of-range`, ...
    pub code: String,
    /// What is wrong, for a human.
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, code: impl Into<String>, detail: &str) -> Self {
        Self {
            pointer: pointer.into(),
            code: code.into(),
            detail: sentence(detail),
        }
    }

    fn missing(pointer: String) -> Self {
        let name = pointer.rsplit('/').next().unwrap_or_default().to_owned();
        Self::new(pointer, "missing", &format!("`{name}` is required"))
    }

    /// The error serde reported for the value at `pointer`, with the code its message names.
    pub(crate) fn from_serde(pointer: String, message: &str) -> Self {
        if let Some((code, detail)) = labs_domain::refusal::split(message) {
            return Self::new(pointer, code, detail);
        }
        let code = [
            ("unknown field", "unknown-field"),
            ("invalid type", "invalid-type"),
            ("invalid length", "invalid-length"),
            ("unknown variant", "invalid-value"),
            ("invalid value", "invalid-value"),
            ("duplicate field", "duplicate-field"),
        ]
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("invalid-value", |(_, code)| code);
        Self::new(pointer, code, message)
    }
}

/// `text` as a sentence: starting with a capital, ending with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Checks a list's `offset` (0 to 1,000,000) and `limit` (1 to 100), the bounds every paged
/// endpoint documents: a 422 naming each parameter out of range. Returns them as SQL binds.
pub fn page_bounds(offset: u32, limit: u32) -> Result<(i64, i64), crate::ApiError> {
    let mut errors = Vec::new();
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            "out-of-range",
            "`limit` must be 1 to 100",
        ));
    }
    if offset > 1_000_000 {
        errors.push(FieldError::new(
            "offset",
            "out-of-range",
            "`offset` must be 0 to 1000000",
        ));
    }
    if errors.is_empty() {
        Ok((i64::from(offset), i64::from(limit)))
    } else {
        Err(crate::ApiError::InvalidQuery(errors))
    }
}

/// The human summary of a list: the errors' details, each after its field.
pub(crate) fn summary(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match e.pointer.as_str() {
            "" => e.detail.clone(),
            field => format!("`{field}`: {}", e.detail),
        })
        .collect();
    match parts.len() {
        0 => "The request is invalid.".to_owned(),
        1 => parts.concat(),
        n => format!("{n} fields are invalid (see `errors`): {}", parts.join(" ")),
    }
}

/// Reads a JSON object already parsed into `value` as a `T` or, when it does not fit, lists
/// every field that fails.
pub(crate) fn json_object<T: DeserializeOwned + utoipa::PartialSchema>(
    mut value: Value,
) -> Result<T, Vec<FieldError>> {
    let mut errors = Vec::new();
    // Taken out by us: a later "missing" answer for one of these is the end, not an error.
    let mut taken: HashSet<String> = HashSet::new();
    if let Value::Object(object) = &value {
        for name in required_fields::<T>() {
            if !object.contains_key(&name) {
                let pointer = pointer_of(&[Segment::Map { key: name }]);
                taken.insert(pointer.clone());
                errors.push(FieldError::missing(pointer));
            }
        }
    }
    // Bounded twice: by the errors listed, and by the reads (a read that lists nothing new
    // still takes a member out, so there are at most as many as the type has fields).
    for _ in 0..=MAX_ERRORS {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(read) if errors.is_empty() => return Ok(read),
            Ok(_) => break,
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.inner().to_string();
        if let Some(field) = named(&message, "missing field `") {
            let at = pointer_of(&[segments.clone(), vec![Segment::Map { key: field }]].concat());
            if !taken.contains(&at) {
                errors.push(FieldError::missing(at));
            }
            // Every present field of this object has passed. The body's own object is the
            // end; a nested one is taken out, and its parent read on.
            if segments.is_empty() || !take(&mut value, &segments) {
                break;
            }
            taken.insert(pointer_of(&segments));
            continue;
        }
        let mut at = segments;
        if let Some(field) = named(&message, "unknown field `") {
            // serde reports an unknown key at its object, or at the key itself.
            if !matches!(at.last(), Some(Segment::Map { key }) if *key == field) {
                at.push(Segment::Map { key: field });
            }
        }
        let pointer = pointer_of(&at);
        errors.push(FieldError::from_serde(pointer.clone(), &message));
        if at.is_empty() || !take(&mut value, &at) {
            break;
        }
        taken.insert(pointer);
    }
    errors.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    Err(errors)
}

/// Reads `application/x-www-form-urlencoded` content (a query string or a form body) as a
/// `T` or lists every field that fails, each named by `name(field)`.
pub(crate) fn urlencoded<T: DeserializeOwned>(
    input: &[u8],
    name: impl Fn(&str) -> String,
) -> Result<T, Vec<FieldError>> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(input).into_owned().collect();
    let mut errors = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    while errors.len() < MAX_ERRORS {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        let error = match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(read) if errors.is_empty() => return Ok(read),
            Ok(_) => break,
            Err(error) => error,
        };
        let message = error.inner().to_string();
        let field = match error.path().iter().next() {
            Some(Segment::Map { key }) => Some(key.clone()),
            _ => named(&message, "unknown field `").or_else(|| named(&message, "missing field `")),
        };
        let Some(field) = field else {
            errors.push(FieldError::from_serde(String::new(), &message));
            break;
        };
        if let Some(missing) = named(&message, "missing field `") {
            // Every present field has passed.
            if !taken.contains(&missing) {
                errors.push(FieldError::missing(name(&missing)));
            }
            break;
        }
        errors.push(FieldError::from_serde(name(&field), &message));
        let before = pairs.len();
        pairs.retain(|(key, _)| *key != field);
        if pairs.len() == before {
            break;
        }
        taken.insert(field);
    }
    errors.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    Err(errors)
}

/// `field` in a serde message `{prefix}field` followed by a backtick.
fn named(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The top-level `required` list of `T`'s schema (none when it is not an inline object).
fn required_fields<T: utoipa::PartialSchema>() -> Vec<String> {
    match T::schema() {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object)) => {
            object.required
        }
        _ => Vec::new(),
    }
}

/// The RFC 6901 pointer of a top-level member named `key`: `/key`, with `~` and `/` escaped
/// (`a/b` is `/a~1b`), so that a client can follow it whatever the name.
pub(crate) fn member_pointer(key: &str) -> String {
    format!("/{}", escape_key(key))
}

fn escape_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// RFC 6901: `/a/0/b`, with `~` and `/` escaped in keys.
fn pointer_of(segments: &[Segment]) -> String {
    let mut pointer = String::new();
    for segment in segments {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&escape_key(key));
            }
            Segment::Unknown => pointer.push('-'),
        }
    }
    pointer
}

/// Takes the member at `segments` out of `value`; false when it cannot (an array element,
/// whose removal would shift its neighbours' pointers, or a path that is not there).
fn take(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = value;
    for segment in parents {
        at = match (segment, at) {
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => {
                match map.get_mut(key) {
                    Some(next) => next,
                    None => return false,
                }
            }
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, at) {
        (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => {
            map.remove(key).is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
