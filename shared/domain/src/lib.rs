//! The domain: tenants, users, roles and what each may do; messages, their Meta shapes
//! and pacing; the events partners receive and the typed messages of every queue.
//!
//! Nothing here knows AWS or HTTP: neither is a dependency of this crate, so the compiler
//! refuses such a use. Adapters (`adapters`) and the HTTP edge (`edge`) build on it.

pub mod access;
pub mod b2b;
pub mod channel;
pub mod events;
pub mod ids;
pub mod meta;
pub mod outbound;
pub mod pacing;
pub mod passwords;
pub mod queues;
pub mod secrets;
pub mod sessions;
pub mod tenant;
pub mod time;
pub mod user;
pub mod webhooks;

/// One input field that breaks a rule: what a 422 lists in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = FieldProblem)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Strategies shared by the property tests.
#[cfg(test)]
pub(crate) mod arbitrary {
    use proptest::prelude::*;
    use serde_json::Value;

    /// Keys the parsers look for, so that random documents reach their inner branches.
    const KEYS: &[&str] = &[
        "entry",
        "changes",
        "field",
        "value",
        "messages",
        "statuses",
        "id",
        "from",
        "type",
        "text",
        "body",
        "timestamp",
        "contacts",
        "wa_id",
        "profile",
        "name",
        "errors",
        "code",
        "title",
        "to",
        "template",
        "language",
        "components",
        "parameters",
        "image",
        "link",
        "caption",
        "context",
        "messageId",
        "reaction",
        "emoji",
        "clientMessageId",
        "metadata",
        "phone_number_id",
        "status",
        "recipient_id",
        "event",
        "message_template_name",
    ];

    /// Any JSON document, up to a few levels deep.
    pub fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            prop::sample::select(KEYS).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 96, 8, |inner| {
            let key =
                prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-z_]{1,8}"];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
