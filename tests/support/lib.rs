//! Test support: an AWS emulator per test binary, a fresh set of resources per test, and
//! the local stack served on a free port.
//!
//! The emulator is moto's server from `.venv` (installed by `make test` via
//! `scripts/venv.sh`), run by `scripts/emulator.py` (which makes its DynamoDB requests atomic,
//! as they are in AWS), started on a free loopback port the first time a test needs it and
//! killed when the test process exits. Each test bootstraps its own tables, queues and key
//! under a unique prefix, so tests run in parallel without seeing each other's data, and
//! removes them at the end.

// NOTE: over 400 lines: the whole test harness (emulator, stack, app, helpers) that every test
// binary module shares.

// Test code: a failed expectation is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cost;

use adapters::aws::{AwsClients, bootstrap};
use adapters::config::Resources;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running moto server.
pub struct Emulator {
    pub endpoint: String,
    child: Mutex<Option<Child>>,
}

impl Emulator {
    /// The emulator shared by every test in this process.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(Emulator::start)
    }

    /// A new emulator of its own (for tests that stop it). Killed on drop.
    pub fn start() -> Emulator {
        let python = workspace_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make test` (or scripts/venv.sh) to install the emulator",
            python.display()
        );
        let script = workspace_root().join("scripts/emulator.py");
        let port = free_port();
        // NOTE: PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits, so
        // the child is spawned from a thread that lives as long as the test process. That
        // way a test run that ends (or crashes) never leaves an emulator behind.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut command = Command::new(python);
            command
                .arg(script)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let _ = tx.send(command.spawn());
            loop {
                std::thread::park();
            }
        });
        let child = rx.recv().expect("spawner thread").expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Emulator { endpoint: format!("http://127.0.0.1:{port}"), child: Mutex::new(Some(child)) }
    }

    /// Kills the emulator now, as an outage would.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn clients(&self) -> AwsClients {
        AwsClients::for_emulator(&self.endpoint).await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counts every request the SDK sends (retries included), by `Service.Operation`, and
/// keeps each request and its answer, which `make cost` prices (see [`cost`]).
#[derive(Debug, Default, Clone)]
pub struct RequestCounter {
    counts: std::sync::Arc<Mutex<std::collections::BTreeMap<String, u32>>>,
    calls: std::sync::Arc<Mutex<Vec<cost::Call>>>,
    /// The calls of the phase the last [`RequestCounter::take`] ended.
    taken: std::sync::Arc<Mutex<Vec<cost::Call>>>,
}

/// Which call a response belongs to (requests of one client may be in flight together).
#[derive(Debug, Clone, Copy)]
struct CallIndex(usize);

impl aws_smithy_types::config_bag::Storable for CallIndex {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl RequestCounter {
    /// The counts since the last take; the calls behind them move to [`Self::taken_calls`].
    pub fn take(&self) -> std::collections::BTreeMap<String, u32> {
        let calls = std::mem::take(&mut *self.calls.lock().expect("lock"));
        *self.taken.lock().expect("lock") = calls;
        std::mem::take(&mut *self.counts.lock().expect("lock"))
    }

    /// The requests (and answers) the last [`Self::take`] counted.
    pub fn taken_calls(&self) -> Vec<cost::Call> {
        self.taken.lock().expect("lock").clone()
    }
}

fn json_body(bytes: Option<&[u8]>) -> serde_json::Value {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(serde_json::Value::Null)
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(meta) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let key = format!("{}.{}", meta.service(), meta.name());
            *self.counts.lock().expect("lock").entry(key.clone()).or_default() += 1;
            let request = json_body(context.request().body().bytes());
            let mut calls = self.calls.lock().expect("lock");
            calls.push(cost::Call { op: key, request, response: serde_json::Value::Null });
            let index = CallIndex(calls.len() - 1);
            cfg.interceptor_state().store_put(index);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(CallIndex(i)) = cfg.load::<CallIndex>().copied()
            && let Some(call) = self.calls.lock().expect("lock").get_mut(i)
        {
            call.response = json_body(context.response().body().bytes());
        }
        Ok(())
    }
}

impl Emulator {
    /// Clients whose every request is counted by `counter`.
    pub async fn counted_clients(&self, counter: &RequestCounter) -> AwsClients {
        let config = adapters::aws::emulator_config(&self.endpoint).await;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&config).interceptor(counter.clone()).build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&config).interceptor(counter.clone()).build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
        }
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// A unique prefix, so that parallel tests never share resources.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Resources of one test, bootstrapped in an emulator.
pub struct Stack {
    pub prefix: String,
    pub clients: AwsClients,
    pub resources: Resources,
}

/// Logs go to the test harness's capture: shown for failing tests only.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(
            |_| tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"),
        ))
        .try_init();
}

impl Stack {
    pub async fn new(emulator: &Emulator) -> Stack {
        init_logs();
        let prefix = unique_prefix();
        let clients = emulator.clients().await;
        let resources = bootstrap::ensure(&clients, &prefix).await.expect("bootstrap resources");
        Stack { prefix, clients, resources }
    }

    /// How many items the tenants table holds (to show that refused input wrote nothing).
    pub async fn tenants_items(&self) -> i32 {
        let out = self
            .clients
            .dynamodb
            .scan()
            .table_name(&self.resources.tenants_table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .expect("scan");
        out.count()
    }

    /// Takes `count` messages off a queue (deleted, so nothing redelivers them) as the
    /// SQS event Lambda would build of them. Panics if fewer are queued.
    pub async fn take_event(
        &self,
        queue_url: &str,
        count: usize,
    ) -> aws_lambda_events::event::sqs::SqsEvent {
        let mut event = sqs_event(None, None);
        event.records.clear();
        while event.records.len() < count {
            let received = self.receive(queue_url, (count - event.records.len()).min(10)).await;
            assert!(!received.is_empty(), "{count} messages queued on {queue_url}");
            for m in received {
                self.delete(queue_url, &m).await;
                event.records.extend(sqs_event(m.message_id(), m.body()).records);
            }
        }
        event
    }

    /// Up to `max` (1 to 10) messages from a queue, waiting up to two seconds for the first.
    async fn receive(&self, queue_url: &str, max: usize) -> Vec<aws_sdk_sqs::types::Message> {
        self.clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(2)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    /// Every message on a (dead-letter) queue with its `reason` attribute, taken off it.
    pub async fn dead_letters(&self, queue_url: &str) -> Vec<(String, Option<String>)> {
        let mut all = Vec::new();
        loop {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for m in messages {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(adapters::queues::REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned);
                all.push((m.body().unwrap_or_default().to_owned(), reason));
                self.delete(queue_url, &m).await;
            }
        }
    }

    async fn delete(&self, queue_url: &str, message: &aws_sdk_sqs::types::Message) {
        self.clients
            .sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }

    /// Every message on a queue, as JSON, taken off it.
    pub async fn drain_json(&self, queue_url: &str) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        loop {
            let received = self.receive(queue_url, 10).await;
            if received.is_empty() {
                return all;
            }
            all.extend(
                received
                    .iter()
                    .map(|m| serde_json::from_str(m.body().unwrap_or("{}")).expect("json")),
            );
        }
    }

    /// Moves a tenant to another tier, as billing would (tenants cannot change their own).
    pub async fn set_tier(&self, tenant_id: &str, tier: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.clients
            .dynamodb
            .update_item()
            .table_name(&self.resources.tenants_table)
            .key("pk", AttributeValue::S(format!("TENANT#{tenant_id}")))
            .key("sk", AttributeValue::S("TENANT".into()))
            .update_expression("SET tier = :tier")
            .expression_attribute_values(":tier", AttributeValue::S(tier.into()))
            .send()
            .await
            .expect("set tier");
    }

    /// Every item of `table` under partition `pk` whose sort key starts with `prefix`,
    /// read straight from the table.
    pub async fn items(
        &self,
        table: &str,
        pk: &str,
        prefix: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let query = self
            .clients
            .dynamodb
            .query()
            .table_name(table)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()));
        // An empty prefix is every item (DynamoDB refuses an empty key value).
        let query = if prefix.is_empty() {
            query.key_condition_expression("pk = :pk")
        } else {
            query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
        };
        query.send().await.expect("query").items().to_vec()
    }

    /// Items under `prefix` in every partition of `tenant` (its own and its shards).
    pub async fn tenant_items(
        &self,
        table: &str,
        tenant: &str,
        prefix: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let tenant = domain::ids::TenantId::parse(tenant).expect("tenant id");
        let mut items = self.items(table, &format!("TENANT#{tenant}"), prefix).await;
        for pk in scope_of(&tenant).shard_pks() {
            items.extend(self.items(table, &pk, prefix).await);
        }
        items
    }

    /// Every item of the tenants table, as text: to show that a secret is not stored in clear.
    pub async fn tenants_table_text(&self) -> String {
        let out = self
            .clients
            .dynamodb
            .scan()
            .table_name(&self.resources.tenants_table)
            .send()
            .await
            .expect("scan");
        format!("{:?}", out.items())
    }

    /// The actions of a tenant's audit entries.
    pub async fn audit_actions(&self, tenant_id: &str) -> Vec<String> {
        let table = self.resources.tenants_table.clone();
        self.items(&table, &format!("TENANT#{tenant_id}"), "AUDIT#")
            .await
            .iter()
            .filter_map(|i| i.get("action").and_then(|a| a.as_s().ok()).cloned())
            .collect()
    }

    /// Removes the test's resources (the emulator outlives the test).
    pub async fn remove(self) {
        bootstrap::remove(&self.clients, &self.prefix, &self.resources).await;
    }
}

/// The local stack served on a free port, stopped when dropped.
pub struct App {
    pub base_url: String,
    /// The WhatsApp sandbox this app's sandbox channels send through.
    pub sandbox_url: String,
    pub http: reqwest::Client,
    /// The key ring the app signs with (tests forge tokens with it).
    pub token_keys_spec: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Where tests send Cloud API requests: a cloud channel's Graph API at a loopback port
/// nothing listens on (unreachable, never Meta), a sandbox channel's at `sandbox_url`.
pub fn loopback_graph(sandbox_url: Option<&str>) -> adapters::graph::GraphConfig {
    adapters::graph::GraphConfig {
        graph_api_base: "http://127.0.0.1:9".into(),
        graph_api_version: "v23.0".into(),
        sandbox_url: sandbox_url.map(str::to_owned),
        destinations_allowed: domain::webhooks::Cidr::parse_list("127.0.0.1/32").expect("range"),
    }
}

/// The scope a processor has for a record of our own queues naming `tenant`: what tests
/// that drive a store directly, as a processor does, act with.
pub fn scope_of(tenant: &domain::ids::TenantId) -> adapters::store::TenantScope {
    let record =
        domain::queues::WebhookPointer { tenant_id: tenant.clone(), event_id: String::new() };
    adapters::store::TenantScope::of_record(&record)
}

/// The partition of one of `tenant`'s sharded items (a message, wamid, client id, …).
pub fn shard_pk(tenant: &str, id: &str) -> String {
    scope_of(&domain::ids::TenantId::parse(tenant).expect("tenant id")).shard_pk(id)
}

/// An approved-template message (allowed outside the 24-hour window) for `POST /api/messages`.
pub fn template_message(to: &str, client_id: &str) -> serde_json::Value {
    serde_json::json!({"to": to, "type": "template", "clientMessageId": client_id,
        "template": {"name": "order_update", "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}})
}

/// Partner webhooks in tests: retries after 1, 2 and 2 seconds (and none later than 4 s past
/// them), twenty attempts in flight per endpoint (so that a batch of ten first attempts
/// finds ten slots), and only 127.0.0.1
/// allowed as a destination (so 127.0.0.2 shows a refusal without leaving loopback).
pub fn test_webhook_config() -> webhook_dispatcher::Config {
    webhook_dispatcher::Config {
        policy: webhook_dispatcher::Policy {
            schedule: domain::webhooks::RetrySchedule::parse("1,2,2").expect("schedule"),
            endpoint_concurrency: 20,
            deadline_grace: std::time::Duration::from_secs(4),
        },
        client: adapters::webhook_client::WebhookClient::new(
            domain::webhooks::Cidr::parse_list("127.0.0.1/32").expect("range"),
        )
        .expect("client"),
    }
}

/// Retries come back within a second or two, so that tests see them.
pub fn test_sender_policy() -> message_sender::Policy {
    message_sender::Policy {
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(2),
        ..message_sender::Policy::default()
    }
}

/// A fresh key ring, `test-kid:<random secret>`.
pub fn test_key_spec() -> String {
    edge::tokens::generate_spec("test-kid").expect("random")
}

impl App {
    /// An app whose queues nothing consumes: tests drive the processors themselves.
    pub async fn without_processors(stack: &Stack) -> App {
        Self::spawn_configured(stack, auth::LockoutPolicy::default(), test_sender_policy(), false)
            .await
    }

    pub async fn spawn(stack: &Stack) -> App {
        Self::spawn_with(stack, auth::LockoutPolicy::default()).await
    }

    pub async fn spawn_with(stack: &Stack, lockout: auth::LockoutPolicy) -> App {
        Self::spawn_configured(stack, lockout, test_sender_policy(), true).await
    }

    /// Without the webhook dispatcher: partner events stay on their queue for the test to
    /// read.
    pub async fn spawn_keeping_partner_events(stack: &Stack) -> App {
        Self::spawn_full(stack, auth::LockoutPolicy::default(), test_sender_policy(), true, false)
            .await
    }

    /// With its own sender policy, and optionally without queue processors (to look at
    /// what is queued).
    pub async fn spawn_configured(
        stack: &Stack,
        lockout: auth::LockoutPolicy,
        sender: message_sender::Policy,
        run_processors: bool,
    ) -> App {
        Self::spawn_full(stack, lockout, sender, run_processors, true).await
    }

    async fn spawn_full(
        stack: &Stack,
        lockout: auth::LockoutPolicy,
        sender: message_sender::Policy,
        run_processors: bool,
        deliver_webhooks: bool,
    ) -> App {
        // Both servers are bound before either starts: each needs the other's address.
        let sandbox_listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .expect("bind sandbox");
        let sandbox_url =
            format!("http://{}", sandbox_listener.local_addr().expect("sandbox addr"));
        let spec = test_key_spec();
        let keys = edge::tokens::TokenKeys::parse(&spec, edge::tokens::DEFAULT_ISSUER, "test")
            .expect("key ring");
        let settings = local::Settings {
            api: edge::config::ApiConfig {
                token_keys: std::sync::Arc::new(keys),
                sandbox: adapters::channel::SandboxCredentials {
                    app_secret: Some(SANDBOX_APP_SECRET.to_owned().into()),
                    verify_token: Some(SANDBOX_VERIFY_TOKEN.to_owned().into()),
                },
                graph: loopback_graph(Some(&sandbox_url)),
                pools: domain::sessions::PoolPolicies::default(),
            },
            lockout,
            sender,
            platform_app: meta_webhook::PlatformApp {
                app_secret: Some(PLATFORM_APP_SECRET.to_owned().into()),
                verify_token: Some(PLATFORM_VERIFY_TOKEN.to_owned().into()),
            },
            webhooks: test_webhook_config(),
            run_processors,
            deliver_webhooks,
        };
        let app = local::Application::build(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stack.clients.clone(),
            stack.resources.clone(),
            settings,
        )
        .await
        .expect("build local stack");
        let port = app.local_addr().expect("bound").port();
        let base_url = format!("http://127.0.0.1:{port}");
        let sandbox = sandbox::Application::from_listener(
            sandbox_listener,
            sandbox::Settings {
                app_secret: SANDBOX_APP_SECRET.into(),
                switchboard_url: base_url.clone(),
                status_delay: Duration::from_millis(50),
                send_statuses: true,
                qr_ttl: Duration::from_secs(20),
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (sandbox_stop, sandbox_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sandbox.run_until_stopped(async {
            let _ = sandbox_stopped.await;
        }));
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
            let _ = sandbox_stop.send(());
        }));
        App {
            base_url,
            sandbox_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token_keys_spec: spec,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// Sends `method path` with an optional bearer token and JSON body; returns the status
    /// and the body (JSON, or `Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call_with(method, path, token, &[], body).await
    }

    /// [`App::call`] with extra headers (a platform's `X-Tenant-Id`).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        (status, value)
    }

    /// Sends a raw body (for malformed-input tests).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let value: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status >= 400 {
            assert_eq!(
                content_type, "application/problem+json",
                "errors are problem+json: {value}"
            );
        }
        (status, value)
    }

    /// Registers a new tenant; returns (tenant id, admin access token, refresh token, body).
    pub async fn register(&self, email: &str) -> Registered {
        let (status, body) = self
            .call(
                "POST",
                "/api/auth/register",
                None,
                Some(serde_json::json!({
                    "tenantName": format!("Tenant of {email}"),
                    "email": email,
                    "password": PASSWORD,
                    "name": "Admin",
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Registered {
            tenant_id: body["tenant"]["id"].as_str().expect("tenant id").to_owned(),
            user_id: body["user"]["id"].as_str().expect("user id").to_owned(),
            access_token: body["accessToken"].as_str().expect("access token").to_owned(),
            refresh_token: body["refreshToken"].as_str().expect("refresh token").to_owned(),
        }
    }

    /// The sandbox's `GET /_sandbox/stats`: `{"sends", "sentAtMs"}`.
    pub async fn sandbox_stats(&self) -> serde_json::Value {
        let response = self.http.get(format!("{}/_sandbox/stats", self.sandbox_url)).send();
        response.await.expect("stats").json().await.expect("json")
    }

    /// What the sandbox received for `to`, in order.
    pub async fn sandbox_sent(&self, to: &str) -> Vec<serde_json::Value> {
        let response = self
            .http
            .get(format!("{}/_sandbox/messages", self.sandbox_url))
            .query(&[("to", to)])
            .send()
            .await
            .expect("sandbox messages");
        let body: serde_json::Value = response.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// A new tenant whose channel is the sandbox, paced at `messages_per_second` (`None`:
    /// Meta's default).
    /// The customer `from` writes "Hello" to `owner` through the sandbox (signed as Meta
    /// would); returns once the sandbox accepted it.
    pub async fn customer_writes(&self, owner: &Registered, from: &str) {
        let written = self
            .http
            .post(format!("{}/_sandbox/inbound", self.sandbox_url))
            .json(&serde_json::json!({"tenantId": owner.tenant_id, "from": from, "text": "Hello"}))
            .send()
            .await
            .expect("sandbox inbound");
        assert_eq!(written.status(), 202);
    }

    pub async fn sandbox_tenant(&self, name: &str, messages_per_second: Option<u32>) -> Registered {
        let owner = self.register(&email(name)).await;
        let channel =
            serde_json::json!({"provider": "sandbox", "messagesPerSecond": messages_per_second});
        let (status, body) = self
            .call("PUT", "/api/whatsapp/channel", Some(&owner.access_token), Some(channel))
            .await;
        assert_eq!(status, 200, "{body}");
        owner
    }

    /// A new tenant whose channel is the Cloud API for `phone_number_id`, its webhooks
    /// signed with `app_secret`.
    pub async fn cloud_tenant(
        &self,
        name: &str,
        phone_number_id: &str,
        app_secret: &str,
        verify_token: &str,
    ) -> Registered {
        let owner = self.register(&email(name)).await;
        let channel = serde_json::json!({"provider": "cloud", "phoneNumberId": phone_number_id,
            "wabaId": "102290129340398", "accessToken": "EAAG-fake-access-token-9876",
            "appSecret": app_secret, "verifyToken": verify_token});
        let (status, body) = self
            .call("PUT", "/api/whatsapp/channel", Some(&owner.access_token), Some(channel))
            .await;
        assert_eq!(status, 200, "{body}");
        owner
    }

    /// A partner platform made by the operator (`operator`: its token): its id and key.
    pub async fn platform(&self, operator: &str, name: &str) -> (String, String) {
        let body = serde_json::json!({"name": name});
        let (status, body) =
            self.call("POST", "/api/admin/platforms", Some(operator), Some(body)).await;
        assert_eq!(status, 201, "{body}");
        let key = body["apiKey"].as_str().expect("key shown once").to_owned();
        (body["platformId"].as_str().expect("id").to_owned(), key)
    }

    /// Creates an operator (SYSTEM_ADMIN) in the stack's tables and logs in as it.
    pub async fn operator_token(&self, stack: &Stack) -> String {
        let address = email("operator");
        let store = adapters::store::tenants::TenantStore::new(
            stack.clients.dynamodb.clone(),
            stack.resources.tenants_table.clone(),
        );
        let hash = domain::passwords::Passwords::new()
            .expect("argon2")
            .hash(PASSWORD)
            .await
            .expect("hash");
        let parsed = domain::user::Email::parse(&address).expect("email");
        assert!(
            store.tenants().ensure_operator(&parsed, "Operator", &hash).await.expect("operator")
        );
        self.login(&address, PASSWORD).await
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/auth/login",
                None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["accessToken"].as_str().expect("access token").to_owned()
    }
}

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Waits until `check` answers `Some`, or panics after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The platform Meta app the test apps are configured with.
pub const PLATFORM_APP_SECRET: &str = "platform-app-secret-for-tests";
pub const PLATFORM_VERIFY_TOKEN: &str = "platform-verify-token";

/// The sandbox credentials the test apps are configured with.
pub const SANDBOX_APP_SECRET: &str = "sandbox-app-secret-for-tests";
pub const SANDBOX_VERIFY_TOKEN: &str = "sandbox-verify-token";

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Registered {
    pub tenant_id: String,
    pub user_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A unique email for one test account.
pub fn email(name: &str) -> String {
    format!("{name}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The SQS event Lambda builds for one message (id and body are all processors read).
pub fn sqs_event(
    message_id: Option<&str>,
    body: Option<&str>,
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
    record.message_id = message_id.map(str::to_owned);
    record.body = body.map(str::to_owned);
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![record];
    event
}

/// A session host process (`session-host-under-test`, the same code as `session-host`),
/// on the test's resources, with the simulator talking to `sandbox_url`. Killed on drop.
pub struct SessionHost {
    child: Child,
    pub health_url: String,
    pub host_id: String,
}

/// Lease and heartbeat of the hosts tests start: short, so that a failover fits a test.
pub const TEST_LEASE_MS: u64 = 4_000;
pub const TEST_HEARTBEAT_MS: u64 = 1_000;

impl SessionHost {
    /// Starts a host (`bin`: the system tests' `env!("CARGO_BIN_EXE_session-host-under-test")`,
    /// which only an integration test can name) and waits until its health endpoint answers
    /// 200 (its loop runs).
    pub async fn start(
        bin: &str,
        stack: &Stack,
        sandbox_url: &str,
        env: &[(&str, &str)],
    ) -> SessionHost {
        let port = free_port();
        let host_id = format!("host-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut command = Command::new(bin);
        command
            .envs(stack.resources.to_env())
            .env("AWS_ENDPOINT_URL", &Emulator::shared().endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("SANDBOX_URL", sandbox_url)
            .env("SESSION_DRIVER", "simulator")
            .env("HEALTH_PORT", port.to_string())
            .env("HOST_ID", &host_id)
            .env("SESSION_LEASE_MS", TEST_LEASE_MS.to_string())
            .env("SESSION_HEARTBEAT_MS", TEST_HEARTBEAT_MS.to_string())
            .env("SESSION_RECONNECT_BASE_MS", "300")
            .env("SESSION_CLAIMS_PER_TICK", "50")
            .env("SESSION_RESUMES_PER_SECOND", "50")
            .env("RUST_LOG", std::env::var("HOST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if std::env::var("HOST_LOG").is_err() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the session host");
        let host =
            SessionHost { child, health_url: format!("http://127.0.0.1:{port}/health"), host_id };
        let http = reqwest::Client::new();
        eventually(60, "the session host to be healthy", || {
            let request = http.get(&host.health_url).send();
            async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
        host
    }

    /// The host's `GET /metrics`: sessions by tier and state, takeovers, reconnects.
    pub async fn metrics(&self) -> serde_json::Value {
        let url = self.health_url.replace("/health", "/metrics");
        reqwest::get(url).await.expect("metrics").json().await.expect("json")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// SIGKILL: the host is gone at once, its leases left to run out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP / SIGCONT: the host is paused, as a long GC pause or a partition would.
    pub fn pause(&self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
    }

    /// SIGTERM, then waits for the host to exit (it gives its leases back).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: as above.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        self.child.wait().expect("wait for the host")
    }
}

impl Drop for SessionHost {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
