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
