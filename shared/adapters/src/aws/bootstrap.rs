//! Creates the tables, queues and key of [`crate::resources`] under a prefix, idempotently.
//!
//! Used by the local stack (`make dev`) and by tests. In AWS, CloudFormation creates the
//! same resources from `infra/template.yaml`.

use super::{AwsClients, error_code};
use crate::config::Resources;
use crate::resources::{
    self, DLQ_RETENTION_SECS, PARTITION_KEY, QUEUE_RETENTION_SECS, QUEUES, QueueSpec, SORT_KEY,
    TABLES, TTL_ATTRIBUTE, TableSpec, key_alias, physical_name,
};
use crate::telemetry::error_chain;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{resource}: {message}")]
    Aws { resource: String, message: String },
    #[error("{0} did not become active in time")]
    NotActive(String),
}

fn aws_err(resource: &str, err: impl std::error::Error + 'static) -> BootstrapError {
    BootstrapError::Aws { resource: resource.to_owned(), message: error_chain(&err) }
}

/// Creates whatever is missing and converges queue attributes; returns the names and URLs
/// functions need.
pub async fn ensure(clients: &AwsClients, prefix: &str) -> Result<Resources, BootstrapError> {
    for table in TABLES {
        ensure_table(clients, &physical_name(prefix, table.suffix), &table).await?;
    }
    let mut urls = HashMap::new();
    let mut dlq_urls = std::collections::BTreeMap::new();
    for queue in QUEUES {
        let (url, dlq_url) = ensure_queue(clients, prefix, &queue).await?;
        urls.insert(queue.logical_id, url);
        dlq_urls.insert(queue.logical_id, dlq_url);
    }
    let kms_key_id = ensure_key(clients, prefix).await?;
    let url = |q: &QueueSpec| urls.get(q.logical_id).cloned().unwrap_or_default();
    Ok(Resources {
        tenants_table: physical_name(prefix, resources::TENANTS_TABLE.suffix),
        pool_table: physical_name(prefix, resources::POOL_TABLE.suffix),
        messages_table: physical_name(prefix, resources::MESSAGES_TABLE.suffix),
        inbound_events_queue_url: url(&resources::INBOUND_EVENTS_QUEUE),
        outbound_high_queue_url: url(&resources::OUTBOUND_HIGH_QUEUE),
        outbound_standard_queue_url: url(&resources::OUTBOUND_STANDARD_QUEUE),
        partner_events_queue_url: url(&resources::PARTNER_EVENTS_QUEUE),
        webhook_retries_queue_url: url(&resources::WEBHOOK_RETRIES_QUEUE),
        tenant_erasure_queue_url: url(&resources::TENANT_ERASURE_QUEUE),
        dlq_urls,
        kms_key_id,
    })
}

/// Deletes the tables and queues of one prefix (the key is scheduled for deletion).
/// Tests call it so that a long run leaves the emulator as it found it.
pub async fn remove(clients: &AwsClients, prefix: &str, res: &Resources) {
    for table in TABLES {
        let _ = clients.dynamodb.delete_table().table_name(res.table_name(&table)).send().await;
    }
    for queue in QUEUES {
        let _ = clients.sqs.delete_queue().queue_url(res.queue_url(&queue)).send().await;
        let dlq = physical_name(prefix, &queue.dlq_suffix());
        if let Ok(out) = clients.sqs.get_queue_url().queue_name(dlq).send().await
            && let Some(url) = out.queue_url()
        {
            let _ = clients.sqs.delete_queue().queue_url(url).send().await;
        }
    }
    if let Ok(key) = clients.kms.describe_key().key_id(&res.kms_key_id).send().await
        && let Some(meta) = key.key_metadata()
    {
        let _ = clients.kms.delete_alias().alias_name(&res.kms_key_id).send().await;
        let _ = clients
            .kms
            .schedule_key_deletion()
            .key_id(meta.key_id())
            .pending_window_in_days(7)
            .send()
            .await;
    }
}

