//! Test support: an AWS emulator per test binary, a fresh set of resources per test, and
//! the local stack served on a free port.
//!
//! The emulator is moto's server from `.venv` (installed by `make test` via
//! `scripts/venv.sh`), started on a free loopback port the first time a test needs it and
//! killed when the test process exits. Each test bootstraps its own tables, queues and key
//! under a unique prefix, so tests run in parallel without seeing each other's data, and
//! removes them at the end.

use shared::aws::{AwsClients, bootstrap};
use shared::config::Resources;
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
        let server = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
        assert!(
            server.exists(),
            "{} is missing: run `make test` (or scripts/venv.sh) to install the emulator",
            server.display()
        );
        let port = free_port();
        // NOTE: PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits, so
        // the child is spawned from a thread that lives as long as the test process. That
        // way a test run that ends (or crashes) never leaves an emulator behind.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut command = Command::new(server);
            command
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

impl Stack {
    pub async fn new(emulator: &Emulator) -> Stack {
        let prefix = unique_prefix();
        let clients = emulator.clients().await;
        let resources = bootstrap::ensure(&clients, &prefix).await.expect("bootstrap resources");
        Stack { prefix, clients, resources }
    }

    /// Removes the test's resources (the emulator outlives the test).
    pub async fn remove(self) {
        bootstrap::remove(&self.clients, &self.prefix, &self.resources).await;
    }
}

/// The local stack served on a free port, stopped when dropped.
pub struct App {
    pub base_url: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl App {
    pub async fn spawn(stack: &Stack) -> App {
        let app = local::Application::build(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stack.clients.clone(),
            stack.resources.clone(),
        )
        .await
        .expect("build local stack");
        let port = app.local_addr().expect("bound").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        App {
            base_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
