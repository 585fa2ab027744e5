//! One message: claimed just before its slot, posted to the Graph API at it, and what
//! Meta's answer decides (recorded, retried after a backoff, or failed with a reason).

use crate::handler::{Deps, Outcome, Policy};
use adapters::events;
use adapters::graph::Target;
use adapters::store::messages::outbox::{Claim, Outbound};
use adapters::store::pacing::{Bucket, now_us};
use adapters::store::{StoreError, TenantScope};
use domain::meta::{ErrorClass, classify_error, graph_error};
use serde_json::{Value, json};
use std::time::Duration;
use tracing::{error, info, instrument, warn};

/// What the Graph API answered.
enum Answer {
    Sent {
        wamid: String,
    },
    Refused {
        code: i64,
        title: String,
    },
    /// No usable answer (timeout, connection, 5xx without a Graph error).
    Unanswered(String),
    /// A gateway at an address that is not allowed: nothing was sent.
    NotAllowed(String),
}

async fn post(deps: &Deps, target: &Target, body: &Value) -> Answer {
    let request = if target.gateway {
        // A tenant's own gateway: through the destination-checked client.
        match deps.gateway.request(reqwest::Method::POST, &target.messages_url()) {
            Ok(request) => request.timeout(deps.policy.http_timeout),
            Err(refused) => return Answer::NotAllowed(refused.to_string()),
        }
    } else {
        deps.http.post(target.messages_url())
    };
    let request = target.authorise(request.json(body));
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let (error, refused) = adapters::webhook_client::failure(&e.without_url());
            if refused {
                return Answer::NotAllowed(error);
            }
            return Answer::Unanswered(error);
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some((code, title)) = graph_error(&body) {
        return Answer::Refused { code, title };
    }
    match body.pointer("/messages/0/id").and_then(Value::as_str) {
        Some(wamid) if status.is_success() => Answer::Sent { wamid: wamid.to_owned() },
        _ => Answer::Unanswered(format!("HTTP {} without a message id", status.as_u16())),
    }
}

#[instrument(skip_all, fields(message_id = %message_id))]
pub(crate) async fn send_one(
    deps: &Deps,
    tenant: &TenantScope,
    (target, held): (&Target, bool),
    message_id: &str,
    due_us: i64,
) -> Outcome {
    match try_send(deps, tenant, (target, held), message_id, due_us).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

/// `held`: the channel's gateway is unhealthy; the message waits (as a failed attempt)
/// rather than be posted to it.
async fn try_send(
    deps: &Deps,
    tenant: &TenantScope,
    (target, held): (&Target, bool),
    message_id: &str,
    due_us: i64,
) -> Result<Outcome, Outcome> {
    sleep_until_us(due_us - CLAIM_AHEAD_US).await;
    let message = match deps
        .messages
        .outbox()
        .claim(tenant, message_id, deps.policy.lease_secs)
        .await?
    {
        Claim::Claimed(message) => message,
        Claim::Missing => {
            warn!("no such outbound message; nothing to send");
            return Ok(Outcome::Done);
        }
        Claim::Settled => return Ok(Outcome::Done),
        Claim::Busy => {
            return Ok(Outcome::Retry(Duration::from_secs(deps.policy.lease_secs as u64)));
        }
        Claim::Abandoned => {
            // NOTE: a sender stopped between calling Meta and recording the answer. Meta
            // may have the message; sending it again could deliver it twice, so it is
            // failed visibly instead (the agent can send it again).
            warn!("an earlier send stopped without an outcome; not sending again");
            fail(
                deps,
                tenant,
                message_id,
                &json!("send_outcome_unknown"),
                "The send was interrupted; it may or may not have reached WhatsApp, so it was not repeated.",
            )
            .await?;
            return Ok(Outcome::Done);
        }
    };
    sleep_until_us(due_us).await;
    let attempt = message.attempts;
    if held {
        warn!(attempt, "the channel's gateway is unhealthy; the message waits for it");
        let reason =
            "The channel's gateway failed its health check; the message waits for it to recover.";
        return retry_or_fail(
            deps,
            tenant,
            &message,
            attempt,
            deps.policy.transient_attempts,
            (json!("gateway_unhealthy"), reason),
            2,
        )
        .await;
    }
    match post(deps, target, &message.graph_request).await {
        Answer::Sent { wamid } => {
            record_sent(deps, tenant, &message, &wamid).await?;
            info!(attempt, "message sent");
            Ok(Outcome::Sent)
        }
        Answer::Refused { code, title } => {
            refused(deps, tenant, target, &message, attempt, (code, &title)).await
        }
        Answer::NotAllowed(reason) => {
            warn!(attempt, reason, "the gateway's address is not an allowed destination");
            let title = format!("The channel's apiUrl is not an allowed destination ({reason}).");
            fail(deps, tenant, &message.message_id, &json!("destination_not_allowed"), &title)
                .await?;
            Ok(Outcome::Done)
        }
        Answer::Unanswered(reason) => {
            warn!(attempt, reason, "the Graph API did not answer");
            retry_or_fail(
                deps,
                tenant,
                &message,
                attempt,
                deps.policy.transient_attempts,
                (json!("no_answer"), &reason),
                2,
            )
            .await
        }
    }
}

/// How long before its slot a message is claimed: enough for the DynamoDB round trip, so
/// that the request leaves at the slot itself; short, so that a sender that stops while
/// holding a claim has almost never stopped before calling Meta (its message is then
/// failed as "outcome unknown").
const CLAIM_AHEAD_US: i64 = 50_000;

async fn sleep_until_us(at_us: i64) {
    let wait = at_us - now_us();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
    }
}

