//! The AWS resources Switchboard owns, defined once.
//!
//! `infra/template.yaml` declares the same tables, queues and key for CloudFormation; the
//! local stack creates them from these definitions (see [`crate::aws::bootstrap`]). The test
//! `infra_agreement` fails when the two disagree.
//!
//! Every name is `{prefix}-{suffix}`: the prefix is the CloudFormation stack name in AWS,
//! `switchboard-local` under `make dev`, and unique per test so tests never share state.

/// Every table uses the same generic key: partition key `pk`, sort key `sk`, both strings;
/// what an item is lives in the key's prefix (single-table design within each concern).
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";
/// Items that expire (raw webhook events, idempotency records, refresh tokens, leases)
/// carry their expiry here, in epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

/// A global secondary index; both keys are strings and every attribute is projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
}

/// A DynamoDB table (on-demand billing, `pk`/`sk` keys, TTL on [`TTL_ATTRIBUTE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The resource's logical id in `infra/template.yaml`.
    pub logical_id: &'static str,
    pub suffix: &'static str,
    /// The environment variable through which functions learn the table's name.
    pub env_var: &'static str,
    pub indexes: &'static [IndexSpec],
}

/// A standard SQS queue and its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: &'static str,
    pub suffix: &'static str,
    /// The environment variable through which functions learn the queue's URL.
    pub env_var: &'static str,
    /// At least six times the consuming function's timeout, as AWS advises for SQS sources
    /// (a unit test holds every [`EVENT_SOURCES`] entry to it).
    pub visibility_timeout_secs: u32,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    pub dlq_logical_id: &'static str,
    /// The environment variable through which functions learn the DLQ's URL.
    pub dlq_env_var: &'static str,
    /// The age of its oldest message (seconds) past which the queue is falling behind: its
    /// alarm (`<logical id>AgeAlarm`, five minutes in a row). Its DLQ's alarm
    /// (`<dlq logical id>Alarm`) fires on a single message.
    pub oldest_message_alarm_secs: u32,
}

impl QueueSpec {
    pub fn dlq_suffix(&self) -> String {
        format!("{}-dlq", self.suffix)
    }
}

/// How long a message may wait in a main queue (4 days) and in a dead-letter queue
/// (14 days, the SQS maximum, so that an operator has time to look).
pub const QUEUE_RETENTION_SECS: u32 = 4 * 24 * 3600;
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// The symmetric KMS key that envelope-encrypts every stored credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub logical_id: &'static str,
    pub alias_logical_id: &'static str,
    pub alias_suffix: &'static str,
    pub env_var: &'static str,
}

const GSI1: IndexSpec = IndexSpec { name: "gsi1", partition_key: "gsi1pk", sort_key: "gsi1sk" };
const GSI2: IndexSpec = IndexSpec { name: "gsi2", partition_key: "gsi2pk", sort_key: "gsi2sk" };

/// Tenants, users, platforms, API keys, channel config, webhook subscriptions, audit.
/// gsi1 answers look-ups by a secondary id (API-key prefix, phone number id, platform);
/// gsi2 lists a platform's users in creation order.
pub const TENANTS_TABLE: TableSpec = TableSpec {
    logical_id: "TenantsTable",
    suffix: "tenants",
    env_var: "TENANTS_TABLE",
    indexes: &[GSI1, GSI2],
};

/// Session-host pools: connections, slots, leases, session state.
/// gsi1 finds connections of a tier with free slots, and expired leases.
pub const POOL_TABLE: TableSpec =
    TableSpec { logical_id: "PoolTable", suffix: "pool", env_var: "POOL_TABLE", indexes: &[GSI1] };

/// Raw webhook events, conversations, messages, status history, idempotency records,
/// usage counters, webhook deliveries.
/// gsi1 lists a tenant's conversations by latest activity; gsi2 lists a conversation's
/// messages by time. (A message is found by Meta's `wamid` through a `WAMID#` item, which a
/// transaction keeps consistent with the message: see `store::messages`.)
pub const MESSAGES_TABLE: TableSpec = TableSpec {
    logical_id: "MessagesTable",
    suffix: "messages",
    env_var: "MESSAGES_TABLE",
    indexes: &[GSI1, GSI2],
};

pub const TABLES: [TableSpec; 3] = [TENANTS_TABLE, POOL_TABLE, MESSAGES_TABLE];

/// Verified Meta webhook events waiting for the webhook processor.
pub const INBOUND_EVENTS_QUEUE: QueueSpec = QueueSpec {
    logical_id: "InboundEventsQueue",
    suffix: "inbound-events",
    env_var: "INBOUND_EVENTS_QUEUE_URL",
    visibility_timeout_secs: 180,
    max_receive_count: 5,
    dlq_logical_id: "InboundEventsDlq",
    dlq_env_var: "INBOUND_EVENTS_DLQ_URL",
    oldest_message_alarm_secs: 300,
};

