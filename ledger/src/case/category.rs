//! Information categories: the unit of consent and of data minimisation.

use serde::{Deserialize, Serialize};

/// What kind of information an event carries. Consent is given per category.
/// The discriminants are the positions in [`InformationCategory::ALL`].
#[repr(usize)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InformationCategory {
    Identity,
    Contact,
    /// That an organisation is involved at all. For v-ggz this is itself medical data.
    Involvement,
    Plan,
    SafetyPlan,
    MentalHealthDiagnosis,
    /// What a condition means for the child, without the diagnosis.
    BehaviourAffectingChild,
    TreatmentNotes,
    Addiction,
    ChildProtection,
    Safety,
    DomesticViolence,
    /// Housing, debts, school.
    SocialContext,
}

impl InformationCategory {
    pub const ALL: [InformationCategory; 13] = [
        Self::Identity,
        Self::Contact,
        Self::Involvement,
        Self::Plan,
        Self::SafetyPlan,
        Self::MentalHealthDiagnosis,
        Self::BehaviourAffectingChild,
        Self::TreatmentNotes,
        Self::Addiction,
        Self::ChildProtection,
        Self::Safety,
        Self::DomesticViolence,
        Self::SocialContext,
    ];
}

#[cfg(test)]
mod tests {
    use super::InformationCategory;

    #[test]
    fn discriminants_are_positions_in_all() {
        for (i, c) in InformationCategory::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
        }
    }
}
