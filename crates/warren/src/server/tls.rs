//! TLS for the AMQPS listeners: builds rustls's server configuration from `[ssl_options]` (every file error names
//! the file), and holds the current one where a reload can swap it: new connections take the new certificate,
//! open ones keep the session they negotiated.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::{SslOptions, TlsVersion, Verify};

/// Why the TLS settings cannot be used; the broker does not start (or, on a reload, keeps the certificate it has).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A TLS listener is configured without the file it needs.
    #[error("TLS listeners need ssl_options.{0}")]
    Missing(&'static str),
    /// A file could not be read or holds nothing usable.
    #[error("ssl_options.{key} {path}: {reason}")]
    File {
        /// The `ssl_options` key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

/// The TLS configuration new connections are accepted with; swapped whole by a reload.
pub(crate) struct TlsState {
    options: SslOptions,
    current: ArcSwap<ServerConfig>,
}

impl TlsState {
    /// Reads the files named by `options`; errors name the file at fault.
    pub(crate) fn load(options: &SslOptions) -> Result<TlsState, TlsError> {
        let config = server_config(options)?;
        Ok(TlsState {
            options: options.clone(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// An acceptor with the configuration in force now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The settings this state was loaded from.
    pub(crate) fn options(&self) -> &SslOptions {
        &self.options
    }

    /// Reads the files again and, if they are usable, serves new connections with them. On an error the
    /// configuration in force stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.options)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// The files a reload reads, for the watcher.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        [
            &self.options.certfile,
            &self.options.keyfile,
            &self.options.cacertfile,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

fn server_config(options: &SslOptions) -> Result<ServerConfig, TlsError> {
    let certfile = options
        .certfile
        .as_deref()
        .ok_or(TlsError::Missing("certfile"))?;
    let keyfile = options
        .keyfile
        .as_deref()
        .ok_or(TlsError::Missing("keyfile"))?;
    let chain = certificates("certfile", certfile)?;
    let key =
        PrivateKeyDer::from_pem_file(keyfile).map_err(|e| file_error("keyfile", keyfile, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = options
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match options.verify {
        Verify::None => builder.with_no_client_auth(),
        Verify::Peer => {
            let cafile = options
                .cacertfile
                .as_deref()
                .ok_or(TlsError::Missing("cacertfile (with verify_peer)"))?;
            let mut roots = RootCertStore::empty();
            for ca in certificates("cacertfile", cafile)? {
                roots
                    .add(ca)
                    .map_err(|e| file_error("cacertfile", cafile, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // Without fail_if_no_peer_cert a client may come without a certificate (and then log in with a
            // password); one that presents a certificate must still present a valid one, as with Erlang's ssl.
            let verifier = if options.fail_if_no_peer_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Rustls(format!(
            "{e} (certfile {}, keyfile {})",
            certfile.display(),
            keyfile.display()
        ))
    })
}

/// Every certificate in a PEM file; none at all is an error.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn file_error(key: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        key,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// What identifies a file's version for the reload watcher: its modification time and length.
pub(crate) fn file_stamp(path: &Path) -> io::Result<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}
