//! The deployed functions, wired once like their `main`s do, and invoked by name.

use crate::poller::{Processor, ProcessorFuture};
use adapters::aws::AwsClients;

use adapters::config::Resources;
use adapters::config::StartError;
use adapters::resources::{
    EVENT_SOURCES, EventSourceSpec, MESSAGE_SENDER, TENANT_ERASER, WEBHOOK_DISPATCHER,
    WEBHOOK_PROCESSOR,
};
use aws_lambda_events::event::sqs::SqsEvent;
use edge::config::ApiConfig;
use edge::routes::{
    ADMIN, AUTH, B2B, CHANNEL, FunctionName, HEALTH, MESSAGES, META_WEBHOOK, TENANTS, WEBHOOKS,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// What the functions read from their environment in AWS, given directly.
#[derive(Clone)]
pub struct Settings {
    /// Token keys, sandbox credentials and where Cloud API requests go (Meta, or the
    /// sandbox): what every HTTP function reads, and the sender too.
    pub api: ApiConfig,
    pub lockout: auth::LockoutPolicy,
    pub sender: message_sender::Policy,
    pub platform_app: meta_webhook::PlatformApp,
    /// Partner webhook delivery: the retry schedule, the per-endpoint limit, and the
    /// destination rules (`WEBHOOK_ALLOWED_CIDRS`), which the webhooks API checks too.
    pub webhooks: webhook_dispatcher::Config,
    /// Whether queues are polled (off only to measure ingest alone).
    pub run_processors: bool,
    /// Whether `partner-events` is delivered (off for tests that read the queue itself).
    pub deliver_webhooks: bool,
}

pub struct Functions {
    health: health::Deps,
    auth: auth::Deps,
    tenants: tenants::Deps,
    channel: channel::Deps,
    meta_webhook: meta_webhook::Deps,
    messages: messages::Deps,
    admin: admin::Deps,
    webhooks: webhooks::Deps,
    b2b: b2b::Deps,
}

impl Functions {
    /// Each function wired by its own `Deps::build`, as its `main` does: with caches of its
    /// own (one Lambda's warm cache never serves another function, so it does not here).
    pub fn new(
        clients: &AwsClients,
        resources: &Resources,
        settings: &Settings,
    ) -> Result<Self, StartError> {
        let api = &settings.api;
        Ok(Self {
            health: health::Deps::new(clients.clone(), resources.clone()),
            auth: auth::Deps::build(
                clients,
                resources,
                &auth::Config { api: api.clone(), lockout: settings.lockout },
            )?,
            tenants: tenants::Deps::build(clients, resources, api)?,
            channel: channel::Deps::build(clients, resources, api)?,
            meta_webhook: meta_webhook::Deps::build(
                clients,
                resources,
                &meta_webhook::Config {
                    sandbox: settings.api.sandbox.clone(),
                    platform_app: settings.platform_app.clone(),
                },
            ),
            messages: messages::Deps::build(clients, resources, api)?,
            admin: admin::Deps::build(clients, resources, api),
            webhooks: webhooks::Deps::build(
                clients,
                resources,
                &webhooks::Config { api: api.clone(), client: settings.webhooks.client.clone() },
            ),
            b2b: b2b::Deps::build(clients, resources, api),
        })
    }

    /// Invokes an HTTP function as Lambda would. A function error is what API Gateway
    /// turns into a bare 500 `{"message":"Internal Server Error"}`.
    pub async fn invoke(&self, function: FunctionName, request: Request) -> Response<Body> {
        let result = match function {
            HEALTH => health::handle(&self.health, request).await,
            AUTH => auth::handle(&self.auth, request).await,
            TENANTS => tenants::handle(&self.tenants, request).await,
            CHANNEL => channel::handle(&self.channel, request).await,
            META_WEBHOOK => meta_webhook::handle(&self.meta_webhook, request).await,
            MESSAGES => messages::handle(&self.messages, request).await,
            ADMIN => admin::handle(&self.admin, request).await,
            WEBHOOKS => webhooks::handle(&self.webhooks, request).await,
            B2B => b2b::handle(&self.b2b, request).await,
            other => Err(format!("the local stack does not host function {other}").into()),
        };
        result.unwrap_or_else(|err| {
            tracing::error!(function, error = %err, "function failed");
            let mut response = Response::new(Body::from(r#"{"message":"Internal Server Error"}"#));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }

    /// Whether `invoke` knows the function; the gateway test holds every route to it.
    pub fn hosts(function: FunctionName) -> bool {
        matches!(
            function,
            HEALTH | AUTH | TENANTS | CHANNEL | META_WEBHOOK | MESSAGES | ADMIN | WEBHOOKS | B2B
        )
    }
}

/// The webhook processor as the inbound-events queue's event source invokes it.
pub struct WebhookProcessor(pub webhook_processor::Deps);

impl Processor for WebhookProcessor {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_> {
        Box::pin(async move { Ok(webhook_processor::handle(&self.0, event).await) })
    }
}

/// The message sender as both outbound queues' event sources invoke it.
pub struct MessageSender(pub message_sender::Deps);

impl Processor for MessageSender {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_> {
        Box::pin(async move { Ok(message_sender::handle(&self.0, event).await) })
    }
}

/// The partner webhook dispatcher as both its event sources invoke it.
pub struct WebhookDispatcher(pub webhook_dispatcher::Deps);

impl Processor for WebhookDispatcher {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_> {
        Box::pin(async move { Ok(webhook_dispatcher::handle(&self.0, event).await) })
    }
}

/// The tenant eraser as the tenant-erasure queue's event source invokes it.
pub struct TenantEraser(pub tenant_eraser::Deps);

impl Processor for TenantEraser {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_> {
        Box::pin(async move { Ok(tenant_eraser::handle(&self.0, event).await) })
    }
}

/// An event source of the template, with the processor it invokes.
pub type EventSource = (EventSourceSpec, Arc<dyn Processor>);

/// Each event source of [`adapters::resources::EVENT_SOURCES`], with its processor.
pub fn processors(
    clients: &AwsClients,
    resources: &Resources,
    settings: &Settings,
) -> Result<Vec<EventSource>, StartError> {
    let inbound: Arc<dyn Processor> =
        Arc::new(WebhookProcessor(webhook_processor::Deps::build(clients, resources)));
    let sender_config = message_sender::Config {
        sandbox: settings.api.sandbox.clone(),
        graph: settings.api.graph.clone(),
        policy: settings.sender,
    };
    let mut processors = Vec::new();
    for source in EVENT_SOURCES {
        let processor: Arc<dyn Processor> = match source.function {
            WEBHOOK_PROCESSOR => inbound.clone(),
            // One sender per queue, as Lambda runs separate instances for the two sources.
            MESSAGE_SENDER => Arc::new(MessageSender(message_sender::Deps::build(
                clients,
                resources,
                &sender_config,
            )?)),
            WEBHOOK_DISPATCHER if !settings.deliver_webhooks => continue,
            // One dispatcher per queue, as Lambda runs separate instances for the two sources.
            WEBHOOK_DISPATCHER => Arc::new(WebhookDispatcher(webhook_dispatcher::Deps::build(
                clients,
                resources,
                &settings.webhooks,
            ))),
            TENANT_ERASER => Arc::new(TenantEraser(tenant_eraser::Deps::build(clients, resources))),
            other => {
                tracing::error!(function = other, "the local stack does not host this processor");
                continue;
            }
        };
        processors.push((source, processor));
    }
    Ok(processors)
}