fn string_attr(name: &str) -> Result<AttributeDefinition, BootstrapError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| aws_err(name, e))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, BootstrapError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| aws_err(name, e))
}

async fn ensure_table(
    clients: &AwsClients,
    name: &str,
    spec: &TableSpec,
) -> Result<(), BootstrapError> {
    let mut attributes = BTreeSet::from([PARTITION_KEY, SORT_KEY]);
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?);
    for index in spec.indexes {
        attributes.insert(index.partition_key);
        attributes.insert(index.sort_key);
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key, KeyType::Hash)?)
            .key_schema(key(index.sort_key, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| aws_err(name, e))?;
        request = request.global_secondary_indexes(gsi);
    }
    for attribute in attributes {
        request = request.attribute_definitions(string_attr(attribute)?);
    }
    match request.send().await {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("ResourceInUseException") => {}
        Err(e) => return Err(aws_err(name, e)),
    }
    wait_until_active(clients, name).await?;

    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| aws_err(name, e))?;
    let enabled = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| aws_err(name, e))?;
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| aws_err(name, e))?;
    }
    Ok(())
}

async fn wait_until_active(clients: &AwsClients, name: &str) -> Result<(), BootstrapError> {
    for _ in 0..120 {
        let out = clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| aws_err(name, e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(BootstrapError::NotActive(name.to_owned()))
}

/// Creates the queue (or brings an existing one's attributes up to date); returns its URL.
async fn upsert_queue(
    clients: &AwsClients,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, BootstrapError> {
    if let Ok(existing) = clients.sqs.get_queue_url().queue_name(name).send().await
        && let Some(url) = existing.queue_url()
    {
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| aws_err(name, e))?;
        return Ok(url.to_owned());
    }
    let created = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| aws_err(name, e))?;
    created.queue_url().map(str::to_owned).ok_or_else(|| BootstrapError::Aws {
        resource: name.to_owned(),
        message: "no queue URL".into(),
    })
}

pub async fn queue_arn(clients: &AwsClients, url: &str) -> Result<String, BootstrapError> {
    let out = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_err(url, e))?;
    out.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().ok_or_else(|| {
        BootstrapError::Aws { resource: url.to_owned(), message: "no QueueArn".into() }
    })
}

/// Creates a queue and its DLQ; returns both URLs.
async fn ensure_queue(
    clients: &AwsClients,
    prefix: &str,
    spec: &QueueSpec,
) -> Result<(String, String), BootstrapError> {
    let dlq_name = physical_name(prefix, &spec.dlq_suffix());
    let dlq_url = upsert_queue(
        clients,
        &dlq_name,
        HashMap::from([(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )]),
    )
    .await?;
    let dlq_arn = queue_arn(clients, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": spec.max_receive_count,
    });
    let url = upsert_queue(
        clients,
        &physical_name(prefix, spec.suffix),
        HashMap::from([
            (QueueAttributeName::VisibilityTimeout, spec.visibility_timeout_secs.to_string()),
            (QueueAttributeName::MessageRetentionPeriod, QUEUE_RETENTION_SECS.to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ]),
    )
    .await?;
    Ok((url, dlq_url))
}

/// Returns the key's alias, creating the key and alias when the alias does not resolve.
async fn ensure_key(clients: &AwsClients, prefix: &str) -> Result<String, BootstrapError> {
    let alias = key_alias(prefix);
    if clients.kms.describe_key().key_id(&alias).send().await.is_ok() {
        return Ok(alias);
    }
    let created = clients
        .kms
        .create_key()
        .description(format!("{prefix}: envelope encryption of stored credentials"))
        .send()
        .await
        .map_err(|e| aws_err(&alias, e))?;
    let key_id = created.key_metadata().map(|m| m.key_id().to_owned()).ok_or_else(|| {
        BootstrapError::Aws { resource: alias.clone(), message: "no key id".into() }
    })?;
    clients
        .kms
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_id)
        .send()
        .await
        .map_err(|e| aws_err(&alias, e))?;
    Ok(alias)
}
