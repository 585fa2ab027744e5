use adapters::store::TenantScope;
use adapters::store::attrs::now_secs;
use adapters::store::tenants::{
    AuditEntry, NewUser, RefreshGrant, RotateOutcome, TenantStore, UserRecord,
};
use contract::requests::{LoginRequest, RefreshRequest, RegisterRequest};
use contract::views::{LoggedIn, Me, Registered, TenantSummary, Tokens, UserView};
use domain::Violation;
use domain::ids::UserId;
use domain::passwords::Passwords;
use domain::secrets::{new_refresh_token, sha256_hex};
use domain::tenant::Tier;
use domain::user::{Email, Role, check_name, check_password};
use edge::http::{ApiError, empty, into_response, json};
use edge::principal::Authenticator;
use edge::principal::Principal;
use edge::request::{DEFAULT_BODY_LIMIT, json_body, route_key, source_ip};
use edge::routes::AuthRoute;
use edge::tokens::{ACCESS_TOKEN_TTL, TokenKeys};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;
use tracing::{info, instrument, warn};

/// A login (refresh-token family) lasts at most this long; each refresh token too.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;

/// When repeated login failures lock an email or a client address out.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures_per_email: i64,
    pub max_failures_per_ip: i64,
    pub window_secs: i64,
    pub lock_secs: i64,
}

impl Default for LockoutPolicy {
    /// 5 failures for one email, or 20 from one address, within 15 minutes lock that
    /// email or address for 15 minutes.
    fn default() -> Self {
        Self {
            max_failures_per_email: 5,
            max_failures_per_ip: 20,
            window_secs: 900,
            lock_secs: 900,
        }
    }
}

impl LockoutPolicy {
    /// The defaults, each overridable: `LOGIN_MAX_FAILURES_PER_EMAIL`,
    /// `LOGIN_MAX_FAILURES_PER_IP`, `LOGIN_FAILURE_WINDOW_SECS`, `LOGIN_LOCK_SECS`.
    pub fn from_env() -> Result<Self, adapters::config::ConfigError> {
        use adapters::config::number;
        let d = Self::default();
        Ok(Self {
            max_failures_per_email: number(
                "LOGIN_MAX_FAILURES_PER_EMAIL",
                d.max_failures_per_email,
            )?,
            max_failures_per_ip: number("LOGIN_MAX_FAILURES_PER_IP", d.max_failures_per_ip)?,
            window_secs: number("LOGIN_FAILURE_WINDOW_SECS", d.window_secs)?,
            lock_secs: number("LOGIN_LOCK_SECS", d.lock_secs)?,
        })
    }
}

pub struct Deps {
    store: TenantStore,
    keys: Arc<TokenKeys>,
    passwords: Passwords,
    authenticator: Authenticator,
    lockout: LockoutPolicy,
}

impl Deps {
    pub fn new(
        store: TenantStore,
        keys: Arc<TokenKeys>,
        passwords: Passwords,
        lockout: LockoutPolicy,
    ) -> Self {
        let authenticator = Authenticator::new(keys.clone(), store.clone());
        Self { store, keys, passwords, authenticator, lockout }
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<AuthRoute>(request).await?;
    match admitted.route {
        AuthRoute::Register => register(deps, request).await,
        AuthRoute::Login => login(deps, request).await,
        AuthRoute::Refresh => refresh(deps, request).await,
        AuthRoute::Logout => logout(deps, request, admitted.principal()?).await,
        AuthRoute::Me => me(deps, admitted.principal()?).await,
    }
}

fn violations(list: Vec<Violation>) -> Result<(), ApiError> {
    if list.is_empty() { Ok(()) } else { Err(ApiError::Validation(list)) }
}

/// A new access token and the first refresh token of a new login.
async fn start_login(deps: &Deps, user: &UserRecord) -> Result<Tokens, ApiError> {
    let now = now_secs();
    let access_token = deps
        .keys
        .issue(&user.id, user.tenant_id(), user.role, now.max(0) as u64)
        .map_err(ApiError::internal)?;
    let refresh_token = new_refresh_token().map_err(ApiError::internal)?;
    let family_id = new_family_id()?;
    let grant =
        RefreshGrant { user_id: user.id.clone(), tenant_id: user.tenant_id().clone(), family_id };
    deps.store.logins().start(&grant, &sha256_hex(&refresh_token), now + REFRESH_TTL_SECS).await?;
    seen(deps, user.scope(), &user.id, true).await;
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: ACCESS_TOKEN_TTL.as_secs(),
        token_type: "Bearer",
    })
}