/// Outbound messages of enterprise and enterprise_b2b tenants.
pub const OUTBOUND_HIGH_QUEUE: QueueSpec = QueueSpec {
    logical_id: "OutboundHighQueue",
    suffix: "outbound-high",
    env_var: "OUTBOUND_HIGH_QUEUE_URL",
    visibility_timeout_secs: 360,
    max_receive_count: 8,
    dlq_logical_id: "OutboundHighDlq",
    dlq_env_var: "OUTBOUND_HIGH_DLQ_URL",
    oldest_message_alarm_secs: 900,
};

/// Outbound messages of standard and professional tenants.
pub const OUTBOUND_STANDARD_QUEUE: QueueSpec = QueueSpec {
    logical_id: "OutboundStandardQueue",
    suffix: "outbound-standard",
    env_var: "OUTBOUND_STANDARD_QUEUE_URL",
    visibility_timeout_secs: 360,
    max_receive_count: 8,
    dlq_logical_id: "OutboundStandardDlq",
    dlq_env_var: "OUTBOUND_STANDARD_DLQ_URL",
    oldest_message_alarm_secs: 900,
};

/// Events to deliver to partners' webhook endpoints: the dispatcher fans each out to its
/// subscriptions and makes the first attempts (the fresh lane).
pub const PARTNER_EVENTS_QUEUE: QueueSpec = QueueSpec {
    logical_id: "PartnerEventsQueue",
    suffix: "partner-events",
    env_var: "PARTNER_EVENTS_QUEUE_URL",
    visibility_timeout_secs: 360,
    max_receive_count: 10,
    dlq_logical_id: "PartnerEventsDlq",
    dlq_env_var: "PARTNER_EVENTS_DLQ_URL",
    oldest_message_alarm_secs: 300,
};

/// Every later attempt of a partner webhook delivery (retries, redeliveries, recoveries,
/// and first attempts to an endpoint that is failing or busy): the retry lane, which never
/// queues ahead of the fresh one.
pub const WEBHOOK_RETRIES_QUEUE: QueueSpec = QueueSpec {
    logical_id: "WebhookRetriesQueue",
    suffix: "webhook-retries",
    env_var: "WEBHOOK_RETRIES_QUEUE_URL",
    visibility_timeout_secs: 360,
    max_receive_count: 10,
    dlq_logical_id: "WebhookRetriesDlq",
    dlq_env_var: "WEBHOOK_RETRIES_DLQ_URL",
    // A hop waits 15 minutes at most.
    oldest_message_alarm_secs: 1800,
};

/// Tenants to erase (a platform deleted one of its users): every item of the tenant in
/// every table, a page at a time, then once more later for what was in flight.
pub const TENANT_ERASURE_QUEUE: QueueSpec = QueueSpec {
    logical_id: "TenantErasureQueue",
    suffix: "tenant-erasure",
    env_var: "TENANT_ERASURE_QUEUE_URL",
    visibility_timeout_secs: 1800,
    max_receive_count: 5,
    dlq_logical_id: "TenantErasureDlq",
    dlq_env_var: "TENANT_ERASURE_DLQ_URL",
    // The final sweep waits 15 minutes.
    oldest_message_alarm_secs: 1800,
};

pub const QUEUES: [QueueSpec; 6] = [
    INBOUND_EVENTS_QUEUE,
    OUTBOUND_HIGH_QUEUE,
    OUTBOUND_STANDARD_QUEUE,
    PARTNER_EVENTS_QUEUE,
    WEBHOOK_RETRIES_QUEUE,
    TENANT_ERASURE_QUEUE,
];

/// A queue's consumer: the SAM template's SQS event source on a function. The local stack
/// polls the same way (batch size, batches at once), so that what a backlog does under
/// concurrency is seen locally too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSourceSpec {
    pub queue: QueueSpec,
    /// The consuming function's crate, `functions/{function}`.
    pub function: &'static str,
    /// The event's key under the function's `Events` in the template.
    pub event_id: &'static str,
    pub batch_size: u32,
    /// `ScalingConfig.MaximumConcurrency`: how many batches are processed at once.
    pub max_concurrency: u32,
    /// The consuming function's `Timeout`.
    pub function_timeout_secs: u32,
}

/// The queue processors' function names (their crates are `functions/{name}`).
pub const WEBHOOK_PROCESSOR: &str = "webhook-processor";
pub const MESSAGE_SENDER: &str = "message-sender";
pub const WEBHOOK_DISPATCHER: &str = "webhook-dispatcher";
pub const TENANT_ERASER: &str = "tenant-eraser";

/// A function run on a schedule (the template's `Schedule` event); the local stack runs
/// it on a timer of the same period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// The function's crate, `functions/{function}`.
    pub function: &'static str,
    /// The event's key under the function's `Events` in the template.
    pub event_id: &'static str,
    /// Its period, in seconds (the template's `rate(...)`).
    pub every_secs: u32,
}

pub const GATEWAY_HEALTH: &str = "gateway-health";

