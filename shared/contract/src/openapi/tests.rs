use super::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn doc() -> Value {
    serde_json::from_str(&document_json()).expect("the document is JSON")
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_has_exactly_the_route_tables_operations() {
    let table: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(table.len(), ROUTES.len(), "a route is in the table twice");
    assert_eq!(operations(&doc()), table);
}

#[test]
fn operation_ids_are_unique_and_links_name_real_operations() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    let mut links = Vec::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("item").values() {
            assert!(ids.insert(op["operationId"].as_str().expect("id").to_owned()));
            for response in op["responses"].as_object().expect("responses").values() {
                if let Some(l) = response["links"].as_object() {
                    links.extend(
                        l.values().map(|l| l["operationId"].as_str().expect("op").to_owned()),
                    );
                }
            }
        }
    }
    assert!(!links.is_empty());
    for link in links {
        assert!(ids.contains(&link), "a link names {link}, which is no operation");
    }
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 50);
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").expect("a schema reference");
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r} is not in the document");
    }
}

#[test]
fn security_follows_each_routes_access() {
    let doc = doc();
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        let schemes: Vec<&str> = op["security"]
            .as_array()
            .map(|a| {
                a.iter().filter_map(|s| s.as_object()?.keys().next().map(String::as_str)).collect()
            })
            .unwrap_or_default();
        match route.access {
            Access::Public => assert!(schemes.is_empty(), "{}", route.key()),
            Access::RequiresForUser(_) => assert_eq!(schemes, [PLATFORM_KEY], "{}", route.key()),
            _ => {
                assert!(!schemes.is_empty(), "{}", route.key());
                assert!(op["responses"].get("401").is_some(), "{}", route.key());
            }
        }
    }
    // Sending is for users and API keys; operating is for users only.
    let send = &doc["paths"]["/api/messages"]["post"]["security"];
    assert!(send.to_string().contains(API_KEY) && send.to_string().contains(USER_TOKEN));
    let admin = &doc["paths"]["/api/admin/platforms"]["post"]["security"];
    assert!(!admin.to_string().contains(API_KEY));
}

#[test]
fn request_bodies_come_from_the_request_types() {
    let doc = doc();
    let register = &doc["paths"]["/api/auth/register"]["post"]["requestBody"];
    assert_eq!(register["content"][JSON]["schema"]["$ref"], "#/components/schemas/RegisterRequest");
    let schema = &doc["components"]["schemas"]["RegisterRequest"];
    let required: BTreeSet<&str> =
        schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["tenantName", "email", "password", "name"]));
    assert_eq!(doc["components"]["schemas"]["Role"]["enum"].as_array().map(Vec::len), Some(4));
}

/// The committed document (`docs/openapi.json`) is what the code generates: a change to the
/// API shows in review. `UPDATE_OPENAPI=1 cargo test -p contract` writes it.
#[test]
fn the_committed_document_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the code's document; run `UPDATE_OPENAPI=1 cargo test -p contract` and review the change"
    );
}
