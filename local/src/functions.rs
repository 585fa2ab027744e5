//! The deployed functions, wired once like their `main`s do, and invoked by name.

use crate::poller::{Processor, ProcessorFuture};
use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::Resources;
use adapters::resources::{
    EVENT_SOURCES, EventSourceSpec, INBOUND_EVENTS_QUEUE, MESSAGE_SENDER, WEBHOOK_PROCESSOR,
};
use adapters::store::channels::ChannelStore;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use aws_lambda_events::event::sqs::SqsEvent;
use domain::passwords::{HashError, Passwords};
use edge::principal::Authenticator;
use edge::routes::{ADMIN, AUTH, CHANNEL, FunctionName, HEALTH, MESSAGES, META_WEBHOOK, TENANTS};
use edge::tokens::TokenKeys;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// What the functions read from their environment in AWS, given directly.
#[derive(Clone)]
pub struct Settings {
    pub token_keys: Arc<TokenKeys>,
    pub lockout: auth::LockoutPolicy,
    pub sandbox: SandboxCredentials,
    /// Where Cloud API requests go (Meta, or the sandbox), for health checks, templates
    /// and sending.
    pub graph: adapters::graph::GraphConfig,
    pub sender: message_sender::Policy,
    pub platform_app: meta_webhook::PlatformApp,
    /// Whether queues are polled (off only to measure ingest alone).
    pub run_processors: bool,
}

pub struct Functions {
    health: health::Deps,
    auth: auth::Deps,
    tenants: tenants::Deps,
    channel: channel::Deps,
    meta_webhook: meta_webhook::Deps,
    messages: messages::Deps,
    admin: admin::Deps,
}

impl Functions {
    pub fn new(
        clients: &AwsClients,
        resources: &Resources,
        settings: &Settings,
    ) -> Result<Self, HashError> {
        let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
        let passwords = Passwords::new()?;
        let authenticator = Authenticator::new(settings.token_keys.clone(), store.clone());
        let channels = Channels::new(
            ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
            Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            settings.sandbox.clone(),
        );
        let message_store =
            MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone());
        Ok(Self {
            health: health::Deps::new(clients.clone(), resources.clone()),
            auth: auth::Deps::new(
                store.clone(),
                settings.token_keys.clone(),
                passwords.clone(),
                settings.lockout,
            ),
            tenants: tenants::Deps::new(store.clone(), authenticator.clone(), passwords),
            channel: channel::Deps::new(
                channels.clone(),
                store.clone(),
                authenticator.clone(),
                settings.graph.clone(),
            ),
            meta_webhook: meta_webhook::Deps::new(
                channels.clone(),
                message_store.clone(),
                clients.sqs.clone(),
                resources.inbound_events_queue_url.clone(),
                resources.dlq_url(&INBOUND_EVENTS_QUEUE).to_owned(),
            )
            .with_platform_app(settings.platform_app.clone()),
            messages: messages::Deps::new(
                message_store.clone(),
                store.clone(),
                channels.clone(),
                clients.sqs.clone(),
                messages::OutboundQueues {
                    high: resources.outbound_high_queue_url.clone(),
                    standard: resources.outbound_standard_queue_url.clone(),
                },
                settings.graph.clone(),
                authenticator.clone(),
            ),
            admin: admin::Deps::new(
                message_store,
                clients.sqs.clone(),
                resources.inbound_events_queue_url.clone(),
                authenticator,
            ),
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
        matches!(function, HEALTH | AUTH | TENANTS | CHANNEL | META_WEBHOOK | MESSAGES | ADMIN)
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

/// Each event source of [`adapters::resources::EVENT_SOURCES`], with its processor.
pub fn processors(
    clients: &AwsClients,
    resources: &Resources,
    settings: &Settings,
) -> Vec<(EventSourceSpec, Arc<dyn Processor>)> {
    let inbound = webhook_processor::Deps::build(clients, resources);
    // One sender per queue, as Lambda runs separate instances for the two event sources.
    let sender = || -> Arc<dyn Processor> {
        Arc::new(MessageSender(message_sender::Deps::from_parts(
            clients,
            resources,
            settings.sandbox.clone(),
            settings.graph.clone(),
            settings.sender,
        )))
    };
    let inbound: Arc<dyn Processor> = Arc::new(WebhookProcessor(inbound));
    EVENT_SOURCES
        .into_iter()
        .filter_map(|source| {
            let processor = match source.function {
                WEBHOOK_PROCESSOR => inbound.clone(),
                MESSAGE_SENDER => sender(),
                other => {
                    tracing::error!(
                        function = other,
                        "the local stack does not host this processor"
                    );
                    return None;
                }
            };
            Some((source, processor))
        })
        .collect()
}
