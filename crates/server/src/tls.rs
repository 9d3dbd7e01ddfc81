//! HTTPS for the server (`--tls-cert`, `--tls-key`): rustls with the ring provider.
//!
//! Handshakes run in their own tasks, so a slow or silent client cannot hold up the accept
//! loop; finished connections are handed to axum through a queue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::error::ServerError;

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A handshake not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads the certificate and key into a server configuration.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |path: &PathBuf, e: &dyn std::fmt::Display| {
        ServerError::Tls(format!("{}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err(&files.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(err(&files.cert, &"no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}

/// `SHA256:<hex>` of the first certificate of the chain: what sensors pin with
/// `--server-fingerprint`, printed at start so the operator can copy it.
pub fn fingerprint(files: &TlsFiles) -> Result<String, ServerError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(&files.cert)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", files.cert.display())))?;
    Ok(sensor::uplink::fingerprint(cert.as_ref()))
}

/// A listener that yields connections after their TLS handshake.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(_) => {
                        // Out of file descriptors and the like: back off, as axum does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            rx,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The accept loop owns the socket: stopping it frees the port.
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until `signal` fires.
pub fn serve(
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    router: axum::Router,
    signal: tokio::sync::oneshot::Receiver<()>,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, ServerError> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async {
        let _ = signal.await;
    };
    Ok(match tls {
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }),
        Some(files) => {
            let config = server_config(files)?;
            // `tap_io` gives the listener axum's connect-info support for any address type.
            let listener = TlsListener::new(listener, config)
                .map_err(|e| ServerError::Tls(e.to_string()))?
                .tap_io(|_| {});
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
    })
}
