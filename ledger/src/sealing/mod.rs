//! Encryption at rest per subject, and erasure by destroying keys (crypto-shredding).
//!
//! ## The design, and why
//! - **Key groups.** Every case and consent payload is sealed under the *subject key* of its
//!   group: the author organisation, the event's subjects and its categories in that family
//!   ([`KeyGroup`]). Events with the same group share a key; a family holds a few dozen.
//!   - An event about several members has one group, naming them all. Erasing one member
//!     shreds only the groups that name that member alone: an event that also holds another
//!     member's data is kept (Jeugdwet 7.3.9 lid 3, WGBO 7:455 lid 2), and the erasure
//!     says so. One key per event wrapped for each member would let an erasure remove one
//!     member's access to shared data, but not the data, and would cost a key write per
//!     append.
//!   - The author is in the group because only the author organisation, as controller,
//!     erases its records.
//!   - A correction is sealed with the event it corrects, and every event of one consent
//!     with its grant, so that no erasure can leave a correction's original, or a consent
//!     without its withdrawal, readable.
//! - **Per-event data keys.** An event's AES-256-GCM key and nonce are derived (HKDF-SHA256)
//!   from the subject key, the event id and the event type. Sealing is therefore
//!   deterministic: a retry of an append proposes the same bytes, and the store's
//!   idempotency check (which compares payloads) keeps working. Each derived key seals one
//!   message only.
//! - **Hashes over ciphertext.** The sealed bytes are the payload the store chains and the
//!   Merkle log commits to, so destroying a key leaves every hash, proof and signed tree
//!   head valid.
//! - **Key material lives in the store** ([`crate::store::keys`]), each subject key wrapped
//!   by the key-encryption key ([`Kek`]) from config, never from the data directory.
//!   Rotating the KEK rewraps the subject keys and rewrites no event.
//! - **The access log is sealed by calendar year.** Its lines hold no content, but they do
//!   say who looked at whose record, when and on which basis, and NEN 7513 keeps them at
//!   least 5 years, not for ever. Each family's lines of one year share a key
//!   ([`KeyGroup::access_log`]; the cross-family logs likewise, under their stream's name),
//!   and the retention run destroys a year's key once its last line has passed the access
//!   log's clock: lines go between 5 and 6 years after they were written. A year key names
//!   no member, so erasing a member's records never takes the lines that show who saw them
//!   (AVG art. 15 still holds for the erased member).
//! - **Old plaintext payloads** (written before sealing) are read as they are and are not
//!   migrated: rewriting them would change their hashes. They cannot be shredded; an
//!   erasure lists them as kept, with that reason.
//!
//! ## The sealed payload
//! `00 'G' 'Z' 'S'`, a version byte (1), the 16-byte key id, then the ciphertext with its
//! 16-byte tag. JSON never starts with a NUL byte, so old payloads are told apart.
//!
//! Access-log events that make lines of the parents' report use version 2: after the key id
//! come a u16 (big-endian) count and that many 32-byte *line commitments*, one per report
//! line the event makes ([`crate::disclosure::lines`]), then the ciphertext and tag. The
//! whole header is the cipher's associated data. A commitment is
//! `SHA-256("gezinsdossier line v1\n" ‖ salt ‖ line)`, its salt derived from the event's
//! key: given one line's bytes and salt, a reader checks that line against the event's
//! canonical bytes, and so against a signed checkpoint, without the key and without
//! learning the event's other lines. Destroying the key leaves the salts unknowable, and the
//! commitments say nothing.

pub mod groups;
pub mod keyring;

use crate::case::{InformationCategory, MemberId};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

pub use keyring::{Content, Keyring, Opened, Opener, Plaintext};

/// The first bytes of every sealed payload.
pub const MAGIC: [u8; 4] = [0, b'G', b'Z', b'S'];
/// The sealed layout's version.
pub const VERSION: u8 = 1;
/// The layout's version with line commitments.
pub const VERSION_WITH_LINES: u8 = 2;
const HEADER_LEN: usize = MAGIC.len() + 1 + KeyId::LEN;
/// Most line commitments one payload carries.
pub const MAX_LINES: usize = 4096;
/// What a line commitment's hash starts with.
pub const LINE_COMMITMENT_PREFIX: &[u8] = b"gezinsdossier line v1\n";
const TAG_LEN: usize = 16;

