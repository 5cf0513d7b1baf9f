//! The one authorisation policy: may this caller perform this function on this target?
//! It answers with the grant it rests on, or with the reasons it does not, as
//! [`crate::consent::decide`] does for data.
//!
//! The rule (DESIGN.md invariant 7): the organisation is proven by its certificate; what it
//! may reach follows from its care relationships in a family and from the functions the
//! organisation registry grants it (privacy office, portal). The role its EPD asserts can
//! only narrow that, never widen it:
//! - the `privacy_officer` role acts only where the registry grants the organisation the
//!   privacy-office function, and only within that organisation's own scope as controller
//!   (AVG art. 37–39: an FG works for one controller);
//! - the `privacy_officer` role is never a care role: it receives no care data;
//! - the who-saw-what report goes only to registered portals, for a member they have
//!   authenticated at DigiD Substantieel or higher.
//!
//! Which data a care role may see *within* a family is the consent engine's question
//! ([`crate::consent::decide`]); this policy decides who may ask at all.

use crate::actor::{Actor, ProfessionalRole};
use crate::consent::Recipient;
use crate::family::FamilyState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the organisation registry grants an organisation beyond its own care relationships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grants {
    /// Its privacy officer (FG) may audit within the organisation's scope.
    pub privacy_office: bool,
    /// It runs a client portal that may fetch who-saw-what reports for members it
    /// authenticated.
    pub portal: bool,
}

/// The caller as the transport and the registry establish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub grants: Grants,
}

impl From<Actor> for Caller {
    /// A caller the registry grants no function: its care relationships only.
    fn from(actor: Actor) -> Self {
        Self { actor, grants: Grants::default() }
    }
}

impl Caller {
    pub fn organisation(&self) -> &str {
        &self.actor.organisation_id
    }

    fn is_privacy_officer(&self) -> bool {
        self.actor.role == ProfessionalRole::PrivacyOfficer
    }
}

/// How a portal authenticated the member it asks for (eIDAS / DigiD assurance levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberAuthentication {
    DigidBasis,
    DigidMidden,
    DigidSubstantieel,
    DigidHoog,
    /// eIDAS-notified means at level substantial (EU citizens without DigiD).
    EidasSubstantial,
    EidasHigh,
}

impl MemberAuthentication {
    pub const ALL: [Self; 6] = [
        Self::DigidBasis,
        Self::DigidMidden,
        Self::DigidSubstantieel,
        Self::DigidHoog,
        Self::EidasSubstantial,
        Self::EidasHigh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DigidBasis => "digid_basis",
            Self::DigidMidden => "digid_midden",
            Self::DigidSubstantieel => "digid_substantieel",
            Self::DigidHoog => "digid_hoog",
            Self::EidasSubstantial => "eidas_substantial",
            Self::EidasHigh => "eidas_high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Health data asks for assurance level substantial or high (eIDAS art. 8; the
    /// Wabvpz rule for electronic access to one's own medical data).
    pub fn suffices_for_health_data(self) -> bool {
        !matches!(self, Self::DigidBasis | Self::DigidMidden)
    }
}

/// The functions of the API, as the policy and the access log name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    AppendCaseEvents,
    RecordConsentEvent,
    ListConsents,
    CheckAccess,
    GetDossier,
    InvestigateDossier,
    QueryAccessLog,
    RecordReview,
    GetAccessReport,
    ReadProofs,
    ReadEventBytes,
    CorrectEvent,
    ListNotices,
    AcknowledgeNotice,
    SubscribeFeed,
    EraseRecords,
    RestrictRecords,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppendCaseEvents => "append_case_events",
            Self::RecordConsentEvent => "record_consent_event",
            Self::ListConsents => "list_consents",
            Self::CheckAccess => "check_access",
            Self::GetDossier => "get_dossier",
            Self::InvestigateDossier => "investigate_dossier",
            Self::QueryAccessLog => "query_access_log",
            Self::RecordReview => "record_review",
            Self::GetAccessReport => "get_access_report",
            Self::ReadProofs => "read_proofs",
            Self::ReadEventBytes => "read_event_bytes",
            Self::CorrectEvent => "correct_event",
            Self::ListNotices => "list_notices",
            Self::AcknowledgeNotice => "acknowledge_notice",
            Self::SubscribeFeed => "subscribe_feed",
            Self::EraseRecords => "erase_records",
            Self::RestrictRecords => "restrict_records",
        }
    }
}

