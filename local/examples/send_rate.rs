//! Pacing through the message sender: stores queued messages of one tenant (a sandbox
//! channel with `messagesPerSecond` = RATE, tier enterprise_b2b), runs SENDERS concurrent
//! invocations of the sender against an in-process sandbox with status webhooks off, and
//! reports when the sandbox received each send. `make bench` runs it at 80 and at
//! 1,000 msg/s.
//!
//! usage: send_rate ENDPOINT RATE SECONDS SENDERS [queue|direct]
//!
//! - `queue` (the default): jobs go through the emulator's outbound-high queue, fed at
//!   1.25 × RATE, and SENDERS local pollers receive them (`local::poller`).
//! - `direct`: every job is waiting at the start (a backlog), and SENDERS invocations take
//!   batches of ten straight from memory, as Lambda's own poller hands them over; records
//!   the sender reports as failed come back one second later. The queue emulator is out
//!   of the loop: moto's SQS cannot deliver 1,000 messages a second.
//!
//! ENDPOINT serves SQS and KMS, and DynamoDB unless `AWS_ENDPOINT_URL_DYNAMODB` names
//! another emulator.

#[path = "common/mod.rs"]
mod common;

use adapters::aws::bootstrap;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use local::functions::MessageSender;
use local::poller::Poller;
use local::poller::Processor;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A send job as `POST /api/messages` queues it.
fn job(tenant: &str, message_id: &str) -> String {
    let tenant =
        domain::ids::TenantId::parse(tenant).unwrap_or_else(|| panic!("tenant id {tenant}"));
    let job = adapters::queues::SendJob { tenant_id: tenant, message_id: message_id.to_owned() };
    serde_json::to_string(&job).unwrap_or_else(|e| panic!("job: {e}"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (endpoint, rate, seconds, senders, direct) = match args.as_slice() {
        [_, e, r, s, n] => (e, r, s, n, false),
        [_, e, r, s, n, mode] if mode == "queue" || mode == "direct" => {
            (e, r, s, n, mode == "direct")
        }
        _ => return Err("usage: send_rate ENDPOINT RATE SECONDS SENDERS [queue|direct]".into()),
    };
    adapters::telemetry::init();
    let (rate, seconds, senders): (usize, usize, usize) =
        (rate.parse()?, seconds.parse()?, senders.parse()?);
    let total = rate * seconds + rate / 5;
    let clients = common::bench_clients(endpoint).await;
    let prefix = format!("bench-send-{rate}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let resources = bootstrap::ensure(&clients, &prefix).await?;

    // The sandbox, statuses off: only sending is measured.
    let sandbox_url = common::quiet_sandbox().await?;

    // One tenant with a sandbox channel, written as the API writes them.
    let tenant = format!("ten_{}", uuid::Uuid::new_v4().simple());
    let pk = format!("TENANT#{tenant}");
    let now = adapters::store::attrs::now_secs();
    let tenant_item = HashMap::from([
        ("pk".into(), s(&pk)),
        ("sk".into(), s("TENANT")),
        ("tenantId".into(), s(&tenant)),
        ("name".into(), s("Pacing bench")),
        ("tier".into(), s("enterprise_b2b")),
        ("createdAt".into(), n(now)),
        ("updatedAt".into(), n(now)),
    ]);
    let channel_item = HashMap::from([
        ("pk".into(), s(&pk)),
        ("sk".into(), s("CHANNEL")),
        ("provider".into(), s("sandbox")),
        ("settings".into(), s(json!({"messagesPerSecond": rate.to_string()}).to_string())),
        ("secretHints".into(), s("{}")),
        ("healthStatus".into(), s("unknown")),
        ("updatedAt".into(), n(now)),
    ]);
    for item in [tenant_item, channel_item] {
        clients
            .dynamodb
            .put_item()
            .table_name(&resources.tenants_table)
            .set_item(Some(item))
            .send()
            .await?;
    }

    // The queued messages and their jobs.
    let preload = Instant::now();
    let ids: Vec<String> = (0..total).map(|i| format!("msg_bench{i:08}")).collect();
    // Messages live in the shard of their id, as the API stores them.
    let record = adapters::queues::SendJob {
        tenant_id: domain::ids::TenantId::parse(&tenant).unwrap_or_else(|| panic!("{tenant}")),
        message_id: String::new(),
    };
    let scope = adapters::store::TenantScope::of_record(&record);
    for chunk in ids.chunks(25) {
        let writes = chunk
            .iter()
            .map(|id| {
                let to = format!("+1555{:07}", id[9..].parse::<u64>().unwrap_or(0) % 10_000_000);
                let content = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                    "type": "template", "template": {"name": "bench", "language": {"code": "en_US"}}});
                let item = HashMap::from([
                    ("pk".into(), s(scope.shard_pk(id))),
                    ("sk".into(), s(format!("MSG#{id}"))),
                    ("messageId".into(), s(id)),
                    ("conversationId".into(), s("conv_bench")),
                    ("direction".into(), s("outbound")),
                    ("to".into(), s(&to)),
                    ("kind".into(), s("template")),
                    ("content".into(), s(content.to_string())),
                    ("status".into(), s("queued")),
                    ("queue".into(), s("high")),
                    ("timestamp".into(), n(now)),
                ]);
                let put = PutRequest::builder().set_item(Some(item)).build()?;
                Ok::<_, Box<dyn std::error::Error>>(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut pending = HashMap::from([(resources.messages_table.clone(), writes)]);
        while !pending.is_empty() {
            let out =
                clients.dynamodb.batch_write_item().set_request_items(Some(pending)).send().await?;
            pending = out
                .unprocessed_items
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
        }
    }
    eprintln!("stored {total} queued messages in {:.1} s", preload.elapsed().as_secs_f64());

    let arn = bootstrap::queue_arn(&clients, &resources.outbound_high_queue_url).await?;
    let graph = adapters::graph::GraphConfig {
        graph_api_base: "http://127.0.0.1:9".into(),
        graph_api_version: "v23.0".into(),
        sandbox_url: Some(sandbox_url.clone()),
        // Only sandbox channels here: no gateway is reached.
        destinations_allowed: Vec::new(),
    };
    // Each invocation with its own process-level caches, as separate Lambda instances.
    let sender = || {
        Arc::new(MessageSender(
            message_sender::Deps::build(
                &clients,
                &resources,
                &message_sender::Config {
                    sandbox: adapters::channel::SandboxCredentials::default(),
                    graph: graph.clone(),
                    policy: message_sender::Policy::default(),
                },
            )
            .unwrap_or_else(|e| panic!("sender: {e}")),
        ))
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let retried = Arc::new(AtomicUsize::new(0));
    let feeder = if direct {
        let backlog: Arc<Mutex<VecDeque<String>>> =
            Arc::new(Mutex::new(ids.iter().cloned().collect()));
        for _ in 0..senders {
            let (sender, backlog, retried) = (sender(), backlog.clone(), retried.clone());
            // NOTE: an ARN of no queue the sender knows: what it defers comes back to it as a
            // failed record (it cannot requeue it), and this loop hands it over again.
            let (tenant, arn, stop) = (
                tenant.clone(),
                "arn:aws:sqs:us-east-1:000000000000:direct".to_owned(),
                stop_rx.clone(),
            );
            tokio::spawn(async move {
                while !*stop.borrow() {
                    let batch: Vec<String> = {
                        let Ok(mut queue) = backlog.lock() else { return };
                        let n = queue.len().min(10);
                        queue.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let event = direct_event(&tenant, &arn, &batch);
                    let failed: Vec<String> = match sender.process(event).await {
                        Ok(response) => response
                            .batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier)
                            .collect(),
                        Err(_) => batch.clone(),
                    };
                    if !failed.is_empty() {
                        retried.fetch_add(failed.len(), Ordering::Relaxed);
                        let backlog = backlog.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if let Ok(mut queue) = backlog.lock() {
                                queue.extend(failed);
                            }
                        });
                    }
                }
            });
        }
        None
    } else {
        // NOTE: the jobs are fed to the queue a quarter faster than the target rate, not
        // all at once: moto's ReceiveMessage scans the whole queue (0.7 s per call at 1,000
        // messages), which would measure the emulator instead of the sender.
        let (sqs, url, tenant, ids) = (
            clients.sqs.clone(),
            resources.outbound_high_queue_url.clone(),
            tenant.clone(),
            ids.clone(),
        );
        let every = Duration::from_secs_f64(10.0 / (rate as f64 * 1.25));
        let feeder = tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            for chunk in ids.chunks(10) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, id)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(job(&tenant, id))
                            .build()
                            .ok()
                    })
                    .collect::<Vec<_>>();
                if let Err(e) =
                    sqs.send_message_batch().queue_url(&url).set_entries(Some(entries)).send().await
                {
                    eprintln!("feeder: {e}");
                }
                next += every;
                tokio::time::sleep_until(next).await;
            }
        });
        for i in 0..senders {
            let poller = Poller::new(
                format!("sender-{i}"),
                clients.sqs.clone(),
                resources.outbound_high_queue_url.clone(),
                arn.clone(),
                sender(),
            );
            tokio::spawn(poller.run(stop_rx.clone()));
        }
        Some(feeder)
    };

    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = Duration::from_secs((seconds as u64) * 20 + 60);
    let times: Vec<u64> = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats: Value =
            http.get(format!("{sandbox_url}/_sandbox/stats")).send().await?.json().await?;
        let sends = stats["sends"].as_u64().unwrap_or(0) as usize;
        if started.elapsed().as_secs().is_multiple_of(5) {
            eprintln!("{:>4} s: {sends} sent", started.elapsed().as_secs());
        }
        if sends >= total || started.elapsed() > deadline {
            break stats["sentAtMs"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
        }
    };
    // A moment for any repeated send still under way to land before the count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    // Each message has its own recipient: a send twice would show as a repeated one.
    let sent: Value =
        http.get(format!("{sandbox_url}/_sandbox/messages")).send().await?.json().await?;
    let recipients: Vec<&str> = sent["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["to"].as_str()).collect())
        .unwrap_or_default();
    let distinct = recipients.iter().collect::<std::collections::HashSet<_>>().len();
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    bootstrap::remove(&clients, &prefix, &resources).await;
    let mode = if direct { "direct" } else { "queue" };
    let sent_count = times.len();
    report(rate, senders, mode, total, times);
    println!(
        "records retried: {}; messages sent once: {distinct} of {total}; sent twice or more: {}",
        retried.load(Ordering::Relaxed),
        recipients.len() - distinct,
    );
    if sent_count < total || recipients.len() != distinct {
        return Err(format!("{sent_count} of {total} sent, {distinct} once").into());
    }
    Ok(())
}

