//! DynamoDB adapters. Every item of tenant data is keyed under `TENANT#<id>` (or one of its
//! shards, `TENANT#<id>#<nn>`), and every method that reads or writes it takes a
//! [`TenantScope`]: a handler cannot name another tenant's data.

pub mod attrs;
pub mod channels;
pub mod messages;
pub mod pacing;
pub mod page;
pub mod pool;
pub mod session_keys;
pub mod table;
pub mod tenant_data;
pub mod tenants;

use domain::ids::TenantId;
use domain::queues::Tenanted;

/// The pseudo tenant of [`TenantScope::platform_webhooks`], as its id reads.
pub use domain::ids::PLATFORM_TENANT as PLATFORM_PARTITION;

/// Proof that the caller acts for this tenant. Made only where that was established:
///
/// - a verified credential whose record is stored (`TenantStore::authenticate_user`,
///   `authenticate_api_key`), or a registration;
/// - a signed webhook's channel (`channel::OpenChannel::scope`), or the phone number a
///   platform webhook names (`ChannelStore::tenant_of_phone`);
/// - a record from one of our own queues ([`TenantScope::of_record`]): only our code queues
///   them, after one of the above;
/// - an operator naming a tenant that exists (`TenantStore::existing`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantScope(TenantId);

impl TenantScope {
    pub(crate) fn new(tenant: TenantId) -> Self {
        Self(tenant)
    }

    /// The tenant a record from one of our own queues belongs to.
    pub fn of_record<M: Tenanted>(record: &M) -> Self {
        Self(record.tenant_id().clone())
    }

    /// Where platform webhooks are kept whole, with the changes no tenant owns: stored and
    /// visible to operators, never dropped.
    pub fn platform_webhooks() -> Self {
        Self(TenantId::platform())
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.0
    }

    /// The partition key of the tenant's items that are written at most a few times a
    /// second per customer or per setting: users, keys, channels, contacts, conversations,
    /// templates, buckets.
    pub(crate) fn pk(&self) -> String {
        format!("TENANT#{}", self.0)
    }

    /// The partition of one of the tenant's high-volume items (a message, a wamid, a client
    /// message id, a raw webhook event, a usage counter), chosen by a hash of the id that
    /// every read of the item knows. A busy tenant's writes spread over [`SHARDS`]
    /// partitions, each well under DynamoDB's 1,000 writes a second (docs/ARCHITECTURE.md).
    pub fn shard_pk(&self, id: &str) -> String {
        format!("TENANT#{}#{:02}", self.0, shard_of(id, SHARDS))
    }

    /// Every partition [`shard_pk`](Self::shard_pk) can name, in order.
    pub fn shard_pks(&self) -> impl Iterator<Item = String> + '_ {
        (0..SHARDS).map(move |shard| format!("TENANT#{}#{shard:02}", self.0))
    }

    /// Whether `pk` is one of this tenant's partitions (from a client's cursor, say).
    pub(crate) fn owns_pk(&self, pk: &str) -> bool {
        pk == self.pk() || self.shard_pks().any(|own| own == pk)
    }
}

/// How many partitions a tenant's high-volume items are spread over.
pub const SHARDS: u32 = 64;

/// A stable hash of `id` (32-bit FNV-1a), modulo `shards`. Stable across Rust releases and
/// platforms, unlike `std`'s hasher: a stored item must be found where it was written.
pub(crate) fn shard_of(id: &str, shards: u32) -> u32 {
    fnv1a(id) % shards
}

