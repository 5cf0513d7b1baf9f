//! Who acts: organisations (by type), professionals and their roles. The service fills these
//! from the transport (mTLS certificate → organisation) and from the organisation's asserted
//! metadata (professional, role); request bodies never do.

use serde::{Deserialize, Serialize};

/// The kinds of organisation in the field (DOMAIN.md "Organisations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationType {
    Wijkteam,
    Jeugdhulpaanbieder,
    JeugdGgz,
    VGgz,
    Verslavingszorg,
    /// Gecertificeerde instelling: carries out child protection measures.
    CertifiedInstitution,
    VeiligThuis,
    Huisarts,
    Hospital,
    Gemeente,
    RaadVoorDeKinderbescherming,
}

impl OrganisationType {
    pub const ALL: [OrganisationType; 11] = [
        Self::Wijkteam,
        Self::Jeugdhulpaanbieder,
        Self::JeugdGgz,
        Self::VGgz,
        Self::Verslavingszorg,
        Self::CertifiedInstitution,
        Self::VeiligThuis,
        Self::Huisarts,
        Self::Hospital,
        Self::Gemeente,
        Self::RaadVoorDeKinderbescherming,
    ];

    /// The name used in configuration files and metadata (`v_ggz`, `certified_institution`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wijkteam => "wijkteam",
            Self::Jeugdhulpaanbieder => "jeugdhulpaanbieder",
            Self::JeugdGgz => "jeugd_ggz",
            Self::VGgz => "v_ggz",
            Self::Verslavingszorg => "verslavingszorg",
            Self::CertifiedInstitution => "certified_institution",
            Self::VeiligThuis => "veilig_thuis",
            Self::Huisarts => "huisarts",
            Self::Hospital => "hospital",
            Self::Gemeente => "gemeente",
            Self::RaadVoorDeKinderbescherming => "raad_voor_de_kinderbescherming",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Professional roles, as asserted by the organisation's EPD (NEN 7513 "role").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfessionalRole {
    Regiebehandelaar,
    Psychiater,
    Psycholoog,
    /// SPV or other nurse.
    Verpleegkundige,
    AmbulantBegeleider,
    /// Gezinsvoogd / jeugdbeschermer at a GI.
    Gezinsvoogd,
    Gedragsdeskundige,
    /// Casusregisseur or procesregisseur.
    Casusregisseur,
    WijkteamMedewerker,
    Huisarts,
    PohGgz,
    VeiligThuisMedewerker,
    Raadsonderzoeker,
    /// Functionaris gegevensbescherming: audits, never a care role.
    PrivacyOfficer,
}

impl ProfessionalRole {
    pub const ALL: [ProfessionalRole; 14] = [
        Self::Regiebehandelaar,
        Self::Psychiater,
        Self::Psycholoog,
        Self::Verpleegkundige,
        Self::AmbulantBegeleider,
        Self::Gezinsvoogd,
        Self::Gedragsdeskundige,
        Self::Casusregisseur,
        Self::WijkteamMedewerker,
        Self::Huisarts,
        Self::PohGgz,
        Self::VeiligThuisMedewerker,
        Self::Raadsonderzoeker,
        Self::PrivacyOfficer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regiebehandelaar => "regiebehandelaar",
            Self::Psychiater => "psychiater",
            Self::Psycholoog => "psycholoog",
            Self::Verpleegkundige => "verpleegkundige",
            Self::AmbulantBegeleider => "ambulant_begeleider",
            Self::Gezinsvoogd => "gezinsvoogd",
            Self::Gedragsdeskundige => "gedragsdeskundige",
            Self::Casusregisseur => "casusregisseur",
            Self::WijkteamMedewerker => "wijkteam_medewerker",
            Self::Huisarts => "huisarts",
            Self::PohGgz => "poh_ggz",
            Self::VeiligThuisMedewerker => "veilig_thuis_medewerker",
            Self::Raadsonderzoeker => "raadsonderzoeker",
            Self::PrivacyOfficer => "privacy_officer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The identity behind a request: the organisation proven by its certificate and the
/// professional and role its EPD asserts (and is accountable for).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub organisation_id: String,
    pub organisation_type: OrganisationType,
    pub professional_id: String,
    pub role: ProfessionalRole,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in OrganisationType::ALL {
            assert_eq!(OrganisationType::parse(t.as_str()), Some(t));
        }
        for r in ProfessionalRole::ALL {
            assert_eq!(ProfessionalRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(OrganisationType::parse("bakery"), None);
    }
}