/// Sustained rate after the first second (which may carry the bucket's burst), and the
/// spread of whole seconds around it.
fn report(rate: usize, senders: usize, mode: &str, total: usize, mut times: Vec<u64>) {
    times.sort_unstable();
    let (Some(first), Some(last)) = (times.first().copied(), times.last().copied()) else {
        println!("{rate}/s target: nothing was sent");
        return;
    };
    let steady_from = first + 1000;
    let steady: Vec<u64> = times.iter().copied().filter(|t| *t >= steady_from).collect();
    let window = (last.saturating_sub(steady_from)) as f64 / 1000.0;
    let sustained = if window > 0.0 { steady.len() as f64 / window } else { 0.0 };
    let full_seconds = ((last - steady_from) / 1000) as usize;
    let bins: Vec<usize> = (0..full_seconds)
        .map(|s| {
            let from = steady_from + s as u64 * 1000;
            steady.iter().filter(|t| **t >= from && **t < from + 1000).count()
        })
        .collect();
    let first_second = times.iter().filter(|t| **t < steady_from).count();
    println!(
        "target {rate}/s, {senders} sender(s), {mode}: {}/{total} sent; sustained {sustained:.1} msg/s over {window:.1} s \
         ({:.1}% of target); whole seconds: min {}, max {}; first second {first_second}",
        times.len(),
        sustained * 100.0 / rate as f64,
        bins.iter().min().unwrap_or(&0),
        bins.iter().max().unwrap_or(&0),
    );
}

/// The SQS event Lambda builds for a batch of send jobs.
fn direct_event(tenant: &str, arn: &str, ids: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = ids
        .iter()
        .map(|id| {
            let mut record = SqsMessage::default();
            record.message_id = Some(id.clone());
            record.body = Some(job(tenant, id));
            record.event_source_arn = Some(arn.to_owned());
            record
        })
        .collect();
    event
}
