//! The who-saw-what report as a self-contained, printable page, in Dutch at B1 level or in
//! English. Staff names never appear: organisations by name, professionals by role.

use askama::Template;
use gezinsdossier_ledger::actor::{OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::InformationCategory;
use gezinsdossier_ledger::consent::{LegalBasisKind, Purpose};
use gezinsdossier_ledger::report::{AccessReport, RecipientName, ReportEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Dutch,
    English,
}

/// Fixed texts of one language.
pub struct Texts {
    lang: &'static str,
    title: &'static str,
    staff_note: &'static str,
    seen_heading: &'static str,
    none_seen: &'static str,
    when: &'static str,
    who: &'static str,
    what: &'static str,
    why: &'static str,
    basis: &'static str,
    refused: &'static str,
    emergency: &'static str,
    consents_heading: &'static str,
    consents_intro: &'static str,
    no_consents: &'static str,
    corrections_heading: &'static str,
    withheld: &'static str,
    footer: &'static str,
}

const DUTCH: Texts = Texts {
    lang: "nl",
    title: "Wie heeft uw gegevens gezien?",
    staff_note: "U ziet welke organisatie keek en welke functie de medewerker had. Namen van medewerkers staan er niet in. Heeft u een vraag? Vraag het aan uw hulpverlener of aan de privacy-functionaris.",
    seen_heading: "Wie keek er mee?",
    none_seen: "Niemand heeft deze gegevens bekeken.",
    when: "Wanneer",
    who: "Wie",
    what: "Welke informatie",
    why: "Waarom",
    basis: "Mocht dat?",
    refused: "Geweigerd: er is niets getoond.",
    emergency: "Noodsituatie, zonder toestemming bekeken. De reden:",
    consents_heading: "Uw toestemmingen",
    consents_intro: "Deze toestemmingen gelden nu. U mag een toestemming altijd intrekken. Zeg het tegen uw hulpverlener. Vanaf dat moment mag niemand die informatie meer zien.",
    no_consents: "Er gelden nu geen toestemmingen.",
    corrections_heading: "Verbeterde gegevens",
    withheld: "Een deel van de informatie over uw kind staat hier niet. De hulpverlener van uw kind vindt dat beter voor de zorg aan uw kind. Heeft u een vraag? Vraag het aan die hulpverlener.",
    footer: "Gemaakt op",
};

const ENGLISH: Texts = Texts {
    lang: "en",
    title: "Who has seen your information?",
    staff_note: "You see which organisation looked and the role of the person who did. Staff names are left out. Questions? Ask your care professional or the privacy officer.",
    seen_heading: "Who looked?",
    none_seen: "Nobody has looked at this information.",
    when: "When",
    who: "Who",
    what: "What information",
    why: "Why",
    basis: "Was it allowed?",
    refused: "Refused: nothing was shown.",
    emergency: "Emergency, seen without consent. The reason:",
    consents_heading: "Your consents",
    consents_intro: "These consents are in force now. You may withdraw a consent at any time. Tell your care professional. From then on nobody may see that information.",
    no_consents: "No consents are in force now.",
    corrections_heading: "Corrected information",
    withheld: "Some information about your child is not shown here. Your child's care professional judges that better for your child's care. Questions? Ask that professional.",
    footer: "Made on",
};

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    t: &'a Texts,
    intro: String,
    rows: Vec<Row>,
    consents: Vec<String>,
    corrections: Vec<String>,
    withheld: bool,
    generated: String,
}

struct Row {
    event_id: String,
    when: String,
    organisation: String,
    role: String,
    what: String,
    why: String,
    basis: String,
    refused: bool,
    emergency: Option<String>,
}

