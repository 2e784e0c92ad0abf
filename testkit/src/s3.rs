//! moto_server as a local S3.

use std::net::SocketAddr;

use anyhow::Result;
use tempfile::TempDir;

use crate::proc::{Proc, START_TIMEOUT};
use crate::util::{find_in_cache, free_port, http_get_status};

/// A local S3 endpoint: moto's `moto_server` (moto 5.2.5 from `$SLUICE_CACHE/venv`) on a free
/// port. Ready when `GET /moto-api/` answers 200.
///
/// moto keeps everything in memory: buckets and objects are lost on
/// [`stop`](Self::stop) / [`start_again`](Self::start_again) (which reuse the same port), so a
/// test that restarts it must create its bucket again. moto accepts any access key and secret
/// and does not check signatures. Use path-style addressing
/// (`force_path_style(true)` in aws-sdk-s3), since `BUCKET.127.0.0.1` does not resolve.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    proc: Proc,
    _dir: TempDir,
}

impl S3Server {
    pub async fn start() -> Result<Self> {
        let moto = find_in_cache("venv/bin/moto_server", "SLUICE_MOTO_SERVER")?;
        let dir = tempfile::Builder::new().prefix("sluice-s3-").tempdir()?;
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut proc = Proc::new("moto_server", &moto, dir.path().join("moto.log"));
        proc.args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .cwd(dir.path())
            .env("PYTHONUNBUFFERED", "1");
        let mut server = Self {
            endpoint: format!("http://{addr}"),
            addr,
            region: "us-east-1".to_string(),
            access_key: "sluice-test-key".to_string(),
            secret_key: "sluice-test-secret".to_string(),
            proc,
            _dir: dir,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Kills the server; its (in-memory) buckets are gone.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts a fresh, empty moto on the same port and waits for `GET /moto-api/` = 200.
    pub async fn start_again(&mut self) -> Result<()> {
        self.proc.spawn()?;
        let addr = self.addr;
        self.proc
            .wait_ready(START_TIMEOUT, || async move {
                matches!(http_get_status(addr, "/moto-api/").await, Ok(200))
            })
            .await
    }

    /// An aws-sdk-s3 client for this server (its credentials, path-style), for a test to
    /// create buckets and read back what a flow stored.
    pub fn client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "sluice-testkit",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// `ENDPOINT/BUCKET/KEY`, the path-style URL of an object.
    pub fn object_url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{bucket}/{}", self.endpoint, key.trim_start_matches('/'))
    }
}