/// Why a payload could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed payload is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed payload under key {0} does not open: its bytes or its key are not what was sealed")]
    DoesNotOpen(KeyId),
    #[error("payload is sealed under key {0}, which this process has not loaded")]
    KeyNotLoaded(KeyId),
    #[error("key {key} is wrapped under key-encryption key {kek}, which is not configured")]
    UnknownKek { key: KeyId, kek: String },
    #[error("key-encryption key: {0}")]
    BadKek(String),
    #[error("key store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A subject key's id: random, opaque, and in the clear in every payload it seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub const LEN: usize = 16;

    /// A fresh random id.
    ///
    /// # Errors
    /// [`SealError::BadKek`] when the system's random source fails.
    pub fn random() -> Result<Self, SealError> {
        let mut id = [0u8; Self::LEN];
        fill_random(&mut id)?;
        Ok(Self(id))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// # Errors
    /// A description when `s` is not 32 hex digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bytes = hex::decode(s).map_err(|_| "a key id is 32 hex digits".to_owned())?;
        bytes.try_into().map(Self).map_err(|_| "a key id is 32 hex digits".to_owned())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.to_hex()
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// Which payloads share a subject key (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyGroup {
    /// The organisation that wrote the events.
    pub author: String,
    pub subjects: BTreeSet<MemberId>,
    /// The events' categories; empty for consent-ledger events.
    pub categories: BTreeSet<InformationCategory>,
    /// What kind of record: case events, consents, or legal bases.
    pub record: RecordKind,
}

/// The kinds of sealed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Case,
    Consent,
    LegalBasis,
    /// One calendar year of a family's access log (or of a cross-family log): the lines go
    /// together once the year's last line has passed the access log's retention clock.
    AccessLog {
        year: i32,
    },
}

impl KeyGroup {
    /// The group's stable text form, as the key store keeps it.
    pub fn label(&self) -> String {
        // JSON of plain strings and enums is UTF-8 by construction.
        String::from_utf8(crate::codec::to_json(self)).unwrap_or_default()
    }

    /// # Errors
    /// A description when `label` is not a group's text form.
    pub fn from_label(label: &str) -> Result<Self, String> {
        serde_json::from_str(label).map_err(|e| format!("key group label: {e}"))
    }

    /// The group of the access-log lines recorded in `year`: no author, subjects or
    /// categories, so that no erasure of a member's records takes them.
    pub fn access_log(year: i32) -> Self {
        Self {
            author: String::new(),
            subjects: BTreeSet::new(),
            categories: BTreeSet::new(),
            record: RecordKind::AccessLog { year },
        }
    }

    /// The year of the access-log lines this group holds, if it is such a group.
    pub fn access_log_year(&self) -> Option<i32> {
        match self.record {
            RecordKind::AccessLog { year } => Some(year),
            _ => None,
        }
    }

    /// Whether the group holds child protection records, which keep their own clock.
    pub fn is_child_protection(&self) -> bool {
        self.categories.contains(&InformationCategory::ChildProtection)
    }
}

/// An unwrapped subject key. Never logged, never serialised.
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(…)")
    }
}

impl SubjectKey {
    /// # Errors
    /// [`SealError::BadKek`] when the system's random source fails.
    pub fn generate() -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        Ok(Self(key))
    }
}

/// The key-encryption key: wraps every subject key. It comes from config (a file or an
/// environment variable), never from the data directory.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; 32],
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

impl Kek {
    /// A KEK from 64 hex digits (surrounding whitespace ignored). Its id is the first 8 bytes
    /// of the SHA-256 of the key, so a wrapped key names the KEK it needs without revealing it.
    ///
    /// # Errors
    /// [`SealError::BadKek`] for anything but 32 bytes in hex.
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKek("expected 64 hex digits".into()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| SealError::BadKek("expected 64 hex digits (32 bytes)".into()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &key);
        Ok(Self { id: hex::encode(&digest.as_ref()[..8]), key })
    }

