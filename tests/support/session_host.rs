//! The session host as the system tests run it: a process of its own (so that a test can
//! kill or pause it), the same code as `session-host`'s `main`.

#[tokio::main]
async fn main() -> Result<(), adapters::config::StartError> {
    session_host::run_from_env().await
}