fn fnv1a(id: &str) -> u32 {
    id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl std::fmt::Display for TenantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("email already registered")]
    EmailTaken,
    #[error("the last tenant admin cannot be removed")]
    LastAdmin,
    #[error("the plan limit for {0} is reached")]
    LimitReached(&'static str),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("a concurrent change won")]
    Conflict,
    /// DynamoDB is down, throttling or did not answer: worth retrying, a 503 to callers.
    #[error("dynamodb unavailable")]
    Unavailable(#[source] Source),
    /// DynamoDB refused the request itself (a validation error, a missing table, access
    /// denied): a bug or misconfiguration of ours, which no retry mends; a 500.
    #[error("dynamodb refused the request")]
    Rejected(#[source] Source),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

type Source = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// Whether the same call may succeed later. A queue processor retries these and sends
    /// the others to the dead-letter queue at once.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Conflict)
    }
}

/// A failed DynamoDB call, classified by whether retrying can help.
pub(crate) trait DynamoFailure {
    fn into_store_error(self) -> StoreError;
}

/// Error codes DynamoDB documents as transient (throttling, its own failures, a
/// transaction still in flight on the same items).
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionInProgressException",
    "TransactionConflictException",
];

impl<E> DynamoFailure
    for aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn into_store_error(self) -> StoreError {
        use aws_sdk_dynamodb::error::SdkError;
        let transient = match &self {
            SdkError::ServiceError(ctx) => {
                ctx.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
                    || ctx.raw().status().is_server_error()
            }
            SdkError::ConstructionFailure(_) => false,
            // Timeouts, connection failures, unreadable answers.
            _ => true,
        };
        // The SDK's own Display says only "service error": keep the whole chain.
        let chain: Source = crate::telemetry::error_chain(&self).into();
        if transient { StoreError::Unavailable(chain) } else { StoreError::Rejected(chain) }
    }
}

impl DynamoFailure for aws_sdk_dynamodb::error::BuildError {
    fn into_store_error(self) -> StoreError {
        StoreError::Rejected(Box::new(self))
    }
}

pub(crate) fn dynamo_err(err: impl DynamoFailure) -> StoreError {
    err.into_store_error()
}

/// Whether a request failed only because its condition did not hold: for most writes here
/// an expected outcome ("already there", "not yet due"), not an error.
pub(crate) fn condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    crate::aws::error_code(err) == Some("ConditionalCheckFailedException")
}

/// Whether a conditional write was made: `false` when only its condition did not hold
/// (for most writes here an expected outcome), an error otherwise.
pub(crate) fn written<T, E>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(dynamo_err(e)),
    }
}

/// The answer of a conditional write, or `None` when only its condition did not hold.
pub(crate) fn written_value<T, E>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> Result<Option<T>, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if condition_failed(&e) => Ok(None),
        Err(e) => Err(dynamo_err(e)),
    }
}

/// Which items of a cancelled transaction failed their condition, in request order; `None`
/// when the transaction failed for another reason.
pub(crate) fn failed_conditions(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> Option<Vec<bool>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_an_id_never_changes() {
        // FNV-1a's published values: "" hashes to 0x811c9dc5, "a" to 0xe40c292c.
        assert_eq!((fnv1a(""), fnv1a("a")), (0x811c_9dc5, 0xe40c_292c));
        assert_eq!((shard_of("msg_1", SHARDS), shard_of("wamid.HBgL", SHARDS)), (34, 24));
        let scope = TenantScope::new(TenantId::generate());
        assert_eq!(scope.shard_pk("msg_1"), scope.shard_pk("msg_1"));
        assert!(scope.owns_pk(&scope.shard_pk("wamid.X")));
        assert!(scope.owns_pk(&scope.pk()));
    }

    #[test]
    fn ids_spread_evenly_over_the_shards() {
        let mut counts = [0u32; SHARDS as usize];
        for _ in 0..64_000 {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            counts[shard_of(&id, SHARDS) as usize] += 1;
        }
        // 1,000 each on average (a standard deviation of 31); no shard far from its share.
        let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
        assert!(min >= Some(800) && max <= Some(1_200), "{counts:?}");
    }

    #[test]
    fn another_tenants_partitions_are_not_owned() {
        let ours = TenantScope::new(TenantId::generate());
        let theirs = TenantScope::new(TenantId::generate());
        assert!(!ours.owns_pk(&theirs.shard_pk("msg_1")));
        assert!(!ours.owns_pk(&theirs.pk()));
        assert!(!ours.owns_pk(&format!("{}#64", ours.pk())));
        assert_eq!(ours.shard_pks().count(), SHARDS as usize);
    }
}
