//! DynamoDB adapters. Every item of tenant data is keyed under `TENANT#<id>`, and the
//! methods that read or write it take a [`TenantScope`], which only authentication (or
//! registration) can produce: a handler cannot name another tenant's data.

pub mod attrs;
pub mod channels;
pub mod messages;
pub mod outbound;
pub mod pacing;
pub mod page;
pub mod tenants;

use crate::domain::ids::TenantId;

/// Proof that the caller acts for this tenant. Constructed only inside this crate, by
/// `auth::principal` after verifying a token or key, and by registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope(TenantId);

impl TenantScope {
    pub(crate) fn new(tenant: TenantId) -> Self {
        Self(tenant)
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.0
    }

    /// The partition key of everything this tenant owns.
    pub(crate) fn pk(&self) -> String {
        format!("TENANT#{}", self.0)
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
    #[error("dynamodb: {0}")]
    Dynamo(String),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

impl From<StoreError> for crate::http::ApiError {
    fn from(err: StoreError) -> Self {
        use crate::http::ApiError;
        match err {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                detail: "An account with this email already exists.".into(),
            },
            StoreError::LastAdmin => ApiError::Conflict {
                code: "last_tenant_admin",
                detail: "A tenant keeps at least one TENANT_ADMIN.".into(),
            },
            StoreError::LimitReached(what) => ApiError::Conflict {
                code: "plan_limit_reached",
                detail: format!("The plan's limit of {what} is reached."),
            },
            StoreError::InvalidCursor => ApiError::Validation(vec![crate::http::FieldError::new(
                "cursor",
                "is not a cursor from this list",
            )]),
            StoreError::Conflict => ApiError::Conflict {
                code: "concurrent_change",
                detail: "The resource changed meanwhile; retry.".into(),
            },
            StoreError::Dynamo(e) => ApiError::unavailable("dynamodb", e),
            StoreError::Corrupt(e) => ApiError::internal(e),
        }
    }
}

pub(crate) fn dynamo_err(err: impl std::error::Error + 'static) -> StoreError {
    StoreError::Dynamo(crate::telemetry::error_chain(&err))
}

/// A strongly consistent point read: every store reads what it, or a concurrent writer,
/// has just written.
pub(crate) async fn read(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    key: attrs::Item,
) -> Result<Option<attrs::Item>, StoreError> {
    let out = db
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(dynamo_err)?;
    Ok(out.item)
}

/// Every item a query matches, page after page (for the few lists that are read whole).
pub(crate) async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<attrs::Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = query.clone().set_exclusive_start_key(start).send().await.map_err(dynamo_err)?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// An unconditional put.
pub(crate) async fn write(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    item: attrs::Item,
) -> Result<(), StoreError> {
    db.put_item().table_name(table).set_item(Some(item)).send().await.map_err(dynamo_err)?;
    Ok(())
}

/// Whether a request failed only because its condition did not hold: for most writes here
/// an expected outcome ("already there", "not yet due"), not an error.
pub(crate) fn condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    crate::aws::error_code(err) == Some("ConditionalCheckFailedException")
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
