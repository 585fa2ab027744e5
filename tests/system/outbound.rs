//! Outbound messages: the API's request shape and the Cloud API's.

use serde_json::{Value, json};
use shared::domain::outbound::OutboundMessage;
use switchboard_tests::workspace_root;

/// How a partner writes, through `POST /api/messages`, the message a Cloud API request
/// fixture sends: camelCase at our edge, Meta's objects otherwise.
fn as_api_request(name: &str, graph: &Value) -> Value {
    let kind = graph["type"].as_str().expect("type");
    let to = graph["to"].as_str().expect("to").trim_start_matches('+');
    let object = &graph[kind];
    let content = match kind {
        "text" => {
            json!({"body": object["body"], "previewUrl": object.get("preview_url").cloned().unwrap_or(json!(false))})
        }
        "template" => {
            json!({"name": object["name"], "language": object["language"]["code"], "components": object["components"]})
        }
        "reaction" => json!({"messageId": object["message_id"], "emoji": object["emoji"]}),
        _ => object.clone(),
    };
    let mut request = json!({"to": format!("+{to}"), "type": kind, "clientMessageId": format!("fixture-{name}"), kind: content});
    if let Some(reply) = graph.pointer("/context/message_id") {
        request["context"] = json!({"messageId": reply});
    }
    request
}

/// The fixture as Meta reads it: `to` with its `+`, and the defaults spelt out.
fn normalised(graph: &Value) -> Value {
    let mut g = graph.clone();
    let to = g["to"].as_str().expect("to").trim_start_matches('+').to_owned();
    g["to"] = json!(format!("+{to}"));
    g["recipient_type"] = json!("individual");
    if g["type"] == "text" && g["text"].get("preview_url").is_none() {
        g["text"]["preview_url"] = json!(false);
    }
    g
}

#[test]
fn every_send_fixture_is_expressible_through_the_api_and_renders_back_the_same() {
    let dir = workspace_root().join("tests/fixtures/meta/outbound");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures").filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("send_") && name.ends_with(".request.json")) {
            continue;
        }
        let graph: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.path()).expect("read"))
                .expect("json");
        let request = as_api_request(&name, &graph);
        let message = OutboundMessage::parse(&request).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(message.graph_request(), normalised(&graph), "{name}");
        assert_eq!(message.is_template(), graph["type"] == "template", "{name}");
        checked += 1;
    }
    assert_eq!(checked, 11, "every send fixture");
}

/// Each error fixture, classified as ERRORS.md says a sender must treat it.
#[test]
fn every_error_fixture_is_classified_as_the_error_reference_says() {
    use shared::domain::meta::{ErrorClass, classify_error, graph_error};
    let expected = [
        ("error_130429_rate_limit_hit.json", 130429, ErrorClass::Throttled),
        ("error_131056_pair_rate_limit.json", 131056, ErrorClass::Throttled),
        ("error_131000_something_went_wrong.json", 131000, ErrorClass::Transient),
        ("error_131016_service_unavailable.json", 131016, ErrorClass::Transient),
        ("error_131026_message_undeliverable.json", 131026, ErrorClass::Permanent),
        ("error_131047_reengagement.json", 131047, ErrorClass::Permanent),
        ("error_132000_param_count_mismatch.json", 132000, ErrorClass::Permanent),
        ("error_132001_template_does_not_exist.json", 132001, ErrorClass::Permanent),
        ("error_190_access_token_expired.json", 190, ErrorClass::Token),
        ("error_190_graph_api_doc_sample.json", 190, ErrorClass::Token),
        ("error_190_invalid_oauth_token.json", 190, ErrorClass::Token),
    ];
    let dir = workspace_root().join("tests/fixtures/meta/outbound");
    let on_disk = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("error_"))
        .count();
    assert_eq!(on_disk, expected.len(), "every error fixture is classified here");
    for (file, code, class) in expected {
        let body: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("read"))
                .expect("json");
        let (parsed, title) =
            graph_error(&body).unwrap_or_else(|| panic!("{file}: not a Graph error"));
        assert_eq!(parsed, code, "{file}");
        assert!(!title.is_empty(), "{file}: a reason to show");
        assert_eq!(classify_error(code), class, "{file}");
    }
    // Codes met only on the webhook path, and unknown ones, fail the message.
    assert_eq!(classify_error(131049), ErrorClass::Permanent);
    assert_eq!(classify_error(999_999), ErrorClass::Permanent);
}