/// Renders `report` for `subject_name`, naming organisations and family members through
/// the given lookups.
///
/// # Errors
/// A template failure (a bug, not bad input).
pub fn render(
    report: &AccessReport,
    subject_name: &str,
    language: Language,
    organisation_name: &dyn Fn(&str) -> String,
    member_name: &dyn Fn(&str) -> String,
) -> Result<String, askama::Error> {
    let t = match language {
        Language::Dutch => &DUTCH,
        Language::English => &ENGLISH,
    };
    let intro = match language {
        Language::Dutch => {
            format!("Dit overzicht gaat over de gegevens van {subject_name}. U ziet wie ze bekeek, wanneer en waarom.")
        }
        Language::English => format!(
            "This overview is about the information of {subject_name}. It shows who looked at it, when and why."
        ),
    };
    // Times are shown in UTC, and say so; local time needs a time-zone database.
    let date = |t: chrono::DateTime<chrono::Utc>| t.format("%d-%m-%Y %H:%M UTC").to_string();
    let rows = report
        .entries
        .iter()
        .map(|e| match e {
            ReportEntry::Seen {
                event_id,
                at,
                organisation_id,
                role: r,
                categories,
                purpose: p,
                consents,
                legal_grounds,
                emergency,
                via_feed,
                ..
            } => {
                let mut grounds: Vec<String> = consents
                    .iter()
                    .map(|c| match language {
                        Language::Dutch => format!("met toestemming ({c})"),
                        Language::English => format!("with consent ({c})"),
                    })
                    .collect();
                grounds.extend(legal_grounds.iter().map(|g| ground(*g, language).to_owned()));
                Row {
                    event_id: event_id.to_string(),
                    when: date(*at),
                    organisation: organisation_name(organisation_id),
                    role: role(*r, language).to_owned(),
                    what: categories.iter().map(|c| category(*c, language)).collect::<Vec<_>>().join(", "),
                    why: if *via_feed {
                        match language {
                            Language::Dutch => format!("{} (ontvangen via de feed)", purpose(*p, language)),
                            Language::English => format!("{} (received through the feed)", purpose(*p, language)),
                        }
                    } else {
                        purpose(*p, language).to_owned()
                    },
                    basis: grounds.join("; "),
                    refused: false,
                    emergency: emergency.clone(),
                }
            }
            ReportEntry::Refused { event_id, at, organisation_id, role: r, purpose: p, .. } => Row {
                event_id: event_id.to_string(),
                when: date(*at),
                organisation: organisation_name(organisation_id),
                role: role(*r, language).to_owned(),
                what: "—".into(),
                why: purpose(*p, language).to_owned(),
                basis: t.refused.to_owned(),
                refused: true,
                emergency: None,
            },
        })
        .collect();
    let consents = report
        .consents
        .iter()
        .map(|c| {
            let what = c.categories.iter().map(|x| category(*x, language)).collect::<Vec<_>>().join(", ");
            let to = c
                .recipients
                .iter()
                .map(|r| match r {
                    RecipientName::Organisation(id) => organisation_name(id),
                    RecipientName::RoleAt(id, r) => format!("{} ({})", organisation_name(id), role(*r, language)),
                    RecipientName::Type(t, r) => {
                        let kind = organisation_type(*t, language);
                        r.map_or(kind.to_owned(), |r| format!("{kind} ({})", role(r, language)))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let who = c.may_withdraw.iter().map(|m| member_name(m)).collect::<Vec<_>>().join(", ");
            match language {
                Language::Dutch => {
                    format!("{to} mag {what} zien, voor {}. Intrekken kan door: {who}.", purpose(c.purpose, language))
                }
                Language::English => {
                    format!("{to} may see {what}, for {}. Who can withdraw it: {who}.", purpose(c.purpose, language))
                }
            }
        })
        .collect();
    let corrections = report
        .corrections
        .iter()
        .map(|c| {
            let by = organisation_name(&c.organisation_id);
            let told = c.told.iter().map(|o| organisation_name(o)).collect::<Vec<_>>().join(", ");
            let (verb, told) = match language {
                Language::Dutch => (
                    if c.retraction { "Ingetrokken op" } else { "Verbeterd op" },
                    if told.is_empty() {
                        "Niemand anders had het gezien.".into()
                    } else {
                        format!("Op de hoogte gebracht: {told}.")
                    },
                ),
                Language::English => (
                    if c.retraction { "Withdrawn on" } else { "Corrected on" },
                    if told.is_empty() { "Nobody else had seen it.".into() } else { format!("Told: {told}.") },
                ),
            };
            let by_word = if language == Language::Dutch { "door" } else { "by" };
            format!("{verb} {} {by_word} {by}. {told}", date(c.at))
        })
        .collect();
    Page { t, intro, rows, consents, corrections, withheld: report.withheld, generated: date(report.at) }.render()
}

fn category(c: InformationCategory, l: Language) -> &'static str {
    use InformationCategory as C;
    let (nl, en) = match c {
        C::Identity => ("wie u bent", "who you are"),
        C::Contact => ("contactgegevens", "contact details"),
        C::Involvement => ("welke hulp er is", "which care is involved"),
        C::Plan => ("plannen", "plans"),
        C::SafetyPlan => ("veiligheidsplan", "safety plan"),
        C::MentalHealthDiagnosis => ("diagnose", "diagnosis"),
        C::BehaviourAffectingChild => ("wat het betekent voor het kind", "what it means for the child"),
        C::TreatmentNotes => ("verslagen van de behandeling", "treatment notes"),
        C::Addiction => ("verslaving", "addiction"),
        C::ChildProtection => ("kinderbescherming", "child protection"),
        C::Safety => ("veiligheid", "safety"),
        C::DomesticViolence => ("huiselijk geweld", "domestic violence"),
        C::SocialContext => ("wonen, geld en school", "housing, money and school"),
    };
    if l == Language::Dutch { nl } else { en }
}

fn purpose(p: Purpose, l: Language) -> &'static str {
    let (nl, en) = match p {
        Purpose::Care => ("hulp aan het gezin", "care for the family"),
        Purpose::Coordination => ("afstemming tussen hulpverleners", "coordination between professionals"),
        Purpose::ChildProtection => ("kinderbescherming", "child protection"),
        Purpose::SafetyAssessment => ("veiligheid beoordelen", "assessing safety"),
    };
    if l == Language::Dutch { nl } else { en }
}

fn ground(g: LegalBasisKind, l: Language) -> &'static str {
    let (nl, en) = match g {
        LegalBasisKind::ChildProtectionMeasure => (
            "zonder toestemming, door een maatregel van de kinderrechter",
            "without consent, under a court's child protection order",
        ),
        LegalBasisKind::Meldcode => {
            ("zonder toestemming, voor een melding bij Veilig Thuis", "without consent, for a report to Veilig Thuis")
        }
        LegalBasisKind::BreakTheGlass => {
            ("zonder toestemming, in een noodsituatie", "without consent, in an emergency")
        }
    };
    if l == Language::Dutch { nl } else { en }
}

