//! HTTPS for the processes that listen (`sluice server`, `sluice serve`, `sluice standalone`): the certificate flags,
//! and serving a router over plain HTTP or TLS with the same graceful shutdown.
//!
//! TLS is rustls on ring, through axum-server: the same rustls and ring as the HTTP client and the database driver.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;

/// The server's certificate and key: both to serve HTTPS, neither to serve plain HTTP.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM file of the server's certificate, followed by the intermediate certificates up to its CA: serve HTTPS
    /// instead of HTTP (with --tls-key).
    #[arg(long, env = "SLUICE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1, not encrypted).
    #[arg(long, env = "SLUICE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// What to serve HTTPS with, or `None` for plain HTTP; called before anything else starts, so that a wrong file
    /// stops the process at once.
    pub async fn load(&self) -> anyhow::Result<Option<RustlsConfig>> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) | (None, Some(_)) => bail!(
                "--tls-cert (SLUICE_TLS_CERT) and --tls-key (SLUICE_TLS_KEY) go together: give both to serve HTTPS, \
                 or neither to serve HTTP"
            ),
        };
        let cert_pem = read_pem(cert, "certificate", "CERTIFICATE-----")?;
        let key_pem = read_pem(key, "private key", "PRIVATE KEY-----")?;
        let config = RustlsConfig::from_pem(cert_pem, key_pem).await.with_context(|| {
            format!("cannot serve HTTPS with the certificate {} and the key {}", cert.display(), key.display())
        })?;
        Ok(Some(config))
    }

    /// `https` when a certificate is given, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "https" } else { "http" }
    }
}

/// The file at `path`, which must hold a PEM section whose `-----BEGIN` line ends with `label`: a key given for the
/// certificate, or a DER file, is named here rather than reported by a parser that does not know the file's name.
fn read_pem(path: &Path, what: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read the TLS {what} {}", path.display()))?;
    let found = String::from_utf8_lossy(&pem)
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.trim_end().ends_with(label));
    if !found {
        bail!("the TLS {what} {} holds no PEM {what} (no \"-----BEGIN …{label}\" line)", path.display());
    }
    Ok(pem)
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` resolves; then stops accepting and
/// lets the open connections finish, however long they take (as `axum::serve`'s graceful shutdown does).
pub async fn serve_http(
    listener: TcpListener,
    app: IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    tls: Option<RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    };
    let handle = axum_server::Handle::new();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle.clone()).serve(app);
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served,
        () = shutdown => handle.graceful_shutdown(None),
    }
    server.await
}
