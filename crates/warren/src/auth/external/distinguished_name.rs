//! A certificate subject as the text RabbitMQ makes of it (`rabbit_cert_info:subject/1`), so that user names taken
//! from `distinguished_name` are the ones a RabbitMQ operator already created: RFC 4514-like, the RDNs in reverse
//! certificate order joined by `,`, the attributes of one RDN joined by `+`, RabbitMQ's short names for known
//! attribute types (dotted OIDs for the rest), and RabbitMQ's escaping, byte by byte over the UTF-8 value.

use super::certificate::{Attribute, Subject};

/// The attribute types RabbitMQ names, by OID.
const SHORT_NAMES: [(&str, &str); 17] = [
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GIVENNAME"),
    ("2.5.4.43", "INITIALS"),
    ("2.5.4.44", "GENERATIONQUALIFIER"),
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "TITLE"),
    ("2.5.4.6", "C"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.65", "PSEUDONYM"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The common name's OID.
pub(super) const COMMON_NAME: &str = "2.5.4.3";

/// The subject as RabbitMQ's `distinguished_name` user name.
pub(super) fn format(subject: &Subject) -> String {
    subject
        .iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(format_attribute)
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn format_attribute(attribute: &Attribute) -> String {
    let name = SHORT_NAMES
        .iter()
        .find(|(oid, _)| *oid == attribute.oid)
        .map_or(attribute.oid.as_str(), |(_, name)| name);
    format!("{name}={}", escape(&value_bytes(attribute)))
}

/// An attribute's value as UTF-8 bytes: string types are converted from their encodings (TeletexString read as
/// Latin-1, as RabbitMQ does); anything else is shown as Erlang prints a binary, `<<1,2,3>>`.
pub(super) fn value_bytes(attribute: &Attribute) -> Vec<u8> {
    let value = &attribute.value;
    match attribute.tag {
        // UTF8String, PrintableString, IA5String: already UTF-8 (the last two are ASCII).
        0x0C | 0x13 | 0x16 => value.clone(),
        // TeletexString.
        0x14 => value
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .into_bytes(),
        // BMPString: UCS-2, big-endian.
        0x1E => {
            let units = value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect::<String>()
                .into_bytes()
        }
        // UniversalString: UCS-4, big-endian.
        0x1C => value
            .chunks_exact(4)
            .map(|quad| {
                char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect::<String>()
            .into_bytes(),
        _ => {
            let bytes: Vec<String> = value.iter().map(u8::to_string).collect();
            format!("<<{}>>", bytes.join(",")).into_bytes()
        }
    }
}

/// RabbitMQ's escaping of a value: a leading space or `#`, a trailing space and any of `"+,;<>\` get a backslash;
/// bytes below 32 or from 126 up (so every byte of a non-ASCII character) become `\XX` in upper-case hex.
fn escape(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.len().saturating_sub(1);
    for (i, &byte) in value.iter().enumerate() {
        let c = char::from(byte);
        if i == 0 && (c == ' ' || c == '#') {
            out.push('\\');
            out.push(c);
        } else if i == last && c == ' ' {
            out.push_str("\\ ");
        } else if matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\') {
            out.push('\\');
            out.push(c);
        } else if !(32..126).contains(&byte) {
            out.push_str(&format!("\\{byte:02X}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(oid: &str, tag: u8, value: &[u8]) -> Attribute {
        Attribute {
            oid: oid.to_owned(),
            tag,
            value: value.to_vec(),
        }
    }

    #[test]
    fn rdns_are_reversed_and_named_as_rabbitmq_names_them() {
        let subject = vec![
            vec![attribute("2.5.4.6", 0x13, b"GB")],
            vec![attribute("2.5.4.10", 0x0C, b"Example")],
            vec![
                attribute("2.5.4.3", 0x0C, b"alice"),
                attribute("0.9.2342.19200300.100.1.1", 0x0C, b"a1"),
            ],
            vec![attribute("1.2.3.4", 0x0C, b"x")],
        ];
        assert_eq!(format(&subject), "1.2.3.4=x,CN=alice+UID=a1,O=Example,C=GB");
    }

    #[test]
    fn the_string_rabbitmq_3_10_logged_for_a_real_certificate() {
        // openssl -subj "/C=GB/O=Example\, Ltd/OU=#ops;dev/CN=al~ice é "; RabbitMQ 3.10 logged this user name for
        // it (EXTERNAL, ssl_cert_login_from = distinguished_name).
        let subject = vec![
            vec![attribute("2.5.4.6", 0x13, b"GB")],
            vec![attribute("2.5.4.10", 0x0C, b"Example, Ltd")],
            vec![attribute("2.5.4.11", 0x0C, b"#ops;dev")],
            vec![attribute("2.5.4.3", 0x0C, "al~ice é ".as_bytes())],
        ];
        assert_eq!(
            format(&subject),
            "CN=al\\7Eice \\C3\\A9\\ ,OU=\\#ops\\;dev,O=Example\\, Ltd,C=GB"
        );
    }

    #[test]
    fn values_are_escaped_as_rabbitmq_escapes_them() {
        assert_eq!(escape(b" lead"), "\\ lead");
        assert_eq!(escape(b"#hash"), "\\#hash");
        assert_eq!(escape(b"trail "), "trail\\ ");
        assert_eq!(escape(b" "), "\\ ");
        assert_eq!(
            escape(b"a,b+c;d\"e<f>g\\h=i"),
            "a\\,b\\+c\\;d\\\"e\\<f\\>g\\\\h=i"
        );
        // '~' is 126: RabbitMQ escapes it with the non-printable characters.
        assert_eq!(escape(b"a~b"), "a\\7Eb");
        assert_eq!(escape("é".as_bytes()), "\\C3\\A9");
        assert_eq!(escape(b"tab\there"), "tab\\09here");
    }

    #[test]
    fn string_types_are_decoded_to_utf8() {
        assert_eq!(
            value_bytes(&attribute("2.5.4.3", 0x14, &[0xE9])),
            "é".as_bytes()
        );
        assert_eq!(
            value_bytes(&attribute("2.5.4.3", 0x1E, &[0, b'h', 0x03, 0xBB])),
            "hλ".as_bytes()
        );
        assert_eq!(
            value_bytes(&attribute("2.5.4.3", 0x1C, &[0, 0, 0, b'z'])),
            b"z"
        );
        assert_eq!(value_bytes(&attribute("1.2.3", 0x04, &[1, 2])), b"<<1,2>>");
    }
}
