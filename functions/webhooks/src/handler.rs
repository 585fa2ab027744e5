use crate::views;
use adapters::aws::envelope::Envelopes;
use adapters::events::PartnerEvents;
use adapters::queues::{DeliveryAttempt, PartnerEvent, Queue, SettleParked, WebhookWork};
use adapters::store::attrs::now_secs;
use adapters::store::messages::{DELIVERY_TTL_SECS, Delivery, MessageStore};
use adapters::store::page::Page;
use adapters::store::tenants::{Subscription, SubscriptionChanges, TenantStore};
use adapters::webhook_client::{Refused, WebhookClient, parse_url};
use contract::views::{Queued, Redelivery, SecretRotated, SubscriptionCreated, TestDelivery};
use domain::time::{parse_rfc3339, rfc3339};
use domain::webhooks::{
    EventFilter, ROTATION_OVERLAP_SECS, TEST_EVENT, body, delivery_id, description, new_secret,
};
use edge::http::{ApiError, FieldError, empty, into_response, json};
use edge::principal::{Authenticator, Principal};
use edge::request::{
    DEFAULT_BODY_LIMIT, json_body, page_limit, path_param, query_param, route_key,
};
use edge::routes::WebhooksRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tracing::{info, instrument, warn};

pub struct Deps {
    pub(crate) tenants: TenantStore,
    pub(crate) messages: MessageStore,
    pub(crate) envelopes: Envelopes,
    pub(crate) client: WebhookClient,
    pub(crate) events: PartnerEvents,
    pub(crate) retries: Queue<WebhookWork>,
    pub(crate) authenticator: Authenticator,
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<WebhooksRoute>(request).await?;
    let principal = admitted.principal()?;
    let id = || path_param(request, "id").ok_or(ApiError::NotFound);
    let delivery = || path_param(request, "deliveryId").ok_or(ApiError::NotFound);
    match admitted.route {
        WebhooksRoute::Create => create(deps, request, principal).await,
        WebhooksRoute::List => {
            let list = deps.tenants.webhooks().list(principal.scope()).await?;
            let items = list.iter().map(views::subscription).collect();
            Ok(json(StatusCode::OK, &Page { items, next_cursor: None }))
        }
        WebhooksRoute::Get => {
            let subscription = find(deps, principal, &id()?).await?;
            Ok(json(StatusCode::OK, &views::subscription(&subscription)))
        }
        WebhooksRoute::Update => update(deps, request, principal, &id()?).await,
        WebhooksRoute::Delete => {
            let id = id()?;
            find(deps, principal, &id).await?;
            settle_parked(deps, principal, &id).await?;
            if !deps.tenants.webhooks().delete(principal.scope(), &id).await? {
                return Err(ApiError::NotFound);
            }
            principal.audit(&deps.tenants, "webhook.deleted", Some(&id), json!({})).await;
            info!(tenant_id = %principal.tenant_id(), subscription_id = id, "webhook subscription deleted");
            Ok(empty(StatusCode::NO_CONTENT))
        }
        WebhooksRoute::RotateSecret => rotate(deps, principal, &id()?).await,
        WebhooksRoute::SendTest => send_test(deps, principal, &id()?).await,
        WebhooksRoute::Deliveries => deliveries(deps, request, principal, &id()?).await,
        WebhooksRoute::GetDelivery => {
            let found =
                deps.messages.webhook_deliveries().get(principal.scope(), &delivery()?).await?;
            Ok(json(StatusCode::OK, &views::delivery(&found.ok_or(ApiError::NotFound)?)))
        }
        WebhooksRoute::Redeliver => redeliver(deps, principal, &delivery()?).await,
        WebhooksRoute::Recover => recover(deps, request, principal, &id()?).await,
    }
}

async fn find(deps: &Deps, principal: &Principal, id: &str) -> Result<Subscription, ApiError> {
    deps.tenants.webhooks().get(principal.scope(), id).await?.ok_or(ApiError::NotFound)
}

/// The URL's form (422 naming `url`), then its destination (422 `destination_not_allowed`).
async fn checked_url(deps: &Deps, value: Option<&Value>) -> Result<String, ApiError> {
    let text = value.and_then(Value::as_str).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new("url", "is required: an http or https URL")])
    })?;
    let url = parse_url(text)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("url", e.to_string())]))?;
    match deps.client.check(&url).await {
        Ok(()) => Ok(text.to_owned()),
        Err(e @ (Refused::Address { .. } | Refused::Unresolved { .. } | Refused::Url(_))) => {
            Err(ApiError::Unprocessable {
                code: "destination_not_allowed",
                detail: format!("The webhook URL is refused: {e}."),
            })
        }
    }
}

