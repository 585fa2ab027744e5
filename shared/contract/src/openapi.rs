//! The OpenAPI 3.1 document, built from the route table: every route of
//! [`edge::routes::ROUTES`] is one operation, its security from the route's access and the
//! permission table, its bodies from [`crate::requests`], [`crate::views`] and the stores'
//! records. [`operation_of`] matches every route id, so a route added to the table without
//! its entry here does not compile.

// NOTE: over 400 lines: one entry per route, read as a table.

use crate::{requests as rq, views as v};
use adapters::store::messages::{ConversationView, MessageView, TemplateView};
use adapters::store::tenants::{ApiKeyRecord, UserRecord};
use domain::access::{Action, Caller, allows};
use domain::user::Role;
use edge::routes::{
    Access, AdminRoute, AuthRoute, B2bRoute, ChannelRoute, HealthRoute, MessagesRoute,
    MetaWebhookRoute, ROUTES, Route, RouteId, TenantsRoute, WebhooksRoute,
};
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ComponentsBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required, ResponseBuilder,
    ServerBuilder, tag::TagBuilder,
};

pub const JSON: &str = "application/json";
pub const PROBLEM: &str = "application/problem+json";

/// The security schemes: all three are bearer tokens, told apart by their prefix.
pub const USER_TOKEN: &str = "userToken";
pub const API_KEY: &str = "apiKey";
pub const PLATFORM_KEY: &str = "platformKey";

/// Component schemas collected while the operations are described.
#[derive(Default)]
struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// A reference to `T`'s schema, registering it (and what it refers to).
    fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().to_string();
        if !self.0.iter().any(|(n, _)| *n == name) {
            self.0.push((name.clone(), T::schema()));
            T::schemas(&mut self.0);
        }
        Ref::from_schema_name(name).into()
    }

    /// `{"items":[T…],"nextCursor":null|"…"}`.
    fn list_of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let item = self.of::<T>();
        ObjectBuilder::new()
            .property("items", ArrayBuilder::new().items(item))
            .required("items")
            .property("nextCursor", nullable_string())
            .required("nextCursor")
            .into()
    }
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn string() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn integer(min: i64, max: i64) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min)).maximum(Some(max)).into()
}

fn one_of(values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).into()
}