fn new_family_id() -> Result<String, ApiError> {
    domain::secrets::random_token(16).map_err(ApiError::internal)
}

async fn register(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: RegisterRequest = json_body(request, DEFAULT_BODY_LIMIT)?;
    let mut errors = Vec::new();
    let tenant_name = check_name(&body.tenant_name)
        .map_err(|m| errors.push(Violation::new("tenantName", m)))
        .ok();
    let name = check_name(&body.name).map_err(|m| errors.push(Violation::new("name", m))).ok();
    let email = Email::parse(&body.email).map_err(|m| errors.push(Violation::new("email", m))).ok();
    if let Err(m) = check_password(&body.password) {
        errors.push(Violation::new("password", m));
    }
    violations(errors)?;
    let (Some(tenant_name), Some(name), Some(email)) = (tenant_name, name, email) else {
        return Err(ApiError::internal("validated fields missing"));
    };

    let password_hash = deps.passwords.hash(&body.password).await.map_err(ApiError::internal)?;
    let admin =
        NewUser { id: UserId::generate(), email, name, role: Role::TenantAdmin, password_hash };
    let (scope, tenant) =
        deps.store.tenants().register(&tenant_name, Tier::Standard, &admin).await?;
    let user = deps
        .store
        .users()
        .get(&scope, &admin.id)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    let tokens = start_login(deps, &user).await?;
    audit(deps, &user, "tenant.registered", None, serde_json::json!({})).await;
    info!(tenant_id = %tenant.id, "tenant registered");

    let registered =
        Registered { tenant: TenantSummary::from(&tenant), user: UserView::from(&user), tokens };
    Ok(json(StatusCode::CREATED, &registered))
}