async fn create(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
    let mut errors = Vec::new();
    let events = EventFilter::parse(body.get("events").unwrap_or(&Value::Null))
        .map_err(|e| errors.push(e))
        .ok();
    let text = description(body.get("description")).map_err(|e| errors.push(e)).ok().flatten();
    if let Some(url) = body.get("url").and_then(Value::as_str) {
        if let Err(e) = parse_url(url) {
            errors.push(FieldError::new("url", e.to_string()));
        }
    } else {
        errors.push(FieldError::new("url", "is required: an http or https URL"));
    }
    let Some(events) = events.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let url = checked_url(deps, body.get("url")).await?;

    let secret = new_secret().map_err(|_| ApiError::internal("no randomness for the secret"))?;
    let sealed = deps.envelopes.seal(principal.tenant_id(), secret.as_bytes()).await?;
    let subscription = Subscription::new(url, events.names().to_vec(), text, sealed);
    deps.tenants.webhooks().create(principal.scope(), &subscription).await?;
    let detail = json!({ "events": subscription.events });
    let target = Some(subscription.subscription_id.as_str());
    principal.audit(&deps.tenants, "webhook.created", target, detail).await;
    info!(tenant_id = %principal.tenant_id(), subscription_id = subscription.subscription_id, "webhook subscription created");
    let view = SubscriptionCreated { subscription: views::subscription(&subscription), secret };
    Ok(json(StatusCode::CREATED, &view))
}

async fn update(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
    let mut errors = Vec::new();
    let mut changes = SubscriptionChanges::default();
    for field in body.keys() {
        if !["url", "events", "description", "status"].contains(&field.as_str()) {
            errors.push(FieldError::new(field.as_str(), "is not a field of a subscription"));
        }
    }
    if let Some(events) = body.get("events") {
        match EventFilter::parse(events) {
            Ok(filter) => changes.events = Some(filter.names().to_vec()),
            Err(e) => errors.push(e),
        }
    }
    if body.contains_key("description") {
        match description(body.get("description")) {
            Ok(text) => changes.description = Some(text),
            Err(e) => errors.push(e),
        }
    }
    match body.get("status").map(|v| v.as_str()) {
        None => {}
        Some(Some("active")) => changes.active = Some(true),
        Some(Some("disabled")) => changes.active = Some(false),
        Some(_) => errors.push(FieldError::new("status", "must be \"active\" or \"disabled\"")),
    }
    if let Some(url) = body.get("url") {
        match url.as_str().map(parse_url) {
            Some(Ok(_)) => {}
            Some(Err(e)) => errors.push(FieldError::new("url", e.to_string())),
            None => errors.push(FieldError::new("url", "must be an http or https URL")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Found first: another tenant's id is 404 before its URL is looked at.
    find(deps, principal, id).await?;
    if body.contains_key("url") {
        changes.url = Some(checked_url(deps, body.get("url")).await?);
    }
    if changes.active.is_some() {
        // Deliveries parked while the endpoint was failing are released (turned back on)
        // or failed (turned off) once the change is made: queued first, so that a change
        // is never made without it.
        settle_parked(deps, principal, id).await?;
    }
    let updated = deps
        .tenants
        .webhooks()
        .update(principal.scope(), id, &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    let fields: Vec<&String> = body.keys().collect();
    principal.audit(&deps.tenants, "webhook.updated", Some(id), json!({ "fields": fields })).await;
    Ok(json(StatusCode::OK, &views::subscription(&updated)))
}

async fn rotate(deps: &Deps, principal: &Principal, id: &str) -> Result<Response<Body>, ApiError> {
    let subscription = find(deps, principal, id).await?;
    let secret = new_secret().map_err(|_| ApiError::internal("no randomness for the secret"))?;
    let sealed = deps.envelopes.seal(principal.tenant_id(), secret.as_bytes()).await?;
    let until = now_secs() + ROTATION_OVERLAP_SECS;
    deps.tenants
        .webhooks()
        .rotate(principal.scope(), id, &subscription.secret, &sealed, until)
        .await?;
    let detail = json!({ "previousSecretUntil": rfc3339(until) });
    principal.audit(&deps.tenants, "webhook.secret_rotated", Some(id), detail).await;
    Ok(json(StatusCode::OK, &SecretRotated { secret, previous_secret_valid_until: rfc3339(until) }))
}

/// A `webhook.test` event for this subscription alone, through the same path as every
/// event: its delivery shows in the log once the dispatcher has made it.
async fn send_test(
    deps: &Deps,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let subscription = find(deps, principal, id).await?;
    let event = PartnerEvent {
        id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
        kind: TEST_EVENT.into(),
        tenant_id: principal.tenant_id().clone(),
        timestamp: rfc3339(now_secs()),
        data: json!({ "subscriptionId": subscription.subscription_id, "message": "A test event from Switchboard." }),
        subscription_id: Some(subscription.subscription_id.clone()),
    };
    let delivery = delivery_id(&subscription.subscription_id, &event.id);
    let deliveries = deps.messages.webhook_deliveries();
    let new = Delivery::new(
        delivery.clone(),
        &subscription.subscription_id,
        &event.id,
        TEST_EVENT,
        body(&event, None),
    );
    deliveries.create(principal.scope(), &new).await?;
    if let Err(e) = deps.events.emit(std::slice::from_ref(&event)).await {
        // Not queued: nothing will attempt it, so it must not wait in the log as pending.
        if let Err(forget) = deliveries.forget(principal.scope(), &delivery).await {
            warn!(error = %forget, delivery_id = delivery, "unqueued test delivery left in the log");
        }
        return Err(e.into());
    }
    Ok(json(StatusCode::ACCEPTED, &TestDelivery { delivery_id: delivery, event_id: event.id }))
}

async fn deliveries(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let status = query_param(request, "status");
    if let Some(s) = &status
        && !["pending", "delivered", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "status",
            "must be pending, delivered or failed",
        )]));
    }
    let limit = page_limit(query_param(request, "limit").as_deref())?;
    let cursor = query_param(request, "cursor");
    find(deps, principal, id).await?;
    let page = deps
        .messages
        .webhook_deliveries()
        .list(principal.scope(), id, status.as_deref(), limit, cursor.as_deref())
        .await?;
    let items = page.items.iter().map(views::delivery_summary).collect();
    Ok(json(StatusCode::OK, &Page { items, next_cursor: page.next_cursor }))
}

