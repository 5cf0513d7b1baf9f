//! `NoticeService`: the notices an organisation was sent (AVG art. 19) or caused, and their
//! acknowledgement. The rules live in `gezinsdossier_ledger::correction` and
//! `gezinsdossier_ledger::families`.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::families::{Families, FamilyNotice, NoticeScope};
use gezinsdossier_proto::convert::views::notice_message;
use gezinsdossier_proto::convert::{self, FieldError};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::notice_service_server::NoticeService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct NoticeApi {
    families: Arc<Families>,
}

impl NoticeApi {
    pub fn new(families: Arc<Families>) -> Self {
        Self { families }
    }
}

#[tonic::async_trait]
impl NoticeService for NoticeApi {
    #[tracing::instrument(name = "ListNotices", skip_all)]
    async fn list_notices(
        &self,
        request: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        let caller = requester(&request)?.caller();
        let r = request.into_inner();
        let family = if r.family_id.is_empty() { None } else { Some(family_id(&r.family_id)?) };
        let scope = match pb::NoticeDirection::try_from(r.direction) {
            Ok(pb::NoticeDirection::Unspecified | pb::NoticeDirection::Received) => NoticeScope::Received,
            Ok(pb::NoticeDirection::Sent) => NoticeScope::Sent,
            Err(_) => return Err(ServiceError::from(FieldError::new("direction", "unknown value")).into()),
        };
        let notices = self
            .families
            .list_notices(&caller, family.as_ref(), scope, r.include_acknowledged)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(pb::ListNoticesResponse { notices: notices.iter().map(notice).collect() }))
    }

    #[tracing::instrument(name = "AcknowledgeNotice", skip_all)]
    async fn acknowledge_notice(
        &self,
        request: Request<pb::AcknowledgeNoticeRequest>,
    ) -> Result<Response<pb::NoticeAcknowledged>, Status> {
        let caller = requester(&request)?.caller();
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let notice_id = convert::event_id(&r.notice_id, "notice_id").map_err(ServiceError::from)?;
        let logged = self.families.acknowledge_notice(&caller, &family, notice_id).await.map_err(ServiceError::from)?;
        Ok(Response::new(pb::NoticeAcknowledged {
            event_id: logged.map(|l| l.event_id.to_string()).unwrap_or_default(),
            already_acknowledged: logged.is_none(),
        }))
    }
}

fn notice(n: &FamilyNotice) -> pb::Notice {
    let acknowledged_at = n.state.acknowledged.as_ref().map(|(_, at)| *at);
    notice_message(&n.family, n.state.notice_id, &n.state.notice, acknowledged_at)
}
