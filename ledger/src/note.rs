//! Signed notes (`c2sp.org/signed-note`) with Ed25519 signatures, and the Ed25519 witness
//! cosignatures of `c2sp.org/tlog-cosignature` (type 0x04, `cosignature/v1`).
//!
//! Hand-written over `ring` rather than taken from the `signed_note` crate: that crate brings
//! a second Ed25519 stack (ed25519-dalek, curve25519) beside the `ring` one that already signs
//! our tree heads, for a format of a few lines. The tests hold it to the C2SP and Go `note`
//! vectors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Signature type of a plain Ed25519 note signature.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of a timestamped Ed25519 checkpoint cosignature.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// A note larger than this is refused before it is parsed.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// The spec asks verifiers to accept at least 16.
pub const MAX_SIGNATURES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is malformed: {0}")]
    Malformed(String),
    #[error("verifier key is malformed: {0}")]
    BadKey(String),
    #[error("the signature of {name} does not verify")]
    BadSignature { name: String },
    #[error("no signature from a known key")]
    NoKnownSignature,
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`, big-endian.
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> u32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[signature_type]);
    ctx.update(public_key);
    let digest = ctx.finish();
    let d = digest.as_ref();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(format!("key name {:?} is empty or holds a space or '+'", prefix(name)));
    }
    Ok(())
}

/// At most 32 characters of what was sent, for error messages.
fn prefix(s: &str) -> String {
    s.chars().take(32).collect()
}

/// One signature line: `— <name> base64(key id ‖ signature)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// What follows the key id: the signature, for cosignatures preceded by the timestamp.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, with its final newline.
    pub fn line(&self) -> String {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, BASE64.encode(bytes))
    }

    fn parse_line(line: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::Malformed(format!("signature line {:?}: {why}", prefix(line)));
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| bad("does not start with an em dash and a space"))?;
        let (name, encoded) = rest.split_once(' ').ok_or_else(|| bad("has no signature"))?;
        check_key_name(name).map_err(|e| bad(&e))?;
        let bytes = BASE64.decode(encoded).map_err(|_| bad("signature is not base64"))?;
        if bytes.len() < 5 {
            return Err(bad("signature is shorter than a key id"));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            signature: bytes[4..].to_vec(),
        })
    }

    /// For a cosignature: the signing time, seconds since the epoch.
    pub fn cosignature_time(&self) -> Option<u64> {
        let t: [u8; 8] = self.signature.get(..8)?.try_into().ok()?;
        Some(u64::from_be_bytes(t))
    }
}

/// A text and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// A note of `text`, which must end in a newline, with no signatures yet.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] for text the format cannot carry.
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        check_text(&text)?;
        Ok(Self { text, signatures: Vec::new() })
    }

    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses a signed note. Signatures are not checked here: see [`Note::verify`].
    ///
    /// # Errors
    /// [`NoteError::Malformed`] naming the first problem.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!("over {MAX_NOTE_BYTES} bytes")));
        }
        if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(NoteError::Malformed("holds a control character other than newline".into()));
        }
        let split =
            note.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        if signatures.is_empty() {
            return Err(NoteError::Malformed("has no signature".into()));
        }
        if !signatures.ends_with('\n') {
            return Err(NoteError::Malformed("does not end in a newline".into()));
        }
        let signatures =
            signatures.split_terminator('\n').map(NoteSignature::parse_line).collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!("over {MAX_SIGNATURES} signatures")));
        }
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// Checks every signature whose name and key id match a key in `keys`, ignoring the rest
    /// as the spec asks, and returns the keys whose signatures verified.
    ///
    /// # Errors
    /// [`NoteError::BadSignature`] when a known key's signature fails;
    /// [`NoteError::NoKnownSignature`] when no known key signed.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut verified = Vec::new();
        for signature in &self.signatures {
            for key in keys.iter().filter(|k| k.name == signature.name && k.key_id == signature.key_id) {
                if !key.verifies(&self.text, &signature.signature) {
                    return Err(NoteError::BadSignature { name: signature.name.clone() });
                }
                if !verified.contains(&key) {
                    verified.push(key);
                }
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(verified)
    }

    /// Adds a signature unless one with the same name and key id is there already.
    pub fn add_signature(&mut self, signature: NoteSignature) {
        if !self.signatures.iter().any(|s| s.name == signature.name && s.key_id == signature.key_id) {
            self.signatures.push(signature);
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        self.signatures.iter().try_for_each(|s| f.write_str(&s.line()))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text does not end in a newline".into()));
    }
    if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(NoteError::Malformed("text holds a control character other than newline".into()));
    }
    Ok(())
}

