//! Test certificates made at test time with rcgen (no private key is ever committed): a CA, server certificates for
//! 127.0.0.1, ::1 and localhost, and client certificates; plus a rustls client to look at what a listener serves.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A throwaway CA and the directory its files are written to.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A certificate and its key, PEM.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Pki {
    /// A new CA, its certificate written to `<dir>/ca.pem`.
    pub(crate) fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("warren-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("Warren test CA {name}"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca_cert = params.self_signed(&ca_key).expect("ca certificate");
        let ca_pem = ca_cert.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).expect("write ca.pem");
        Pki {
            dir,
            ca_pem,
            ca_cert,
            ca_key,
        }
    }

    /// The CA file's path.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate (CN `cn`) for 127.0.0.1, ::1 and localhost.
    pub(crate) fn server(&self, cn: &str) -> Issued {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("server params");
        params.subject_alt_names = vec![
            rcgen::SanType::IpAddress([127, 0, 0, 1].into()),
            rcgen::SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
            rcgen::SanType::DnsName("localhost".try_into().expect("dns name")),
        ];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A cluster node's certificate (CN `cn`) for 127.0.0.1: server and client use, as inter-node TLS presents the
    /// same certificate both ways.
    pub(crate) fn node(&self, cn: &str) -> Issued {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("node params");
        params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate with subject `O=Warren tests, CN=<cn>`.
    pub(crate) fn client(&self, cn: &str) -> Issued {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Warren tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: rcgen::CertificateParams) -> Issued {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("signed certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `issued` as `<name>.pem` and `<name>.key`; returns (certfile, keyfile).
    pub(crate) fn write(&self, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert, &issued.cert_pem).expect("write certificate");
        std::fs::write(&key, &issued.key_pem).expect("write key");
        (cert, key)
    }

    /// lapin's TLS settings: trust this CA, and present `client` if given.
    pub(crate) fn lapin_tls(&self, client: Option<&Issued>) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: client.map(|c| lapin::tcp::OwnedIdentity::PKCS8 {
                pem: c.cert_pem.clone().into_bytes(),
                key: c.key_pem.clone().into_bytes(),
            }),
            cert_chain: Some(self.ca_pem.clone()),
        }
    }

    /// A rustls client that trusts this CA and presents no certificate.
    pub(crate) fn rustls_client(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("ca added");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects to `addr` over TLS (trusting `pki`'s CA) and returns the leaf certificate the server presented.
pub(crate) async fn served_certificate(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = pki.rustls_client().connect(name, tcp).await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok(leaf)
}

/// The DER of the first certificate in a PEM text.
pub(crate) fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("certificate pem")
        .to_vec()
}

/// Connects to `addr` over TLS (trusting `pki`'s CA), sends AMQP's protocol header and returns the first frame
/// header the broker answers with (connection.start's: type 1, channel 0).
pub(crate) async fn amqp_over_tls(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> std::io::Result<[u8; 7]> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = pki.rustls_client().connect(name, tcp).await?;
    tls.write_all(b"AMQP\x00\x00\x09\x01").await?;
    let mut head = [0u8; 7];
    tls.read_exact(&mut head).await?;
    Ok(head)
}
