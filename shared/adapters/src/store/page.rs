//! Opaque list cursors: the last key of a page, base64url-encoded. A cursor is only
//! accepted for the partition it came from, so that one tenant's cursor cannot page
//! through another's data.

use super::StoreError;
use super::attrs::{Item, s};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn encode(last_key: Option<&Item>) -> Option<String> {
    let key = last_key?;
    let plain: BTreeMap<&str, &str> =
        key.iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str()))).collect();
    serde_json::to_vec(&plain).ok().map(|json| URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor, accepting it only for partition `pk` and sort keys under `sk_prefix`.
pub fn decode(cursor: &str, pk: &str, sk_prefix: &str) -> Result<Item, StoreError> {
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let plain: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let ok = plain.get("pk").map(String::as_str) == Some(pk)
        && plain.get("sk").is_some_and(|sk| sk.starts_with(sk_prefix))
        && plain.len() == 2;
    if !ok {
        return Err(StoreError::InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// Decodes a cursor of a secondary-index query: every attribute in `fixed` (the table's
/// partition and the index's partition) must be exactly as given.
pub fn decode_fixed(cursor: &str, fixed: &[(&str, &str)]) -> Result<Item, StoreError> {
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let plain: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let ok = fixed.iter().all(|(k, v)| plain.get(*k).map(String::as_str) == Some(*v))
        && plain.len() <= 4;
    if !ok {
        return Err(StoreError::InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::attrs::key;

    #[test]
    fn cursors_round_trip_within_their_partition_only() {
        let last = key("TENANT#a", "USER#u1");
        let cursor = encode(Some(&last)).expect("cursor");
        assert_eq!(decode(&cursor, "TENANT#a", "USER#").expect("same partition"), last);
        assert!(decode(&cursor, "TENANT#b", "USER#").is_err(), "another tenant");
        assert!(decode(&cursor, "TENANT#a", "APIKEY#").is_err(), "another list");
        assert!(decode("not base64!", "TENANT#a", "USER#").is_err());
        assert_eq!(encode(None), None);
    }
}
