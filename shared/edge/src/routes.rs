//! Every HTTP route and the function that serves it: the one list that both the SAM
//! template (`infra/template.yaml`, checked by the `infra_agreement` test) and the local
//! stack's gateway follow.
//!
//! Paths use API Gateway's template syntax: `{name}` matches one segment, `{name+}` the
//! rest of the path. When several routes match, the most specific wins, segment by segment
//! (a literal beats a parameter, which beats a greedy parameter), as in API Gateway.
//!
//! Each route also says who may call it: public, or the [`Action`] it performs, which the
//! permission table in [`domain::access`] answers for every caller.

// NOTE: over 400 lines: the route table, API Gateway's matching rules and their tests read
// together.

use domain::access::Action;

/// A deployed function's name: its crate is `functions/{name}`.
pub type FunctionName = &'static str;

pub const HEALTH: FunctionName = "health";
pub const AUTH: FunctionName = "auth";
pub const TENANTS: FunctionName = "tenants";
pub const CHANNEL: FunctionName = "channel";
pub const META_WEBHOOK: FunctionName = "meta-webhook";
pub const MESSAGES: FunctionName = "messages";
pub const ADMIN: FunctionName = "admin";
pub const WEBHOOKS: FunctionName = "webhooks";
pub const B2B: FunctionName = "b2b";

/// Every function that serves HTTP routes.
pub const HTTP_FUNCTIONS: &[FunctionName] =
    &[HEALTH, AUTH, TENANTS, CHANNEL, META_WEBHOOK, MESSAGES, ADMIN, WEBHOOKS, B2B];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, sign-up, login, token refresh, signed webhooks).
    Public,
    /// A user or API key whose caller kind the permission table allows this action; a
    /// caller it does not allow gets 403 before the handler runs.
    Requires(Action),
    /// The same permission, checked once the addressed resource is found in the caller's
    /// tenant: a resource that is not there is 404 to every caller, whatever their role.
    RequiresOnceFound(Action),
    /// A platform key acting for the user its path names (`{userId}`), with that
    /// permission inside the user's tenant; a user the platform does not have is 404, and
    /// any other caller 403.
    RequiresForUser(Action),
}

impl Access {
    pub fn action(self) -> Option<Action> {
        match self {
            Access::Public => None,
            Access::Requires(a) | Access::RequiresOnceFound(a) | Access::RequiresForUser(a) => {
                Some(a)
            }
        }
    }
}

/// The routes one function serves, one variant each: its handler matches them
/// exhaustively, so a route added to the table without a handler arm does not compile.
pub trait RouteSet: Copy + Sized + 'static {
    /// This function's route, if `id` is one.
    fn of(id: RouteId) -> Option<Self>;
}

macro_rules! route_set {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];
        }

        impl RouteSet for $name {
            fn of(id: RouteId) -> Option<Self> {
                match id {
                    RouteId::$name(r) => Some(r),
                    _ => None,
                }
            }
        }
    };
}

route_set!(
    /// `health`: health checks, the API's document and reference page, and every request no
    /// other route matches.
    HealthRoute { Health, Live, Ready, OpenApi, Docs, Unmatched }
);
route_set!(AuthRoute { Register, Login, Refresh, Logout, Me });
route_set!(TenantsRoute {
    GetTenant,
    UpdateTenant,
    CreateUser,
    ListUsers,
    UpdateUser,
    DeleteUser,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    Export,
    ExportForUser,
});
route_set!(ChannelRoute {
    Put,
    Get,
    Delete,
    HealthCheck,
    Connect,
    Session,
    Logout,
    ConnectForUser,
    StatusForUser,
});
route_set!(MetaWebhookRoute { VerifyPlatform, ReceivePlatform, Verify, Receive, ReceiveGateway });
route_set!(MessagesRoute {
    ListConversations,
    GetConversation,
    ConversationMessages,
    GetMessage,
    Send,
    UpdateConversation,
    ListTemplates,
    CreateTemplate,
    DeleteTemplate,
    Usage,
    SendForUser,
});
route_set!(AdminRoute {
    ReplayWebhookEvents,
    CreatePlatform,
    ListPlatforms,
    GetPlatform,
    RotatePlatformKey,
    Pools,
});
route_set!(
    /// `b2b`: a partner platform's users.
    B2bRoute {
        CreateUser,
        BulkCreateUsers,
        GetUser,
        UpdateUser,
        DeleteUser,
        ListUsers,
        Stats,
    }
);
route_set!(
    /// `webhooks`: partner webhook subscriptions and their deliveries.
    WebhooksRoute {
        Create,
        List,
        Get,
        Update,
        Delete,
        RotateSecret,
        SendTest,
        Deliveries,
        GetDelivery,
        Redeliver,
        Recover,
    }
);

