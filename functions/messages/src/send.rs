//! `POST /api/messages`: check, store as queued, then queue for the message sender.

use crate::handler::Deps;
use adapters::queues::SendJob;
use adapters::store::attrs::now_secs;
use adapters::store::messages::SERVICE_WINDOW_SECS;
use adapters::store::messages::outbox::{Accepted, NewOutbound};
use contract::views::SendAnswer;
use domain::channel::Provider;
use domain::outbound::{Content, OutboundMessage};
use domain::secrets::sha256_hex;
use domain::sessions::SessionWork;
use edge::http::{ApiError, FieldError, json};
use edge::principal::Principal;
use edge::request::{DEFAULT_BODY_LIMIT, json_body};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use tracing::{info, warn};

fn accepted(status: StatusCode, id: &str, state: &str, client_message_id: &str) -> Response<Body> {
    let answer = SendAnswer {
        id: id.to_owned(),
        status: state.to_owned(),
        client_message_id: client_message_id.to_owned(),
    };
    json(status, &answer)
}

pub async fn send(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let body: Value = json_body(request, DEFAULT_BODY_LIMIT)?;
    let mut message = OutboundMessage::parse(&body).map_err(ApiError::Validation)?;
    let scope = principal.scope();
    resolve_message_ids(deps, principal, &mut message).await?;
    let graph_request = message.graph_request();
    let request_hash = sha256_hex(&graph_request.to_string());

    // A repeat is answered before any rule that may have changed since the first request.
    if let Some(answer) = repeat(deps, principal, &message.client_message_id, &request_hash).await?
    {
        return Ok(answer);
    }
    let Some(channel) = deps.channels.store().get(scope).await? else {
        return Err(ApiError::Conflict {
            code: "channel_not_configured",
            detail: "Connect a WhatsApp channel (PUT /api/whatsapp/channel) before sending.".into(),
        });
    };
    // A web channel sends through its session: one that cannot send refuses the message
    // now rather than failing it later.
    let web = channel.config.provider() == Provider::Web;
    let session_connection = if web {
        if !matches!(message.kind(), "text" | "reaction") {
            return Err(ApiError::Unprocessable {
                code: "unsupported_on_web",
                detail: format!(
                    "A WhatsApp Web session sends text, replies and reactions; not {} messages (yet).",
                    message.kind()
                ),
            });
        }
        Some(session_lane(deps, principal).await?)
    } else {
        None
    };
    let contact = deps.messages.outbox().contact(scope, message.to.wa_id()).await?;
    let last_inbound = contact.as_ref().and_then(|(_, at)| *at);
    // The 24-hour window is the Cloud API's rule; a linked WhatsApp Web device has none.
    if !web
        && !message.is_template()
        && last_inbound.is_none_or(|at| now_secs() > at + SERVICE_WINDOW_SECS)
    {
        return Err(ApiError::Unprocessable {
            code: "outside_service_window",
            detail: "The customer has not written in the last 24 hours: only a template message can be sent.".into(),
        });
    }

    let tenant = deps.tenants.tenants().get(scope).await?;
    let high = tenant.tier.high_priority();
    let new = NewOutbound {
        message_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        client_message_id: message.client_message_id.clone(),
        request_hash: request_hash.clone(),
        to: message.to.as_str().to_owned(),
        wa_id: message.to.wa_id().to_owned(),
        kind: message.kind().to_owned(),
        preview: preview(&message),
        graph_request,
        queue: if web {
            "web"
        } else if high {
            "high"
        } else {
            "standard"
        }
        .to_owned(),
        created_by: principal.actor_id(),
    };
    match deps.messages.outbox().accept(scope, &new, contact).await? {
        Accepted::Created => {
            enqueue(deps, principal, &new.message_id, &new.queue, session_connection).await?;
            info!(tenant_id = %principal.tenant_id(), message_id = new.message_id, to = %message.to.redacted(), kind = new.kind, "message queued");
            Ok(accepted(StatusCode::ACCEPTED, &new.message_id, "queued", &new.client_message_id))
        }
        // Lost the race to an identical (or conflicting) request with the same id.
        Accepted::Existing { .. } => {
            repeat(deps, principal, &message.client_message_id, &request_hash)
                .await?
                .ok_or_else(|| ApiError::internal("client message id vanished"))
        }
    }
}

