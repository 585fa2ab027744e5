//! The session host as the system tests run it: a process of its own (so that a test can
//! kill or pause it), the same code as `session-host`'s `main`.
//!
//! With `TEST_WA_OFFLINE=1` it runs the real WhatsApp Web driver (whatsapp-rust, its keys in
//! the pool table) on the offline transport and a pinned version: WhatsApp's servers cannot
//! be reached from a test, so the client waits for a connection that never answers.

use adapters::store::session_keys::SessionKeys;
use session_host::Deps;
use whatsapp_web::offline::{NoHttp, OfflineTransport, VERSION};
use whatsapp_web::{Launcher, WebConfig, WhatsAppWeb};

#[tokio::main]
async fn main() -> Result<(), adapters::config::StartError> {
    if std::env::var("TEST_WA_OFFLINE").is_err() {
        return session_host::run_from_env().await;
    }
    let (clients, resources, config, addr) = session_host::prepare_from_env().await?;
    let transport = OfflineTransport::silent();
    let web = WebConfig { version: Some(VERSION), ..WebConfig::default() };
    let launcher = Launcher::new(transport, NoHttp::default(), web);
    let driver = WhatsAppWeb::new(SessionKeys::of(&clients, &resources), launcher);
    session_host::serve(Deps::build(&clients, &resources, driver, config), addr).await
}
