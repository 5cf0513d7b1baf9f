//! `AccessReportService`: the who-saw-what report for a family member, as data and as a
//! page. Who may ask is decided in `gezinsdossier_ledger::report`.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::OrganisationRegistry;
use crate::identity::interceptor::{member_authentication, requester};
use crate::proofs::Prover;
use crate::report_page::{self, Language};
use gezinsdossier_ledger::consent::authority::guardian_organisation;
use gezinsdossier_ledger::families::{Families, MemberReport, ReportRequest};
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::report::{RecipientName, ReportEntry};
use gezinsdossier_proto::convert::{identifier, outbound};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::access_report_service_server::AccessReportService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ReportApi {
    families: Arc<Families>,
    registry: Arc<OrganisationRegistry>,
    index: LogIndex,
}

impl ReportApi {
    pub fn new(families: Arc<Families>, registry: Arc<OrganisationRegistry>, index: LogIndex) -> Self {
        Self { families, registry, index }
    }

    /// One report line on the wire; the proof fields are filled in by the caller.
    fn line(&self, e: &ReportEntry) -> pb::ReportEntry {
        match e {
            ReportEntry::Seen {
                event_id,
                at,
                organisation_id,
                role,
                categories,
                purpose,
                consents,
                legal_grounds,
                emergency,
                via_feed,
                ..
            } => pb::ReportEntry {
                at: Some(outbound::timestamp(*at)),
                organisation_name: self.organisation_name(organisation_id),
                role: outbound::role(*role),
                categories: categories.iter().map(|c| outbound::category(*c)).collect(),
                purpose: outbound::purpose(*purpose),
                refused: false,
                consent_ids: consents.clone(),
                legal_grounds: legal_grounds.iter().map(|g| outbound::legal_basis_kind(*g)).collect(),
                emergency_reason: emergency.clone().unwrap_or_default(),
                event_id: event_id.to_string(),
                via_feed: *via_feed,
                ..Default::default()
            },
            ReportEntry::Refused { event_id, at, organisation_id, role, purpose, .. } => pb::ReportEntry {
                at: Some(outbound::timestamp(*at)),
                organisation_name: self.organisation_name(organisation_id),
                role: outbound::role(*role),
                purpose: outbound::purpose(*purpose),
                refused: true,
                event_id: event_id.to_string(),
                ..Default::default()
            },
        }
    }

    fn organisation_name(&self, id: &str) -> String {
        self.registry.by_id(id).map_or_else(|| id.to_owned(), |o| o.name.clone())
    }
}

#[tonic::async_trait]
impl AccessReportService for ReportApi {
    #[tracing::instrument(name = "GetAccessReport", skip_all)]
    async fn get_access_report(
        &self,
        request: Request<pb::GetAccessReportRequest>,
    ) -> Result<Response<pb::AccessReport>, Status> {
        let who = requester(&request)?;
        let member_authentication = member_authentication(&request).map_err(ServiceError::from)?;
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let subject = identifier(r.subject_member_id, "subject_member_id").map_err(ServiceError::from)?;
        let asker = identifier(r.requested_by_member_id, "requested_by_member_id").map_err(ServiceError::from)?;
        let language = match pb::ReportLanguage::try_from(r.language) {
            Ok(pb::ReportLanguage::English) => Language::English,
            _ => Language::Dutch,
        };
        let request = ReportRequest {
            requested_by: &asker,
            subject: &subject,
            member_authentication,
            checkable_lines: r.include_line_bytes,
        };
        let MemberReport { report, names } =
            self.families.report(&family, &who.caller(), request).await.map_err(ServiceError::from)?;
        // A guardian organisation (voogdij) consents as a party of its own.
        let member_name = |id: &str| match guardian_organisation(id) {
            Some(org) => format!("{} (voogdij)", self.organisation_name(org)),
            None => names.get(id).cloned().unwrap_or_else(|| id.to_owned()),
        };
        let organisation_name = |id: &str| self.organisation_name(id);
        let html = report_page::render(&report, &member_name(&subject), language, &organisation_name, &member_name)
            .map_err(|e| ServiceError::Internal(format!("report template: {e}")))?;
        let prover = Prover::latest(&**self.families.store(), self.index.clone()).await.map_err(ServiceError::from)?;
        let mut entries = Vec::with_capacity(report.entries.len());
        for e in report.entries.iter() {
            let (position, leaf) = e.leaf();
            let mut line = self.line(e);
            (line.position, line.leaf_hash, line.inclusion_proof) =
                (position, leaf.to_hex(), prover.path(position).await);
            if let Some(checkable) = e.checkable() {
                line.line = checkable.bytes.clone();
                line.line_salt = checkable.salt.to_vec();
                line.line_index = u32::try_from(checkable.index).unwrap_or(u32::MAX);
                line.canonical_event = checkable.canonical_event.clone();
            }
            entries.push(line);
        }
        let consents = report
            .consents
            .iter()
            .map(|c| pb::ReportConsent {
                consent_id: c.consent_id.clone(),
                categories: c.categories.iter().map(|x| outbound::category(*x)).collect(),
                recipients: c
                    .recipients
                    .iter()
                    .map(|r| match r {
                        RecipientName::Organisation(id) => self.organisation_name(id),
                        RecipientName::RoleAt(id, role) => {
                            format!("{} / {}", self.organisation_name(id), role.as_str())
                        }
                        RecipientName::Type(t, role) => {
                            format!("{}{}", t.as_str(), role.map(|r| format!(" / {}", r.as_str())).unwrap_or_default())
                        }
                    })
                    .collect(),
                purpose: outbound::purpose(c.purpose),
                until: c.until.map(outbound::timestamp),
                may_withdraw_member_ids: c.may_withdraw.clone(),
            })
            .collect();
        Ok(Response::new(pb::AccessReport {
            tree_head: prover.head_message(),
            subject_member_id: report.subject.clone(),
            generated_at: Some(outbound::timestamp(report.at)),
            entries,
            consents,
            corrections: report
                .corrections
                .iter()
                .map(|c| pb::ReportCorrection {
                    at: Some(outbound::timestamp(c.at)),
                    organisation_name: self.organisation_name(&c.organisation_id),
                    retraction: c.retraction,
                    told_organisation_names: c.told.iter().map(|o| self.organisation_name(o)).collect(),
                })
                .collect(),
            information_withheld: report.withheld,
            html,
        }))
    }
}