/// A disclosure as far as the policy needs it: who received it, and whose data was in it.
#[derive(Debug, Clone, Copy)]
pub struct DisclosureParties<'a> {
    pub requester_organisation: &'a str,
    pub authors: &'a BTreeSet<String>,
}

/// A function applied to its target.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// `family` is `None` when the family does not exist yet (a registration).
    AppendCaseEvents {
        family: Option<&'a FamilyState>,
    },
    RecordConsentEvent {
        family: &'a FamilyState,
    },
    ListConsents {
        family: &'a FamilyState,
    },
    CheckAccess {
        family: &'a FamilyState,
    },
    GetDossier,
    /// Rebuild what `investigated` could see; `received_callers_data` says whether the
    /// family's access log shows it receiving data that the caller's organisation authored.
    InvestigateDossier {
        family: &'a FamilyState,
        investigated: &'a str,
        received_callers_data: bool,
    },
    /// `family` is `None` for a query across all families.
    QueryAccessLog {
        family: Option<&'a FamilyState>,
    },
    RecordReview {
        family: &'a FamilyState,
        disclosure: DisclosureParties<'a>,
    },
    GetAccessReport {
        family: &'a FamilyState,
        member_authentication: Option<MemberAuthentication>,
    },
    /// Tree heads, proofs and leaf hashes: hashes only, never data.
    ReadProofs,
    /// One event's canonical bytes. `author` is the organisation that wrote it; `None` for
    /// an event no organisation wrote (a signed tree head), which is public.
    ReadEventBytes {
        author: Option<&'a str>,
    },
    /// Correct or retract an event that `author` (an organisation id) wrote.
    CorrectEvent {
        author: &'a str,
    },
    /// The notices to (or caused by) the caller's organisation, in one family or all.
    ListNotices,
    /// Confirm a notice addressed to `recipient` (an organisation id).
    AcknowledgeNotice {
        recipient: &'a str,
    },
    /// Follow a family's changes; `token_organisation` is whom a resume token was issued to.
    SubscribeFeed {
        token_organisation: Option<&'a str>,
    },
    /// Erase (crypto-shred) what the caller's organisation wrote about a member. The use
    /// case scopes it to that organisation's own records: the controller erases.
    EraseRecords {
        family: &'a FamilyState,
    },
    /// Restrict (or lift a restriction on) what the caller's organisation wrote about a
    /// member (AVG art. 18); scoped like [`Action::EraseRecords`].
    RestrictRecords {
        family: &'a FamilyState,
    },
}

impl Action<'_> {
    pub fn function(&self) -> Function {
        match self {
            Self::AppendCaseEvents { .. } => Function::AppendCaseEvents,
            Self::RecordConsentEvent { .. } => Function::RecordConsentEvent,
            Self::ListConsents { .. } => Function::ListConsents,
            Self::CheckAccess { .. } => Function::CheckAccess,
            Self::GetDossier => Function::GetDossier,
            Self::InvestigateDossier { .. } => Function::InvestigateDossier,
            Self::QueryAccessLog { .. } => Function::QueryAccessLog,
            Self::RecordReview { .. } => Function::RecordReview,
            Self::GetAccessReport { .. } => Function::GetAccessReport,
            Self::ReadProofs => Function::ReadProofs,
            Self::ReadEventBytes { .. } => Function::ReadEventBytes,
            Self::CorrectEvent { .. } => Function::CorrectEvent,
            Self::ListNotices => Function::ListNotices,
            Self::AcknowledgeNotice { .. } => Function::AcknowledgeNotice,
            Self::SubscribeFeed { .. } => Function::SubscribeFeed,
            Self::EraseRecords { .. } => Function::EraseRecords,
            Self::RestrictRecords { .. } => Function::RestrictRecords,
        }
    }
}

