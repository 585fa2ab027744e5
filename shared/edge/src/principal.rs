//! Who is calling: a bearer token (user JWT, tenant API key or platform key) turned into a
//! [`Principal`], and the permission check every route goes through.
//!
//! A platform key acts on its own behalf (its users, its own webhooks) unless the request
//! names one of its users: `X-Tenant-Id: <userId>`, or the `{userId}` of a route that acts
//! for the user it names (`/api/b2b/users/{userId}/…`). Then the principal is that user's
//! tenant with a tenant admin's rights, and the platform is who acts. A user the platform
//! does not have (another platform's included) is 404.

use crate::http::ApiError;
use crate::routes::{Access, RouteSet};
use crate::tokens::TokenKeys;
use adapters::store::TenantScope;
use adapters::store::tenants::TenantStore;
use domain::access::{Action, Caller, allows};
use domain::ids::{ApiKeyId, B2bUserId, PlatformId, TenantId, UserId};
use domain::secrets::ApiKeySecret;
use lambda_http::http::HeaderMap;
use lambda_http::http::header::AUTHORIZATION;
use std::sync::Arc;

/// An authenticated caller. Only [`Authenticator::authenticate`] makes one, so holding
/// one proves the token or key was verified, and its [`TenantScope`] is the only way to
/// reach tenant data.
#[derive(Debug, Clone)]
pub struct Principal {
    scope: TenantScope,
    caller: Caller,
    subject: Subject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(UserId),
    ApiKey(ApiKeyId),
    /// A platform's key: on its own behalf, or for one of its users.
    Platform(PlatformId),
}

/// The header with which a platform key names the user it acts for.
pub const ACTING_HEADER: &str = "x-tenant-id";

impl Principal {
    pub fn scope(&self) -> &TenantScope {
        &self.scope
    }

    pub fn tenant_id(&self) -> &TenantId {
        self.scope.tenant_id()
    }

    pub fn caller(&self) -> Caller {
        self.caller
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    pub fn user_id(&self) -> Option<&UserId> {
        match &self.subject {
            Subject::User(id) => Some(id),
            Subject::ApiKey(_) | Subject::Platform(_) => None,
        }
    }

    /// The platform whose key this is, acting for itself or for one of its users.
    pub fn platform_id(&self) -> Option<&PlatformId> {
        match &self.subject {
            Subject::Platform(id) => Some(id),
            Subject::User(_) | Subject::ApiKey(_) => None,
        }
    }

    /// The id written to audit entries.
    pub fn actor_id(&self) -> String {
        match &self.subject {
            Subject::User(id) => id.to_string(),
            Subject::ApiKey(id) => id.to_string(),
            Subject::Platform(id) => id.to_string(),
        }
    }

    /// Writes an entry in the audit trail of the principal's tenant, with the principal as
    /// actor (a platform acting for one of its users is the actor of its acts). An entry
    /// that cannot be written is logged: the act it records is done already.
    pub async fn audit(
        &self,
        store: &TenantStore,
        action: &'static str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) {
        let entry = adapters::store::tenants::AuditEntry {
            action,
            actor_id: Some(self.actor_id()),
            target_id: target.map(str::to_owned),
            detail,
        };
        if let Err(e) = store.audit().write(&self.scope, entry).await {
            tracing::warn!(error = %e, action, "audit entry not written");
        }
    }

    /// 403 unless the permission table lets this caller do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if allows(self.caller, action) { Ok(()) } else { Err(ApiError::Forbidden) }
    }
}

/// A request its function may handle: its route, and who calls it.
#[derive(Debug)]
pub struct Admitted<S> {
    pub route: S,
    access: Access,
    principal: Option<Principal>,
}

impl<S> Admitted<S> {
    /// The authenticated caller. On a public route there is none: that is a bug in the
    /// handler, answered as 401 rather than a panic.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// For a [`Access::RequiresOnceFound`] route, once its resource was found in the
    /// caller's tenant: 403 unless the permission table allows the caller the route's
    /// action. On other routes the check was made at admission, and this repeats it.
    pub fn authorize(&self) -> Result<&Principal, ApiError> {
        let principal = self.principal()?;
        if let Some(action) = self.access.action() {
            principal.require(action)?;
        }
        Ok(principal)
    }
}

#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<TokenKeys>,
    store: TenantStore,
}

/// The one bearer token of a request. Two `Authorization` headers (which API Gateway joins
/// with a comma) or a token with a comma or a space in it are no credentials at all:
/// which of them would count is ambiguous, so neither does.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    let plain = !token.is_empty() && !token.contains(|c: char| c == ',' || c.is_whitespace());
    plain.then_some(token)
}

impl Authenticator {
    pub fn new(keys: Arc<TokenKeys>, store: TenantStore) -> Self {
        Self { keys, store }
    }

    /// Verifies tokens with `keys` against a deployment's tenants table.
    pub fn of(
        keys: Arc<TokenKeys>,
        clients: &adapters::aws::AwsClients,
        resources: &adapters::config::Resources,
    ) -> Self {
        Self::new(keys, TenantStore::of(clients, resources))
    }