    /// A fresh random KEK, as 64 hex digits (for `gezinsdossier keys new-kek`).
    ///
    /// # Errors
    /// [`SealError::BadKek`] when the system's random source fails.
    pub fn generate_hex() -> Result<String, SealError> {
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        Ok(hex::encode(key))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `key` wrapped for storage: nonce, then ciphertext and tag; bound to the key's id and
    /// group so a wrapped key cannot be moved to another row.
    ///
    /// # Errors
    /// [`SealError::BadKek`] when the random source or the cipher fails.
    pub fn wrap(&self, key_id: KeyId, label: &str, key: &SubjectKey) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut out = key.0.to_vec();
        aead_key(&self.key)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), wrap_aad(key_id, label), &mut out)
            .map_err(|_| SealError::BadKek("wrapping failed".into()))?;
        Ok([nonce.as_slice(), &out].concat())
    }

    /// # Errors
    /// [`SealError::DoesNotOpen`] when the bytes, the id or the group differ from what was
    /// wrapped, or this is not the KEK that wrapped it.
    pub fn unwrap_key(&self, key_id: KeyId, label: &str, wrapped: &[u8]) -> Result<SubjectKey, SealError> {
        if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(SealError::DoesNotOpen(key_id));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen(key_id))?;
        let mut buf = sealed.to_vec();
        let plain = aead_key(&self.key)?
            .open_in_place(nonce, wrap_aad(key_id, label), &mut buf)
            .map_err(|_| SealError::DoesNotOpen(key_id))?;
        let key: [u8; 32] = (&*plain).try_into().map_err(|_| SealError::DoesNotOpen(key_id))?;
        Ok(SubjectKey(key))
    }
}

fn wrap_aad(key_id: KeyId, label: &str) -> Aad<Vec<u8>> {
    Aad::from([b"gezinsdossier subject key v1".as_slice(), &key_id.0, label.as_bytes()].concat())
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::BadKek("cipher refused the key".into()))
}

fn fill_random(out: &mut [u8]) -> Result<(), SealError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(out).map_err(|_| SealError::BadKek("no system randomness".into()))
}

/// Output length for HKDF (ring wants a type that says it).
struct Okm(usize);

impl hkdf::KeyType for Okm {
    fn len(&self) -> usize {
        self.0
    }
}

/// The one-message key and nonce of an event under `key`.
fn event_cipher(key: &SubjectKey, event_id: &uuid::Uuid, event_type: &str) -> Result<(LessSafeKey, Nonce), SealError> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gezinsdossier payload v1");
    let info = [event_id.as_bytes().as_slice(), event_type.as_bytes()];
    let mut okm = [0u8; 32 + NONCE_LEN];
    salt.extract(&key.0)
        .expand(&info, Okm(okm.len()))
        .and_then(|o| o.fill(&mut okm))
        .map_err(|_| SealError::BadKek("key derivation failed".into()))?;
    let (k, n) = okm.split_at(32);
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| SealError::BadKek("nonce derivation failed".into()))?;
    let k: [u8; 32] = k.try_into().map_err(|_| SealError::BadKek("key derivation failed".into()))?;
    Ok((aead_key(&k)?, nonce))
}

/// The salt of line `index` of event `event_id`: from the event's key, so it is gone when
/// the key is.
///
/// # Errors
/// [`SealError::BadKek`] when the derivation fails.
fn line_salt_of(key: &SubjectKey, event_id: &uuid::Uuid, index: usize) -> Result<[u8; 32], SealError> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gezinsdossier line salt v1");
    let index = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    let info = [event_id.as_bytes().as_slice(), &index];
    let mut out = [0u8; 32];
    salt.extract(&key.0)
        .expand(&info, Okm(out.len()))
        .and_then(|o| o.fill(&mut out))
        .map_err(|_| SealError::BadKek("key derivation failed".into()))?;
    Ok(out)
}

