//! Partner webhook delivery through the dispatcher: events queued on `partner-events`, the
//! dispatcher's two event sources polled as Lambda would (10 and 5 batches at once), and
//! the sandbox's receivers on 127.0.0.1 as the endpoints. Prints events per second and the
//! event → delivered latency (p50, p99) of one healthy endpoint: alone; beside another
//! tenant's healthy endpoint getting as many events; and beside another tenant's endpoint
//! that times out on every request (the fairness figure: it should cost no more than the
//! healthy neighbour does).
//!
//! usage: webhook_rate ENDPOINT EVENTS
//!
//! ENDPOINT serves SQS and KMS, and DynamoDB unless `AWS_ENDPOINT_URL_DYNAMODB` names
//! another emulator.

#[path = "common/mod.rs"]
mod common;

use adapters::aws::envelope::Envelopes;
use adapters::aws::{AwsClients, bootstrap};
use adapters::events::PartnerEvents;
use adapters::resources::{EVENT_SOURCES, WEBHOOK_DISPATCHER};
use adapters::store::TenantScope;
use adapters::store::tenants::{Subscription, TenantStore};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::ids::TenantId;
use local::functions::WebhookDispatcher;
use local::poller::Poller;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Error = Box<dyn std::error::Error>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// A tenant with one active subscription to `url`, written as the API writes them.
async fn subscriber(
    clients: &AwsClients,
    resources: &adapters::config::Resources,
    url: &str,
) -> Result<TenantId, Error> {
    let tenant = TenantId::generate();
    let now = adapters::store::attrs::now_secs();
    let tenant_item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{tenant}"))),
        ("sk".to_owned(), AttributeValue::S("TENANT".into())),
        ("tenantId".to_owned(), AttributeValue::S(tenant.to_string())),
        ("name".to_owned(), AttributeValue::S("Webhook bench".into())),
        ("tier".to_owned(), AttributeValue::S("enterprise".into())),
        ("createdAt".to_owned(), AttributeValue::N(now.to_string())),
        ("updatedAt".to_owned(), AttributeValue::N(now.to_string())),
    ]);
    clients
        .dynamodb
        .put_item()
        .table_name(&resources.tenants_table)
        .set_item(Some(tenant_item))
        .send()
        .await?;
    let secret = domain::webhooks::new_secret().map_err(|_| "no randomness")?;
    let sealed = Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone())
        .seal(&tenant, secret.as_bytes())
        .await?;
    let subscription = Subscription::new(url.to_owned(), vec!["*".into()], None, sealed);
    let scope = TenantScope::of_record(&adapters::queues::WebhookPointer {
        tenant_id: tenant.clone(),
        event_id: String::new(),
    });
    TenantStore::of(clients, resources).webhooks().create(&scope, &subscription).await?;
    Ok(tenant)
}

/// `count` events of each tenant, queued ten at a time in turn (as events of several
/// tenants arrive together), each carrying when it was queued.
async fn emit(events: &PartnerEvents, tenants: &[&TenantId], count: usize) -> Result<(), Error> {
    for start in (0..count).step_by(10) {
        for tenant in tenants {
            let chunk: Vec<_> = (start..(start + 10).min(count))
                .map(|n| {
                    domain::events::event(
                        format!("evt_{n}_{}", uuid::Uuid::new_v4().simple()),
                        "message.status",
                        tenant,
                        json!({"status": "read", "queuedAtMs": now_ms()}),
                    )
                })
                .collect();
            events.emit(&chunk).await?;
        }
    }
    Ok(())
}