pub const SCHEDULES: [ScheduleSpec; 1] =
    [ScheduleSpec { function: GATEWAY_HEALTH, event_id: "EveryMinute", every_secs: 60 }];

impl ScheduleSpec {
    /// The template's expression for the period.
    pub fn rate(&self) -> String {
        match self.every_secs {
            60 => "rate(1 minute)".into(),
            s if s % 60 == 0 => format!("rate({} minutes)", s / 60),
            s => format!("rate({s} seconds)"),
        }
    }
}

pub const EVENT_SOURCES: [EventSourceSpec; 6] = [
    EventSourceSpec {
        queue: INBOUND_EVENTS_QUEUE,
        function: WEBHOOK_PROCESSOR,
        event_id: "InboundEvents",
        batch_size: 10,
        max_concurrency: 10,
        function_timeout_secs: 30,
    },
    EventSourceSpec {
        queue: OUTBOUND_HIGH_QUEUE,
        function: MESSAGE_SENDER,
        event_id: "OutboundHigh",
        batch_size: 10,
        max_concurrency: 20,
        function_timeout_secs: 60,
    },
    EventSourceSpec {
        queue: OUTBOUND_STANDARD_QUEUE,
        function: MESSAGE_SENDER,
        event_id: "OutboundStandard",
        batch_size: 10,
        max_concurrency: 5,
        function_timeout_secs: 60,
    },
    // An attempt takes 15 s at most; a batch's attempts run at once.
    EventSourceSpec {
        queue: PARTNER_EVENTS_QUEUE,
        function: WEBHOOK_DISPATCHER,
        event_id: "PartnerEvents",
        batch_size: 10,
        max_concurrency: 10,
        function_timeout_secs: 60,
    },
    EventSourceSpec {
        queue: WEBHOOK_RETRIES_QUEUE,
        function: WEBHOOK_DISPATCHER,
        event_id: "WebhookRetries",
        batch_size: 10,
        // A failing endpoint holds at most two of these while its attempts time out.
        max_concurrency: 10,
        function_timeout_secs: 60,
    },
    // One tenant at a time per invocation; an erasure that does not finish in its time
    // budget queues its own continuation.
    EventSourceSpec {
        queue: TENANT_ERASURE_QUEUE,
        function: TENANT_ERASER,
        event_id: "TenantErasure",
        batch_size: 1,
        max_concurrency: 2,
        function_timeout_secs: 300,
    },
];

pub const CREDENTIALS_KEY: KeySpec = KeySpec {
    logical_id: "CredentialsKey",
    alias_logical_id: "CredentialsKeyAlias",
    alias_suffix: "credentials",
    env_var: "KMS_KEY_ID",
};

/// `{prefix}-{suffix}`, the physical name of a table or queue.
pub fn physical_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}-{suffix}")
}

/// `alias/{prefix}-credentials`: functions address the key by this alias.
pub fn key_alias(prefix: &str) -> String {
    format!("alias/{}", physical_name(prefix, CREDENTIALS_KEY.alias_suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_resource_has_its_own_logical_id_and_env_var() {
        let mut ids = HashSet::new();
        let mut vars = HashSet::new();
        for t in TABLES {
            assert!(ids.insert(t.logical_id), "duplicate logical id {}", t.logical_id);
            assert!(vars.insert(t.env_var), "duplicate env var {}", t.env_var);
        }
        for q in QUEUES {
            assert!(ids.insert(q.logical_id), "duplicate logical id {}", q.logical_id);
            assert!(ids.insert(q.dlq_logical_id), "duplicate logical id {}", q.dlq_logical_id);
            assert!(vars.insert(q.env_var), "duplicate env var {}", q.env_var);
            assert!(vars.insert(q.dlq_env_var), "duplicate env var {}", q.dlq_env_var);
        }
        assert!(ids.insert(CREDENTIALS_KEY.logical_id));
        assert!(ids.insert(CREDENTIALS_KEY.alias_logical_id));
        assert!(vars.insert(CREDENTIALS_KEY.env_var));
    }

    #[test]
    fn every_queue_outlasts_six_of_its_consumer_timeouts() {
        for source in EVENT_SOURCES {
            assert!(
                source.queue.visibility_timeout_secs >= 6 * source.function_timeout_secs,
                "{}: visibility {} s, function timeout {} s",
                source.queue.suffix,
                source.queue.visibility_timeout_secs,
                source.function_timeout_secs
            );
            assert!((2..=1000).contains(&source.max_concurrency), "AWS's range");
            assert!((1..=10).contains(&source.batch_size), "standard queue batch range");
        }
    }

    #[test]
    fn names_carry_the_prefix() {
        assert_eq!(physical_name("stack", "tenants"), "stack-tenants");
        assert_eq!(INBOUND_EVENTS_QUEUE.dlq_suffix(), "inbound-events-dlq");
        assert_eq!(key_alias("stack"), "alias/stack-credentials");
    }
}