/// `SHA-256(LINE_COMMITMENT_PREFIX ‖ salt ‖ line)`.
pub fn line_commitment(salt: &[u8; 32], line: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(LINE_COMMITMENT_PREFIX);
    ctx.update(salt);
    ctx.update(line);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Seals `plaintext` as the payload of event `event_id` of `event_type`.
///
/// # Errors
/// [`SealError::BadKek`] when the cipher fails.
pub fn seal(
    key_id: KeyId,
    key: &SubjectKey,
    event_id: &uuid::Uuid,
    event_type: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    seal_with_lines(key_id, key, event_id, event_type, plaintext, &[])
}

/// [`seal`], with a commitment to each of `lines` in the clear header (layout version 2)
/// when there are any.
///
/// # Errors
/// [`SealError::BadKek`] when the cipher fails; [`SealError::Malformed`] for more than
/// [`MAX_LINES`] lines.
pub fn seal_with_lines(
    key_id: KeyId,
    key: &SubjectKey,
    event_id: &uuid::Uuid,
    event_type: &str,
    plaintext: &[u8],
    lines: &[Vec<u8>],
) -> Result<Vec<u8>, SealError> {
    if lines.len() > MAX_LINES {
        return Err(SealError::Malformed("more lines than one payload carries"));
    }
    let (cipher, nonce) = event_cipher(key, event_id, event_type)?;
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + 32 * lines.len() + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(if lines.is_empty() { VERSION } else { VERSION_WITH_LINES });
    out.extend_from_slice(&key_id.0);
    if !lines.is_empty() {
        out.extend_from_slice(&(lines.len() as u16).to_be_bytes());
        for (index, line) in lines.iter().enumerate() {
            out.extend_from_slice(&line_commitment(&line_salt_of(key, event_id, index)?, line));
        }
    }
    let header_len = out.len();
    out.extend_from_slice(plaintext);
    let (header, body) = out.split_at_mut(header_len);
    let tag = cipher
        .seal_in_place_separate_tag(nonce, Aad::from(&*header), body)
        .map_err(|_| SealError::BadKek("sealing failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The key a payload is sealed under; `None` for an old plaintext payload.
///
/// # Errors
/// [`SealError::Malformed`] for a payload that starts like a sealed one but is cut short or
/// of an unknown version.
pub fn sealed_with(payload: &[u8]) -> Result<Option<KeyId>, SealError> {
    if !payload.starts_with(&MAGIC) {
        return Ok(None);
    }
    header_len(payload)?;
    let mut id = [0u8; KeyId::LEN];
    id.copy_from_slice(&payload[MAGIC.len() + 1..HEADER_LEN]);
    Ok(Some(KeyId(id)))
}

/// The length of a sealed payload's header (the associated data), checked against its size.
fn header_len(payload: &[u8]) -> Result<usize, SealError> {
    if payload.len() < HEADER_LEN + TAG_LEN {
        return Err(SealError::Malformed("shorter than its header and tag"));
    }
    let len = match payload[MAGIC.len()] {
        VERSION => HEADER_LEN,
        VERSION_WITH_LINES => {
            let count = u16::from_be_bytes([payload[HEADER_LEN], payload[HEADER_LEN + 1]]) as usize;
            HEADER_LEN + 2 + 32 * count
        }
        _ => return Err(SealError::Malformed("unknown version")),
    };
    if payload.len() < len + TAG_LEN {
        return Err(SealError::Malformed("shorter than its header and tag"));
    }
    Ok(len)
}

/// The line commitments in a sealed payload's header (empty for layout version 1 and for
/// plaintext payloads).
///
/// # Errors
/// [`SealError::Malformed`] as for [`sealed_with`].
pub fn line_commitments(payload: &[u8]) -> Result<Vec<[u8; 32]>, SealError> {
    if !payload.starts_with(&MAGIC) {
        return Ok(Vec::new());
    }
    let end = header_len(payload)?;
    let start = (HEADER_LEN + 2).min(end);
    Ok(payload[start..end].chunks_exact(32).filter_map(|c| c.try_into().ok()).collect())
}

/// Opens a sealed payload with the subject key it names.
///
/// # Errors
/// [`SealError::DoesNotOpen`] when the bytes, event id, type or key differ from the sealing.
pub fn open(
    key_id: KeyId,
    key: &SubjectKey,
    event_id: &uuid::Uuid,
    event_type: &str,
    payload: &[u8],
) -> Result<Vec<u8>, SealError> {
    let (cipher, nonce) = event_cipher(key, event_id, event_type)?;
    let (header, body) = payload.split_at(header_len(payload)?);
    let mut buf = body.to_vec();
    let plain = cipher.open_in_place(nonce, Aad::from(header), &mut buf).map_err(|_| SealError::DoesNotOpen(key_id))?;
    let len = plain.len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_is_deterministic_per_event_and_opens_only_as_sealed() {
        let key = SubjectKey::generate().unwrap();
        let id = KeyId::random().unwrap();
        let event = uuid::Uuid::new_v4();
        let a = seal(id, &key, &event, "case.note", b"{\"text\":\"x\"}").unwrap();
        assert_eq!(a, seal(id, &key, &event, "case.note", b"{\"text\":\"x\"}").unwrap());
        assert_ne!(a, seal(id, &key, &uuid::Uuid::new_v4(), "case.note", b"{\"text\":\"x\"}").unwrap());
        assert_eq!(sealed_with(&a).unwrap(), Some(id));
        assert_eq!(open(id, &key, &event, "case.note", &a).unwrap(), b"{\"text\":\"x\"}");
        assert!(open(id, &key, &event, "case.intake", &a).is_err(), "the type is bound");
        assert!(open(id, &key, &uuid::Uuid::new_v4(), "case.note", &a).is_err(), "the event id is bound");
        let other = SubjectKey::generate().unwrap();
        assert!(open(id, &other, &event, "case.note", &a).is_err());
        let mut flipped = a.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(id, &key, &event, "case.note", &flipped).is_err());
        assert!(!a.windows(3).any(|w| w == b"\"x\""), "the plaintext is not in the sealed bytes");
    }

    #[test]
    fn line_commitments_are_in_the_clear_header_bound_to_the_ciphertext_and_salted_by_the_key() {
        let key = SubjectKey::generate().unwrap();
        let id = KeyId::random().unwrap();
        let event = uuid::Uuid::new_v4();
        let lines = vec![b"{\"subject\":\"mother\"}".to_vec(), b"{\"subject\":\"father\"}".to_vec()];
        let sealed = seal_with_lines(id, &key, &event, "access.disclosed", b"{}", &lines).unwrap();
        assert_eq!(sealed[MAGIC.len()], VERSION_WITH_LINES);
        assert_eq!(sealed_with(&sealed).unwrap(), Some(id));
        assert_eq!(open(id, &key, &event, "access.disclosed", &sealed).unwrap(), b"{}");
        let commitments = line_commitments(&sealed).unwrap();
        for (index, line) in lines.iter().enumerate() {
            let salt = line_salt_of(&key, &event, index).unwrap();
            assert_eq!(commitments[index], line_commitment(&salt, line));
        }
        // Without the key's salt a line cannot be matched; another event's salts differ.
        assert_ne!(line_salt_of(&key, &uuid::Uuid::new_v4(), 0).unwrap(), line_salt_of(&key, &event, 0).unwrap());
        // The header is the associated data: an edited commitment no longer opens.
        let mut edited = sealed.clone();
        edited[HEADER_LEN + 2] ^= 1;
        assert!(open(id, &key, &event, "access.disclosed", &edited).is_err());
        // A count that claims more commitments than the payload holds is malformed.
        let mut cut = sealed.clone();
        cut[HEADER_LEN] = 0xff;
        assert!(matches!(sealed_with(&cut), Err(SealError::Malformed(_))));
        assert!(line_commitments(&seal(id, &key, &event, "access.disclosed", b"{}").unwrap()).unwrap().is_empty());
    }

    #[test]
    fn plaintext_payloads_are_told_apart() {
        assert_eq!(sealed_with(b"{\"a\":1}").unwrap(), None);
        assert!(sealed_with(&[0, b'G', b'Z', b'S', 1]).is_err());
        assert!(sealed_with(&[[0, b'G', b'Z', b'S', 9].as_slice(), &[0; 40]].concat()).is_err());
    }

    #[test]
    fn wrapped_keys_open_only_under_their_kek_id_and_group() {
        let kek = Kek::from_hex(&Kek::generate_hex().unwrap()).unwrap();
        let other = Kek::from_hex(&Kek::generate_hex().unwrap()).unwrap();
        assert_ne!(kek.id(), other.id());
        let key = SubjectKey::generate().unwrap();
        let id = KeyId::random().unwrap();
        let wrapped = kek.wrap(id, "g", &key).unwrap();
        assert_eq!(kek.unwrap_key(id, "g", &wrapped).unwrap().0, key.0);
        assert!(other.unwrap_key(id, "g", &wrapped).is_err());
        assert!(kek.unwrap_key(id, "h", &wrapped).is_err());
        assert!(kek.unwrap_key(KeyId::random().unwrap(), "g", &wrapped).is_err());
        assert!(Kek::from_hex("abcd").is_err());
    }
}