/// When each event `receiver` got was queued and received (ms, oldest first), once it has
/// `count` items (or `wait` passed).
async fn arrivals(
    http: &reqwest::Client,
    receiver: &str,
    count: usize,
    wait: Duration,
) -> Result<Vec<(u64, u64)>, Error> {
    let deadline = Instant::now() + wait;
    loop {
        let body: Value = http.get(receiver).send().await?.json().await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= count || Instant::now() > deadline {
            return Ok(items
                .iter()
                .filter_map(|i| {
                    Some((i["body"]["data"]["queuedAtMs"].as_u64()?, i["receivedAt"].as_u64()?))
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sorted latencies (ms) of `arrivals`, and when the last one was received.
fn latencies_of(arrivals: &[(u64, u64)]) -> (Vec<u64>, u64) {
    let last = arrivals.iter().map(|(_, received)| *received).max().unwrap_or_default();
    let mut all: Vec<u64> =
        arrivals.iter().map(|(queued, received)| received.saturating_sub(*queued)).collect();
    all.sort_unstable();
    (all, last)
}

/// Sorted latencies (ms) of what `receiver` got, once it has `count` items (or `wait`
/// passed), and when the last one was received.
async fn latencies(
    http: &reqwest::Client,
    receiver: &str,
    count: usize,
    wait: Duration,
) -> Result<(Vec<u64>, u64), Error> {
    Ok(latencies_of(&arrivals(http, receiver, count, wait).await?))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(what: &str, sorted: &[u64], expected: usize, started_ms: u64, last_ms: u64) {
    let seconds = (last_ms.saturating_sub(started_ms)) as f64 / 1000.0;
    println!(
        "{what}: {} of {expected} delivered, {:.1} events/s, latency p50 {} ms, p99 {} ms",
        sorted.len(),
        sorted.len() as f64 / seconds.max(0.001),
        percentile(sorted, 0.5),
        percentile(sorted, 0.99)
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, events] = args.as_slice() else {
        return Err("usage: webhook_rate ENDPOINT EVENTS".into());
    };
    adapters::telemetry::init();
    let count: usize = events.parse()?;
    let clients = common::bench_clients(endpoint).await;
    let prefix = format!("bench-hooks-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let resources = bootstrap::ensure(&clients, &prefix).await?;

    // The receivers (the sandbox), on loopback.
    let sandbox_url = common::quiet_sandbox().await?;
    let http = reqwest::Client::new();
    let healthy = format!("{sandbox_url}/_sandbox/receiver/healthy");
    let stuck = format!("{sandbox_url}/_sandbox/receiver/stuck");
    http.put(&healthy).json(&json!({})).send().await?;
    // Longer than the 15 s an attempt may take: every attempt times out.
    http.put(&stuck).json(&json!({"delayMs": 20_000})).send().await?;

    // The dispatcher on both its queues, as its event sources run it.
    let config = webhook_dispatcher::Config {
        policy: webhook_dispatcher::Policy::default(),
        client: adapters::webhook_client::WebhookClient::new(domain::webhooks::Cidr::parse_list(
            "127.0.0.1/32",
        )?)?,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut pollers = Vec::new();
    for source in EVENT_SOURCES.iter().filter(|s| s.function == WEBHOOK_DISPATCHER) {
        let url = resources.queue_url(&source.queue).to_owned();
        let arn = bootstrap::queue_arn(&clients, &url).await?;
        let dispatcher = Arc::new(WebhookDispatcher(webhook_dispatcher::Deps::build(
            &clients, &resources, &config,
        )));
        let poller = Poller::new(source.queue.suffix, clients.sqs.clone(), url, arn, dispatcher)
            .with_source(source);
        pollers.push(tokio::spawn(poller.run(stop_rx.clone())));
    }

    let events =
        PartnerEvents::new(clients.sqs.clone(), resources.partner_events_queue_url.clone());
    let wait = Duration::from_secs(60 + count as u64 / 2);

    // 1. One healthy endpoint alone.
    let tenant = subscriber(&clients, &resources, &healthy).await?;
    let started = now_ms();
    emit(&events, &[&tenant], count).await?;
    let (alone, last) = latencies(&http, &healthy, count, wait).await?;
    report("healthy endpoint alone", &alone, count, started, last);

    // 2. A healthy endpoint while another tenant's healthy endpoint gets as many events,
    //    queued in turn with its own: what sharing the queue costs.
    let beside_ok = format!("{sandbox_url}/_sandbox/receiver/beside-ok");
    let other_ok = format!("{sandbox_url}/_sandbox/receiver/other-ok");
    for url in [&beside_ok, &other_ok] {
        http.put(url).json(&json!({})).send().await?;
    }
    let a = subscriber(&clients, &resources, &beside_ok).await?;
    let b = subscriber(&clients, &resources, &other_ok).await?;
    let started = now_ms();
    emit(&events, &[&b, &a], count).await?;
    let (shared, last) = latencies(&http, &beside_ok, count, wait).await?;
    report("healthy endpoint beside another healthy one", &shared, count, started, last);
    latencies(&http, &other_ok, count, wait).await?;

    // 3. The same, but the other endpoint times out on every request (the fairness figure).
    let beside_stuck = format!("{sandbox_url}/_sandbox/receiver/beside-stuck");
    http.put(&beside_stuck).json(&json!({})).send().await?;
    let a = subscriber(&clients, &resources, &beside_stuck).await?;
    let b = subscriber(&clients, &resources, &stuck).await?;
    let started = now_ms();
    emit(&events, &[&b, &a], count).await?;
    let got = arrivals(&http, &beside_stuck, count, wait).await?;
    let (fair, last) = latencies_of(&got);
    report(
        "healthy endpoint beside one that times out on every request",
        &fair,
        count,
        started,
        last,
    );
    // The same figures for the events queued once the timing-out endpoint's circuit had
    // opened (its first attempts timed out): the steady state, without the first 15 s.
    let scope = TenantScope::of_record(&adapters::queues::WebhookPointer {
        tenant_id: b.clone(),
        event_id: String::new(),
    });
    let stuck_subscriptions = TenantStore::of(&clients, &resources).webhooks().list(&scope).await?;
    if let Some(opened) = stuck_subscriptions.first().and_then(|s| s.failing_since) {
        let opened_ms = u64::try_from(opened).unwrap_or_default() * 1000;
        let received_after = got.iter().filter(|(_, received)| *received >= opened_ms).count();
        let queued_after: Vec<(u64, u64)> =
            got.iter().copied().filter(|(queued, _)| *queued >= opened_ms).collect();
        let (steady, _) = latencies_of(&queued_after);
        let seconds = last.saturating_sub(opened_ms) as f64 / 1000.0;
        println!(
            "  once its circuit had opened ({:.1} s after the first event): {received_after} received, \
             {:.1} events/s; latency of the {} events queued since: p50 {} ms, p99 {} ms",
            opened_ms.saturating_sub(started) as f64 / 1000.0,
            received_after as f64 / seconds.max(0.001),
            queued_after.len(),
            percentile(&steady, 0.5),
            percentile(&steady, 0.99)
        );
    }
    let (stuck_attempts, _) = latencies(&http, &stuck, 0, Duration::ZERO).await?;
    println!(
        "the timing-out endpoint meanwhile received {} attempts (at most 10 in flight)",
        stuck_attempts.len()
    );

    let _ = stop_tx.send(true);
    for poller in pollers {
        poller.abort();
    }
    Ok(())
}
