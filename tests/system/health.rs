use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, Stack};

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

#[tokio::test]
async fn when_every_dependency_answers_then_health_and_ready_are_ok() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;

    let health = app.get("/api/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["content-type"], "application/json");
    assert_eq!(
        body(health).await,
        json!({"status": "ok", "checks": {"dynamodb": "ok", "sqs": "ok", "kms": "ok"}})
    );
    assert_eq!(app.get("/api/health/ready").await.status(), 200);
    let live = app.get("/api/health/live").await;
    assert_eq!(live.status(), 200);
    assert_eq!(body(live).await, json!({"status": "ok"}));

    stack.remove().await;
}

#[tokio::test]
async fn when_the_emulator_dies_then_health_is_503_and_names_every_failing_check() {
    let emulator = Emulator::start();
    let stack = Stack::new(&emulator).await;
    let app = App::spawn(&stack).await;
    assert_eq!(app.get("/api/health").await.status(), 200);

    emulator.kill();

    let health = app.get("/api/health").await;
    assert_eq!(health.status(), 503);
    assert_eq!(
        body(health).await,
        json!({"status": "unavailable", "checks": {"dynamodb": "error", "sqs": "error", "kms": "error"}})
    );
    assert_eq!(app.get("/api/health/ready").await.status(), 503);
    assert_eq!(app.get("/api/health/live").await.status(), 200, "liveness needs no dependency");
}

#[tokio::test]
async fn when_one_dependency_fails_then_only_its_check_is_marked() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;

    stack
        .clients
        .dynamodb
        .delete_table()
        .table_name(&stack.resources.messages_table)
        .send()
        .await
        .expect("delete table");
    let health = app.get("/api/health").await;
    assert_eq!(health.status(), 503);
    assert_eq!(
        body(health).await["checks"],
        json!({"dynamodb": "error", "sqs": "ok", "kms": "ok"})
    );

    let key = stack.clients.kms.describe_key().key_id(&stack.resources.kms_key_id).send().await;
    let key_id = key.expect("key").key_metadata().expect("metadata").key_id().to_owned();
    stack.clients.kms.disable_key().key_id(&key_id).send().await.expect("disable key");
    let health = app.get("/api/health").await;
    assert_eq!(
        body(health).await["checks"],
        json!({"dynamodb": "error", "sqs": "ok", "kms": "error"})
    );

    // The other tables are untouched: a probe of one table never writes.
    let probe = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.resources.tenants_table)
        .key("pk", AttributeValue::S("HEALTH".into()))
        .key("sk", AttributeValue::S("HEALTH".into()))
        .send()
        .await
        .expect("get item");
    assert!(probe.item().is_none(), "health checks must not write");

    stack.remove().await;
}

#[tokio::test]
async fn the_sample_events_are_answered_by_the_health_handler() {
    let stack = Stack::new(Emulator::shared()).await;
    let deps = health::Deps::new(stack.clients.clone(), stack.resources.clone());

    for (event, expected) in [
        (
            include_str!("../../events/health/get-health.json"),
            json!({"status": "ok", "checks": {"dynamodb": "ok", "sqs": "ok", "kms": "ok"}}),
        ),
        (
            include_str!("../../events/health/get-ready.json"),
            json!({"status": "ok", "checks": {"dynamodb": "ok", "sqs": "ok", "kms": "ok"}}),
        ),
        (include_str!("../../events/health/get-live.json"), json!({"status": "ok"})),
    ] {
        let request = lambda_http::request::from_str(event).expect("API Gateway v2 event");
        let response = health::handle(&deps, request).await.expect("handler");
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("json");
        assert_eq!(body, expected);
    }

    stack.remove().await;
}

#[tokio::test]
async fn unknown_routes_are_problem_json_and_huge_bodies_refused_as_api_gateway_does() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;

    // NOTE: these went to API Gateway's bare {"message":"Not Found"} before the `$default`
    // route existed; issue #10 asks for problem+json.
    let unknown = app.get("/api/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    assert_eq!(body(unknown).await["code"], "not_found");
    let outside_the_api = app.get("/").await;
    assert_eq!(outside_the_api.status(), 404);
    let wrong_method = app.http.delete(app.url("/api/health")).send().await.expect("request");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET");
    assert_eq!(wrong_method.headers()["content-type"], "application/problem+json");
    assert_eq!(body(wrong_method).await["code"], "method_not_allowed");
    let users = app.http.put(app.url("/api/users")).send().await.expect("request");
    assert_eq!(users.status(), 405);
    assert_eq!(users.headers()["allow"], "GET, POST");

    let huge = vec![b'x'; local::gateway::MAX_BODY_BYTES + 1];
    let too_large = app.http.get(app.url("/api/health")).body(huge).send().await.expect("request");
    assert_eq!(too_large.status(), 413);

    let answered = app.get("/api/health").await;
    assert!(answered.headers().contains_key("apigw-requestid"));

    stack.remove().await;
}

#[tokio::test]
async fn the_api_serves_its_document_and_a_reference_page_without_credentials() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;

    let document = app.get("/api/openapi.json").await;
    assert_eq!(document.status(), 200);
    assert_eq!(document.headers()["content-type"], "application/json");
    let text = document.text().await.expect("document");
    assert_eq!(text, contract::openapi::document_json(), "served as generated");
    let parsed: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(parsed["openapi"], "3.1.0");
    assert!(parsed["paths"]["/api/messages"]["post"]["requestBody"].is_object());

    let page = app.get("/api/docs").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.expect("page");
    assert!(html.contains("fetch(\"openapi.json\")"), "the page reads the document beside it");
    for remote in ["http://", "https://", "//cdn"] {
        assert!(!html.contains(remote), "the page loads nothing from elsewhere ({remote})");
    }

    stack.remove().await;
}
