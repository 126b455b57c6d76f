//! The two parts of an X.509 certificate EXTERNAL reads, its subject and its subjectAltName entries, taken from
//! the DER with a small reader of its own. rustls has already verified the certificate; this only finds fields.

/// One attribute of the subject: its type (an OID, dotted) and its value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Attribute {
    /// The attribute type, dotted (`2.5.4.3` is the common name).
    pub(super) oid: String,
    /// The value's DER tag (a string type, usually).
    pub(super) tag: u8,
    /// The value's content bytes.
    pub(super) value: Vec<u8>,
}

/// A certificate's subject: its RDNs in certificate order, each a set of attributes (usually one).
pub(super) type Subject = Vec<Vec<Attribute>>;

/// A subjectAltName entry of the kinds EXTERNAL can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum AltName {
    /// rfc822Name.
    Email(String),
    /// dNSName.
    Dns(String),
    /// uniformResourceIdentifier.
    Uri(String),
}

/// What EXTERNAL reads of a certificate.
#[derive(Debug)]
pub(super) struct CertificateNames {
    pub(super) subject: Subject,
    pub(super) alt_names: Vec<AltName>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const EXTENSIONS: u8 = 0xA3;
const SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// Reads the subject and subjectAltName of a DER certificate; None if it does not parse.
pub(super) fn read(der: &[u8]) -> Option<CertificateNames> {
    let certificate = Reader(der).expect(SEQUENCE)?;
    let mut tbs = Reader(Reader(certificate).expect(SEQUENCE)?);
    // version [0] (absent in v1), serial, signature algorithm, issuer, validity, then the subject.
    if tbs.peek_tag()? == 0xA0 {
        tbs.next()?;
    }
    for _ in 0..4 {
        tbs.next()?;
    }
    let subject = read_name(tbs.expect(SEQUENCE)?)?;
    let mut alt_names = Vec::new();
    // subjectPublicKeyInfo, then optional issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    while let Some((tag, content)) = tbs.next() {
        if tag == EXTENSIONS {
            alt_names = read_alt_names(Reader(content).expect(SEQUENCE)?)?;
        }
    }
    Some(CertificateNames { subject, alt_names })
}

fn read_name(name: &[u8]) -> Option<Subject> {
    let mut rdns = Vec::new();
    let mut reader = Reader(name);
    while !reader.0.is_empty() {
        let mut set = Reader(reader.expect(SET)?);
        let mut rdn = Vec::new();
        while !set.0.is_empty() {
            let mut pair = Reader(set.expect(SEQUENCE)?);
            let oid = dotted(pair.expect(OID)?)?;
            let (tag, value) = pair.next()?;
            rdn.push(Attribute {
                oid,
                tag,
                value: value.to_vec(),
            });
        }
        rdns.push(rdn);
    }
    Some(rdns)
}

fn read_alt_names(extensions: &[u8]) -> Option<Vec<AltName>> {
    let mut reader = Reader(extensions);
    while !reader.0.is_empty() {
        let mut extension = Reader(reader.expect(SEQUENCE)?);
        let oid = dotted(extension.expect(OID)?)?;
        if extension.peek_tag()? == BOOLEAN {
            extension.next()?;
        }
        let value = extension.expect(OCTET_STRING)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut names = Vec::new();
        let mut general_names = Reader(Reader(value).expect(SEQUENCE)?);
        while let Some((tag, content)) = general_names.next() {
            let text = || String::from_utf8_lossy(content).into_owned();
            // Context tags of GeneralName: [1] rfc822Name, [2] dNSName, [6] URI (all IA5String, implicit).
            match tag {
                0x81 => names.push(AltName::Email(text())),
                0x82 => names.push(AltName::Dns(text())),
                0x86 => names.push(AltName::Uri(text())),
                _ => {}
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}

/// An OID's content bytes as dotted decimal.
fn dotted(bytes: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in bytes {
        value = value.checked_mul(128)? | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// A DER reader over a slice: one tag-length-value at a time (single-byte tags, definite lengths).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element's tag and content.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1F == 0x1F {
            return None; // multi-byte tags do not occur in the parts read here
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7F);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (len_bytes, after) = rest.split_at(count);
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Some((tag, content))
    }

    /// The next element's content if it has tag `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content) if t == tag => Some(content),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_print_dotted() {
        assert_eq!(dotted(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(
            dotted(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]).as_deref(),
            Some("1.2.840.113549.1.9.1")
        );
        assert_eq!(
            dotted(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19]).as_deref(),
            Some("0.9.2342.19200300.100.1.25")
        );
    }

    #[test]
    fn long_lengths_and_truncation() {
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend_from_slice(&[7u8; 0x80]);
        let mut reader = Reader(&long);
        assert_eq!(reader.next().map(|(t, c)| (t, c.len())), Some((0x04, 0x80)));
        assert!(Reader(&[0x04, 0x05, 1, 2]).next().is_none());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(read(b"not a certificate").is_none());
        assert!(read(&[]).is_none());
    }
}