/// Which route, of which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    HealthRoute(HealthRoute),
    AuthRoute(AuthRoute),
    TenantsRoute(TenantsRoute),
    ChannelRoute(ChannelRoute),
    MetaWebhookRoute(MetaWebhookRoute),
    MessagesRoute(MessagesRoute),
    AdminRoute(AdminRoute),
    WebhooksRoute(WebhooksRoute),
    B2bRoute(B2bRoute),
}

impl RouteId {
    pub const fn function(self) -> FunctionName {
        match self {
            RouteId::HealthRoute(_) => HEALTH,
            RouteId::AuthRoute(_) => AUTH,
            RouteId::TenantsRoute(_) => TENANTS,
            RouteId::ChannelRoute(_) => CHANNEL,
            RouteId::MetaWebhookRoute(_) => META_WEBHOOK,
            RouteId::MessagesRoute(_) => MESSAGES,
            RouteId::AdminRoute(_) => ADMIN,
            RouteId::WebhooksRoute(_) => WEBHOOKS,
            RouteId::B2bRoute(_) => B2B,
        }
    }

    /// Every route id of every function.
    pub fn all() -> impl Iterator<Item = RouteId> {
        HealthRoute::ALL
            .iter()
            .map(|r| RouteId::HealthRoute(*r))
            .chain(AuthRoute::ALL.iter().map(|r| RouteId::AuthRoute(*r)))
            .chain(TenantsRoute::ALL.iter().map(|r| RouteId::TenantsRoute(*r)))
            .chain(ChannelRoute::ALL.iter().map(|r| RouteId::ChannelRoute(*r)))
            .chain(MetaWebhookRoute::ALL.iter().map(|r| RouteId::MetaWebhookRoute(*r)))
            .chain(MessagesRoute::ALL.iter().map(|r| RouteId::MessagesRoute(*r)))
            .chain(AdminRoute::ALL.iter().map(|r| RouteId::AdminRoute(*r)))
            .chain(WebhooksRoute::ALL.iter().map(|r| RouteId::WebhooksRoute(*r)))
            .chain(B2bRoute::ALL.iter().map(|r| RouteId::B2bRoute(*r)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub id: RouteId,
    pub method: &'static str,
    pub path: &'static str,
    pub function: FunctionName,
    pub access: Access,
}

const fn route(id: RouteId, method: &'static str, path: &'static str, access: Access) -> Route {
    Route { id, method, path, function: id.function(), access }
}

impl Route {
    /// API Gateway's route key, as it appears in the request context: `GET /api/health`.
    pub fn key(&self) -> String {
        if self.path == DEFAULT_ROUTE_KEY {
            return DEFAULT_ROUTE_KEY.to_owned();
        }
        format!("{} {}", self.method, self.path)
    }
}

use Access::{Public, Requires, RequiresForUser, RequiresOnceFound};
use RouteId as R;

// NOTE: kept one route a line, as a table reads.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route(R::HealthRoute(HealthRoute::Health), "GET", "/api/health", Public),
    route(R::HealthRoute(HealthRoute::Live), "GET", "/api/health/live", Public),
    route(R::HealthRoute(HealthRoute::Ready), "GET", "/api/health/ready", Public),
    route(R::HealthRoute(HealthRoute::OpenApi), "GET", "/api/openapi.json", Public),
    route(R::HealthRoute(HealthRoute::Docs), "GET", "/api/docs", Public),
    route(R::AuthRoute(AuthRoute::Register), "POST", "/api/auth/register", Public),
    route(R::AuthRoute(AuthRoute::Login), "POST", "/api/auth/login", Public),
    route(R::AuthRoute(AuthRoute::Refresh), "POST", "/api/auth/refresh", Public),
    route(R::AuthRoute(AuthRoute::Logout), "POST", "/api/auth/logout", Requires(Action::ReadOwnProfile)),
    route(R::AuthRoute(AuthRoute::Me), "GET", "/api/auth/me", Requires(Action::ReadOwnProfile)),
    route(R::TenantsRoute(TenantsRoute::GetTenant), "GET", "/api/tenant", Requires(Action::ReadTenant)),
    route(R::TenantsRoute(TenantsRoute::UpdateTenant), "PATCH", "/api/tenant", Requires(Action::UpdateTenant)),
    route(R::TenantsRoute(TenantsRoute::CreateUser), "POST", "/api/users", Requires(Action::ManageUsers)),
    route(R::TenantsRoute(TenantsRoute::ListUsers), "GET", "/api/users", Requires(Action::ManageUsers)),
    route(R::TenantsRoute(TenantsRoute::UpdateUser), "PATCH", "/api/users/{id}", RequiresOnceFound(Action::ManageUsers)),
    route(R::TenantsRoute(TenantsRoute::DeleteUser), "DELETE", "/api/users/{id}", RequiresOnceFound(Action::ManageUsers)),
    route(R::TenantsRoute(TenantsRoute::CreateApiKey), "POST", "/api/api-keys", Requires(Action::ManageApiKeys)),
    route(R::TenantsRoute(TenantsRoute::ListApiKeys), "GET", "/api/api-keys", Requires(Action::ManageApiKeys)),
    route(R::TenantsRoute(TenantsRoute::RevokeApiKey), "DELETE", "/api/api-keys/{id}", RequiresOnceFound(Action::ManageApiKeys)),
    route(R::TenantsRoute(TenantsRoute::Export), "GET", "/api/tenant/export", Requires(Action::ExportTenantData)),
    route(R::TenantsRoute(TenantsRoute::ExportForUser), "GET", "/api/b2b/users/{userId}/export", RequiresForUser(Action::ExportTenantData)),
    route(R::ChannelRoute(ChannelRoute::Put), "PUT", "/api/whatsapp/channel", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::Get), "GET", "/api/whatsapp/channel", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::Delete), "DELETE", "/api/whatsapp/channel", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::HealthCheck), "POST", "/api/whatsapp/channel/health-check", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::Connect), "POST", "/api/whatsapp/channel/connect", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::Session), "GET", "/api/whatsapp/channel/session", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::Logout), "POST", "/api/whatsapp/channel/logout", Requires(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::ConnectForUser), "POST", "/api/b2b/users/{userId}/connect", RequiresForUser(Action::ManageChannel)),
    route(R::ChannelRoute(ChannelRoute::StatusForUser), "GET", "/api/b2b/users/{userId}/status", RequiresForUser(Action::ManageChannel)),
    route(R::MetaWebhookRoute(MetaWebhookRoute::VerifyPlatform), "GET", "/api/whatsapp/webhook", Public),
    route(R::MetaWebhookRoute(MetaWebhookRoute::ReceivePlatform), "POST", "/api/whatsapp/webhook", Public),
    route(R::MetaWebhookRoute(MetaWebhookRoute::Verify), "GET", "/api/whatsapp/webhook/{tenantId}", Public),
    route(R::MetaWebhookRoute(MetaWebhookRoute::Receive), "POST", "/api/whatsapp/webhook/{tenantId}", Public),
    route(R::MetaWebhookRoute(MetaWebhookRoute::ReceiveGateway), "POST", "/api/whatsapp/webhook/{tenantId}/{endpointId}", Public),
    route(R::MessagesRoute(MessagesRoute::ListConversations), "GET", "/api/conversations", Requires(Action::ReadConversations)),
    route(R::MessagesRoute(MessagesRoute::GetConversation), "GET", "/api/conversations/{id}", Requires(Action::ReadConversations)),
    route(R::MessagesRoute(MessagesRoute::ConversationMessages), "GET", "/api/conversations/{id}/messages", Requires(Action::ReadConversations)),
    route(R::MessagesRoute(MessagesRoute::GetMessage), "GET", "/api/messages/{id}", Requires(Action::ReadConversations)),
    route(R::MessagesRoute(MessagesRoute::Send), "POST", "/api/messages", Requires(Action::SendMessages)),
    route(R::MessagesRoute(MessagesRoute::UpdateConversation), "PATCH", "/api/conversations/{id}", Requires(Action::UpdateConversations)),
    route(R::MessagesRoute(MessagesRoute::ListTemplates), "GET", "/api/templates", Requires(Action::ManageTemplates)),
    route(R::MessagesRoute(MessagesRoute::CreateTemplate), "POST", "/api/templates", Requires(Action::ManageTemplates)),
    route(R::MessagesRoute(MessagesRoute::DeleteTemplate), "DELETE", "/api/templates/{name}", Requires(Action::ManageTemplates)),
    route(R::MessagesRoute(MessagesRoute::Usage), "GET", "/api/analytics/usage", Requires(Action::ReadAnalytics)),
    route(R::WebhooksRoute(WebhooksRoute::Create), "POST", "/api/webhooks", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::List), "GET", "/api/webhooks", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Get), "GET", "/api/webhooks/{id}", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Update), "PATCH", "/api/webhooks/{id}", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Delete), "DELETE", "/api/webhooks/{id}", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::RotateSecret), "POST", "/api/webhooks/{id}/rotate-secret", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::SendTest), "POST", "/api/webhooks/{id}/test", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Deliveries), "GET", "/api/webhooks/{id}/deliveries", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Recover), "POST", "/api/webhooks/{id}/recover", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::GetDelivery), "GET", "/api/webhooks/deliveries/{deliveryId}", Requires(Action::ManageWebhooks)),
    route(R::WebhooksRoute(WebhooksRoute::Redeliver), "POST", "/api/webhooks/deliveries/{deliveryId}/redeliver", Requires(Action::ManageWebhooks)),
    route(
        R::AdminRoute(AdminRoute::ReplayWebhookEvents),
        "POST",
        "/api/admin/tenants/{tenantId}/webhook-events/replay",
        Requires(Action::Operate),
    ),
    route(R::AdminRoute(AdminRoute::CreatePlatform), "POST", "/api/admin/platforms", Requires(Action::Operate)),
    route(R::AdminRoute(AdminRoute::ListPlatforms), "GET", "/api/admin/platforms", Requires(Action::Operate)),
    route(R::AdminRoute(AdminRoute::Pools), "GET", "/api/admin/pools", Requires(Action::Operate)),
    route(R::AdminRoute(AdminRoute::GetPlatform), "GET", "/api/admin/platforms/{platformId}", Requires(Action::Operate)),
    route(R::AdminRoute(AdminRoute::RotatePlatformKey), "POST", "/api/admin/platforms/{platformId}/rotate-key", Requires(Action::Operate)),
    route(R::B2bRoute(B2bRoute::CreateUser), "POST", "/api/b2b/users", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::BulkCreateUsers), "POST", "/api/b2b/users/bulk", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::GetUser), "GET", "/api/b2b/users/{userId}", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::UpdateUser), "PUT", "/api/b2b/users/{userId}", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::DeleteUser), "DELETE", "/api/b2b/users/{userId}", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::ListUsers), "GET", "/api/b2b/platforms/{platformId}/users", Requires(Action::ManagePlatformUsers)),
    route(R::B2bRoute(B2bRoute::Stats), "GET", "/api/b2b/platforms/{platformId}/stats", Requires(Action::ManagePlatformUsers)),
    route(R::MessagesRoute(MessagesRoute::SendForUser), "POST", "/api/b2b/users/{userId}/messages", RequiresForUser(Action::SendMessages)),
];

