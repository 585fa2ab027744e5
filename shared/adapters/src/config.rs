//! Typed configuration, read once at start-up from the environment.

use crate::resources::{self, QueueSpec, TableSpec};
use std::collections::HashMap;

/// Why a function could not start (it then fails its cold start, naming the cause).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(String),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

/// A TCP port from `name`, or `default` when unset.
pub fn port(name: &str, default: u16) -> Result<u16, ConfigError> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name: name.to_owned(),
            reason: format!("{value:?} is not a port number"),
        }),
        Err(_) => Ok(default),
    }
}

/// A whole number from `name`, or `default` when unset.
pub fn number(name: &str, default: i64) -> Result<i64, ConfigError> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name: name.to_owned(),
            reason: format!("{value:?} is not a whole number"),
        }),
        Err(_) => Ok(default),
    }
}

/// Physical names of everything in [`resources`], as one deployment sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub tenants_table: String,
    pub pool_table: String,
    pub messages_table: String,
    pub inbound_events_queue_url: String,
    pub outbound_high_queue_url: String,
    pub outbound_standard_queue_url: String,
    pub partner_events_queue_url: String,
    pub webhook_retries_queue_url: String,
    pub tenant_erasure_queue_url: String,
    /// Dead-letter queues, by the logical id of their main queue.
    pub dlq_urls: std::collections::BTreeMap<&'static str, String>,
    /// A key id, ARN or alias (`alias/...`); functions use the alias.
    pub kms_key_id: String,
}

impl Resources {
    /// Reads every resource's environment variable (named in [`resources`]); the first one
    /// missing is named in the error.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ConfigError::Missing(name.to_owned()))
        };
        Ok(Self {
            tenants_table: get(resources::TENANTS_TABLE.env_var)?,
            pool_table: get(resources::POOL_TABLE.env_var)?,
            messages_table: get(resources::MESSAGES_TABLE.env_var)?,
            inbound_events_queue_url: get(resources::INBOUND_EVENTS_QUEUE.env_var)?,
            outbound_high_queue_url: get(resources::OUTBOUND_HIGH_QUEUE.env_var)?,
            outbound_standard_queue_url: get(resources::OUTBOUND_STANDARD_QUEUE.env_var)?,
            partner_events_queue_url: get(resources::PARTNER_EVENTS_QUEUE.env_var)?,
            webhook_retries_queue_url: get(resources::WEBHOOK_RETRIES_QUEUE.env_var)?,
            tenant_erasure_queue_url: get(resources::TENANT_ERASURE_QUEUE.env_var)?,
            dlq_urls: resources::QUEUES
                .iter()
                .map(|q| Ok((q.logical_id, get(q.dlq_env_var)?)))
                .collect::<Result<_, ConfigError>>()?,
            kms_key_id: get(resources::CREDENTIALS_KEY.env_var)?,
        })
    }

    /// The same names as environment variables: what a function deployed with these
    /// resources is given (the SAM template sets exactly these).
    pub fn to_env(&self) -> HashMap<&'static str, String> {
        let dlqs = resources::QUEUES.iter().map(|q| (q.dlq_env_var, self.dlq_url(q).to_owned()));
        let mut env = HashMap::from([
            (resources::TENANTS_TABLE.env_var, self.tenants_table.clone()),
            (resources::POOL_TABLE.env_var, self.pool_table.clone()),
            (resources::MESSAGES_TABLE.env_var, self.messages_table.clone()),
            (resources::INBOUND_EVENTS_QUEUE.env_var, self.inbound_events_queue_url.clone()),
            (resources::OUTBOUND_HIGH_QUEUE.env_var, self.outbound_high_queue_url.clone()),
            (resources::OUTBOUND_STANDARD_QUEUE.env_var, self.outbound_standard_queue_url.clone()),
            (resources::PARTNER_EVENTS_QUEUE.env_var, self.partner_events_queue_url.clone()),
            (resources::WEBHOOK_RETRIES_QUEUE.env_var, self.webhook_retries_queue_url.clone()),
            (resources::TENANT_ERASURE_QUEUE.env_var, self.tenant_erasure_queue_url.clone()),
            (resources::CREDENTIALS_KEY.env_var, self.kms_key_id.clone()),
        ]);
        env.extend(dlqs);
        env
    }

    pub fn dlq_url(&self, queue: &QueueSpec) -> &str {
        self.dlq_urls.get(queue.logical_id).map(String::as_str).unwrap_or_default()
    }

    pub fn table_name(&self, table: &TableSpec) -> &str {
        match table.logical_id {
            id if id == resources::TENANTS_TABLE.logical_id => &self.tenants_table,
            id if id == resources::POOL_TABLE.logical_id => &self.pool_table,
            _ => &self.messages_table,
        }
    }

    pub fn queue_url(&self, queue: &QueueSpec) -> &str {
        match queue.logical_id {
            id if id == resources::INBOUND_EVENTS_QUEUE.logical_id => {
                &self.inbound_events_queue_url
            }
            id if id == resources::OUTBOUND_HIGH_QUEUE.logical_id => &self.outbound_high_queue_url,
            id if id == resources::OUTBOUND_STANDARD_QUEUE.logical_id => {
                &self.outbound_standard_queue_url
            }
            id if id == resources::WEBHOOK_RETRIES_QUEUE.logical_id => {
                &self.webhook_retries_queue_url
            }
            id if id == resources::TENANT_ERASURE_QUEUE.logical_id => {
                &self.tenant_erasure_queue_url
            }
            _ => &self.partner_events_queue_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_env() -> HashMap<String, String> {
        let r = Resources {
            tenants_table: "t".into(),
            pool_table: "p".into(),
            messages_table: "m".into(),
            inbound_events_queue_url: "q1".into(),
            outbound_high_queue_url: "q2".into(),
            outbound_standard_queue_url: "q3".into(),
            partner_events_queue_url: "q4".into(),
            webhook_retries_queue_url: "q5".into(),
            tenant_erasure_queue_url: "q6".into(),
            dlq_urls: resources::QUEUES
                .iter()
                .map(|q| (q.logical_id, format!("{}-dlq", q.suffix)))
                .collect(),
            kms_key_id: "alias/k".into(),
        };
        r.to_env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn when_every_variable_is_set_then_the_names_round_trip() {
        let env = full_env();
        let r = Resources::from_lookup(|k| env.get(k).cloned()).expect("complete env");
        assert_eq!(r.to_env().len(), 16);
        assert_eq!(r.queue_url(&resources::TENANT_ERASURE_QUEUE), "q6");
        assert_eq!(r.queue_url(&resources::WEBHOOK_RETRIES_QUEUE), "q5");
        assert_eq!(r.dlq_url(&resources::INBOUND_EVENTS_QUEUE), "inbound-events-dlq");
        assert_eq!(r.kms_key_id, "alias/k");
        assert_eq!(r.table_name(&resources::POOL_TABLE), "p");
        assert_eq!(r.queue_url(&resources::OUTBOUND_STANDARD_QUEUE), "q3");
    }

    #[test]
    fn when_a_variable_is_missing_or_blank_then_the_error_names_it() {
        let mut env = full_env();
        env.remove("POOL_TABLE");
        let err = Resources::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(err, ConfigError::Missing("POOL_TABLE".into()));
        assert_eq!(err.to_string(), "missing environment variable POOL_TABLE");

        let mut env = full_env();
        env.insert("KMS_KEY_ID".into(), "  ".into());
        let err = Resources::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(err, ConfigError::Missing("KMS_KEY_ID".into()));
    }
}
