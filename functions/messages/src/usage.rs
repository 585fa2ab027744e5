//! `GET /api/analytics/usage?from=&to=`: one row per day, as JSON or CSV.

use adapters::store::attrs::{now_secs, rfc3339};
use adapters::store::messages::MessageStore;
use contract::views::{UsageReport, UsageRow as Row};
use edge::http::{ApiError, FieldError, csv, json};
use edge::principal::Principal;
use edge::request::query_param;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

/// A year at most per request.
const MAX_DAYS: i64 = 366;

/// Days since the epoch of `yyyy-mm-dd` (a real calendar date), and back.
fn day_number(date: &str) -> Option<i64> {
    let parsed = aws_smithy_types::DateTime::from_str(
        &format!("{date}T00:00:00Z"),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?;
    (date.len() == 10 && rfc3339(parsed.secs()).starts_with(date)).then(|| parsed.secs() / 86_400)
}

fn date_of(day: i64) -> String {
    rfc3339(day * 86_400).chars().take(10).collect()
}

pub async fn usage(
    messages: &MessageStore,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let today = now_secs() / 86_400;
    let mut errors = Vec::new();
    let mut bound = |name: &str, default: i64| match query_param(request, name) {
        None => Some(default),
        Some(raw) => day_number(&raw).or_else(|| {
            errors.push(FieldError::new(name, "is a date, yyyy-mm-dd"));
            None
        }),
    };
    let (from, to) = (bound("from", today - 29), bound("to", today));
    let format = query_param(request, "format").unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv") {
        errors.push(FieldError::new("format", "must be json or csv"));
    }
    let (Some(from), Some(to)) = (from, to) else { return Err(ApiError::Validation(errors)) };
    if to < from || to - from >= MAX_DAYS {
        errors.push(FieldError::new(
            "to",
            format!("must be on or after from, at most {MAX_DAYS} days on"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }

    let stored = messages.usage().days(principal.scope(), &date_of(from), &date_of(to)).await?;
    let rows: Vec<Row> = (from..=to)
        .map(|day| {
            let date = date_of(day);
            let counters = stored.get(&date);
            let count = |name: &str| counters.and_then(|c| c.get(name)).copied().unwrap_or(0);
            Row {
                inbound: count("inbound"),
                outbound: count("outbound"),
                delivered: count("delivered"),
                read: count("read"),
                failed: count("failed"),
                conversations_opened: count("conversationsOpened"),
                date,
            }
        })
        .collect();
    if format == "csv" {
        let mut text =
            String::from("date,inbound,outbound,delivered,read,failed,conversationsOpened\n");
        for r in &rows {
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.date,
                r.inbound,
                r.outbound,
                r.delivered,
                r.read,
                r.failed,
                r.conversations_opened
            ));
        }
        return Ok(csv(text));
    }
    Ok(json(StatusCode::OK, &UsageReport { from: date_of(from), to: date_of(to), items: rows }))
}