/// One more attempt of a finished delivery, with the same `webhook-id`; the dispatcher
/// opens the delivery when it makes it.
async fn redeliver(
    deps: &Deps,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let delivery = deps
        .messages
        .webhook_deliveries()
        .get(principal.scope(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if delivery.pending() {
        return Err(ApiError::Conflict {
            code: "delivery_pending",
            detail: "The delivery is still being attempted; redeliver it once it is delivered or failed.".into(),
        });
    }
    let attempt = manual_attempt(principal, &delivery.delivery_id, delivery.attempts);
    deps.retries.send_delayed(&[(&attempt, Duration::ZERO)]).await?;
    Ok(json(StatusCode::ACCEPTED, &Redelivery { delivery_id: delivery.delivery_id }))
}

fn manual_attempt(principal: &Principal, delivery_id: &str, attempts: u32) -> WebhookWork {
    WebhookWork::Attempt(DeliveryAttempt {
        tenant_id: principal.tenant_id().clone(),
        delivery_id: delivery_id.to_owned(),
        attempt: attempts + 1,
        due: now_secs(),
        manual: true,
        busy: 0,
    })
}

/// Asks the dispatcher to settle the subscription's parked deliveries a little later, once
/// the change being made is stored.
async fn settle_parked(deps: &Deps, principal: &Principal, id: &str) -> Result<(), ApiError> {
    let settle = WebhookWork::Settle(SettleParked {
        tenant_id: principal.tenant_id().clone(),
        subscription_id: id.to_owned(),
    });
    deps.retries.send_delayed(&[(&settle, SETTLE_AFTER_CHANGE)]).await?;
    Ok(())
}

/// How long after a subscription is turned on, off or deleted its parked deliveries are
/// settled.
const SETTLE_AFTER_CHANGE: Duration = Duration::from_secs(2);

/// Every failed delivery of the subscription made in `[since, until]`, attempted once more.
async fn recover(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
    let now = now_secs();
    let time = |field: &str| -> Result<Option<i64>, FieldError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(parse_rfc3339)
                .map(Some)
                .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time")),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(Some(since)), Ok(until)) => (since, until.unwrap_or(now)),
        (Ok(None), _) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "since",
                "is required: an RFC 3339 time",
            )]));
        }
        (Err(e), _) | (_, Err(e)) => return Err(ApiError::Validation(vec![e])),
    };
    if since > until {
        return Err(ApiError::Validation(vec![FieldError::new(
            "until",
            "must not be before since",
        )]));
    }
    if since < now - DELIVERY_TTL_SECS {
        return Err(ApiError::Validation(vec![FieldError::new(
            "since",
            "deliveries are kept 30 days; since must be within them",
        )]));
    }
    find(deps, principal, id).await?;
    let failed = deps
        .messages
        .webhook_deliveries()
        .failed_between(principal.scope(), id, since, until)
        .await?;
    let attempts: Vec<WebhookWork> =
        failed.iter().map(|d| manual_attempt(principal, &d.delivery_id, d.attempts)).collect();
    let delayed: Vec<(&WebhookWork, Duration)> =
        attempts.iter().map(|a| (a, Duration::ZERO)).collect();
    deps.retries.send_delayed(&delayed).await?;
    info!(tenant_id = %principal.tenant_id(), subscription_id = id, queued = attempts.len(), "failed deliveries recovered");
    Ok(json(StatusCode::ACCEPTED, &Queued { queued: attempts.len() }))
}
