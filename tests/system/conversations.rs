//! The conversation list, which is spread over several index partitions per tenant: its
//! pages, read one after another, are the whole list in order, filtered or not.

use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, Stack, template_message};

/// Every page of `path` (which has its query string), following `nextCursor`.
async fn every_page(app: &App, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (status, page) = app.call("GET", &url, Some(token), None).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
    panic!("more than 100 pages of {path}");
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|c| c["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn conversation_pages_are_the_whole_list_in_order_filtered_or_not() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("conversation-pages", None).await;
    let token = owner.access_token.as_str();
    for i in 0..30 {
        let to = format!("+1555060{i:04}");
        let (status, body) = app
            .call(
                "POST",
                "/api/messages",
                Some(token),
                Some(template_message(&to, &format!("p-{i}"))),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    let (_, whole) = app.call("GET", "/api/conversations?limit=100", Some(token), None).await;
    let whole = whole["items"].as_array().expect("items").clone();
    assert_eq!(whole.len(), 30);
    let activity: Vec<&str> =
        whole.iter().map(|c| c["lastMessageAt"].as_str().expect("time")).collect();
    assert!(activity.windows(2).all(|w| w[0] >= w[1]), "newest first: {activity:?}");

    for limit in [1, 4, 7, 30] {
        let paged = every_page(&app, token, &format!("/api/conversations?limit={limit}")).await;
        assert_eq!(ids(&paged), ids(&whole), "pages of {limit}");
    }

    // Close every third conversation: the filtered pages are exactly those, in order.
    let mut closed = Vec::new();
    for conversation in whole.iter().step_by(3) {
        let id = conversation["id"].as_str().expect("id");
        let (status, body) = app
            .call(
                "PATCH",
                &format!("/api/conversations/{id}"),
                Some(token),
                Some(json!({"status": "closed"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        closed.push(id.to_owned());
    }
    let paged = every_page(&app, token, "/api/conversations?status=closed&limit=3").await;
    assert_eq!(ids(&paged), closed);
    let open = every_page(&app, token, "/api/conversations?status=open&limit=5").await;
    let expected: Vec<String> = ids(&whole).into_iter().filter(|id| !closed.contains(id)).collect();
    assert_eq!(ids(&open), expected);

    // A cursor from another list, or made up, is refused.
    for bad in ["not-a-cursor", "eyJwayI6IlRFTkFOVCNhIiwic2siOiJVU0VSI3UxIn0"] {
        let (status, body) =
            app.call("GET", &format!("/api/conversations?cursor={bad}"), Some(token), None).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    stack.remove().await;
}