/// Meta has the message: its wamid must be recorded, or a retry would send it again.
async fn record_sent(
    deps: &Deps,
    tenant: &TenantScope,
    message: &Outbound,
    wamid: &str,
) -> Result<(), Outcome> {
    let outbox = deps.messages.outbox();
    let recorded =
        in_place(6, "sent, but not recorded yet", || outbox.record_sent(tenant, message, wamid))
            .await;
    if recorded.is_ok() {
        return Ok(());
    }
    // The lease stays held: a redelivery finds it expired and fails the message as
    // "outcome unknown" rather than sending it twice. The wamid is logged to reconcile.
    error!(wamid, "sent, but the wamid could not be recorded");
    Err(Outcome::Error("sent message not recorded".into()))
}

async fn refused(
    deps: &Deps,
    tenant: &TenantScope,
    target: &Target,
    message: &Outbound,
    attempt: i64,
    (code, title): (i64, &str),
) -> Result<Outcome, Outcome> {
    let class = classify_error(code);
    warn!(attempt, code, ?class, "the Graph API refused the message");
    if code == THROUGHPUT_REACHED {
        // The number as a whole is over Meta's limit, not this message: every sender
        // pauses the number's sends.
        let until = now_us() + THROUGHPUT_PAUSE_US;
        let phone = Bucket::Phone(target.phone_number_id.clone());
        if let Err(e) = deps.buckets.hold(tenant, &phone, until).await {
            warn!(error = %e, "the number's sends not paused");
        }
    }
    match class {
        ErrorClass::Throttled => {
            // Pair rate limits (one recipient) back off faster: Meta suggests 4^n seconds.
            let growth = if code == 131056 { 4 } else { 2 };
            retry_or_fail(
                deps,
                tenant,
                message,
                attempt,
                deps.policy.throttled_attempts,
                (json!(code), title),
                growth,
            )
            .await
        }
        ErrorClass::Transient => {
            retry_or_fail(
                deps,
                tenant,
                message,
                attempt,
                deps.policy.transient_attempts,
                (json!(code), title),
                2,
            )
            .await
        }
        ErrorClass::Token => {
            if let Err(e) = deps.channels.store().record_health(tenant, Some(false)).await {
                warn!(error = %e, "channel health not recorded");
            }
            deps.channels.forget(tenant.tenant_id());
            let reason = format!(
                "The channel's access token was refused ({title}); update it with PUT /api/whatsapp/channel."
            );
            fail(deps, tenant, &message.message_id, &json!(code), &reason).await?;
            Ok(Outcome::Done)
        }
        ErrorClass::Permanent => {
            fail(deps, tenant, &message.message_id, &json!(code), title).await?;
            Ok(Outcome::Done)
        }
    }
}