    /// Admits a request to its function's handler, deciding from the route table: the
    /// function's own route (a route key it does not serve is 404), and for a route that
    /// needs credentials, the authenticated caller (401 otherwise) whom the permission
    /// table allows the route's action (403 otherwise) — unless the route checks that once
    /// its resource is found ([`Access::RequiresOnceFound`]), which [`Admitted::authorize`]
    /// then does.
    pub async fn admit<S: RouteSet>(
        &self,
        request: &lambda_http::Request,
    ) -> Result<Admitted<S>, ApiError> {
        let (route, spec) = crate::routes::of_request::<S>(request).ok_or(ApiError::NotFound)?;
        let principal = match spec.access {
            Access::Public => None,
            Access::Requires(action) => {
                let principal =
                    self.acting(self.authenticate(request.headers()).await?, request, None).await?;
                principal.require(action)?;
                Some(principal)
            }
            Access::RequiresForUser(action) => {
                let named = crate::request::path_param(request, "userId");
                let principal = self.authenticate(request.headers()).await?;
                if principal.platform_id().is_none() {
                    // Only a platform has users to act for.
                    return Err(ApiError::Forbidden);
                }
                let principal =
                    self.acting(principal, request, Some(named.ok_or(ApiError::NotFound)?)).await?;
                principal.require(action)?;
                Some(principal)
            }
            Access::RequiresOnceFound(_) => {
                Some(self.acting(self.authenticate(request.headers()).await?, request, None).await?)
            }
        };
        Ok(Admitted { route, access: spec.access, principal })
    }

    /// The principal a request acts as: a platform key naming one of its users (in
    /// `X-Tenant-Id`, or as `in_path`) acts for that user; anything else as itself.
    async fn acting(
        &self,
        principal: Principal,
        request: &lambda_http::Request,
        in_path: Option<String>,
    ) -> Result<Principal, ApiError> {
        let header = request
            .headers()
            .get(ACTING_HEADER)
            .map(|v| v.to_str().map(str::to_owned).map_err(|_| ApiError::NotFound))
            .transpose()?;
        let named = match (header, in_path) {
            (None, None) => return Ok(principal),
            (Some(header), Some(path)) if header != path => {
                return Err(ApiError::Unprocessable {
                    code: "tenant_mismatch",
                    detail: "X-Tenant-Id names another user than the path does.".into(),
                });
            }
            (Some(named), _) | (None, Some(named)) => named,
        };
        let Some(platform) = principal.platform_id() else {
            return Err(ApiError::Unprocessable {
                code: "tenant_header_not_allowed",
                detail: "X-Tenant-Id is for platform keys acting for one of their users.".into(),
            });
        };
        let user_id = B2bUserId::parse(&named).ok_or(ApiError::NotFound)?;
        let user =
            self.store.platforms().user(platform, &user_id).await?.ok_or(ApiError::NotFound)?;
        Ok(Principal {
            scope: user.scope(),
            caller: Caller::PlatformForUser,
            subject: principal.subject,
        })
    }

    /// Verifies the bearer token. Every failure is the same 401: which part was wrong is
    /// nobody's business but the log's.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers).ok_or(ApiError::Unauthorized)?;
        if let Some(lookup_id) = ApiKeySecret::lookup_id_of(token) {
            return self.api_key(lookup_id, token).await;
        }
        if let Some(lookup_id) = ApiKeySecret::platform_lookup_id_of(token) {
            return self.platform_key(lookup_id, token).await;
        }
        let claims = self.keys.verify(token).map_err(|_| ApiError::Unauthorized)?;
        // NOTE: the role is read from the user record, not the token: a removed user or a
        // changed role takes effect at once rather than when the token expires.
        let (scope, user) = self
            .store
            .api_keys()
            .authenticate_user(claims.tid, &claims.sub)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Principal { scope, caller: Caller::User(user.role), subject: Subject::User(user.id) })
    }

    async fn api_key(&self, lookup_id: &str, token: &str) -> Result<Principal, ApiError> {
        let presented = domain::secrets::sha256_hex(token);
        let (scope, key_id) = self
            .store
            .api_keys()
            .authenticate(lookup_id, &presented)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if let Err(e) = self.store.api_keys().touch(&scope, &key_id).await {
            tracing::warn!(error = %e, "could not record API key use");
        }
        Ok(Principal { scope, caller: Caller::ApiKey, subject: Subject::ApiKey(key_id) })
    }

    async fn platform_key(&self, lookup_id: &str, token: &str) -> Result<Principal, ApiError> {
        let key = self.store.platforms().key(lookup_id).await?.ok_or(ApiError::Unauthorized)?;
        if !domain::secrets::digests_equal(&key.digest, &domain::secrets::sha256_hex(token)) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Principal {
            scope: key.scope(),
            caller: Caller::Platform,
            subject: Subject::Platform(key.platform_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn exactly_one_plain_bearer_token_is_a_credential() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.def"])), Some("abc.def"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Some("abc"));
        assert_eq!(bearer_token(&headers(&[])), None);
        assert_eq!(bearer_token(&headers(&["Bearer a", "Bearer b"])), None, "two headers");
        assert_eq!(bearer_token(&headers(&["Bearer a,Bearer b"])), None, "joined by a gateway");
        assert_eq!(bearer_token(&headers(&["Bearer a b"])), None);
        assert_eq!(bearer_token(&headers(&["Basic abc"])), None);
        assert_eq!(bearer_token(&headers(&["Bearer "])), None);
    }
}
