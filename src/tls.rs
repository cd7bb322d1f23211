//! TLS for both servers (`[security.tls]`): one PEM certificate chain and key serve the gRPC
//! API and the HTTP side (rustls with the ring provider).
//!
//! gRPC hands the identity to tonic. The HTTP side accepts through a [`TlsListener`], which
//! runs each handshake on a task of its own with a deadline, so that a client that opens a
//! connection and never finishes its handshake holds up nobody else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// `[security.tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and key, read and checked to belong together.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    http: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Read `config`'s files; errors are `(key, problem)` with keys relative to
    /// `security.tls`.
    pub fn load(config: &TlsConfig) -> Result<Self, (&'static str, String)> {
        let read = |key: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
        };
        let cert_pem = read("cert", &config.cert)?;
        let key_pem = read("key", &config.key)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ("cert", format!("{}: {e}", config.cert.display())))?;
        if certs.is_empty() {
            return Err((
                "cert",
                format!("no PEM certificate in {}", config.cert.display()),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            (
                "key",
                format!("no PEM private key in {}: {e}", config.key.display()),
            )
        })?;
        let mut http = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ("key", format!("the key does not fit the certificate: {e}")))?;
        // HTTP/1.1 only: the preview's WebSocket and Server-Sent Events need nothing else.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem,
            key_pem,
            http: Arc::new(http),
        })
    }

    /// The identity for tonic's server.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }

    /// Accepts TLS connections for the HTTP side.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.http.clone())
    }
}

/// A TCP listener that yields connections once their TLS handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accept on `tcp` and hand out connections that completed a handshake with `acceptor`
    /// within [`HANDSHAKE_TIMEOUT`].
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when aborted, with the listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/tls")
            .join(name)
    }

    #[test]
    fn the_test_certificate_loads_and_mismatches_are_named() {
        let good = TlsConfig {
            cert: data("server.pem"),
            key: data("server.key"),
        };
        assert!(TlsIdentity::load(&good).is_ok());
        let missing = TlsConfig {
            cert: data("nope.pem"),
            ..good.clone()
        };
        let (key, problem) = TlsIdentity::load(&missing).unwrap_err();
        assert_eq!(key, "cert");
        assert!(problem.contains("nope.pem"), "{problem}");
        let swapped = TlsConfig {
            cert: data("server.key"),
            key: data("server.pem"),
        };
        assert_eq!(TlsIdentity::load(&swapped).unwrap_err().0, "cert");
        // The CA's certificate with the server's key: they do not belong together.
        let wrong_pair = TlsConfig {
            cert: data("ca.pem"),
            key: data("server.key"),
        };
        let (key, problem) = TlsIdentity::load(&wrong_pair).unwrap_err();
        assert_eq!(key, "key", "{problem}");
    }
}