/// What an allowed action rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A care role of an organisation taking part in the family (or registering it).
    CareRelationship,
    /// A care role asking the consent engine; what it sees is the engine's answer.
    ConsentEngine,
    /// The registry's privacy-office grant, within the organisation's own scope.
    PrivacyOffice,
    /// The registry's portal grant, for a member the portal authenticated.
    Portal,
    /// The caller's organisation wrote the event.
    OwnEvent,
    /// Hashes and signed heads: open to every registered organisation.
    Public,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub function: Function,
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not authorised for {}: {}", self.function.as_str(), self.reasons.join("; "))
    }
}

/// Whether `organisation` takes part in the family: it wrote an event there, is named as
/// the GI of a measure or as a child's guardian (voogdij), or is a recipient of a consent
/// or legal basis there.
pub fn takes_part(family: &FamilyState, caller: &Caller) -> bool {
    let org = caller.organisation();
    let named = |recipients: &[Recipient]| recipients.iter().any(|r| names_organisation(r, caller));
    family.authors.contains(org)
        || family.consents.values().any(|c| c.recorded_by.organisation_id == org || named(&c.grant.recipients))
        || family.legal_bases.values().any(|b| b.basis.responsible.organisation_id == org || named(&b.basis.recipients))
        || family.measures.values().any(|m| m.certified_institution_id == org)
        || family
            .members
            .values()
            .any(|m| m.gezag.as_ref().and_then(|g| g.guardian_organisation_id.as_deref()) == Some(org))
}

/// Whether `recipient` names the caller's organisation, whatever the caller's role: a
/// recipient by type names every organisation of that type.
pub fn names_organisation(recipient: &Recipient, caller: &Caller) -> bool {
    match recipient {
        Recipient::Organisation { organisation_id } => *organisation_id == caller.actor.organisation_id,
        Recipient::TypeAndRole { organisation_type, .. } => *organisation_type == caller.actor.organisation_type,
        Recipient::OrganisationRole { organisation_id, .. } => *organisation_id == caller.actor.organisation_id,
    }
}

/// Decides whether `caller` may perform `action`.
///
/// # Errors
/// [`Refused`] with every reason that applies.
pub fn authorise(caller: &Caller, action: &Action<'_>) -> Result<Grant, Refused> {
    let mut reasons = Vec::new();
    let grant = decide(caller, action, &mut reasons);
    match grant {
        Some(g) if reasons.is_empty() => Ok(g),
        _ => Err(Refused { function: action.function(), reasons }),
    }
}

const NOT_A_CARE_ROLE: &str = "the privacy_officer role is not a care role and receives no care data";
const NOT_IN_FAMILY: &str = "your organisation takes part in no family with this id";
const NO_PRIVACY_OFFICE: &str =
    "this function is for the privacy_officer role of an organisation the registry grants the privacy office";

