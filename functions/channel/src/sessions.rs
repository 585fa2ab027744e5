//! A `web` channel's WhatsApp Web session: connect, status, logout (and the B2B aliases,
//! for which the admitted principal is already the user's tenant).
//!
//! The function never talks to a host: it joins the tenant to its tier's pool (the pool
//! table decides the connection, and refuses a full pool), queues the work on the
//! connection's queue, and reads back what the owning host wrote (the QR, the state),
//! waiting a few seconds for it.

use crate::Deps;
use adapters::store::pool::{Joined, SessionRecord};
use adapters::store::tenants::TenantRecord;
use contract::views::{ConnectAnswer, LogoutAnswer, SessionStatus};
use domain::Violation;
use domain::channel::Provider;
use domain::sessions::{SessionState, SessionWork};
use domain::time::now_ms;
use domain::time::rfc3339;
use edge::http::{ApiError, json};
use edge::principal::Principal;
use edge::request::json_body;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tracing::info;

/// How long connect and logout wait for the host's answer before answering 202.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
/// What a full pool tells the caller to wait.
const POOL_FULL_RETRY_SECS: u64 = 60;

/// The channel must be `web`: only those have sessions.
async fn web_tenant(deps: &Deps, principal: &Principal) -> Result<TenantRecord, ApiError> {
    let channel = deps.channels.store().get(principal.scope()).await?;
    if channel.as_ref().map(|c| c.config.provider()) != Some(Provider::Web) {
        return Err(ApiError::Conflict {
            code: "channel_not_web",
            detail: "Only a WhatsApp Web channel has a session: set it with PUT /api/whatsapp/channel {\"provider\":\"web\"}.".into(),
        });
    }
    Ok(deps.tenants.tenants().get(principal.scope()).await?)
}

