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

/// Decodes a cursor of a secondary-index query: the index's partition attribute must be
/// exactly `index_pk`, and the item's own partition one that `owns` accepts.
pub fn decode_index(
    cursor: &str,
    index_attribute: &str,
    index_pk: &str,
    owns: impl Fn(&str) -> bool,
) -> Result<Item, StoreError> {
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let plain: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let ok = plain.get(index_attribute).map(String::as_str) == Some(index_pk)
        && plain.get("pk").is_some_and(|pk| owns(pk))
        && plain.len() <= 4;
    if !ok {
        return Err(StoreError::InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// A cursor that is a position in a sorted list (of several partitions merged).
pub fn encode_position(position: &str) -> String {
    let plain = BTreeMap::from([("before", position)]);
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).unwrap_or_default())
}

/// The position of a cursor from [`encode_position`].
pub fn decode_position(cursor: &str) -> Result<String, StoreError> {
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let mut plain: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    match plain.remove("before") {
        Some(position) if plain.is_empty() && !position.is_empty() && position.len() <= 256 => {
            Ok(position)
        }
        _ => Err(StoreError::InvalidCursor),
    }
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

    #[test]
    fn position_cursors_round_trip_and_refuse_anything_else() {
        let cursor = encode_position("00001751000000#conv_1");
        assert_eq!(decode_position(&cursor).expect("position"), "00001751000000#conv_1");
        let list = encode(Some(&key("TENANT#a", "USER#u1"))).expect("cursor");
        assert!(decode_position(&list).is_err(), "a cursor of another list");
        assert!(decode_position(&encode_position("")).is_err());
        assert!(decode_position("not base64!").is_err());
    }

    #[test]
    fn index_cursors_need_their_index_partition_and_an_owned_partition() {
        let mut last = key("TENANT#a#07", "MSG#m1");
        last.insert("gsi2pk".into(), s("CONV#a#c1"));
        last.insert("gsi2sk".into(), s("00001751000000#m1"));
        let cursor = encode(Some(&last)).expect("cursor");
        let ours = |pk: &str| pk.starts_with("TENANT#a#");
        assert_eq!(decode_index(&cursor, "gsi2pk", "CONV#a#c1", ours).expect("ours"), last);
        assert!(decode_index(&cursor, "gsi2pk", "CONV#a#c2", ours).is_err(), "another list");
        assert!(decode_index(&cursor, "gsi2pk", "CONV#a#c1", |_| false).is_err(), "not owned");
    }
}