fn decide(caller: &Caller, action: &Action<'_>, reasons: &mut Vec<String>) -> Option<Grant> {
    let mut refuse = |why: &str| reasons.push(why.to_owned());
    match *action {
        Action::ReadProofs => Some(Grant::Public),
        Action::ReadEventBytes { author } => {
            let Some(author) = author else { return Some(Grant::Public) };
            if author != caller.organisation() {
                refuse("only the organisation that wrote an event, or its privacy officer, may read its bytes");
            }
            if caller.is_privacy_officer() && !caller.grants.privacy_office {
                refuse(NO_PRIVACY_OFFICE);
            }
            Some(if caller.is_privacy_officer() { Grant::PrivacyOffice } else { Grant::OwnEvent })
        }
        Action::CorrectEvent { author } => {
            // AVG art. 16: the controller that recorded the data rectifies it; a subject's
            // request goes to that organisation's EPD.
            if author != caller.organisation() {
                refuse("only the organisation that wrote an event may correct or retract it");
            }
            if caller.is_privacy_officer() {
                refuse(NOT_A_CARE_ROLE);
            }
            Some(Grant::OwnEvent)
        }
        Action::ListNotices => {
            // Scoped by the use case to the caller's own organisation.
            if caller.is_privacy_officer() && !caller.grants.privacy_office {
                refuse(NO_PRIVACY_OFFICE);
            }
            Some(Grant::OwnEvent)
        }
        Action::AcknowledgeNotice { recipient } => {
            if recipient != caller.organisation() {
                refuse("only the organisation a notice is addressed to may acknowledge it");
            }
            if caller.is_privacy_officer() && !caller.grants.privacy_office {
                refuse(NO_PRIVACY_OFFICE);
            }
            Some(Grant::OwnEvent)
        }
        Action::SubscribeFeed { token_organisation } => {
            // A feed delivers what the dossier would show: open to care roles, the consent
            // engine decides each delivery.
            if caller.is_privacy_officer() {
                refuse(NOT_A_CARE_ROLE);
            }
            if token_organisation.is_some_and(|org| org != caller.organisation()) {
                refuse("this resume token was issued to another organisation");
            }
            Some(Grant::ConsentEngine)
        }
        Action::AppendCaseEvents { .. } | Action::GetDossier => {
            // Registering or joining a family and asking for a view are open to care roles:
            // what a view shows is the consent engine's answer (break-the-glass included).
            if caller.is_privacy_officer() {
                refuse(NOT_A_CARE_ROLE);
            }
            Some(if matches!(action, Action::GetDossier) { Grant::ConsentEngine } else { Grant::CareRelationship })
        }
        Action::RecordConsentEvent { family } | Action::CheckAccess { family } => {
            if caller.is_privacy_officer() {
                refuse(NOT_A_CARE_ROLE);
            }
            if !takes_part(family, caller) {
                refuse(NOT_IN_FAMILY);
            }
            Some(Grant::CareRelationship)
        }
        Action::ListConsents { family } => {
            if caller.is_privacy_officer() && !caller.grants.privacy_office {
                refuse(NO_PRIVACY_OFFICE);
            }
            if !takes_part(family, caller) {
                refuse(NOT_IN_FAMILY);
            }
            Some(if caller.is_privacy_officer() { Grant::PrivacyOffice } else { Grant::CareRelationship })
        }
        Action::InvestigateDossier { family, investigated, received_callers_data } => {
            privacy_office_in(caller, Some(family), &mut refuse);
            if investigated != caller.organisation() && !received_callers_data {
                refuse(
                    "a privacy officer may investigate only its own organisation, or organisations that received \
                     its organisation's data in this family",
                );
            }
            Some(Grant::PrivacyOffice)
        }
        Action::QueryAccessLog { family } => {
            privacy_office_in(caller, family, &mut refuse);
            Some(Grant::PrivacyOffice)
        }
        Action::EraseRecords { family } | Action::RestrictRecords { family } => {
            // AVG art. 17, 18 and Jeugdwet 7.3.9 bind the controller; its FG carries them out.
            privacy_office_in(caller, Some(family), &mut refuse);
            Some(Grant::PrivacyOffice)
        }
        Action::RecordReview { family, disclosure } => {
            privacy_office_in(caller, Some(family), &mut refuse);
            if disclosure.requester_organisation != caller.organisation()
                && !disclosure.authors.contains(caller.organisation())
            {
                refuse(
                    "a disclosure is reviewed by the privacy officer of the organisation that received it, or of an \
                     organisation whose data it disclosed",
                );
            }
            Some(Grant::PrivacyOffice)
        }
        Action::GetAccessReport { family, member_authentication } => {
            if !caller.grants.portal {
                refuse("the who-saw-what report is served only to organisations the registry names as portals");
            }
            if !takes_part(family, caller) {
                refuse(NOT_IN_FAMILY);
            }
            match member_authentication {
                None => refuse("say how the portal authenticated the member (x-member-authentication)"),
                Some(a) if !a.suffices_for_health_data() => {
                    refuse("the member must be authenticated at DigiD Substantieel, eIDAS substantial or higher")
                }
                Some(_) => {}
            }
            Some(Grant::Portal)
        }
    }
}