/// The route a request came in on, from API Gateway's route key; `None` for a key no
/// route has (a request routed to the wrong function).
pub fn of_request<S: RouteSet>(request: &lambda_http::Request) -> Option<(S, &'static Route)> {
    let route = by_key(crate::request::route_key(request)?)?;
    Some((S::of(route.id)?, route))
}

/// A request that reached a function without API Gateway (its Lambda function URL, whose
/// events say `$default` and carry no path parameters), routed as API Gateway would route
/// it: the route key and path parameters of the route its method and path match, when
/// that route is `function`'s. Any other request is returned as it came.
pub fn through_function_url(
    mut request: lambda_http::Request,
    function: FunctionName,
) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    if crate::request::route_key(&request) != Some(DEFAULT_ROUTE_KEY) {
        return request;
    }
    let Some(matched) = find(request.method().as_str(), request.uri().path()) else {
        return request;
    };
    if matched.route.function != function {
        return request;
    }
    if let Some(RequestContext::ApiGatewayV2(context)) =
        request.extensions_mut().get_mut::<RequestContext>()
    {
        context.route_key = Some(matched.route.key());
    }
    let parameters: std::collections::HashMap<String, String> =
        matched.path_parameters.into_iter().collect();
    request.with_path_parameters(parameters)
}

