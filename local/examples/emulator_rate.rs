//! The emulator alone: the two calls webhook ingest makes (DynamoDB PutItem of a body, SQS
//! SendMessage of a pointer), with the Rust SDK ingest uses, at a given concurrency.
//! `make bench` runs it against the same emulator as the ingest measurement.
//!
//! usage: emulator_rate ENDPOINT STACK_PREFIX BODY_FILE TOTAL CONCURRENCY

use adapters::aws::AwsClients;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, prefix, body_file, total, concurrency] = args.as_slice() else {
        return Err("usage: emulator_rate ENDPOINT STACK_PREFIX BODY_FILE TOTAL CONCURRENCY".into());
    };
    let (total, concurrency): (usize, usize) = (total.parse()?, concurrency.parse()?);
    let clients = Arc::new(AwsClients::for_emulator(endpoint).await);
    let body = Arc::new(std::fs::read(body_file)?);
    let table = format!("{prefix}-messages");
    let queue =
        clients.sqs.get_queue_url().queue_name(format!("{prefix}-inbound-events")).send().await?;
    let queue = queue.queue_url().unwrap_or_default().to_owned();

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (clients, body, table, queue) =
            (clients.clone(), body.clone(), table.clone(), queue.clone());
        let share = total / concurrency + usize::from(worker < total % concurrency);
        tasks.spawn(async move {
            let mut mine = Vec::with_capacity(share);
            for _ in 0..share {
                let event = uuid::Uuid::new_v4().simple().to_string();
                let t = Instant::now();
                clients
                    .dynamodb
                    .put_item()
                    .table_name(&table)
                    .item("pk", AttributeValue::S("TENANT#bench-raw".into()))
                    .item("sk", AttributeValue::S(format!("RAW#{event}")))
                    .item("body", AttributeValue::B(Blob::new(body.as_slice())))
                    .send()
                    .await?;
                clients
                    .sqs
                    .send_message()
                    .queue_url(&queue)
                    .message_body(format!("{{\"eventId\":\"{event}\"}}"))
                    .send()
                    .await?;
                mine.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(mine)
        });
    }
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done?.map_err(|e| e.to_string())?);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let p95 = latencies[(latencies.len() * 95).div_ceil(100) - 1];
    println!(
        "emulator alone (PutItem + SendMessage, Rust SDK): {total} pairs, {concurrency} concurrent: {rate:.0}/s, median {median:.1} ms, p95 {p95:.1} ms"
    );
    Ok(())
}