/// A public key a note is checked against: `<name>+<hex key id>+base64(type ‖ key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub key_id: u32,
    pub signature_type: u8,
    pub public_key: [u8; 32],
}

impl VerifierKey {
    /// # Errors
    /// [`NoteError::BadKey`] for a bad name or an unsupported type.
    pub fn new(name: &str, signature_type: u8, public_key: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name).map_err(NoteError::BadKey)?;
        if ![TYPE_ED25519, TYPE_COSIGNATURE_V1].contains(&signature_type) {
            return Err(NoteError::BadKey(format!("signature type {signature_type:#04x} is not supported")));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, signature_type, &public_key),
            signature_type,
            public_key,
        })
    }

    /// Parses a vkey, checking that its key id matches its name and key.
    ///
    /// # Errors
    /// [`NoteError::BadKey`] naming what is wrong.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("{:?}: {why}", prefix(vkey)));
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("want <name>+<key id>+<key>"));
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("key id is not 8 hex digits"))?;
        let key = BASE64.decode(key).map_err(|_| bad("key is not base64"))?;
        let (&signature_type, public_key) = key.split_first().ok_or_else(|| bad("key is empty"))?;
        let public_key: [u8; 32] = public_key.try_into().map_err(|_| bad("not a 32-byte Ed25519 key"))?;
        let parsed = Self::new(name, signature_type, public_key).map_err(|e| bad(&e.to_string()))?;
        if parsed.key_id != id {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(parsed)
    }

    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        let key = UnparsedPublicKey::new(&ED25519, &self.public_key);
        match self.signature_type {
            TYPE_ED25519 => key.verify(text.as_bytes(), signature).is_ok(),
            TYPE_COSIGNATURE_V1 => {
                let Some((time, signature)) = signature.split_first_chunk::<8>() else { return false };
                key.verify(cosigned_message(u64::from_be_bytes(*time), text).as_bytes(), signature).is_ok()
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![self.signature_type];
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(key))
    }
}