/// Fails a message for good and tells partners (`message.status`, `failed`): once, by the
/// call that failed it.
pub(crate) async fn fail(
    deps: &Deps,
    tenant: &TenantScope,
    message_id: &str,
    code: &Value,
    title: &str,
) -> Result<(), StoreError> {
    if !deps.messages.outbox().record_failed(tenant, message_id, code, title).await? {
        return Ok(());
    }
    let event = events::message_failed(tenant.tenant_id(), message_id, code, title);
    // NOTE: the message is failed already, so a redelivery would not come back here: the
    // event is retried in place. The event id is stable, so a repeat is harmless.
    let queued = in_place(4, "failure event not queued yet", || {
        deps.events.emit(std::slice::from_ref(&event))
    })
    .await;
    if queued.is_err() {
        error!(event_id = event.id, "failure event not queued");
    }
    Ok(())
}

/// Runs `write` until it succeeds, at most `times`, pausing 200 ms and then twice as long
/// each time: for writes that must follow what already happened (a redelivery would not
/// come back to them).
async fn in_place<E, Fut>(times: u32, what: &str, write: impl Fn() -> Fut) -> Result<(), E>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<(), E>>,
{
    let mut pause = Duration::from_millis(200);
    let mut result = write().await;
    for _ in 1..times {
        let Err(e) = &result else { break };
        warn!(error = %e, "{what}; retrying");
        tokio::time::sleep(pause).await;
        pause *= 2;
        result = write().await;
    }
    result
}

/// Meta's "Cloud API message throughput has been reached" (per phone number).
const THROUGHPUT_REACHED: i64 = 130429;
/// How long every sender stops sending from a number that reached its throughput.
const THROUGHPUT_PAUSE_US: i64 = 1_000_000;

/// Retries after a backoff with jitter, or fails the message once `limit` sends failed.
async fn retry_or_fail(
    deps: &Deps,
    tenant: &TenantScope,
    message: &Outbound,
    attempt: i64,
    limit: i64,
    (code, title): (Value, &str),
    growth: u32,
) -> Result<Outcome, Outcome> {
    if attempt >= limit {
        fail(deps, tenant, &message.message_id, &code, title).await?;
        return Ok(Outcome::Done);
    }
    deps.messages
        .outbox()
        .release(tenant, &message.message_id, &json!({ "code": code, "title": title }))
        .await?;
    Ok(Outcome::Retry(backoff(&deps.policy, attempt, growth)))
}

/// `base * growth^(attempt-1)`, capped, with "equal jitter": between half and all of it.
fn backoff(policy: &Policy, attempt: i64, growth: u32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
    let full =
        policy.retry_base.saturating_mul(growth.saturating_pow(exponent)).min(policy.retry_max);
    let random = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
    full.mul_f64(0.5 + random / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_its_cap() {
        let policy = Policy::default();
        for attempt in 1..=10 {
            let full = (policy.retry_base * 2u32.pow(attempt as u32 - 1)).min(policy.retry_max);
            let d = backoff(&policy, attempt, 2);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} of {full:?}");
        }
        assert!(backoff(&policy, 3, 4) >= Duration::from_secs(16), "pair limits grow by 4");
        assert!(backoff(&policy, 40, 4) <= policy.retry_max);
    }
}