/// API Gateway's catch-all route: every request no route of [`ROUTES`] matches. The health
/// function serves it (it is small and always warm enough), answering problem+json 404, or
/// 405 with `Allow` for a known path called with another method.
pub const DEFAULT_ROUTE_KEY: &str = "$default";
pub const DEFAULT_ROUTE: Route =
    route(RouteId::HealthRoute(HealthRoute::Unmatched), "ANY", DEFAULT_ROUTE_KEY, Access::Public);

/// The methods a path can be called with (empty: no route has this path): those of its
/// most specific template, so `/api/b2b/users/bulk` is `POST` only, not also the methods
/// of `/api/b2b/users/{userId}` (whose ids cannot be `bulk`).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let matches: Vec<(Specificity, &Route)> = ROUTES
        .iter()
        .filter_map(|route| Some((match_template(route.path, &segments)?.1, route)))
        .collect();
    let Some(best) = matches.iter().map(|(s, _)| s).max().cloned() else {
        return Vec::new();
    };
    let mut methods: Vec<&'static str> =
        matches.iter().filter(|(s, _)| *s == best).map(|(_, route)| route.method).collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The route with API Gateway's route key `key` (`DELETE /api/users/{id}`).
pub fn by_key(key: &str) -> Option<&'static Route> {
    if key == DEFAULT_ROUTE_KEY {
        return Some(&DEFAULT_ROUTE);
    }
    let (method, path) = key.split_once(' ')?;
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// A request matched to its route, with the decoded path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: &'static Route,
    pub path_parameters: PathParameters,
}