fn role(r: ProfessionalRole, l: Language) -> &'static str {
    use ProfessionalRole as R;
    let (nl, en) = match r {
        R::Regiebehandelaar => ("regiebehandelaar", "lead clinician"),
        R::Psychiater => ("psychiater", "psychiatrist"),
        R::Psycholoog => ("psycholoog", "psychologist"),
        R::Verpleegkundige => ("verpleegkundige", "nurse"),
        R::AmbulantBegeleider => ("ambulant begeleider", "outreach worker"),
        R::Gezinsvoogd => ("gezinsvoogd", "family guardian"),
        R::Gedragsdeskundige => ("gedragsdeskundige", "behavioural expert"),
        R::Casusregisseur => ("casusregisseur", "case coordinator"),
        R::WijkteamMedewerker => ("medewerker wijkteam", "local team worker"),
        R::Huisarts => ("huisarts", "GP"),
        R::PohGgz => ("praktijkondersteuner GGZ", "GP mental health nurse"),
        R::VeiligThuisMedewerker => ("medewerker Veilig Thuis", "Veilig Thuis worker"),
        R::Raadsonderzoeker => ("raadsonderzoeker", "child protection board investigator"),
        R::PrivacyOfficer => ("privacy-functionaris", "privacy officer"),
    };
    if l == Language::Dutch { nl } else { en }
}

fn organisation_type(t: OrganisationType, l: Language) -> &'static str {
    use OrganisationType as T;
    let (nl, en) = match t {
        T::Wijkteam => ("het wijkteam", "the local team"),
        T::Jeugdhulpaanbieder => ("jeugdhulp", "youth care"),
        T::JeugdGgz => ("jeugd-ggz", "youth mental health care"),
        T::VGgz => ("ggz voor volwassenen", "adult mental health care"),
        T::Verslavingszorg => ("verslavingszorg", "addiction care"),
        T::CertifiedInstitution => ("jeugdbescherming", "child protection"),
        T::VeiligThuis => ("Veilig Thuis", "Veilig Thuis"),
        T::Huisarts => ("de huisarts", "the GP"),
        T::Hospital => ("het ziekenhuis", "the hospital"),
        T::Gemeente => ("de gemeente", "the municipality"),
        T::RaadVoorDeKinderbescherming => ("de Raad voor de Kinderbescherming", "the child protection board"),
    };
    if l == Language::Dutch { nl } else { en }
}