/// A body or an answer's content.
enum Body {
    Json(Box<RefOr<Schema>>),
    Text(&'static str),
}

struct Answer {
    status: u16,
    description: &'static str,
    body: Option<Body>,
    /// Another operation this answer feeds: (link name, operation id, parameter, where).
    links: Vec<(&'static str, String, &'static str, &'static str)>,
    /// The same answer as text of these types, when asked.
    also: Vec<&'static str>,
}

struct Query {
    name: &'static str,
    schema: RefOr<Schema>,
    description: &'static str,
    required: bool,
}

/// One route's entry.
struct Entry {
    tag: &'static str,
    summary: &'static str,
    body: Option<(RefOr<Schema>, bool)>,
    answers: Vec<Answer>,
    query: Vec<Query>,
    headers: Vec<(&'static str, &'static str, bool)>,
    /// Errors particular to this route (the usual ones follow from its shape).
    errors: Vec<u16>,
}

impl Entry {
    fn new(tag: &'static str, summary: &'static str) -> Self {
        Self {
            tag,
            summary,
            body: None,
            answers: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn body(mut self, schema: RefOr<Schema>) -> Self {
        self.body = Some((schema, true));
        self
    }

    fn optional_body(mut self, schema: RefOr<Schema>) -> Self {
        self.body = Some((schema, false));
        self
    }

    fn answer(mut self, status: u16, description: &'static str, body: Option<Body>) -> Self {
        let (links, also) = (Vec::new(), Vec::new());
        self.answers.push(Answer { status, description, body, links, also });
        self
    }

    fn json(self, status: u16, description: &'static str, schema: RefOr<Schema>) -> Self {
        self.answer(status, description, Some(Body::Json(Box::new(schema))))
    }

    fn text(self, status: u16, description: &'static str, mime: &'static str) -> Self {
        self.answer(status, description, Some(Body::Text(mime)))
    }

    fn empty(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, None)
    }

    /// The last answer's `field` is `parameter` of the operation `to`.
    fn link(
        mut self,
        name: &'static str,
        to: RouteId,
        parameter: &'static str,
        field: &'static str,
    ) -> Self {
        if let Some(last) = self.answers.last_mut() {
            last.links.push((name, operation_id(to), parameter, field));
        }
        self
    }

    /// The last answer also comes as text of type `mime`.
    fn or_as(mut self, mime: &'static str) -> Self {
        if let Some(last) = self.answers.last_mut() {
            last.also.push(mime);
        }
        self
    }

    fn query(
        mut self,
        name: &'static str,
        schema: RefOr<Schema>,
        description: &'static str,
    ) -> Self {
        self.query.push(Query { name, schema, description, required: false });
        self
    }

    fn required_query(mut self, name: &'static str, description: &'static str) -> Self {
        self.query.push(Query { name, schema: string(), description, required: true });
        self
    }

    fn paged(self, max: i64) -> Self {
        self.query("limit", integer(1, max), "Items per page.").query(
            "cursor",
            string(),
            "The `nextCursor` of the previous page.",
        )
    }

    fn header(mut self, name: &'static str, description: &'static str, required: bool) -> Self {
        self.headers.push((name, description, required));
        self
    }

    fn errors(mut self, codes: &[u16]) -> Self {
        self.errors.extend_from_slice(codes);
        self
    }
}

/// `function.Variant`: unique, and stable while the route table is.
pub fn operation_id(id: RouteId) -> String {
    let debug = format!("{id:?}");
    let variant = debug.split_once('(').map(|(_, rest)| rest.trim_end_matches(')')).unwrap_or("");
    format!("{}.{variant}", id.function())
}

/// The document, as the API serves it at `GET /api/openapi.json`.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::default();
    let mut paths = PathsBuilder::new().build();
    for route in ROUTES {
        if let Some(entry) = operation_of(route.id, &mut schemas) {
            let operation = operation(route, entry, &mut schemas);
            paths.add_path_operation(route.path, vec![method(route.method)], operation);
        }
    }
    let bearer = |format: &str, description: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some(format.to_owned());
        http.description = Some(description.to_owned());
        SecurityScheme::Http(http)
    };
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas.0)
        .security_scheme(
            USER_TOKEN,
            bearer("JWT", "A user's access token from `/api/auth/login` (15 minutes)."),
        )
        .security_scheme(API_KEY, bearer("sbk_…", "A tenant API key from `POST /api/api-keys`."))
        .security_scheme(
            PLATFORM_KEY,
            bearer(
                "sbp_…",
                "A partner platform's key. On tenant routes it acts for one of the platform's \
                 users named by the `X-Tenant-Id` header.",
            ),
        )
        .build();
    let tags = [
        ("health", "Health checks and this document."),
        ("auth", "Sign-up, login and tokens."),
        ("tenant", "The tenant, its users, API keys and data."),
        ("channel", "The WhatsApp channel and WhatsApp Web sessions."),
        ("meta", "Webhooks from Meta (signed)."),
        ("messages", "Messages, conversations, templates and usage."),
        ("webhooks", "Partner webhook subscriptions and their deliveries."),
        ("b2b", "Partner platforms' users."),
        ("admin", "Operators (SYSTEM_ADMIN)."),
    ];
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Switchboard")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Multi-tenant WhatsApp Business platform. Errors are RFC 9457 problem \
                     details; lists take `limit` and `cursor`; times are RFC 3339 UTC; phone \
                     numbers are E.164.",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags.map(|(name, d)| TagBuilder::new().name(name).description(Some(d)).build())))
        .build()
}

