//! What `make cost` prices: the AWS requests the counting tests make, as they went out
//! and came back, each phase's wall time, and the size of every item left in the tables.
//! Written as JSON lines to the file `COST_RECORD` names (nothing when it is unset).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// One AWS request: `Service.Operation`, its JSON body and its answer's.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub op: String,
    pub request: Value,
    pub response: Value,
}

static FILE: Mutex<()> = Mutex::new(());

fn write(line: Value) {
    let Some(path) = std::env::var_os("COST_RECORD") else { return };
    let _guard = FILE.lock().expect("lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the cost record");
    writeln!(file, "{line}").expect("write the cost record");
}

/// A phase of a flow (`inbound.ingest.warm`): its requests, its wall time, and how many
/// messages (or users, or events) it handled.
pub fn record(step: &str, calls: &[Call], elapsed: Duration, units: u32) {
    write(json!({
        "step": step,
        "elapsedMs": elapsed.as_secs_f64() * 1000.0,
        "units": units,
        "calls": calls,
    }));
}

/// DynamoDB's size of an attribute value (its item-size rules: names and values in
/// bytes, a number about one byte per two digits, 3 bytes per list or map and 1 per
/// element).
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum::<usize>()
        }
        _ => 0,
    }
}

pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Every item of the stack's tables: its key, size and the index keys it carries, so
/// that each write the calls name can be priced by the item it left.
pub async fn record_items(stack: &crate::Stack) {
    if std::env::var_os("COST_RECORD").is_none() {
        return;
    }
    let r = &stack.resources;
    let mut items = Vec::new();
    for table in [&r.tenants_table, &r.messages_table, &r.pool_table] {
        let mut start = None;
        loop {
            let page = stack
                .clients
                .dynamodb
                .scan()
                .table_name(table.as_str())
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let indexes: Vec<&str> = ["gsi1", "gsi2"]
                    .into_iter()
                    .filter(|g| item.contains_key(&format!("{g}pk")))
                    .collect();
                items.push(json!({
                    "table": table, "pk": text("pk"), "sk": text("sk"),
                    "size": item_size(item), "indexes": indexes,
                }));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    write(json!({"items": items}));
}