async fn login(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: LoginRequest = json_body(request, DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)
        .map_err(|m| ApiError::Validation(vec![Violation::new("email", m)]))?;
    let email_scope = format!("email#{}", sha256_hex(email.as_str()));
    let ip_scope = format!("ip#{}", source_ip(request));

    for scope in [&email_scope, &ip_scope] {
        if let Some(left) = deps.store.logins().locked_for(scope).await? {
            return Err(ApiError::RateLimited { retry_after_secs: left.max(1) as u64 });
        }
    }

    let user = deps.store.users().find_by_email(&email).await?;
    let ok = deps
        .passwords
        .verify(&body.password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await;
    let user = match user {
        Some(user) if ok => user,
        known => {
            let failure = [email_scope.as_str(), ip_scope.as_str()];
            return Err(failed_login(deps, request, &email, known.as_ref(), failure).await?);
        }
    };

    deps.store.logins().clear_failures(&email_scope).await?;
    let tokens = start_login(deps, &user).await?;
    Ok(json(StatusCode::OK, &LoggedIn { tokens, user: UserView::from(&user) }))
}

/// Counts a failed login against the email and the client address; returns the answer:
/// 429 when this failure locked either, else the same 401 whether or not the account
/// exists. The lock of a known account is audited.
async fn failed_login(
    deps: &Deps,
    request: &Request,
    email: &Email,
    user: Option<&UserRecord>,
    [email_scope, ip_scope]: [&str; 2],
) -> Result<ApiError, ApiError> {
    let policy = deps.lockout;
    let email_locked = deps
        .store
        .logins()
        .record_failure(
            email_scope,
            policy.max_failures_per_email,
            policy.window_secs,
            policy.lock_secs,
        )
        .await?;
    let ip_locked = deps
        .store
        .logins()
        .record_failure(ip_scope, policy.max_failures_per_ip, policy.window_secs, policy.lock_secs)
        .await?;
    warn!(email = %email.redacted(), "login failed");
    if !(email_locked || ip_locked) {
        return Ok(ApiError::Unauthorized);
    }
    if email_locked && let Some(user) = user {
        let detail =
            serde_json::json!({ "email": email.redacted(), "sourceIp": source_ip(request) });
        audit(deps, user, "login.locked", Some(user.id.to_string()), detail).await;
    }
    Ok(ApiError::RateLimited { retry_after_secs: policy.lock_secs.max(1) as u64 })
}

async fn refresh(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshRequest = json_body(request, DEFAULT_BODY_LIMIT)?;
    let now = now_secs();
    let next = new_refresh_token().map_err(ApiError::internal)?;
    let outcome = deps
        .store
        .logins()
        .rotate(&sha256_hex(&body.refresh_token), &sha256_hex(&next), now + REFRESH_TTL_SECS)
        .await?;
    let (grant, scope) = match outcome {
        RotateOutcome::Rotated(grant, scope) => (grant, scope),
        RotateOutcome::Reused => {
            if let Some((grant, scope)) =
                deps.store.logins().grant(&sha256_hex(&body.refresh_token)).await?
            {
                let entry = AuditEntry {
                    action: "login.refresh_reuse_revoked",
                    actor_id: Some(grant.user_id.to_string()),
                    target_id: Some(grant.family_id.clone()),
                    detail: serde_json::json!({ "sourceIp": source_ip(request) }),
                };
                if let Err(e) = deps.store.audit().write(&scope, entry).await {
                    warn!(error = %e, "audit entry not written");
                }
            }
            warn!("spent refresh token presented again; login revoked");
            return Err(ApiError::Unauthorized);
        }
        RotateOutcome::Invalid => return Err(ApiError::Unauthorized),
    };
    let Some(user) = deps.store.users().get(&scope, &grant.user_id).await? else {
        deps.store.logins().revoke(&grant.family_id).await?;
        return Err(ApiError::Unauthorized);
    };
    let access_token = deps
        .keys
        .issue(&user.id, user.tenant_id(), user.role, now.max(0) as u64)
        .map_err(ApiError::internal)?;
    seen(deps, user.scope(), &user.id, true).await;
    Ok(json(
        StatusCode::OK,
        &Tokens {
            access_token,
            refresh_token: next,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
            token_type: "Bearer",
        },
    ))
}

async fn logout(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let body: RefreshRequest = json_body(request, DEFAULT_BODY_LIMIT)?;
    // Only the caller's own login ends; an unknown or foreign token changes nothing, and
    // the answer is the same so that tokens cannot be probed.
    if let Some((grant, scope)) =
        deps.store.logins().grant(&sha256_hex(&body.refresh_token)).await?
        && Some(&grant.user_id) == principal.user_id()
        && &grant.tenant_id == principal.tenant_id()
    {
        deps.store.logins().revoke(&grant.family_id).await?;
        seen(deps, &scope, &grant.user_id, false).await;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Presence for auto-assignment: best effort, never a reason to fail a login.
async fn seen(deps: &Deps, scope: &TenantScope, user: &UserId, online: bool) {
    if let Err(e) = deps.store.users().mark_seen(scope, user, online).await {
        warn!(error = %e, "presence not recorded");
    }
}

async fn me(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    let user_id = principal.user_id().ok_or(ApiError::Forbidden)?;
    let user =
        deps.store.users().get(principal.scope(), user_id).await?.ok_or(ApiError::Unauthorized)?;
    let tenant = deps.store.tenants().get(principal.scope()).await?;
    Ok(json(
        StatusCode::OK,
        &Me { user: UserView::from(&user), tenant: TenantSummary::from(&tenant) },
    ))
}

async fn audit(
    deps: &Deps,
    user: &UserRecord,
    action: &'static str,
    target: Option<String>,
    detail: serde_json::Value,
) {
    let entry =
        AuditEntry { action, actor_id: Some(user.id.to_string()), target_id: target, detail };
    // NOTE: a lost audit entry must not fail the user's request; it is logged instead.
    if let Err(e) = deps.store.audit().write(user.scope(), entry).await {
        warn!(error = %e, action, "audit entry not written");
    }
}
