//! The local stack: what API Gateway and Lambda's SQS event-source mappings do in AWS, on
//! one machine.
//!
//! - [`gateway`]: every route of [`edge::routes::ROUTES`] on one port. Each request is
//!   turned into the API Gateway v2 (HTTP API) event the function would receive in AWS, and
//!   the function's handler is invoked in-process.
//! - [`poller`]: polls each queue and invokes its processor with a real SQS event, deleting
//!   what succeeded and leaving reported failures for SQS to redeliver (and, after the
//!   queue's receive limit, move to its dead-letter queue).

pub mod functions;
pub mod gateway;
pub mod poller;

use adapters::aws::AwsClients;
use adapters::config::Resources;
use functions::Functions;
pub use functions::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A built, bound local stack; `run_until_stopped` serves it.
pub struct Application {
    listener: TcpListener,
    functions: Arc<Functions>,
    pollers: Vec<poller::Poller>,
    /// Scheduled functions (the template's `Schedule` events), on timers.
    gateway_health: Option<gateway_health::Deps>,
}

impl Application {
    /// Binds `addr` (port 0 picks a free one, for tests) and wires every function once,
    /// as their `main`s would on a cold start.
    pub async fn build(
        addr: SocketAddr,
        clients: AwsClients,
        resources: Resources,
        settings: Settings,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let functions =
            Functions::new(&clients, &resources, &settings).map_err(std::io::Error::other)?;
        let functions = Arc::new(functions);
        let mut pollers = Vec::new();
        let processors = if settings.run_processors {
            functions::processors(&clients, &resources, &settings).map_err(std::io::Error::other)?
        } else {
            Vec::new()
        };
        for (source, processor) in processors {
            let queue = source.queue;
            let url = resources.queue_url(&queue).to_owned();
            let arn = adapters::aws::bootstrap::queue_arn(&clients, &url)
                .await
                .map_err(std::io::Error::other)?;
            pollers.push(
                poller::Poller::new(queue.suffix, clients.sqs.clone(), url, arn, processor)
                    .with_source(&source),
            );
        }
        let gateway_health = if settings.run_processors {
            let deps =
                gateway_health::Deps::build(&clients, &resources, settings.api.graph.clone())
                    .map_err(std::io::Error::other)?;
            Some(deps)
        } else {
            None
        };
        Ok(Self { listener, functions, pollers, gateway_health })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops the pollers and drains connections.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut poller_tasks: Vec<_> =
            self.pollers.into_iter().map(|p| tokio::spawn(p.run(stop_rx.clone()))).collect();
        if let Some(deps) = self.gateway_health {
            poller_tasks.push(tokio::spawn(schedule(deps, stop_rx.clone())));
        }
        let router = gateway::router(self.functions);
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await;
        for task in poller_tasks {
            let _ = task.await;
        }
        served
    }
}

/// The gateway health checks, every period of their schedule, as EventBridge runs them.
async fn schedule(deps: gateway_health::Deps, mut stop: watch::Receiver<bool>) {
    let spec = adapters::resources::SCHEDULES[0];
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(spec.every_secs.into()));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = gateway_health::run(&deps, domain::time::now_secs()).await {
            tracing::warn!(error = %e, "scheduled gateway health checks failed");
        }
    }
}