/// The privacy office: the role, the registry's grant, and (for one family) the scope.
fn privacy_office_in(caller: &Caller, family: Option<&FamilyState>, refuse: &mut impl FnMut(&str)) {
    if !caller.is_privacy_officer() || !caller.grants.privacy_office {
        refuse(NO_PRIVACY_OFFICE);
    }
    if family.is_some_and(|f| !takes_part(f, caller)) {
        refuse(NOT_IN_FAMILY);
    }
}

/// Whether an access-log row is within a privacy office's scope: its organisation asked,
/// or data its organisation wrote was disclosed.
pub fn row_in_scope(organisation_id: &str, parties: DisclosureParties<'_>) -> bool {
    parties.requester_organisation == organisation_id || parties.authors.contains(organisation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::OrganisationType;

    fn caller(org: &str, role: ProfessionalRole, grants: Grants) -> Caller {
        Caller {
            actor: Actor {
                organisation_id: org.into(),
                organisation_type: OrganisationType::Wijkteam,
                professional_id: "p".into(),
                role,
            },
            grants,
        }
    }

    #[test]
    fn an_asserted_privacy_officer_role_without_the_registry_grant_reaches_nothing_more() {
        let family = FamilyState::default();
        let po = caller("wijkteam", ProfessionalRole::PrivacyOfficer, Grants::default());
        for action in [
            Action::QueryAccessLog { family: None },
            Action::QueryAccessLog { family: Some(&family) },
            Action::InvestigateDossier { family: &family, investigated: "wijkteam", received_callers_data: false },
            Action::GetDossier,
            Action::ListConsents { family: &family },
            Action::ReadEventBytes { author: Some("wijkteam") },
        ] {
            let refused = authorise(&po, &action).unwrap_err();
            assert!(!refused.reasons.is_empty(), "{action:?}");
        }
        assert_eq!(authorise(&po, &Action::ReadProofs), Ok(Grant::Public));
    }

    #[test]
    fn a_granted_privacy_office_is_bound_to_its_families_and_never_reads_care_data() {
        let family = FamilyState::default();
        let po = caller("wijkteam", ProfessionalRole::PrivacyOfficer, Grants { privacy_office: true, portal: false });
        assert_eq!(authorise(&po, &Action::QueryAccessLog { family: None }), Ok(Grant::PrivacyOffice));
        let out_of_scope = authorise(&po, &Action::QueryAccessLog { family: Some(&family) }).unwrap_err();
        assert_eq!(out_of_scope.reasons, vec![NOT_IN_FAMILY.to_owned()]);
        assert_eq!(authorise(&po, &Action::GetDossier).unwrap_err().reasons, vec![NOT_A_CARE_ROLE.to_owned()]);
    }

    #[test]
    fn reports_need_a_portal_and_substantial_assurance() {
        let family = FamilyState::default();
        let portal = caller("p", ProfessionalRole::WijkteamMedewerker, Grants { privacy_office: false, portal: true });
        let weak =
            Action::GetAccessReport { family: &family, member_authentication: Some(MemberAuthentication::DigidMidden) };
        let reasons = authorise(&portal, &weak).unwrap_err().reasons;
        assert!(reasons.iter().any(|r| r.contains("Substantieel")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r == NOT_IN_FAMILY), "{reasons:?}");
        for a in MemberAuthentication::ALL {
            assert_eq!(MemberAuthentication::parse(a.as_str()), Some(a));
        }
    }
}