/// `POST /api/whatsapp/channel/connect` (and `/api/b2b/users/{userId}/connect`).
pub async fn connect(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let phone = phone_number(request)?;
    let tenant = web_tenant(deps, principal).await?;
    let scope = principal.scope();
    let existing = deps.sessions.pool.session(scope).await?;
    if let Some(session) = &existing
        && session.state == SessionState::Connected
        && session.connection_id.is_some()
    {
        return Ok(json(StatusCode::OK, &ConnectAnswer::connected(session.phone_number.clone())));
    }
    // Already pairing with a QR that is still good (and the same kind of pairing): that
    // QR, without starting another pairing.
    if let Some(session) = &existing
        && session.state == SessionState::Pairing
        && session.connection_id.is_some()
        && session.tier == Some(tenant.tier)
        && session.expires_at.is_some_and(|at| at > domain::time::now_secs() + 2)
        && session.pairing_code.is_some() == phone.is_some()
        && session.qr.is_some()
    {
        return Ok(json(StatusCode::ACCEPTED, &pairing_view(session)));
    }
    let policy = deps.pools.of(tenant.tier);
    // A session still in another tier's pool (its tier changed) leaves it first.
    if existing.as_ref().is_some_and(|s| s.connection_id.is_some() && s.tier != Some(tenant.tier)) {
        deps.sessions.stop(scope).await?;
    }
    let connection = match deps.sessions.pool.join(scope, &policy, tenant.b2b.as_ref()).await? {
        Joined::Member(connection) => connection,
        Joined::Full => {
            return Err(ApiError::Full {
                code: "pool_full",
                detail: format!(
                    "Every connection of the {} pool is in use ({} users); try again later.",
                    policy.tier.as_str(),
                    policy.max_users()
                ),
                retry_after_secs: POOL_FULL_RETRY_SECS,
            });
        }
    };
    deps.sessions.pool.want_pairing(scope, phone.as_deref()).await?;
    // NOTE: a QR is new when it differs from the one read before, not by its time: the
    // host's clock and this function's need not agree.
    let before = existing.as_ref().and_then(|s| s.qr.clone());
    let work = SessionWork::Connect {
        tenant_id: principal.tenant_id().clone(),
        phone_number: phone.clone(),
    };
    deps.sessions.queues.send(&connection, &work).await?;
    info!(tenant_id = %principal.tenant_id(), connection, "session connect queued");
    principal
        .audit(&deps.tenants, "session.connect", None, json!({ "connectionId": connection }))
        .await;

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let session = deps.sessions.pool.session(scope).await?;
        if let Some(session) = &session {
            if session.state == SessionState::Connected {
                return Ok(json(
                    StatusCode::OK,
                    &ConnectAnswer::connected(session.phone_number.clone()),
                ));
            }
            let fresh_qr = session.qr.is_some()
                && session.qr != before
                && session.state == SessionState::Pairing
                && (phone.is_none() || session.pairing_code.is_some());
            if fresh_qr {
                return Ok(json(StatusCode::ACCEPTED, &pairing_view(session)));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            // The host has not answered yet: the QR will be in GET …/session and in a
            // `session.status` event.
            let state = session.map_or(SessionState::Disconnected, |s| s.state);
            let state = if state.can_send() { state } else { SessionState::Pairing };
            return Ok(json(
                StatusCode::ACCEPTED,
                &ConnectAnswer::waiting(
                    state.as_str(),
                    "The session host has not answered yet; read the session's status for the QR.",
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn pairing_view(session: &SessionRecord) -> ConnectAnswer {
    ConnectAnswer::pairing(
        session.qr.clone(),
        session.pairing_code.clone(),
        session.expires_at.map(rfc3339),
    )
}

/// `{"phoneNumber"?}`: E.164, for a pairing code. An empty body is no number.
fn phone_number(request: &Request) -> Result<Option<String>, ApiError> {
    if request.body().is_empty() {
        return Ok(None);
    }
    let body: Map<String, Value> = json_body(request, 4096)?;
    match body.get("phoneNumber") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => {
            let digits = raw.strip_prefix('+').unwrap_or_default();
            if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Some(raw.clone()))
            } else {
                Err(ApiError::Validation(vec![Violation::new(
                    "phoneNumber",
                    "must be an E.164 number such as +15551234567",
                )]))
            }
        }
        Some(_) => Err(ApiError::Validation(vec![Violation::new(
            "phoneNumber",
            "must be a string (E.164)",
        )])),
    }
}

/// `GET /api/whatsapp/channel/session` (and `/api/b2b/users/{userId}/status`).
pub async fn status(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    let tenant = web_tenant(deps, principal).await?;
    let session = deps.sessions.pool.session(principal.scope()).await?;
    let mut state = session.as_ref().map_or(SessionState::Disconnected, |s| s.state);
    // A connected session whose host stopped heartbeating is down until another host
    // takes its connection over: say so rather than repeat its last state.
    if state == SessionState::Connected
        && let Some(connection) = session.as_ref().and_then(|s| s.connection_id.as_deref())
        && !deps.sessions.pool.connection(connection).await?.is_some_and(|c| c.leased(now_ms()))
    {
        state = SessionState::Reconnecting;
    }
    let mut out = SessionStatus {
        state: state.as_str().to_owned(),
        tier: tenant.tier,
        connection_id: session.as_ref().and_then(|s| s.connection_id.clone()),
        phone_number: session.as_ref().and_then(|s| s.phone_number.clone()),
        last_seen_at: session.as_ref().and_then(|s| s.last_seen_at).map(rfc3339),
        qr: None,
        expires_at: None,
        pairing_code: None,
    };
    if let Some(session) = session.filter(|s| s.state == SessionState::Pairing) {
        out.qr = Some(session.qr);
        out.expires_at = Some(session.expires_at.map(rfc3339));
        out.pairing_code = session.pairing_code;
    }
    Ok(json(StatusCode::OK, &out))
}

/// `POST /api/whatsapp/channel/logout`: the host unlinks the device.
pub async fn logout(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    web_tenant(deps, principal).await?;
    let scope = principal.scope();
    let session = deps.sessions.pool.session(scope).await?;
    let Some(session) = session else {
        return Err(ApiError::Conflict {
            code: "session_not_connected",
            detail: "There is no WhatsApp Web session to log out of.".into(),
        });
    };
    if session.state == SessionState::LoggedOut {
        return Ok(json(
            StatusCode::OK,
            &LogoutAnswer { state: "logged_out".into(), detail: None },
        ));
    }
    let Some(connection) = session.connection_id.clone() else {
        return Err(ApiError::Conflict {
            code: "session_not_connected",
            detail: format!(
                "The session is {}: there is no linked device to log out.",
                session.state.as_str()
            ),
        });
    };
    let work = SessionWork::Logout { tenant_id: principal.tenant_id().clone() };
    deps.sessions.queues.send(&connection, &work).await?;
    principal
        .audit(&deps.tenants, "session.logout", None, json!({ "connectionId": connection }))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = deps.sessions.pool.session(scope).await?.map(|s| s.state);
        if state == Some(SessionState::LoggedOut) {
            return Ok(json(
                StatusCode::OK,
                &LogoutAnswer { state: "logged_out".into(), detail: None },
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            let state = state.unwrap_or(SessionState::Disconnected);
            return Ok(json(
                StatusCode::ACCEPTED,
                &LogoutAnswer {
                    state: state.as_str().into(),
                    detail: Some(
                        "The logout is queued; the session host has not confirmed it yet.".into(),
                    ),
                },
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
