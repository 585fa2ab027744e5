use adapters::store::tenant_data::TenantData;
use adapters::store::tenants::{NewUser, TenantStore};
use contract::requests::{self, NewApiKey, UserUpdate};
use contract::views::{ApiKeyCreated, ExportItem, ExportPage, TenantView};
use domain::Violation;
use domain::ids::{ApiKeyId, UserId};
use domain::passwords::Passwords;
use domain::secrets::ApiKeySecret;
use domain::tenant::{Branding, Settings};
use domain::user::{Email, Role, check_name, check_password};
use edge::http::{ApiError, empty, into_response, json};
use edge::principal::{Admitted, Authenticator, Principal};
use edge::request::{DEFAULT_BODY_LIMIT, json_body, path_param, query_param, route_key};
use edge::routes::TenantsRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use tracing::instrument;

pub struct Deps {
    store: TenantStore,
    passwords: Passwords,
    authenticator: Authenticator,
    /// Every table, for exports; `None` in a wiring that serves no export.
    data: Option<TenantData>,
}

impl Deps {
    pub fn new(store: TenantStore, authenticator: Authenticator, passwords: Passwords) -> Self {
        Self { store, passwords, authenticator, data: None }
    }

    pub fn with_data(mut self, data: TenantData) -> Self {
        self.data = Some(data);
        self
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<TenantsRoute>(request).await?;
    let ctx = Ctx { deps, request, principal: admitted.principal()?, admitted: &admitted };
    match admitted.route {
        TenantsRoute::GetTenant => ctx.get_tenant().await,
        TenantsRoute::UpdateTenant => ctx.patch_tenant().await,
        TenantsRoute::CreateUser => ctx.create_user().await,
        TenantsRoute::ListUsers => ctx.list_users().await,
        TenantsRoute::UpdateUser => ctx.update_user().await,
        TenantsRoute::DeleteUser => ctx.delete_user().await,
        TenantsRoute::CreateApiKey => ctx.create_api_key().await,
        TenantsRoute::ListApiKeys => ctx.list_api_keys().await,
        TenantsRoute::RevokeApiKey => ctx.revoke_api_key().await,
        TenantsRoute::Export | TenantsRoute::ExportForUser => ctx.export().await,
    }
}

/// One admitted request: who calls, and its route.
struct Ctx<'a> {
    deps: &'a Deps,
    request: &'a Request,
    principal: &'a Principal,
    admitted: &'a Admitted<TenantsRoute>,
}

fn check(errors: Vec<Violation>) -> Result<(), ApiError> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