/// The document as served: pretty JSON, the same bytes as `docs/openapi.json`.
pub fn document_json() -> String {
    let mut value = serde_json::to_value(document()).unwrap_or_else(|e| {
        // NOTE: serializing our own document cannot fail; if it ever does, say so in it.
        json!({"openapi": "3.1.0", "error": e.to_string()})
    });
    fix_links(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// NOTE: utoipa 5.5 writes a link's `operationId` as `operation_id`, which OpenAPI does not
/// know (openapi-spec-validator refuses it); renamed here.
fn fix_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|r| r.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".to_owned(), id);
            }
        }
    }
}

fn method(name: &str) -> HttpMethod {
    match name {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// Who may call a route: the schemes whose callers the permission table allows.
pub fn security_of(access: Access) -> Vec<&'static str> {
    let user = |a: Action| Role::ALL.iter().any(|r| allows(Caller::User(*r), a));
    match access {
        Access::Public => Vec::new(),
        Access::RequiresForUser(_) => vec![PLATFORM_KEY],
        Access::Requires(a) | Access::RequiresOnceFound(a) => {
            let mut schemes = Vec::new();
            if user(a) {
                schemes.push(USER_TOKEN);
            }
            if allows(Caller::ApiKey, a) {
                schemes.push(API_KEY);
            }
            if allows(Caller::Platform, a) || allows(Caller::PlatformForUser, a) {
                schemes.push(PLATFORM_KEY);
            }
            schemes
        }
    }
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

fn operation(
    route: &Route,
    entry: Entry,
    schemas: &mut Schemas,
) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id(route.id)))
        .summary(Some(entry.summary))
        .tag(entry.tag);
    for name in path_parameters(route.path) {
        op = op.parameter(parameter(name, ParameterIn::Path, true, None, string()));
    }
    let has_query = !entry.query.is_empty();
    for q in entry.query {
        op = op.parameter(parameter(
            q.name,
            ParameterIn::Query,
            q.required,
            Some(q.description),
            q.schema,
        ));
    }
    for (name, description, is_required) in entry.headers {
        op = op.parameter(parameter(
            name,
            ParameterIn::Header,
            is_required,
            Some(description),
            string(),
        ));
    }
    let has_body = entry.body.is_some();
    if let Some((schema, required)) = entry.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                .required(Some(required_if(required)))
                .build(),
        ));
    }
    for answer in entry.answers {
        let mut response = ResponseBuilder::new().description(answer.description);
        match answer.body {
            Some(Body::Json(schema)) => {
                response =
                    response.content(JSON, ContentBuilder::new().schema(Some(*schema)).build())
            }
            Some(Body::Text(mime)) => {
                response =
                    response.content(mime, ContentBuilder::new().schema(Some(string())).build())
            }
            None => {}
        }
        for mime in answer.also {
            response = response.content(mime, ContentBuilder::new().schema(Some(string())).build());
        }
        for (name, to, parameter, field) in answer.links {
            response = response.link(
                name,
                LinkBuilder::new()
                    .operation_id(to)
                    .parameter(parameter, format!("$response.body#/{field}"))
                    .build(),
            );
        }
        op = op.response(answer.status.to_string(), response.build());
    }
    // The errors every route of this shape can answer.
    let security = security_of(route.access);
    let mut errors = entry.errors;
    if has_body {
        errors.extend([400, 413, 422]);
    }
    if has_query {
        errors.push(422);
    }
    if !security.is_empty() {
        errors.extend([401, 403]);
    }
    if path_parameters(route.path).next().is_some() || !security.is_empty() {
        errors.push(404);
    }
    errors.push(503);
    errors.sort_unstable();
    errors.dedup();
    let problem = schemas.of::<edge::http::Problem>();
    for status in errors {
        let mut response = ResponseBuilder::new()
            .description(problem_description(status))
            .content(PROBLEM, ContentBuilder::new().schema(Some(problem.clone())).build());
        if matches!(status, 429 | 503) {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("Seconds to wait before trying again."))
                    .build(),
            );
        }
        op = op.response(status.to_string(), response.build());
    }
    for scheme in security {
        op = op.security(SecurityRequirement::new(scheme, Vec::<String>::new()));
    }
    op.build()
}

