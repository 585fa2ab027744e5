//! Opaque ids. Each kind has its own type, so a user id can never be passed where a tenant
//! id is expected, and each is checked once at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a path or body id must look like to possibly exist: ids we mint are
/// `<prefix>_<32 hex>`, B2B user ids are chosen by partners (letters, digits, `-`, `_`,
/// `.`, up to 64).
fn plausible(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        /// Read through [`Self::parse`]: a body naming an implausible id is refused where
        /// it is read, not deep inside a store.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a valid ", stringify!($name)))
                })
            }
        }

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::new_v4().simple()))
            }

            /// An id from outside (a path, a body, a stored record); `None` when it cannot
            /// be one of ours.
            pub fn parse(raw: &str) -> Option<Self> {
                plausible(raw).then(|| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: a business, or a B2B user owned by a partner platform.
    TenantId,
    "ten"
);
id_type!(UserId, "usr");

/// The id of the pseudo tenant under which platform webhooks are kept whole, with the
/// changes no tenant owns.
pub const PLATFORM_TENANT: &str = "ten_platform";

impl TenantId {
    /// The pseudo tenant of [`PLATFORM_TENANT`].
    pub fn platform() -> Self {
        Self(PLATFORM_TENANT.to_owned())
    }
}
id_type!(ApiKeyId, "key");
id_type!(
    /// A partner platform (B2B), which owns B2B users.
    PlatformId,
    "plt"
);
id_type!(
    /// A B2B user's id, chosen by its platform (unique within it): 1 to 64 letters, digits,
    /// `.`, `_` or `-`. Never minted here.
    B2bUserId,
    "b2b"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = TenantId::generate();
        assert!(id.as_str().starts_with("ten_"));
        assert_eq!(TenantId::parse(id.as_str()), Some(id));
        assert!(UserId::generate().as_str().starts_with("usr_"));
    }

    #[test]
    fn implausible_ids_are_refused() {
        for raw in ["", "a/b", "a b", "x#y", &"a".repeat(65), "ten_\u{e9}"] {
            assert_eq!(TenantId::parse(raw), None, "{raw:?}");
        }
        assert!(TenantId::parse("partner-user.42_x").is_some());
    }

    #[test]
    fn the_platform_pseudo_tenant_is_a_plausible_id() {
        assert_eq!(TenantId::parse(TenantId::platform().as_str()), Some(TenantId::platform()));
    }

    #[test]
    fn ids_deserialise_only_when_plausible() {
        let id: TenantId = serde_json::from_str("\"ten_1\"").expect("plausible");
        assert_eq!(id.as_str(), "ten_1");
        assert!(serde_json::from_str::<TenantId>("\"a/b\"").is_err());
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"ten_1\"");
    }
}
