//! The log's raw material for outsiders: hashes and proofs for every registered
//! organisation, one event's canonical bytes only for the organisation that wrote it.

use super::{Families, FamilyError, Target};
use crate::authorisation::{Action, Caller, authorise};
use crate::codec::{self, FamilyEvent};
use crate::disclosure;
use crate::envelope::RecordedEvent;
use crate::family::FamilyId;
use crate::restriction::RestrictionRecord;
use crate::sealing::{Content, Keyring, Opener};
use crate::treehead;

/// Who wrote an event, as far as entitlement to its bytes goes.
enum Authorship {
    /// A signed tree head: public.
    Nobody,
    Organisation(String),
    /// Unreadable or of an unknown stream: nobody is entitled.
    Unknown,
}

fn authorship(event: &RecordedEvent, keys: &Keyring) -> Authorship {
    let stream = event.stream.as_str();
    if *stream == *treehead::stream().as_str() {
        return Authorship::Nobody;
    }
    if stream.starts_with("family-") {
        let Ok(opened) = keys.open(event) else { return Authorship::Unknown };
        return match opened.content {
            // The group names the author even after the content is gone.
            Content::Shredded { group, .. } => {
                group.map_or(Authorship::Unknown, |g| Authorship::Organisation(g.author))
            }
            Content::Plain(payload) => match codec::decode(event, &payload) {
                Ok(FamilyEvent::Case(r)) => Authorship::Organisation(r.author.organisation_id),
                Ok(FamilyEvent::Consent(r)) => Authorship::Organisation(r.recorded_by.organisation_id),
                Ok(FamilyEvent::Erasure(r)) => {
                    r.by.map_or(Authorship::Nobody, |a| Authorship::Organisation(a.organisation_id))
                }
                Ok(FamilyEvent::Restriction(
                    RestrictionRecord::Applied { by, .. } | RestrictionRecord::Lifted { by, .. },
                )) => Authorship::Organisation(by.organisation_id),
                Err(_) => Authorship::Unknown,
            },
        };
    }
    match disclosure::open_line(event, keys) {
        Some(entry) => Authorship::Organisation(entry.actor().organisation_id.clone()),
        None => Authorship::Unknown,
    }
}

/// The family a stream belongs to, if any.
fn family_of(stream: &str) -> Option<FamilyId> {
    let id = stream.strip_prefix("family-").or_else(|| stream.strip_prefix(disclosure::STREAM_PREFIX))?;
    FamilyId::new(id).ok()
}

impl Families {
    /// Tree heads, proofs and leaf hashes are open to every registered organisation; this
    /// asks the policy all the same, so that every function goes through it.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) should the policy ever refuse.
    pub async fn authorise_proofs(&self, caller: &Caller) -> Result<(), FamilyError> {
        let target = Target { family: None, family_exists: false, detail: "log proofs".into() };
        self.enforce(caller, target, authorise(caller, &Action::ReadProofs)).await.map(|_| ())
    }

    /// The event at `position`, if the caller is entitled to its bytes: its author
    /// organisation, or that organisation's privacy office. `None` when there is no event
    /// there.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded in the family's access log when the event
    /// belongs to a family), or a store failure.
    pub async fn event_bytes(&self, caller: &Caller, position: u64) -> Result<Option<RecordedEvent>, FamilyError> {
        let Some(event) = self.store.read_all(position, 1).await?.pop() else { return Ok(None) };
        self.keys.prefetch(std::slice::from_ref(&event)).await.map_err(crate::family::ApplyError::from)?;
        let authorship = authorship(&event, &self.keys);
        let author = match &authorship {
            Authorship::Nobody => None,
            Authorship::Organisation(org) => Some(org.as_str()),
            Authorship::Unknown => Some(""),
        };
        let family = family_of(event.stream.as_str());
        let target = Target { family: family.as_ref(), family_exists: true, detail: format!("event at {position}") };
        self.enforce(caller, target, authorise(caller, &Action::ReadEventBytes { author })).await?;
        Ok(Some(event))
    }
}