fn required_if(required: bool) -> Required {
    if required { Required::True } else { Required::False }
}

fn parameter(
    name: &str,
    place: ParameterIn,
    required: bool,
    description: Option<&str>,
    schema: RefOr<Schema>,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required_if(required))
        .description(description)
        .schema(Some(schema))
}

fn problem_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed JSON.",
        401 => "No valid credentials.",
        403 => "The caller may not do this.",
        404 => "Not found (another tenant's resource is not found either).",
        409 => "Conflicts with the current state.",
        413 => "The body is too large.",
        422 => "Failed validation: `errors` names every failing field.",
        429 => "Too many requests: `Retry-After` says when to try again.",
        503 => "A dependency is unavailable.",
        _ => "An error.",
    }
}

/// Each route's entry; `None` only for the catch-all route, which is not an operation.
fn operation_of(id: RouteId, s: &mut Schemas) -> Option<Entry> {
    use RouteId as R;
    let e = Entry::new;
    Some(match id {
        R::HealthRoute(route) => match route {
            HealthRoute::Health => e("health", "Health of every dependency")
                .json(200, "Every dependency answers.", s.of::<v::HealthReport>())
                .json(503, "A dependency does not answer (marked).", s.of::<v::HealthReport>()),
            HealthRoute::Live => {
                e("health", "The process runs").json(200, "Alive.", s.of::<v::Liveness>())
            }
            HealthRoute::Ready => e("health", "Ready to serve")
                .json(200, "Every dependency answers.", s.of::<v::HealthReport>())
                .json(503, "A dependency does not answer.", s.of::<v::HealthReport>()),
            HealthRoute::OpenApi => e("health", "This document (OpenAPI 3.1)").json(
                200,
                "The OpenAPI document.",
                ObjectBuilder::new().into(),
            ),
            HealthRoute::Docs => {
                e("health", "The API reference page").text(200, "An HTML page.", "text/html")
            }
            HealthRoute::Unmatched => return None,
        },
        R::AuthRoute(route) => match route {
            AuthRoute::Register => e("auth", "Register a tenant and its first TENANT_ADMIN")
                .body(s.of::<rq::RegisterRequest>())
                .json(201, "Registered and signed in.", s.of::<v::Registered>())
                .errors(&[409]),
            AuthRoute::Login => e("auth", "Sign in")
                .body(s.of::<rq::LoginRequest>())
                .json(200, "Signed in.", s.of::<v::LoggedIn>())
                .errors(&[401, 429]),
            AuthRoute::Refresh => e("auth", "Exchange a refresh token for a new pair")
                .body(s.of::<rq::RefreshRequest>())
                .json(200, "A new pair; the old refresh token is spent.", s.of::<v::Tokens>())
                .errors(&[401]),
            AuthRoute::Logout => e("auth", "Sign out (end the refresh token's login)")
                .body(s.of::<rq::RefreshRequest>())
                .empty(204, "Signed out."),
            AuthRoute::Me => e("auth", "The signed-in user and tenant").json(
                200,
                "Who you are.",
                s.of::<v::Me>(),
            ),
        },
        R::TenantsRoute(route) => match route {
            TenantsRoute::GetTenant => {
                e("tenant", "The tenant").json(200, "The tenant.", s.of::<v::TenantView>())
            }
            TenantsRoute::UpdateTenant => {
                e("tenant", "Change the tenant's name, branding or settings")
                    .body(s.of::<rq::TenantUpdate>())
                    .json(200, "The tenant.", s.of::<v::TenantView>())
            }
            TenantsRoute::CreateUser => e("tenant", "Add a user")
                .body(s.of::<rq::NewUser>())
                .json(201, "The user.", s.of::<UserRecord>())
                .link("UpdateUser", R::TenantsRoute(TenantsRoute::UpdateUser), "id", "id")
                .link("DeleteUser", R::TenantsRoute(TenantsRoute::DeleteUser), "id", "id")
                .errors(&[409]),
            TenantsRoute::ListUsers => e("tenant", "The tenant's users").paged(100).json(
                200,
                "A page of users.",
                s.list_of::<UserRecord>(),
            ),
            TenantsRoute::UpdateUser => e("tenant", "Change a user's name or role")
                .body(s.of::<rq::UserUpdate>())
                .json(200, "The user.", s.of::<UserRecord>())
                .errors(&[409]),
            TenantsRoute::DeleteUser => {
                e("tenant", "Remove a user").empty(204, "Removed.").errors(&[409])
            }
            TenantsRoute::CreateApiKey => e("tenant", "Make an API key")
                .body(s.of::<rq::NewApiKey>())
                .json(201, "The key, shown only now.", s.of::<v::ApiKeyCreated>())
                .link("RevokeApiKey", R::TenantsRoute(TenantsRoute::RevokeApiKey), "id", "id")
                .errors(&[409]),
            TenantsRoute::ListApiKeys => e("tenant", "The tenant's API keys").paged(100).json(
                200,
                "A page of keys (never the keys themselves).",
                s.list_of::<ApiKeyRecord>(),
            ),
            TenantsRoute::RevokeApiKey => e("tenant", "Revoke an API key").empty(204, "Revoked."),
            TenantsRoute::Export => e("tenant", "Everything stored for the tenant (GDPR access)")
                .paged(1000)
                .json(200, "A page of stored items.", s.of::<v::ExportPage>()),
            TenantsRoute::ExportForUser => e("b2b", "Everything stored for a platform's user")
                .paged(1000)
                .json(200, "A page of stored items.", s.of::<v::ExportPage>()),
        },
        R::ChannelRoute(route) => match route {
            ChannelRoute::Put => e("channel", "Replace the tenant's channel")
                .body(s.of::<rq::ChannelRequest>())
                .json(200, "The channel (secrets masked).", s.of::<v::ChannelView>()),
            ChannelRoute::Get => e("channel", "The channel").json(
                200,
                "The channel (secrets masked).",
                s.of::<v::ChannelView>(),
            ),
            ChannelRoute::Delete => e("channel", "Remove the channel").empty(204, "Removed."),
            ChannelRoute::HealthCheck => e("channel", "Check the channel now")
                .json(200, "The channel with its health.", s.of::<v::ChannelView>())
                .errors(&[409]),
            ChannelRoute::Connect => connect(e("channel", "Connect the WhatsApp Web session"), s),
            ChannelRoute::ConnectForUser => {
                connect(e("b2b", "Connect a platform user's WhatsApp Web session"), s)
            }
            ChannelRoute::Session => e("channel", "The WhatsApp Web session")
                .json(200, "The session's state.", s.of::<v::SessionStatus>())
                .errors(&[409]),
            ChannelRoute::StatusForUser => e("b2b", "A platform user's WhatsApp Web session")
                .json(200, "The session's state.", s.of::<v::SessionStatus>())
                .errors(&[409]),
            ChannelRoute::Logout => e("channel", "Unlink the WhatsApp Web device")
                .json(200, "Logged out.", s.of::<v::LogoutAnswer>())
                .json(202, "Queued; the host has not confirmed yet.", s.of::<v::LogoutAnswer>())
                .errors(&[409]),
        },
        R::MetaWebhookRoute(route) => match route {
            MetaWebhookRoute::Verify | MetaWebhookRoute::VerifyPlatform => {
                e("meta", "Meta's subscription check")
                    .required_query("hub.mode", "`subscribe`.")
                    .required_query("hub.verify_token", "The channel's verify token.")
                    .required_query("hub.challenge", "Echoed back.")
                    .text(200, "The challenge.", "text/plain")
                    .errors(&[403, 404])
            }
            MetaWebhookRoute::Receive
            | MetaWebhookRoute::ReceivePlatform
            | MetaWebhookRoute::ReceiveGateway => e("meta", "Meta's events (signed)")
                .header("X-Hub-Signature-256", "`sha256=` + hex HMAC-SHA256 of the body.", true)
                .body(ObjectBuilder::new().schema_type(Type::Object).into())
                .json(200, "Stored and queued.", s.of::<v::Received>())
                .errors(&[401, 404]),
        },
        R::MessagesRoute(route) => match route {
            MessagesRoute::ListConversations => {
                e("messages", "Conversations, newest activity first")
                    .paged(100)
                    .query("status", one_of(&["open", "closed"]), "Only these.")
                    .query("assignedAgentId", string(), "Only those assigned to this user.")
                    .json(200, "A page of conversations.", s.list_of::<ConversationView>())
                    .link(
                        "GetConversation",
                        R::MessagesRoute(MessagesRoute::GetConversation),
                        "id",
                        "items/0/id",
                    )
                    .link(
                        "Messages",
                        R::MessagesRoute(MessagesRoute::ConversationMessages),
                        "id",
                        "items/0/id",
                    )
                    .link(
                        "UpdateConversation",
                        R::MessagesRoute(MessagesRoute::UpdateConversation),
                        "id",
                        "items/0/id",
                    )
            }
            MessagesRoute::GetConversation => e("messages", "A conversation").json(
                200,
                "The conversation.",
                s.of::<ConversationView>(),
            ),
            MessagesRoute::ConversationMessages => {
                e("messages", "A conversation's messages, newest first")
                    .paged(100)
                    .json(200, "A page of messages.", s.list_of::<MessageView>())
                    .link(
                        "GetMessage",
                        R::MessagesRoute(MessagesRoute::GetMessage),
                        "id",
                        "items/0/id",
                    )
            }
            MessagesRoute::GetMessage => e("messages", "A message with its status history").json(
                200,
                "The message.",
                s.of::<MessageView>(),
            ),
            MessagesRoute::Send => send(e("messages", "Send a message"), s),
            MessagesRoute::SendForUser => send(e("b2b", "Send a message for a platform user"), s),
            MessagesRoute::UpdateConversation => {
                e("messages", "Close, reopen or assign a conversation")
                    .body(s.of::<rq::ConversationUpdate>())
                    .json(200, "The conversation.", s.of::<ConversationView>())
            }
            MessagesRoute::ListTemplates => e("messages", "Message templates")
                .json(200, "Every template.", s.list_of::<TemplateView>())
                .link(
                    "DeleteTemplate",
                    R::MessagesRoute(MessagesRoute::DeleteTemplate),
                    "name",
                    "items/0/name",
                ),
            MessagesRoute::CreateTemplate => e("messages", "Submit a template to Meta")
                .body(s.of::<rq::NewTemplate>())
                .json(201, "Submitted: PENDING.", s.of::<TemplateView>())
                .link(
                    "DeleteTemplate",
                    R::MessagesRoute(MessagesRoute::DeleteTemplate),
                    "name",
                    "name",
                )
                .errors(&[409]),
            MessagesRoute::DeleteTemplate => e("messages", "Delete a template (every language)")
                .empty(204, "Deleted.")
                .errors(&[409, 422]),
            MessagesRoute::Usage => e("messages", "Daily usage")
                .query("from", string(), "`yyyy-mm-dd` (default: 30 days ago).")
                .query("to", string(), "`yyyy-mm-dd`, inclusive (default: today).")
                .query("format", one_of(&["json", "csv"]), "`csv` for text/csv.")
                .json(200, "One row per day, zeros included.", s.of::<v::UsageReport>())
                .or_as("text/csv")
                .errors(&[422]),
        },
        R::WebhooksRoute(route) => match route {
            WebhooksRoute::Create => e("webhooks", "Subscribe to events")
                .body(s.of::<rq::NewSubscription>())
                .json(
                    201,
                    "The subscription and its secret (shown only now).",
                    s.of::<v::SubscriptionCreated>(),
                )
                .link("GetSubscription", R::WebhooksRoute(WebhooksRoute::Get), "id", "id")
                .link("UpdateSubscription", R::WebhooksRoute(WebhooksRoute::Update), "id", "id")
                .link("SendTest", R::WebhooksRoute(WebhooksRoute::SendTest), "id", "id")
                .link("Deliveries", R::WebhooksRoute(WebhooksRoute::Deliveries), "id", "id")
                .link("RotateSecret", R::WebhooksRoute(WebhooksRoute::RotateSecret), "id", "id")
                .link("Recover", R::WebhooksRoute(WebhooksRoute::Recover), "id", "id")
                .link("DeleteSubscription", R::WebhooksRoute(WebhooksRoute::Delete), "id", "id")
                .errors(&[409]),
            WebhooksRoute::List => e("webhooks", "Every subscription").json(
                200,
                "The subscriptions.",
                s.list_of::<v::SubscriptionView>(),
            ),
            WebhooksRoute::Get => e("webhooks", "A subscription").json(
                200,
                "The subscription.",
                s.of::<v::SubscriptionView>(),
            ),
            WebhooksRoute::Update => e("webhooks", "Change a subscription")
                .body(s.of::<rq::SubscriptionUpdate>())
                .json(200, "The subscription.", s.of::<v::SubscriptionView>()),
            WebhooksRoute::Delete => e("webhooks", "Delete a subscription").empty(204, "Deleted."),
            WebhooksRoute::RotateSecret => e("webhooks", "Rotate the signing secret").json(
                200,
                "The new secret; the old one signs too for 24 hours.",
                s.of::<v::SecretRotated>(),
            ),
            WebhooksRoute::SendTest => e("webhooks", "Deliver a test event now")
                .json(202, "The delivery, written.", s.of::<v::TestDelivery>())
                .link(
                    "GetDelivery",
                    R::WebhooksRoute(WebhooksRoute::GetDelivery),
                    "deliveryId",
                    "deliveryId",
                )
                .link(
                    "Redeliver",
                    R::WebhooksRoute(WebhooksRoute::Redeliver),
                    "deliveryId",
                    "deliveryId",
                ),
            WebhooksRoute::Deliveries => e("webhooks", "A subscription's deliveries, newest first")
                .paged(100)
                .query("status", one_of(&["pending", "delivered", "failed"]), "Only these.")
                .json(200, "A page of deliveries.", s.list_of::<v::DeliverySummary>()),
            WebhooksRoute::GetDelivery => e("webhooks", "A delivery, its attempts and payload")
                .json(200, "The delivery.", s.of::<v::DeliveryDetail>()),
            WebhooksRoute::Redeliver => e("webhooks", "Send a delivery again")
                .json(202, "Queued.", s.of::<v::Redelivery>())
                .errors(&[409]),
            WebhooksRoute::Recover => e("webhooks", "Send every failed delivery of a window again")
                .body(s.of::<rq::RecoverRequest>())
                .json(202, "How many were queued.", s.of::<v::Queued>()),
        },
        R::AdminRoute(route) => match route {
            AdminRoute::ReplayWebhookEvents => e("admin", "Replay a tenant's stored Meta webhooks")
                .body(s.of::<rq::ReplayRequest>())
                .json(202, "How many were queued.", s.of::<v::Queued>()),
            AdminRoute::CreatePlatform => e("admin", "Make a partner platform")
                .body(s.of::<rq::NewPlatform>())
                .json(201, "The platform and its key (shown only now).", s.of::<v::PlatformView>())
                .link(
                    "GetPlatform",
                    R::AdminRoute(AdminRoute::GetPlatform),
                    "platformId",
                    "platformId",
                ),
            AdminRoute::ListPlatforms => e("admin", "Every platform").paged(100).json(
                200,
                "A page of platforms.",
                s.list_of::<v::PlatformView>(),
            ),
            AdminRoute::GetPlatform => {
                e("admin", "A platform").json(200, "The platform.", s.of::<v::PlatformView>())
            }
            AdminRoute::RotatePlatformKey => e("admin", "Rotate a platform's key").json(
                200,
                "The new key.",
                s.of::<v::PlatformKeyRotated>(),
            ),
            AdminRoute::Pools => {
                let pool = s.of::<v::PoolView>();
                e("admin", "WhatsApp Web pools per tier").json(
                    200,
                    "Each tier's pool.",
                    ObjectBuilder::new().additional_properties(Some(pool)).into(),
                )
            }
        },
        R::B2bRoute(route) => match route {
            B2bRoute::CreateUser => e("b2b", "Create a platform user")
                .body(s.of::<rq::NewB2bUser>())
                .json(201, "The user.", s.of::<v::B2bUserView>())
                .link("GetUser", R::B2bRoute(B2bRoute::GetUser), "userId", "userId")
                .link("UpdateUser", R::B2bRoute(B2bRoute::UpdateUser), "userId", "userId")
                .link(
                    "UserStatus",
                    R::ChannelRoute(ChannelRoute::StatusForUser),
                    "userId",
                    "userId",
                )
                .link("DeleteUser", R::B2bRoute(B2bRoute::DeleteUser), "userId", "userId")
                .json(200, "The same user again.", s.of::<v::B2bUserView>())
                .errors(&[409]),
            B2bRoute::BulkCreateUsers => e("b2b", "Create up to 1,000 users")
                .body({
                    // Each row is one of these; the body takes any row, so that one bad row
                    // fails alone.
                    s.of::<rq::BulkUserRow>();
                    s.of::<rq::BulkUsers>()
                })
                .json(200, "Each row's outcome, in order.", s.of::<v::BulkResult>()),
            B2bRoute::GetUser => {
                e("b2b", "A platform user").json(200, "The user.", s.of::<v::B2bUserView>())
            }
            B2bRoute::UpdateUser => e("b2b", "Change a user's platform id or tier")
                .body(s.of::<rq::B2bUserUpdate>())
                .json(200, "The user.", s.of::<v::B2bUserView>()),
            B2bRoute::DeleteUser => e("b2b", "Erase a user and everything stored for it")
                .empty(204, "Gone; erasure queued."),
            B2bRoute::ListUsers => e("b2b", "The platform's users")
                .paged(100)
                .query("page", integer(1, 100), "1-based page (instead of `cursor`).")
                .json(200, "A page of users.", s.of::<v::B2bUserPage>()),
            B2bRoute::Stats => e("b2b", "The platform's figures").json(
                200,
                "From counters.",
                s.of::<v::PlatformStats>(),
            ),
        },
    })
}

fn connect(entry: Entry, s: &mut Schemas) -> Entry {
    entry
        .optional_body(s.of::<rq::ConnectRequest>())
        .json(200, "Already connected.", s.of::<v::ConnectAnswer>())
        .json(202, "Pairing: scan the QR or enter the code.", s.of::<v::ConnectAnswer>())
        .errors(&[409, 503])
}

fn send(entry: Entry, s: &mut Schemas) -> Entry {
    entry
        .body(s.of::<rq::SendMessage>())
        .json(202, "Queued.", s.of::<v::SendAnswer>())
        .link("GetMessage", RouteId::MessagesRoute(MessagesRoute::GetMessage), "id", "id")
        .json(200, "A repeat of the same clientMessageId.", s.of::<v::SendAnswer>())
        .errors(&[409, 429])
}

#[cfg(test)]
mod tests;