impl Matched {
    /// What API Gateway does with a request no route matches.
    pub fn default_route() -> Self {
        Self { route: &DEFAULT_ROUTE, path_parameters: Vec::new() }
    }
}

/// Finds the route for a request, as API Gateway would; `None`: the `$default` route's.
pub fn find(method: &str, path: &str) -> Option<Matched> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ROUTES
        .iter()
        .filter(|route| route.method.eq_ignore_ascii_case(method))
        .filter_map(|route| {
            let (params, specificity) = match_template(route.path, &segments)?;
            Some((specificity, Matched { route, path_parameters: params }))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, matched)| matched)
}

type PathParameters = Vec<(String, String)>;
/// Per segment: 2 literal, 1 parameter, 0 greedy; compared left to right.
type Specificity = Vec<u8>;

fn match_template(template: &str, segments: &[&str]) -> Option<(PathParameters, Specificity)> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let mut params = Vec::new();
    let mut specificity = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            let rest = segments.get(i..).filter(|r| !r.is_empty() && !r[0].is_empty())?;
            params.push((name.to_owned(), percent_decode(&rest.join("/"))));
            specificity.push(0);
            return Some((params, specificity));
        }
        let segment = segments.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.push((name.to_owned(), percent_decode(segment)));
            specificity.push(1);
        } else if part == segment {
            specificity.push(2);
        } else {
            return None;
        }
    }
    (parts.len() == segments.len()).then_some((params, specificity))
}

