//! The OpenAPI 3.1 document: generated from the handlers' annotations, then finished here
//! with what holds for every operation.

use labs_http::Problem;
use labs_http::problem::PROBLEM_JSON;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "labs",
        description = "A production-grade API server template: Postgres, Redis, background jobs, \
                       auth and payments. Every error is an RFC 9457 problem document \
                       (`application/problem+json`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    tags(
        (name = "meta", description = "What this service is"),
        (name = "ext", description = "The original template's echo and health check"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "auth", description = "Accounts, logins, sessions and second factors"),
        (name = "users", description = "Accounts, for administrators"),
        (name = "admin", description = "Operations views, for administrators"),
    )
)]
struct ApiDoc;

/// The document's fixed parts: info, tags, shared schemas.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The security schemes: a Bearer JWT, and the OAuth 2.0 password flow that obtains one.
const BEARER: &str = "bearerAuth";
const OAUTH2: &str = "oauth2";

/// Name of the shared response every operation may answer with.
const PROBLEM_RESPONSE: &str = "Problem";

/// Publishes the document under `root_path` and declares, once for all operations, that any
/// of them may answer with a problem document (`default` response), so that clients and
/// fuzzers know the shape of every error.
pub fn finish(mut document: utoipa::openapi::OpenApi, root_path: &str) -> utoipa::openapi::OpenApi {
    let server = if root_path.is_empty() { "/" } else { root_path };
    document.servers = Some(vec![Server::new(server)]);

    let problem = ResponseBuilder::new()
        .description("An error, described by RFC 9457 problem details")
        .content(PROBLEM_JSON, problem_content())
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components
        .responses
        .insert(PROBLEM_RESPONSE.to_owned(), RefOr::T(problem));
    // How to authenticate: a Bearer JWT, which the docs' "Authorize" button obtains with the
    // OAuth 2.0 password flow at /auth/token.
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        OAUTH2,
        SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
            format!("{root_path}/auth/token"),
            Scopes::new(),
        ))])),
    );

    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            add_default_problem(operation);
            add_validation_problem(operation);
            describe_errors_as_problems(operation);
            accept_oauth2_where_bearer(operation);
            say_when_public(operation);
        }
    }
    document
}

fn add_default_problem(operation: &mut Operation) {
    operation
        .responses
        .responses
        .entry("default".to_owned())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(PROBLEM_RESPONSE)));
}

/// Every operation that reads content from the request (a body, query or path parameters)
/// may refuse it with a 422 listing every failing field (docs/API-CONVENTIONS.md): said here
/// once, so that a new handler cannot forget it.
fn add_validation_problem(operation: &mut Operation) {
    // Headers are not validated content: a condition such as `If-None-Match` never fails.
    let reads_content = operation.request_body.is_some()
        || operation.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path),
            RefOr::Ref(_) => true,
        });
    if !reads_content {
        return;
    }
    let response = operation
        .responses
        .responses
        .entry("422".to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description("The request's content is invalid")
                    .build(),
            )
        });
    if let RefOr::T(response) = response
        && !response.description.contains("`errors`")
    {
        response
            .description
            .push_str(": `errors` lists every failing field");
    }
}

/// Every operation that takes the Bearer token takes it from the OAuth 2.0 password flow
/// too: the same token, but Swagger UI's "Authorize" fills in only the schemes an operation
/// lists, so without this its "Try it out" sent no token after an OAuth login. Written once
/// here rather than on each handler, so that a new secured handler cannot forget it.
fn accept_oauth2_where_bearer(operation: &mut Operation) {
    let Some(requirements) = operation.security.as_mut() else {
        return;
    };
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    if requirements.contains(&bearer) {
        requirements.push(SecurityRequirement::new(OAUTH2, Vec::<String>::new()));
    }
}

/// A problem document's content: the `Problem` schema.
fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}

/// Every error answer (4xx, 5xx) is a problem document: a handler's `(status = 401,
/// description = "...")` says when, this says what, so that generated clients type the error
/// of every operation (they typed most as `unknown` when only `default` had a body).
fn describe_errors_as_problems(operation: &mut Operation) {
    for (status, response) in &mut operation.responses.responses {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response)
            && response.content.is_empty()
        {
            response
                .content
                .insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
        }
    }
}

/// An operation that takes no credentials says so (`security: []`), rather than leaving
/// readers (and Redocly's `security-defined` rule) to guess.
fn say_when_public(operation: &mut Operation) {
    operation.security.get_or_insert_with(Vec::new);
}
