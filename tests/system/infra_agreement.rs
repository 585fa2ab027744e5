//! `infra/template.yaml` and the code describe the same system: tables, indexes, queues,
//! redrive, key, the environment every function gets, routes, and deployed functions.
//! `differences` lists every disagreement; the tests at the bottom show it finds them.

// NOTE: over 400 lines: one comparison of the whole template with the code, and the mutations
// that show it finds each kind of disagreement.

use adapters::resources::{
    CREDENTIALS_KEY, DLQ_RETENTION_SECS, EVENT_SOURCES, PARTITION_KEY, QUEUE_RETENTION_SECS,
    QUEUES, SORT_KEY, TABLES, TTL_ATTRIBUTE,
};
use edge::routes::{DEFAULT_ROUTE, HTTP_FUNCTIONS, ROUTES};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use switchboard_tests::workspace_root;

/// The template as JSON, with CloudFormation's short tags (`!Ref X`) in their long form
/// (`{"Ref": "X"}`), so either spelling compares equal.
fn load_template() -> Value {
    let text =
        std::fs::read_to_string(workspace_root().join("infra/template.yaml")).expect("template");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("template is YAML");
    to_json(yaml)
}

fn to_json(yaml: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        Y::String(s) => json!(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match (tag, value) {
                ("Ref", v) => json!({ "Ref": v }),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) = s.split_once('.').unwrap_or((&s, ""));
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                (other, v) => json!({ format!("Fn::{other}"): v }),
            }
        }
    }
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .map(|r| {
            r.iter()
                .filter(|(_, v)| v["Type"] == kind)
                .map(|(k, v)| (k.as_str(), &v["Properties"]))
                .collect()
        })
        .unwrap_or_default()
}