/// Decodes `%XX` escapes (path parameters arrive decoded from API Gateway). Invalid
/// escapes are kept as they are.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Percent-encodes everything but unreserved characters, as a client would.
    fn encode(raw: &str) -> String {
        raw.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }

    proptest! {
        /// Every route, with any parameter values, is found as itself with its parameters
        /// decoded; any other method or an extra segment is not.
        #[test]
        fn every_route_matches_its_own_paths_with_their_parameters(
            index in 0..ROUTES.len(),
            values in prop::collection::vec("p\\PC{0,20}", 4),
        ) {
            let route = &ROUTES[index];
            let mut path = String::new();
            let mut expected = Vec::new();
            for (i, part) in route.path.trim_start_matches('/').split('/').enumerate() {
                path.push('/');
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        path.push_str(&encode(&values[i % values.len()]));
                        expected.push((name.to_owned(), values[i % values.len()].clone()));
                    }
                    None => path.push_str(part),
                }
            }
            let matched = find(route.method, &path);
            prop_assert_eq!(matched.as_ref().map(|m| m.route), Some(route), "{}", path);
            prop_assert_eq!(matched.map(|m| m.path_parameters).unwrap_or_default(), expected);
            let longer = format!("{path}/extra");
            prop_assert!(find(route.method, &longer).is_none_or(|m| m.route != route));
        }

        #[test]
        fn any_path_is_matched_or_not_without_panicking(method in "[A-Z]{3,7}", path in "\\PC{0,80}") {
            let _ = find(&method, &path);
            let _ = allowed_methods(&path);
        }
    }
    use std::collections::HashSet;

    #[test]
    fn routes_are_unique_and_served_by_known_functions() {
        let mut keys = HashSet::new();
        for route in ROUTES {
            assert!(keys.insert(route.key()), "duplicate route {}", route.key());
            assert!(HTTP_FUNCTIONS.contains(&route.function), "{} has no function", route.key());
            assert!(route.path.starts_with("/api/"), "{}", route.path);
        }
    }

    #[test]
    fn every_route_id_has_exactly_one_route() {
        for id in RouteId::all() {
            let routes = ROUTES.iter().chain([&DEFAULT_ROUTE]).filter(|r| r.id == id).count();
            assert_eq!(routes, 1, "{id:?} has {routes} routes");
        }
        assert_eq!(RouteId::all().count(), ROUTES.len() + 1);
    }

    #[test]
    fn literal_paths_match_exactly() {
        let m = find("GET", "/api/health/live").expect("route");
        assert_eq!(m.route.path, "/api/health/live");
        assert!(find("GET", "/api/health/lives").is_none());
        assert!(find("POST", "/api/health").is_none());
        assert!(find("GET", "/api/health/").is_none());
    }

    #[test]
    fn parameters_match_one_segment_and_are_decoded() {
        let (p, spec) =
            match_template("/api/users/{id}", &["api", "users", "a%20b"]).expect("match");
        assert_eq!(p, vec![("id".to_owned(), "a b".to_owned())]);
        assert_eq!(spec, vec![2, 2, 1]);
        assert!(match_template("/api/users/{id}", &["api", "users", ""]).is_none());
        assert!(match_template("/api/users/{id}", &["api", "users", "a", "b"]).is_none());
    }

    #[test]
    fn greedy_parameters_take_the_rest() {
        let (p, _) =
            match_template("/api/files/{path+}", &["api", "files", "a", "b"]).expect("match");
        assert_eq!(p, vec![("path".to_owned(), "a/b".to_owned())]);
        assert!(match_template("/api/files/{path+}", &["api", "files"]).is_none());
    }

    #[test]
    fn literals_beat_parameters() {
        let literal =
            match_template("/api/webhooks/deliveries", &["api", "webhooks", "deliveries"]);
        let param = match_template("/api/webhooks/{id}", &["api", "webhooks", "deliveries"]);
        assert!(literal.expect("literal").1 > param.expect("param").1);
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("%2B15551234567"), "+15551234567");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn route_keys_are_api_gateway_route_keys() {
        assert_eq!(ROUTES[0].key(), "GET /api/health");
        for route in ROUTES {
            assert_eq!(by_key(&route.key()), Some(route));
        }
        assert_eq!(by_key("GET /api/nothing"), None);
    }

    #[test]
    fn a_known_path_lists_its_methods_and_an_unknown_one_none() {
        assert_eq!(allowed_methods("/api/users"), vec!["GET", "POST"]);
        assert_eq!(allowed_methods("/api/users/usr_1"), vec!["DELETE", "PATCH"]);
        assert_eq!(allowed_methods("/api/nothing"), Vec::<&str>::new());
    }

    fn function_url_event(method: &str, path: &str) -> lambda_http::Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {}, "requestContext": {"http": {"method": method, "path": path},
            "routeKey": "$default", "requestId": "r", "stage": "$default"}, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("event")
    }

    #[test]
    fn a_function_url_request_is_routed_as_api_gateway_would_route_it() {
        use lambda_http::RequestExt;
        let routed = through_function_url(
            function_url_event("POST", "/api/whatsapp/webhook/ten_1/ep_9"),
            META_WEBHOOK,
        );
        assert_eq!(
            crate::request::route_key(&routed),
            Some("POST /api/whatsapp/webhook/{tenantId}/{endpointId}")
        );
        let params = routed.path_parameters();
        assert_eq!(
            (params.first("tenantId"), params.first("endpointId")),
            (Some("ten_1"), Some("ep_9"))
        );
        // Another function's route, or no route: left as it came (the handler answers 404).
        for (method, path) in [("GET", "/api/users"), ("DELETE", "/api/whatsapp/webhook/ten_1")] {
            let left = through_function_url(function_url_event(method, path), META_WEBHOOK);
            assert_eq!(
                crate::request::route_key(&left),
                Some(DEFAULT_ROUTE_KEY),
                "{method} {path}"
            );
        }
        // The most specific template's methods only: `bulk` is no user id.
        assert_eq!(allowed_methods("/api/b2b/users/bulk"), vec!["POST"]);
        assert_eq!(allowed_methods("/api/b2b/users/shop-1"), vec!["DELETE", "GET", "PUT"]);
        assert_eq!(allowed_methods("/"), Vec::<&str>::new());
    }

    #[test]
    fn parameterised_routes_match_their_ids() {
        let m = find("DELETE", "/api/users/usr_1").expect("route");
        assert_eq!(m.route.path, "/api/users/{id}");
        assert_eq!(m.path_parameters, vec![("id".to_owned(), "usr_1".to_owned())]);
    }
}
