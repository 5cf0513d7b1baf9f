//! The client certificate a registered gateway vouches for, from Envoy's
//! `x-forwarded-client-cert` header (XFCC).
//!
//! A gRPC-aware load balancer terminates the organisation's TLS, so the replica sees the
//! gateway's certificate, not the organisation's. Envoy, configured with
//! `forward_client_cert_details: SANITIZE_SET`, replaces any XFCC the client sent with one
//! element describing the certificate it verified, whose `Hash` is the SHA-256 of that
//! certificate's DER bytes: exactly the fingerprint the organisation registry holds.
//!
//! Format: elements separated by `,`, each `Key=Value` pairs separated by `;`, values
//! optionally in double quotes (inside which `,` and `;` are literal and `\"` escapes a
//! quote). Hand-written because no maintained Rust crate parses XFCC, and only the `Hash`
//! key of a single element is needed.

/// The certificate fingerprint in an XFCC value that must describe exactly one client.
///
/// # Errors
/// What is wrong with the value: several elements (a chain of proxies we do not trust),
/// no `Hash`, or a `Hash` that is not 64 hex digits.
pub fn forwarded_certificate_hash(value: &str) -> Result<[u8; 32], String> {
    let elements = split_outside_quotes(value, ',');
    if elements.len() != 1 {
        return Err(format!("{} client certificates forwarded; exactly one is accepted", elements.len()));
    }
    let mut hash = None;
    for pair in split_outside_quotes(elements[0], ';') {
        let (key, raw) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not Key=Value"))?;
        if key.trim().eq_ignore_ascii_case("hash") {
            if hash.is_some() {
                return Err("Hash appears twice".into());
            }
            hash = Some(unquote(raw.trim()));
        }
    }
    let hash = hash.ok_or("no Hash of the client certificate")?;
    hex::decode(&hash)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| format!("Hash {hash:?} is not a SHA-256 in hex"))
}

/// Splits on `separator` where it is not inside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

    #[test]
    fn the_hash_of_the_one_forwarded_certificate_is_read() {
        let expected: [u8; 32] = hex::decode(HASH).unwrap().try_into().unwrap();
        for value in [
            format!("Hash={HASH}"),
            format!("By=spiffe://gezinsdossier/envoy;Hash={HASH}"),
            format!("By=x;Hash=\"{HASH}\";Subject=\"CN=ggz-delfland,O=GGZ; Delfland\";URI="),
            format!("hash={HASH};DNS=localhost"),
        ] {
            assert_eq!(forwarded_certificate_hash(&value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn anything_but_one_well_formed_hash_is_refused_with_the_reason() {
        let cases = [
            (format!("Hash={HASH},Hash={HASH}"), "2 client certificates"),
            ("By=x;Subject=\"CN=a\"".to_string(), "no Hash"),
            (format!("Hash={HASH};Hash={HASH}"), "twice"),
            ("Hash=abcd".to_string(), "not a SHA-256"),
            ("Hash".to_string(), "not Key=Value"),
            (format!("Subject=\"CN=a,\\\"b\\\"\";Hash={HASH}zz"), "not a SHA-256"),
        ];
        for (value, reason) in cases {
            let err = forwarded_certificate_hash(&value).expect_err(&value);
            assert!(err.contains(reason), "{value}: {err}");
        }
    }
}