fn sub(name: &str) -> Value {
    json!({ "Fn::Sub": format!("${{AWS::StackName}}-{name}") })
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn key_schema(partition: &str, sort: &str) -> Value {
    json!([
        { "AttributeName": partition, "KeyType": "HASH" },
        { "AttributeName": sort, "KeyType": "RANGE" },
    ])
}

fn differences(template: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            diffs.push(what);
        }
    };

    // Tables.
    let tables = resources_of_type(template, "AWS::DynamoDB::Table");
    let declared: BTreeSet<&str> = tables.iter().map(|(id, _)| *id).collect();
    let defined: BTreeSet<&str> = TABLES.iter().map(|t| t.logical_id).collect();
    check(declared == defined, format!("tables: template {declared:?}, code {defined:?}"));
    for spec in TABLES {
        let Some((_, props)) = tables.iter().find(|(id, _)| *id == spec.logical_id) else {
            continue;
        };
        let id = spec.logical_id;
        check(
            props["TableName"] == sub(spec.suffix),
            format!("{id}: TableName {}", props["TableName"]),
        );
        check(props["BillingMode"] == "PAY_PER_REQUEST", format!("{id}: BillingMode"));
        check(
            props["KeySchema"] == key_schema(PARTITION_KEY, SORT_KEY),
            format!("{id}: KeySchema"),
        );
        let mut want: BTreeSet<String> = [PARTITION_KEY, SORT_KEY].map(String::from).into();
        for index in spec.indexes {
            want.insert(index.partition_key.into());
            want.insert(index.sort_key.into());
        }
        let attributes = props["AttributeDefinitions"].as_array().cloned().unwrap_or_default();
        let have: BTreeSet<String> = attributes
            .iter()
            .filter_map(|a| a["AttributeName"].as_str().map(String::from))
            .collect();
        check(have == want, format!("{id}: AttributeDefinitions {have:?}, code {want:?}"));
        check(
            attributes.iter().all(|a| a["AttributeType"] == "S"),
            format!("{id}: non-string key attribute"),
        );
        let gsis = props["GlobalSecondaryIndexes"].as_array().cloned().unwrap_or_default();
        check(
            gsis.len() == spec.indexes.len(),
            format!("{id}: {} indexes, code {}", gsis.len(), spec.indexes.len()),
        );
        for index in spec.indexes {
            let found = gsis.iter().find(|g| g["IndexName"] == index.name);
            check(
                found.is_some_and(|g| {
                    g["KeySchema"] == key_schema(index.partition_key, index.sort_key)
                        && g["Projection"] == json!({"ProjectionType": "ALL"})
                }),
                format!("{id}: index {} differs or is missing", index.name),
            );
        }
        check(
            props["TimeToLiveSpecification"]
                == json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true}),
            format!("{id}: TimeToLiveSpecification"),
        );
    }

    // Queues and their dead-letter queues.
    let queues = resources_of_type(template, "AWS::SQS::Queue");
    let declared: BTreeSet<&str> = queues.iter().map(|(id, _)| *id).collect();
    let defined: BTreeSet<&str> =
        QUEUES.iter().flat_map(|q| [q.logical_id, q.dlq_logical_id]).collect();
    check(declared == defined, format!("queues: template {declared:?}, code {defined:?}"));
    let props_of = |id: &str| queues.iter().find(|(q, _)| *q == id).map(|(_, p)| *p);
    for spec in QUEUES {
        let id = spec.logical_id;
        if let Some(props) = props_of(id) {
            check(
                props["QueueName"] == sub(spec.suffix),
                format!("{id}: QueueName {}", props["QueueName"]),
            );
            check(
                number(&props["VisibilityTimeout"]) == Some(spec.visibility_timeout_secs.into()),
                format!("{id}: VisibilityTimeout {}", props["VisibilityTimeout"]),
            );
            check(
                number(&props["MessageRetentionPeriod"]) == Some(QUEUE_RETENTION_SECS.into()),
                format!("{id}: MessageRetentionPeriod"),
            );
            let redrive = &props["RedrivePolicy"];
            check(
                redrive["deadLetterTargetArn"]
                    == json!({"Fn::GetAtt": [spec.dlq_logical_id, "Arn"]}),
                format!("{id}: dead-letter target {}", redrive["deadLetterTargetArn"]),
            );
            check(
                number(&redrive["maxReceiveCount"]) == Some(spec.max_receive_count.into()),
                format!("{id}: maxReceiveCount {}", redrive["maxReceiveCount"]),
            );
        }
        if let Some(props) = props_of(spec.dlq_logical_id) {
            check(
                props["QueueName"] == sub(&spec.dlq_suffix()),
                format!("{}: QueueName", spec.dlq_logical_id),
            );
            check(
                number(&props["MessageRetentionPeriod"]) == Some(DLQ_RETENTION_SECS.into()),
                format!("{}: MessageRetentionPeriod", spec.dlq_logical_id),
            );
            check(
                props["RedrivePolicy"].is_null(),
                format!("{}: a DLQ has no DLQ", spec.dlq_logical_id),
            );
        }
    }

    // Alarms: a dead-letter queue with a message in it, and a queue falling behind.
    let alarms = resources_of_type(template, "AWS::CloudWatch::Alarm");
    let alarm = |id: &str| alarms.iter().find(|(a, _)| *a == id).map(|(_, p)| *p);
    for spec in QUEUES {
        for (id, queue, metric, threshold) in [
            (
                format!("{}Alarm", spec.dlq_logical_id),
                spec.dlq_logical_id,
                "ApproximateNumberOfMessagesVisible",
                0,
            ),
            (
                format!("{}AgeAlarm", spec.logical_id),
                spec.logical_id,
                "ApproximateAgeOfOldestMessage",
                spec.oldest_message_alarm_secs,
            ),
        ] {
            let Some(props) = alarm(&id) else {
                check(false, format!("{id}: missing"));
                continue;
            };
            check(
                props["Namespace"] == "AWS/SQS" && props["MetricName"] == metric,
                format!("{id}: metric"),
            );
            check(
                props["Dimensions"]
                    == json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]),
                format!("{id}: watches {}", props["Dimensions"]),
            );
            check(
                number(&props["Threshold"]) == Some(threshold.into()),
                format!("{id}: Threshold {}", props["Threshold"]),
            );
            check(
                props["ComparisonOperator"] == "GreaterThanThreshold",
                format!("{id}: ComparisonOperator"),
            );
        }
    }

    // The key and its alias.
    let key = &template["Resources"][CREDENTIALS_KEY.logical_id];
    check(key["Type"] == "AWS::KMS::Key", format!("{}: not a KMS key", CREDENTIALS_KEY.logical_id));
    let alias = &template["Resources"][CREDENTIALS_KEY.alias_logical_id];
    check(
        alias["Type"] == "AWS::KMS::Alias",
        format!("{}: not a KMS alias", CREDENTIALS_KEY.alias_logical_id),
    );
    check(
        alias["Properties"]["AliasName"]
            == json!({"Fn::Sub": format!("alias/${{AWS::StackName}}-{}", CREDENTIALS_KEY.alias_suffix)}),
        format!("{}: AliasName", CREDENTIALS_KEY.alias_logical_id),
    );
    check(
        alias["Properties"]["TargetKeyId"] == json!({"Ref": CREDENTIALS_KEY.logical_id}),
        format!("{}: TargetKeyId", CREDENTIALS_KEY.alias_logical_id),
    );

    // The environment every function reads its resources from.
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    let expected_env = TABLES
        .iter()
        .map(|t| (t.env_var, t.logical_id))
        .chain(QUEUES.iter().map(|q| (q.env_var, q.logical_id)))
        .chain(QUEUES.iter().map(|q| (q.dlq_env_var, q.dlq_logical_id)))
        .chain([(CREDENTIALS_KEY.env_var, CREDENTIALS_KEY.alias_logical_id)]);
    for (var, target) in expected_env {
        check(
            env[var] == json!({"Ref": target}),
            format!("Globals env {var} = {}, want Ref {target}", env[var]),
        );
    }

    // Functions: each is a crate under functions/, built with cargo-lambda.
    let functions = resources_of_type(template, "AWS::Serverless::Function");
    let mut deployed = BTreeSet::new();
    let mut routes = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for (id, props) in &functions {
        let meta = &template["Resources"][*id]["Metadata"];
        check(meta["BuildMethod"] == "rust-cargolambda", format!("{id}: BuildMethod"));
        let Some(name) = props["CodeUri"].as_str().and_then(|u| u.strip_prefix("../functions/"))
        else {
            check(false, format!("{id}: CodeUri is not ../functions/<crate>"));
            continue;
        };
        deployed.insert(name.to_owned());
        for (event_id, event) in props["Events"].as_object().into_iter().flatten() {
            let p = &event["Properties"];
            match event["Type"].as_str() {
                Some("HttpApi") => {
                    check(
                        p["ApiId"] == json!({"Ref": "HttpApi"}),
                        format!("{id}.{event_id}: ApiId"),
                    );
                    let method = p["Method"].as_str().unwrap_or_default().to_uppercase();
                    let path = p["Path"].as_str().unwrap_or_default().to_owned();
                    routes.insert((method, path, name.to_owned()));
                }
                Some("SQS") => {
                    check(
                        p["FunctionResponseTypes"] == json!(["ReportBatchItemFailures"]),
                        format!("{id}.{event_id}: SQS sources must report partial batch failures"),
                    );
                    let spec = EVENT_SOURCES
                        .iter()
                        .find(|s| s.function == name && s.event_id == event_id.as_str());
                    let Some(spec) = spec else {
                        check(false, format!("{id}.{event_id}: not in resources::EVENT_SOURCES"));
                        continue;
                    };
                    sources.insert((spec.function, spec.event_id));
                    check(
                        p["Queue"] == json!({"Fn::GetAtt": [spec.queue.logical_id, "Arn"]}),
                        format!("{id}.{event_id}: Queue {}", p["Queue"]),
                    );
                    check(
                        number(&p["BatchSize"]) == Some(spec.batch_size.into()),
                        format!("{id}.{event_id}: BatchSize {}", p["BatchSize"]),
                    );
                    check(
                        number(&p["ScalingConfig"]["MaximumConcurrency"])
                            == Some(spec.max_concurrency.into()),
                        format!("{id}.{event_id}: MaximumConcurrency {}", p["ScalingConfig"]),
                    );
                    let timeout = props["Timeout"].clone();
                    let timeout = if timeout.is_null() {
                        template["Globals"]["Function"]["Timeout"].clone()
                    } else {
                        timeout
                    };
                    check(
                        number(&timeout) == Some(spec.function_timeout_secs.into()),
                        format!("{id}: Timeout {timeout}, code {}", spec.function_timeout_secs),
                    );
                }
                Some("Schedule") => {
                    let spec = adapters::resources::SCHEDULES
                        .iter()
                        .find(|s| s.function == name && s.event_id == event_id.as_str());
                    match spec {
                        Some(spec) => check(
                            p["Schedule"] == json!(spec.rate()),
                            format!(
                                "{id}.{event_id}: Schedule {}, code {}",
                                p["Schedule"],
                                spec.rate()
                            ),
                        ),
                        None => {
                            check(false, format!("{id}.{event_id}: not in resources::SCHEDULES"))
                        }
                    }
                }
                other => check(false, format!("{id}.{event_id}: unexpected event type {other:?}")),
            }
        }
    }
    for spec in EVENT_SOURCES {
        check(
            sources.contains(&(spec.function, spec.event_id)),
            format!("event source {}.{} is not in the template", spec.function, spec.event_id),
        );
    }
    let code_routes: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .chain([&DEFAULT_ROUTE])
        .map(|r| (r.method.to_owned(), r.path.to_owned(), r.function.to_owned()))
        .collect();
    for missing in code_routes.difference(&routes) {
        check(false, format!("route {missing:?} is in edge::routes but not in the template"));
    }
    for extra in routes.difference(&code_routes) {
        check(false, format!("route {extra:?} is in the template but not in edge::routes"));
    }
    for function in HTTP_FUNCTIONS {
        check(deployed.contains(*function), format!("HTTP function {function} is not deployed"));
    }
    let crates: BTreeSet<String> = std::fs::read_dir(workspace_root().join("functions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    check(crates == deployed, format!("function crates {crates:?}, deployed {deployed:?}"));

    diffs
}

#[test]
fn the_template_declares_exactly_what_the_code_defines() {
    let diffs = differences(&load_template());
    assert!(diffs.is_empty(), "template and code disagree:\n{}", diffs.join("\n"));
}

/// Each mutation is a real mistake someone could make in one of the two places.
#[test]
fn every_kind_of_disagreement_is_found() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "index",
            Box::new(|t| {
                t["Resources"]["MessagesTable"]["Properties"]["GlobalSecondaryIndexes"][1]["KeySchema"]
                    [0]["AttributeName"] = json!("gsi9pk")
            }),
        ),
        (
            "key schema",
            Box::new(|t| {
                t["Resources"]["PoolTable"]["Properties"]["KeySchema"][1]["AttributeName"] =
                    json!("id")
            }),
        ),
        (
            "ttl",
            Box::new(|t| {
                t["Resources"]["TenantsTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"] =
                    json!("ttl")
            }),
        ),
        (
            "table name",
            Box::new(|t| {
                t["Resources"]["TenantsTable"]["Properties"]["TableName"] =
                    json!({"Fn::Sub": "${AWS::StackName}-tenant"})
            }),
        ),
        (
            "queue name",
            Box::new(|t| {
                t["Resources"]["OutboundHighQueue"]["Properties"]["QueueName"] =
                    json!({"Fn::Sub": "${AWS::StackName}-outbound-hi"})
            }),
        ),
        (
            "redrive target",
            Box::new(|t| {
                t["Resources"]["OutboundHighQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] =
                    json!({"Fn::GetAtt": ["OutboundStandardDlq", "Arn"]})
            }),
        ),
        (
            "event source concurrency",
            Box::new(|t| {
                t["Resources"]["MessageSenderFunction"]["Properties"]["Events"]["OutboundStandard"]
                    ["Properties"]["ScalingConfig"]["MaximumConcurrency"] = json!(50)
            }),
        ),
        (
            "processor timeout",
            Box::new(|t| {
                t["Resources"]["MessageSenderFunction"]["Properties"]["Timeout"] = json!(120)
            }),
        ),
        (
            "receive count",
            Box::new(|t| {
                t["Resources"]["InboundEventsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] =
                    json!(3)
            }),
        ),
        (
            "visibility",
            Box::new(|t| {
                t["Resources"]["PartnerEventsQueue"]["Properties"]["VisibilityTimeout"] = json!(30)
            }),
        ),
        (
            "missing dlq",
            Box::new(|t| {
                t["Resources"].as_object_mut().map(|r| r.remove("PartnerEventsDlq"));
            }),
        ),
        (
            "missing age alarm",
            Box::new(|t| {
                t["Resources"].as_object_mut().map(|r| r.remove("WebhookRetriesQueueAgeAlarm"));
            }),
        ),
        (
            "alarm threshold",
            Box::new(|t| {
                t["Resources"]["PartnerEventsDlqAlarm"]["Properties"]["Threshold"] = json!(10)
            }),
        ),
        (
            "alarm on another queue",
            Box::new(|t| {
                t["Resources"]["InboundEventsQueueAgeAlarm"]["Properties"]["Dimensions"][0]["Value"] =
                    json!({"Fn::GetAtt": ["OutboundHighQueue", "QueueName"]})
            }),
        ),
        (
            "key alias",
            Box::new(|t| {
                t["Resources"]["CredentialsKeyAlias"]["Properties"]["AliasName"] =
                    json!({"Fn::Sub": "alias/other"})
            }),
        ),
        (
            "env var",
            Box::new(|t| {
                t["Globals"]["Function"]["Environment"]["Variables"]["POOL_TABLE"] =
                    json!({"Ref": "TenantsTable"})
            }),
        ),
        (
            "dlq env var",
            Box::new(|t| {
                t["Globals"]["Function"]["Environment"]["Variables"]["INBOUND_EVENTS_DLQ_URL"] =
                    json!({"Ref": "InboundEventsQueue"})
            }),
        ),
        (
            "route path",
            Box::new(|t| {
                t["Resources"]["HealthFunction"]["Properties"]["Events"]["Live"]["Properties"]["Path"] =
                    json!("/api/live")
            }),
        ),
        (
            "route removed",
            Box::new(|t| {
                t["Resources"]["HealthFunction"]["Properties"]["Events"]
                    .as_object_mut()
                    .map(|e| e.remove("Ready"));
            }),
        ),
        (
            "sqs without partial failures",
            Box::new(
                |t| t["Resources"]["HealthFunction"]["Properties"]["Events"]["Q"] = json!({"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["InboundEventsQueue", "Arn"]}}}),
            ),
        ),
        (
            "function crate",
            Box::new(|t| {
                t["Resources"]["HealthFunction"]["Properties"]["CodeUri"] =
                    json!("../functions/healthz")
            }),
        ),
        (
            "schedule period",
            Box::new(|t| {
                t["Resources"]["GatewayHealthFunction"]["Properties"]["Events"]["EveryMinute"]["Properties"]
                    ["Schedule"] = json!("rate(5 minutes)")
            }),
        ),
    ];
    let original = load_template();
    for (name, mutate) in mutations {
        let mut template = original.clone();
        mutate(&mut template);
        assert!(!differences(&template).is_empty(), "mutation '{name}' went unnoticed");
    }
}

#[test]
fn short_and_long_intrinsic_forms_compare_equal() {
    let short: serde_yaml::Value =
        serde_yaml::from_str("a: !GetAtt Q.Arn\nb: !Ref X\nc: !Sub '${AWS::StackName}-x'")
            .expect("yaml");
    assert_eq!(
        to_json(short),
        json!({"a": {"Fn::GetAtt": ["Q", "Arn"]}, "b": {"Ref": "X"}, "c": {"Fn::Sub": "${AWS::StackName}-x"}})
    );
}

/// The session host's task is given every resource the code reads (`Resources::from_env`),
/// each from the resource of that name, and stops within ECS's longest stop timeout.
#[test]
fn the_session_host_task_is_given_every_resource_it_reads() {
    let template = load_template();
    let tasks = resources_of_type(&template, "AWS::ECS::TaskDefinition");
    let [(_, task)] = tasks.as_slice() else { panic!("one task definition: {tasks:?}") };
    let container = &task["ContainerDefinitions"][0];
    assert_eq!(container["StopTimeout"], json!(120));
    let env: std::collections::BTreeMap<&str, &Value> = container["Environment"]
        .as_array()
        .expect("environment")
        .iter()
        .map(|e| (e["Name"].as_str().expect("name"), &e["Value"]))
        .collect();
    let wanted =
        adapters::config::Resources::from_lookup(|name| Some(name.to_owned())).expect("names");
    for name in wanted.to_env().keys() {
        assert!(env.contains_key(name), "the session host's task lacks {name}");
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for (name, value) in &env {
        if let Some(global) = globals.get(*name) {
            assert_eq!(*value, global, "{name} differs from the functions'");
        }
    }
    assert_eq!(task["RuntimePlatform"]["CpuArchitecture"], "ARM64");
    // The deployed host runs the WhatsApp Web driver unless told otherwise, and every
    // driver the template offers is one the host knows.
    assert_eq!(*env["SESSION_DRIVER"], json!({"Ref": "SessionDriver"}));
    assert_eq!(*env["SESSION_WA_VERSION"], json!({"Ref": "WhatsAppWebVersion"}));
    let parameter = &template["Parameters"]["SessionDriver"];
    assert_eq!(parameter["Default"], "whatsapp-web");
    for driver in parameter["AllowedValues"].as_array().expect("drivers") {
        let name = driver.as_str().expect("name");
        assert!(session_host::DriverKind::parse(name).is_ok(), "the host has no driver {name}");
    }
}
