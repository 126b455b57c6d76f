//! EXTERNAL's user names from real certificates (made with rcgen).

use std::sync::Arc;

use super::*;
use crate::auth::access::AccessTable;
use crate::auth::users::UserDefinition;

fn certificate(san: Vec<rcgen::SanType>) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "GB");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example, Ltd");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    params.subject_alt_names = san;
    let key = rcgen::KeyPair::generate().expect("key");
    params
        .self_signed(&key)
        .expect("certificate")
        .der()
        .to_vec()
}

fn sasl(from: CertLoginFrom, san_type: SanType, san_index: usize) -> SaslConfig {
    SaslConfig {
        mechanisms: vec![Mechanism::External],
        cert_login_from: from,
        san_type,
        san_index,
    }
}

#[test]
fn distinguished_name_is_rabbitmq_s_string() {
    let der = certificate(Vec::new());
    let config = sasl(CertLoginFrom::DistinguishedName, SanType::Dns, 0);
    assert_eq!(
        user_name(&config, &der).expect("name"),
        "CN=alice,O=Example\\, Ltd,C=GB"
    );
}

#[test]
fn common_name_is_the_cn() {
    let der = certificate(Vec::new());
    let config = sasl(CertLoginFrom::CommonName, SanType::Dns, 0);
    assert_eq!(user_name(&config, &der).expect("name"), "alice");
}

#[test]
fn subject_alternative_name_by_type_and_index() {
    let der = certificate(vec![
        rcgen::SanType::DnsName("one.example".try_into().expect("dns")),
        rcgen::SanType::Rfc822Name("alice@example.com".try_into().expect("email")),
        rcgen::SanType::DnsName("two.example".try_into().expect("dns")),
        rcgen::SanType::URI("urn:user:alice".try_into().expect("uri")),
    ]);
    let name = |san_type, index| {
        user_name(
            &sasl(CertLoginFrom::SubjectAlternativeName, san_type, index),
            &der,
        )
    };
    assert_eq!(name(SanType::Dns, 0).expect("dns 0"), "one.example");
    assert_eq!(name(SanType::Dns, 1).expect("dns 1"), "two.example");
    assert_eq!(name(SanType::Email, 0).expect("email"), "alice@example.com");
    assert_eq!(name(SanType::Uri, 0).expect("uri"), "urn:user:alice");
    assert_eq!(
        name(SanType::Dns, 2),
        Err(AuthError::Certificate("no name found".to_owned()))
    );
}

#[test]
fn the_user_must_exist_and_no_certificate_is_refused() {
    let der = certificate(Vec::new());
    let config = sasl(CertLoginFrom::CommonName, SanType::Dns, 0);
    let local: IpAddr = [127, 0, 0, 1].into();
    let loopback = vec!["guest".to_owned()];
    let nobody = AccessControl::new(AccessTable::default());
    assert_eq!(
        authenticate(&nobody, &loopback, &config, Some(der.as_slice()), local),
        Err(AuthError::Credentials("alice".to_owned()))
    );
    let mut table = AccessTable::default();
    let alice = UserDefinition::with_password("alice", "not checked", Vec::new());
    table.users.insert("alice".into(), Arc::new(alice));
    let access = AccessControl::new(table);
    assert_eq!(
        authenticate(&access, &loopback, &config, Some(der.as_slice()), local),
        Ok("alice".to_owned())
    );
    assert_eq!(
        authenticate(&access, &loopback, &config, None, local),
        Err(AuthError::Certificate(
            "connection peer presented no TLS (x.509) certificate".to_owned()
        ))
    );
}

#[test]
fn external_is_offered_only_on_verifying_tls_connections() {
    let config = SaslConfig {
        mechanisms: vec![Mechanism::Plain, Mechanism::External],
        ..SaslConfig::default()
    };
    let names = |verify, tls| offered(&config, verify, tls);
    assert_eq!(names(Verify::Peer, true), config.mechanisms);
    assert_eq!(names(Verify::None, true), vec![Mechanism::Plain]);
    assert_eq!(names(Verify::Peer, false), vec![Mechanism::Plain]);
}