/// What a `cosignature/v1` signs: a header, the time, then the checkpoint's text.
fn cosigned_message(time: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// Signs notes as `name`, with an Ed25519 key, plainly or as a witness cosigner.
pub struct NoteSigner {
    key: Ed25519KeyPair,
    verifier: VerifierKey,
}

impl NoteSigner {
    /// # Errors
    /// [`NoteError::BadKey`] for a bad name or type.
    pub fn new(name: &str, signature_type: u8, key: Ed25519KeyPair) -> Result<Self, NoteError> {
        let public_key: [u8; 32] =
            key.public_key().as_ref().try_into().map_err(|_| NoteError::BadKey("not an Ed25519 key".into()))?;
        Ok(Self { verifier: VerifierKey::new(name, signature_type, public_key)?, key })
    }

    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The same key under another name.
    ///
    /// # Errors
    /// [`NoteError::BadKey`] for a bad name.
    pub fn renamed(self, name: &str) -> Result<Self, NoteError> {
        let signature_type = self.verifier.signature_type;
        Self::new(name, signature_type, self.key)
    }

    /// The Ed25519 key pair, for signatures outside notes.
    pub fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key
    }

    /// Signs `text` (a plain signer), or cosigns it at `time` seconds (a cosigner).
    pub fn sign(&self, text: &str, time: u64) -> NoteSignature {
        let signature = match self.verifier.signature_type {
            TYPE_COSIGNATURE_V1 => {
                let mut out = time.to_be_bytes().to_vec();
                out.extend_from_slice(self.key.sign(cosigned_message(time, text).as_bytes()).as_ref());
                out
            }
            _ => self.key.sign(text.as_bytes()).as_ref().to_vec(),
        };
        NoteSignature { name: self.verifier.name.clone(), key_id: self.verifier.key_id, signature }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of c2sp.org/signed-note.
    const C2SP_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const C2SP_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn the_c2sp_example_verifies_and_round_trips() {
        let key = VerifierKey::parse(C2SP_VKEY).unwrap();
        assert_eq!(key.to_string(), C2SP_VKEY);
        let note = Note::parse(C2SP_NOTE).unwrap();
        assert_eq!(note.text(), "This is an example message.\n");
        assert_eq!(note.verify(std::slice::from_ref(&key)).unwrap(), vec![&key]);
        assert_eq!(note.to_string(), C2SP_NOTE);
    }

    #[test]
    fn a_changed_text_or_signature_fails_and_unknown_keys_are_ignored() {
        let key = VerifierKey::parse(C2SP_VKEY).unwrap();
        let edited = C2SP_NOTE.replace("example message", "exemplary message");
        assert_eq!(
            Note::parse(&edited).unwrap().verify(std::slice::from_ref(&key)),
            Err(NoteError::BadSignature { name: "example.com/foo".into() })
        );
        // A key with the same name but another id is not this signature's key.
        let other = VerifierKey::new("example.com/foo", TYPE_ED25519, [7; 32]).unwrap();
        assert_eq!(Note::parse(C2SP_NOTE).unwrap().verify(&[other]), Err(NoteError::NoKnownSignature));
    }

    /// Go's `golang.org/x/mod/sumdb/note` example: the private key
    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz` signs
    /// to exactly this line (Ed25519 is deterministic).
    #[test]
    fn signing_matches_the_go_note_vector() {
        let seed = BASE64.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        assert_eq!(seed[0], TYPE_ED25519);
        let key = Ed25519KeyPair::from_seed_unchecked(&seed[1..]).unwrap();
        let signer = NoteSigner::new("PeterNeumann", TYPE_ED25519, key).unwrap();
        assert_eq!(signer.verifier_key().key_id, 0xc74f20a3);
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let mut note = Note::new(text).unwrap();
        note.add_signature(signer.sign(text, 0));
        assert_eq!(
            note.to_string(),
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
    }

    #[test]
    fn cosignatures_sign_the_time_and_verify_only_as_cosignatures() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let witness = NoteSigner::new("witness.example/w1", TYPE_COSIGNATURE_V1, key).unwrap();
        let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let mut note = Note::new(text).unwrap();
        note.add_signature(witness.sign(text, 1_679_315_147));
        let parsed = Note::parse(&note.to_string()).unwrap();
        assert_eq!(parsed.signatures[0].cosignature_time(), Some(1_679_315_147));
        let vkey = VerifierKey::parse(&witness.verifier_key().to_string()).unwrap();
        assert!(parsed.verify(std::slice::from_ref(&vkey)).is_ok());
        // The same key taken as a plain Ed25519 key has another id, so it does not match.
        let plain = VerifierKey::new("witness.example/w1", TYPE_ED25519, vkey.public_key).unwrap();
        assert_eq!(parsed.verify(&[plain]), Err(NoteError::NoKnownSignature));
        // A changed time breaks it.
        let mut forged = parsed.clone();
        forged.signatures[0].signature[7] ^= 1;
        assert!(matches!(forged.verify(&[vkey]), Err(NoteError::BadSignature { .. })));
    }

    #[test]
    fn malformed_notes_are_refused_naming_the_problem() {
        for (note, why) in [
            ("no signatures\n", "no blank line"),
            ("text\n\n", "has no signature"),
            ("text\n\n\u{2014} a b\n", "not base64"),
            ("text\n\n- a AAAAAAA=\n", "em dash"),
            ("te\u{7}xt\n\n\u{2014} a AAAAAAA=\n", "control character"),
            ("text\n\n\u{2014} a AAAAAAA=", "does not end in a newline"),
        ] {
            let err = Note::parse(note).unwrap_err().to_string();
            assert!(err.contains(why), "{note:?}: {err}");
        }
        assert!(VerifierKey::parse("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").is_err());
    }
}