impl Ctx<'_> {
    /// Routes that address one user or key: the permission check comes once it is found
    /// in the caller's tenant (another tenant's id is 404 to everyone).
    fn authorize(&self) -> Result<(), ApiError> {
        self.admitted.authorize().map(|_| ())
    }

    async fn audit(&self, action: &'static str, target: Option<String>, detail: serde_json::Value) {
        self.principal.audit(&self.deps.store, action, target.as_deref(), detail).await;
    }

    fn user_id(&self) -> Result<UserId, ApiError> {
        path_param(self.request, "id").and_then(|id| UserId::parse(&id)).ok_or(ApiError::NotFound)
    }

    fn page_params(&self) -> Result<(i32, Option<String>), ApiError> {
        let limit = edge::request::page_limit(query_param(self.request, "limit").as_deref())?;
        Ok((limit, query_param(self.request, "cursor")))
    }

    async fn tenant_view(&self) -> Result<TenantView, ApiError> {
        Ok(self.deps.store.tenants().get(self.principal.scope()).await?.into())
    }

    /// Everything stored for the tenant (GDPR access), a page at a time: `limit` items (1 to
    /// 1,000, default 500) and `cursor` as lists take them.
    async fn export(&self) -> Result<Response<Body>, ApiError> {
        let data = self.deps.data.as_ref().ok_or(ApiError::NotFound)?;
        let limit = match query_param(self.request, "limit") {
            None => 500,
            Some(raw) => {
                raw.parse::<i32>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    ApiError::Validation(vec![Violation::new("limit", "must be 1 to 1000")])
                })?
            }
        };
        let cursor = query_param(self.request, "cursor");
        let page = data.export_page(self.principal.scope(), limit, cursor.as_deref()).await?;
        let next_cursor = page.next_cursor;
        let items: Vec<ExportItem> = page
            .items
            .into_iter()
            .map(|(table, item)| ExportItem { table: table.to_owned(), item })
            .collect();
        if next_cursor.is_none() {
            // Once the last page is read, so that an export never shows its own entry.
            self.audit("tenant.exported", None, serde_json::json!({})).await;
        }
        let tenant_id = self.principal.tenant_id().to_string();
        Ok(json(StatusCode::OK, &ExportPage { tenant_id, items, next_cursor }))
    }

    async fn get_tenant(&self) -> Result<Response<Body>, ApiError> {
        Ok(json(StatusCode::OK, &self.tenant_view().await?))
    }

    /// Each top-level field given replaces the stored one; `tier` and `limits` follow the
    /// plan and are read-only here.
    async fn patch_tenant(&self) -> Result<Response<Body>, ApiError> {
        let body: serde_json::Map<String, serde_json::Value> =
            json_body(self.request, DEFAULT_BODY_LIMIT)?;
        let mut errors = Vec::new();
        for field in body.keys() {
            match field.as_str() {
                "name" | "branding" | "settings" => {}
                "tier" | "limits" | "id" | "createdAt" | "updatedAt" => {
                    errors.push(Violation::new(field.as_str(), "is read-only"))
                }
                _ => errors.push(Violation::new(field.as_str(), "is not a tenant field")),
            }
        }
        let name = match body.get("name") {
            Some(serde_json::Value::String(n)) => {
                check_name(n).map_err(|m| errors.push(Violation::new("name", m))).ok()
            }
            Some(_) => {
                errors.push(Violation::new("name", "must be a string"));
                None
            }
            None => None,
        };
        let branding: Option<Branding> = parse_field(&body, "branding", &mut errors);
        let settings: Option<Settings> = parse_field(&body, "settings", &mut errors);
        if let Some(b) = &branding {
            b.validate(&mut errors);
        }
        if let Some(s) = &settings {
            s.validate(&mut errors);
        }
        check(errors)?;
        self.deps
            .store
            .tenants()
            .update(self.principal.scope(), name.as_deref(), branding.as_ref(), settings.as_ref())
            .await?;
        let fields: Vec<&String> = body.keys().collect();
        self.audit("tenant.updated", None, serde_json::json!({ "fields": fields })).await;
        Ok(json(StatusCode::OK, &self.tenant_view().await?))
    }

    async fn create_user(&self) -> Result<Response<Body>, ApiError> {
        let body: requests::NewUser = json_body(self.request, DEFAULT_BODY_LIMIT)?;
        let mut errors = Vec::new();
        let email =
            Email::parse(&body.email).map_err(|m| errors.push(Violation::new("email", m))).ok();
        let name = check_name(&body.name).map_err(|m| errors.push(Violation::new("name", m))).ok();
        let role = assignable_role(&body.role, &mut errors);
        if let Err(m) = check_password(&body.password) {
            errors.push(Violation::new("password", m));
        }
        check(errors)?;
        let (Some(email), Some(name), Some(role)) = (email, name, role) else {
            return Err(ApiError::internal("validated fields missing"));
        };
        let password_hash =
            self.deps.passwords.hash(&body.password).await.map_err(ApiError::internal)?;
        let user = NewUser { id: UserId::generate(), email, name, role, password_hash };
        let created = self.deps.store.users().create(self.principal.scope(), &user).await?;
        self.audit(
            "user.created",
            Some(created.id.to_string()),
            serde_json::json!({ "role": created.role }),
        )
        .await;
        Ok(json(StatusCode::CREATED, &created))
    }

    async fn list_users(&self) -> Result<Response<Body>, ApiError> {
        let (limit, cursor) = self.page_params()?;
        let page =
            self.deps.store.users().list(self.principal.scope(), limit, cursor.as_deref()).await?;
        Ok(json(StatusCode::OK, &page))
    }

    /// Changes a user's role or name. Demoting the last TENANT_ADMIN fails.
    async fn update_user(&self) -> Result<Response<Body>, ApiError> {
        let id = self.user_id()?;
        let user = self
            .deps
            .store
            .users()
            .get(self.principal.scope(), &id)
            .await?
            .ok_or(ApiError::NotFound)?;
        self.authorize()?;
        let body: UserUpdate = json_body(self.request, DEFAULT_BODY_LIMIT)?;
        let mut errors = Vec::new();
        let name = body
            .name
            .as_deref()
            .and_then(|n| check_name(n).map_err(|m| errors.push(Violation::new("name", m))).ok());
        let role = body.role.as_deref().and_then(|r| assignable_role(r, &mut errors));
        check(errors)?;
        let updated = self
            .deps
            .store
            .users()
            .update(self.principal.scope(), &user, name.as_deref(), role)
            .await?;
        if role.is_some_and(|r| r != user.role) {
            let detail = serde_json::json!({ "from": user.role, "to": updated.role });
            self.audit("user.role_changed", Some(user.id.to_string()), detail).await;
        }
        Ok(json(StatusCode::OK, &updated))
    }

    /// Another tenant's user is a 404 whoever asks: the look-up, scoped to the caller's
    /// tenant, comes before the permission check.
    async fn delete_user(&self) -> Result<Response<Body>, ApiError> {
        let id = self.user_id()?;
        let user = self
            .deps
            .store
            .users()
            .get(self.principal.scope(), &id)
            .await?
            .ok_or(ApiError::NotFound)?;
        self.authorize()?;
        self.deps.store.users().delete(self.principal.scope(), &user).await?;
        self.audit(
            "user.removed",
            Some(user.id.to_string()),
            serde_json::json!({ "role": user.role }),
        )
        .await;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    async fn create_api_key(&self) -> Result<Response<Body>, ApiError> {
        let body: NewApiKey = json_body(self.request, DEFAULT_BODY_LIMIT)?;
        let name = check_name(&body.name)
            .map_err(|m| ApiError::Validation(vec![Violation::new("name", m)]))?;
        let secret = ApiKeySecret::generate().map_err(ApiError::internal)?;
        let id = ApiKeyId::generate();
        let record = self
            .deps
            .store
            .api_keys()
            .create(self.principal.scope(), &id, &name, &secret.lookup_id, &secret.digest())
            .await?;
        self.audit("api_key.created", Some(id.to_string()), serde_json::json!({ "name": name }))
            .await;
        // The only time the key is ever shown.
        Ok(json(StatusCode::CREATED, &ApiKeyCreated { record, key: secret.key }))
    }

    async fn list_api_keys(&self) -> Result<Response<Body>, ApiError> {
        let (limit, cursor) = self.page_params()?;
        let page = self
            .deps
            .store
            .api_keys()
            .list(self.principal.scope(), limit, cursor.as_deref())
            .await?;
        Ok(json(StatusCode::OK, &page))
    }

    async fn revoke_api_key(&self) -> Result<Response<Body>, ApiError> {
        let id = path_param(self.request, "id")
            .and_then(|id| ApiKeyId::parse(&id))
            .ok_or(ApiError::NotFound)?;
        let record = self
            .deps
            .store
            .api_keys()
            .get(self.principal.scope(), &id)
            .await?
            .ok_or(ApiError::NotFound)?;
        self.authorize()?;
        self.deps.store.api_keys().revoke(self.principal.scope(), &record).await?;
        self.audit(
            "api_key.revoked",
            Some(id.to_string()),
            serde_json::json!({ "name": record.name }),
        )
        .await;
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

fn assignable_role(raw: &str, errors: &mut Vec<Violation>) -> Option<Role> {
    match Role::parse(raw) {
        Some(role) if role.assignable() => Some(role),
        _ => {
            errors.push(Violation::new("role", "must be TENANT_ADMIN, AGENT or BILLING_ADMIN"));
            None
        }
    }
}

fn parse_field<T: serde::de::DeserializeOwned>(
    body: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    errors: &mut Vec<Violation>,
) -> Option<T> {
    let value = body.get(field)?.clone();
    serde_json::from_value(value)
        .map_err(|e| errors.push(Violation::new(field, format!("is invalid: {e}"))))
        .ok()
}
