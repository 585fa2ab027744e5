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

/// Every function that serves HTTP routes.
pub const HTTP_FUNCTIONS: &[FunctionName] =
    &[HEALTH, AUTH, TENANTS, CHANNEL, META_WEBHOOK, MESSAGES, ADMIN];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, sign-up, login, token refresh, signed webhooks).
    Public,
    /// A user or API key whose caller kind the permission table allows this action.
    Requires(Action),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: FunctionName,
    pub access: Access,
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: FunctionName,
    access: Access,
) -> Route {
    Route { method, path, function, access }
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

use Access::{Public, Requires};

pub const ROUTES: &[Route] = &[
    route("GET", "/api/health", HEALTH, Public),
    route("GET", "/api/health/live", HEALTH, Public),
    route("GET", "/api/health/ready", HEALTH, Public),
    route("POST", "/api/auth/register", AUTH, Public),
    route("POST", "/api/auth/login", AUTH, Public),
    route("POST", "/api/auth/refresh", AUTH, Public),
    route("POST", "/api/auth/logout", AUTH, Requires(Action::ReadOwnProfile)),
    route("GET", "/api/auth/me", AUTH, Requires(Action::ReadOwnProfile)),
    route("GET", "/api/tenant", TENANTS, Requires(Action::ReadTenant)),
    route("PATCH", "/api/tenant", TENANTS, Requires(Action::UpdateTenant)),
    route("POST", "/api/users", TENANTS, Requires(Action::ManageUsers)),
    route("GET", "/api/users", TENANTS, Requires(Action::ManageUsers)),
    route("PATCH", "/api/users/{id}", TENANTS, Requires(Action::ManageUsers)),
    route("DELETE", "/api/users/{id}", TENANTS, Requires(Action::ManageUsers)),
    route("POST", "/api/api-keys", TENANTS, Requires(Action::ManageApiKeys)),
    route("GET", "/api/api-keys", TENANTS, Requires(Action::ManageApiKeys)),
    route("DELETE", "/api/api-keys/{id}", TENANTS, Requires(Action::ManageApiKeys)),
    route("PUT", "/api/whatsapp/channel", CHANNEL, Requires(Action::ManageChannel)),
    route("GET", "/api/whatsapp/channel", CHANNEL, Requires(Action::ManageChannel)),
    route("DELETE", "/api/whatsapp/channel", CHANNEL, Requires(Action::ManageChannel)),
    route("POST", "/api/whatsapp/channel/health-check", CHANNEL, Requires(Action::ManageChannel)),
    route("GET", "/api/whatsapp/webhook", META_WEBHOOK, Public),
    route("POST", "/api/whatsapp/webhook", META_WEBHOOK, Public),
    route("GET", "/api/whatsapp/webhook/{tenantId}", META_WEBHOOK, Public),
    route("POST", "/api/whatsapp/webhook/{tenantId}", META_WEBHOOK, Public),
    route("POST", "/api/whatsapp/webhook/{tenantId}/{endpointId}", META_WEBHOOK, Public),
    route("GET", "/api/conversations", MESSAGES, Requires(Action::ReadConversations)),
    route("GET", "/api/conversations/{id}", MESSAGES, Requires(Action::ReadConversations)),
    route("GET", "/api/conversations/{id}/messages", MESSAGES, Requires(Action::ReadConversations)),
    route("GET", "/api/messages/{id}", MESSAGES, Requires(Action::ReadConversations)),
    route("POST", "/api/messages", MESSAGES, Requires(Action::SendMessages)),
    route("PATCH", "/api/conversations/{id}", MESSAGES, Requires(Action::UpdateConversations)),
    route("GET", "/api/templates", MESSAGES, Requires(Action::ManageTemplates)),
    route("POST", "/api/templates", MESSAGES, Requires(Action::ManageTemplates)),
    route("DELETE", "/api/templates/{name}", MESSAGES, Requires(Action::ManageTemplates)),
    route("GET", "/api/analytics/usage", MESSAGES, Requires(Action::ReadAnalytics)),
    route(
        "POST",
        "/api/admin/tenants/{tenantId}/webhook-events/replay",
        ADMIN,
        Requires(Action::Operate),
    ),
];

/// API Gateway's catch-all route: every request no route of [`ROUTES`] matches. The health
/// function serves it (it is small and always warm enough), answering problem+json 404, or
/// 405 with `Allow` for a known path called with another method.
pub const DEFAULT_ROUTE_KEY: &str = "$default";
pub const DEFAULT_ROUTE: Route = route("ANY", DEFAULT_ROUTE_KEY, HEALTH, Public);

/// The methods a path can be called with (empty: no route has this path).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|route| match_template(route.path, &segments).is_some())
        .map(|route| route.method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The route with API Gateway's route key `key` (`DELETE /api/users/{id}`).
pub fn by_key(key: &str) -> Option<&'static Route> {
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
        assert_eq!(allowed_methods("/"), Vec::<&str>::new());
    }

    #[test]
    fn parameterised_routes_match_their_ids() {
        let m = find("DELETE", "/api/users/usr_1").expect("route");
        assert_eq!(m.route.path, "/api/users/{id}");
        assert_eq!(m.path_parameters, vec![("id".to_owned(), "usr_1".to_owned())]);
    }
}
