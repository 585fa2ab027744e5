//! Who is calling: a bearer token (user JWT or tenant API key) turned into a
//! [`Principal`], and the permission check every route goes through.

use crate::http::ApiError;
use crate::routes::{Access, RouteSet};
use crate::tokens::TokenKeys;
use adapters::store::TenantScope;
use adapters::store::tenants::TenantStore;
use domain::access::{Action, Caller, allows};
use domain::ids::{ApiKeyId, TenantId, UserId};
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
}

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
            Subject::ApiKey(_) => None,
        }
    }

    /// The id written to audit entries.
    pub fn actor_id(&self) -> String {
        match &self.subject {
            Subject::User(id) => id.to_string(),
            Subject::ApiKey(id) => id.to_string(),
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
                let principal = self.authenticate(request.headers()).await?;
                principal.require(action)?;
                Some(principal)
            }
            Access::RequiresOnceFound(_) => Some(self.authenticate(request.headers()).await?),
        };
        Ok(Admitted { route, access: spec.access, principal })
    }

    /// Verifies the bearer token. Every failure is the same 401: which part was wrong is
    /// nobody's business but the log's.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers).ok_or(ApiError::Unauthorized)?;
        if let Some(lookup_id) = ApiKeySecret::lookup_id_of(token) {
            return self.api_key(lookup_id, token).await;
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
