//! whatsapp-rust's HTTP client (the WhatsApp Web version check, media) on reqwest, which
//! the workspace already builds, instead of the crate's ureq default.

use std::time::Duration;
use whatsapp_rust::anyhow;
use whatsapp_rust::async_trait;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};

#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client })
    }
}

#[async_trait]
impl HttpClient for ReqwestHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body.to_vec());
        }
        let response = builder.send().await?;
        let status_code = response.status().as_u16();
        let body = response.bytes().await?.to_vec();
        Ok(HttpResponse { status_code, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn requests_carry_method_headers_and_body_and_answers_come_back_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v/sw.js", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 4096];
            let n = socket.read(&mut request).await.expect("read");
            socket
                .write_all(
                    b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                )
                .await
                .expect("write");
            String::from_utf8_lossy(&request[..n]).to_string()
        });
        let http = ReqwestHttp::new().expect("client");
        let request =
            HttpRequest::post(&url).with_header("x-probe", "1").with_body(b"body".to_vec());
        let response = http.execute(request).await.expect("answered");
        assert_eq!((response.status_code, response.body.as_slice()), (201, &b"hello"[..]));
        let seen = server.await.expect("server");
        assert!(seen.starts_with("POST /v/sw.js"), "{seen}");
        assert!(seen.contains("x-probe: 1") && seen.ends_with("body"), "{seen}");
    }

    /// The deployed driver's TLS (rustls with ring, as whatsapp-rust's transport installs it)
    /// and reqwest's (aws-lc) live in one process without either refusing to build.
    #[test]
    fn both_tls_stacks_build_in_one_process() {
        let _websocket = whatsapp_rust::transport::default_tls_connector();
        assert!(ReqwestHttp::new().is_ok());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