/// The answer to a request whose client message id was used before: 200 with the message
/// when the request is the same (queued again if the first attempt could not queue it),
/// 409 when it is not.
async fn repeat(
    deps: &Deps,
    principal: &Principal,
    client_message_id: &str,
    request_hash: &str,
) -> Result<Option<Response<Body>>, ApiError> {
    let scope = principal.scope();
    let Some((message_id, hash)) =
        deps.messages.outbox().client_message(scope, client_message_id).await?
    else {
        return Ok(None);
    };
    if hash != request_hash {
        return Err(ApiError::Conflict {
            code: "client_message_id_conflict",
            detail: "This clientMessageId was used for a different message.".into(),
        });
    }
    let stored = deps
        .messages
        .outbox()
        .get(principal.scope(), &message_id)
        .await?
        .ok_or_else(|| ApiError::internal("message of a client id is missing"))?;
    if !stored.enqueued && !stored.settled() {
        enqueue(deps, principal, &message_id, &stored.queue, None).await?;
    }
    // Once Meta has it, its wamid item carries how far it got (delivered, read).
    let status = match &stored.wamid {
        Some(wamid) => deps.messages.deliveries().state(principal.scope(), wamid).await?,
        None => None,
    }
    .map_or(stored.status, |(status, _)| status);
    Ok(Some(accepted(StatusCode::OK, &message_id, &status, client_message_id)))
}

/// The connection queue of the tenant's session, when the session can send.
async fn session_lane(deps: &Deps, principal: &Principal) -> Result<String, ApiError> {
    let sessions =
        deps.sessions.as_ref().ok_or_else(|| ApiError::internal("sessions not wired"))?;
    let session = sessions.pool.session(principal.scope()).await?;
    match session {
        Some(session) if session.state.can_send() => session
            .connection_id
            .ok_or_else(|| ApiError::internal("a session that can send has no connection")),
        other => Err(ApiError::Conflict {
            code: "session_not_connected",
            detail: format!(
                "The WhatsApp Web session is {}; connect it (POST /api/whatsapp/channel/connect) before sending.",
                other.map_or("disconnected", |s| s.state.as_str())
            ),
        }),
    }
}

/// Queues the message on its lane: `high` or `standard` for the message sender, `web` for
/// the session host that holds the tenant's session (in order, per session), on the
/// session's connection when the caller has just read it.
async fn enqueue(
    deps: &Deps,
    principal: &Principal,
    message_id: &str,
    lane: &str,
    connection: Option<String>,
) -> Result<(), ApiError> {
    let job =
        SendJob { tenant_id: principal.tenant_id().clone(), message_id: message_id.to_owned() };
    let queued = match lane {
        "web" => {
            let connection = match connection {
                Some(connection) => connection,
                None => session_lane(deps, principal).await?,
            };
            let sessions =
                deps.sessions.as_ref().ok_or_else(|| ApiError::internal("sessions not wired"))?;
            let work = SessionWork::Send {
                tenant_id: job.tenant_id.clone(),
                message_id: job.message_id.clone(),
            };
            sessions.queues.send(&connection, &work).await
        }
        "high" => deps.high.send(&job).await,
        _ => deps.standard.send(&job).await,
    };
    queued.map_err(|e| {
        // Stored but not queued: the client's retry with the same clientMessageId queues
        // it (see `repeat`).
        warn!(message_id, error = %e, "message stored but not queued");
        ApiError::from(e)
    })?;
    if let Err(e) = deps.messages.outbox().mark_enqueued(principal.scope(), message_id).await {
        // Harmless: a repeat would queue it again, and the sender sends it once.
        warn!(message_id, error = %e, "queued mark not written");
    }
    Ok(())
}

/// Replies and reactions may name our message id (`msg_…`); Meta wants its wamid.
async fn resolve_message_ids(
    deps: &Deps,
    principal: &Principal,
    message: &mut OutboundMessage,
) -> Result<(), ApiError> {
    let resolve = async |id: &str, field: &str| -> Result<String, ApiError> {
        if !id.starts_with("msg_") {
            return Ok(id.to_owned());
        }
        let known = deps.messages.conversations().message(principal.scope(), id).await?;
        known.and_then(|m| m.wamid).ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                field,
                "names no message of this tenant that WhatsApp knows (yet)",
            )])
        })
    };
    if let Some(reply) = &message.reply_to {
        message.reply_to = Some(resolve(reply, "context.messageId").await?);
    }
    if let Content::Reaction { message_id, .. } = &mut message.content {
        *message_id = resolve(message_id, "reaction.messageId").await?;
    }
    Ok(())
}

/// What conversation lists show of the message.
fn preview(message: &OutboundMessage) -> String {
    let text: String = match &message.content {
        Content::Text { body, .. } => body.clone(),
        Content::Media { caption: Some(caption), .. } => caption.clone(),
        Content::Template { name, .. } => format!("[template {name}]"),
        Content::Reaction { emoji, .. } => emoji.clone(),
        _ => format!("[{}]", message.kind()),
    };
    text.chars().take(120).collect()
}
