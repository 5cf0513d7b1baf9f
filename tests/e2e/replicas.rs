//! Several stateless replicas over one shared store: three real server processes on one
//! PostgreSQL schema, and on one KurrentDB (the in-process fake), clients spread across them.

use crate::support::build::{self, append, exact};
use crate::support::{Binary, Professional};
use gezinsdossier_ledger::chain::verify_stream;
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};
use gezinsdossier_ledger::store::postgres::{PostgresOptions, PostgresStore};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::consent_service_client::ConsentServiceClient;
use gezinsdossier_proto::v1::dossier_service_client::DossierServiceClient;
use std::collections::HashSet;
use tonic::Code;
use tonic::transport::Channel;

const YOUTH: &str = "jeugdhulp-haaglanden";
const GI: &str = "jeugdbescherming-west";

pub(crate) fn url() -> String {
    std::env::var("GZD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// A schema of this test's own, dropped at the end; `None` (having said SKIPPED) when
/// PostgreSQL is unreachable and not required.
pub(crate) async fn schema() -> Option<Schema> {
    let name = format!("replicas_{}", uuid::Uuid::new_v4().simple());
    match tokio_postgres::connect(&url(), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Some(Schema { client, name })
        }
        Err(e) if std::env::var("GZD_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PostgreSQL is required (GZD_TEST_REQUIRE_POSTGRES=1) but {} failed: {e}", url())
        }
        Err(e) => {
            eprintln!("SKIPPED replica tests: PostgreSQL at {} is not reachable ({e})", url());
            None
        }
    }
}

pub(crate) struct Schema {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) name: String,
}

impl Schema {
    pub(crate) async fn drop_now(self) {
        let _ = self.client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).await;
    }
}

/// A KEK file for replicas to share.
fn shared_kek(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kek.hex");
    std::fs::write(&path, crate::support::TEST_KEK).unwrap();
    path
}

async fn channel(endpoint: &str) -> Channel {
    crate::support::wait_for_health(endpoint.to_owned(), None).await;
    tonic::transport::Endpoint::from_shared(endpoint.to_owned()).unwrap().connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_postgres_schema_keep_revisions_consents_and_chains_consistent() {
    let Some(schema) = schema().await else { return };
    let store =
        PostgresStore::open(PostgresOptions { schema: Some(schema.name.clone()), ..PostgresOptions::new(url()) })
            .await
            .unwrap();
    three_replicas_share_one_store(&["--postgres-url", &url(), "--postgres-schema", &schema.name], &store).await;
    store.shutdown().await;
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_kurrentdb_keep_revisions_consents_and_chains_consistent() {
    let kurrentdb = gezinsdossier_kurrentdb_fake::FakeKurrentDb::start().await;
    let store = KurrentStore::open(KurrentOptions::new(kurrentdb.url())).await.unwrap();
    three_replicas_share_one_store(&["--kurrentdb-url", &kurrentdb.url()], &store).await;
    store.shutdown().await;
}

/// Starts three replicas with `store_args` and checks them through the API and, directly,
/// through `store` (the same data as the replicas see it).
async fn three_replicas_share_one_store(store_args: &[&str], store: &dyn EventStore) {
    let logs = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    let mut channels = Vec::new();
    // Replicas on one database share the tree-head signing key and the KEK, and keep
    // nothing else of their own.
    let key = logs.path().join("treehead.key");
    let kek = shared_kek(logs.path());
    let data: Vec<_> = (0..3).map(|i| logs.path().join(format!("data-{i}"))).collect();
    for (i, data) in data.iter().enumerate() {
        let mut args = store_args.to_vec();
        args.extend([
            "--data-dir",
            data.to_str().unwrap(),
            "--kek-file",
            kek.to_str().unwrap(),
            "--signing-key",
            key.to_str().unwrap(),
            "--tree-head-every-events",
            "10",
            "--tree-head-interval-ms",
            "50",
        ]);
        let (binary, endpoint) = Binary::start(&args, &logs.path().join(format!("replica-{i}.log")));
        channels.push(channel(&endpoint).await);
        replicas.push(binary);
    }
    let case = |replica: usize, org: &str| {
        CaseServiceClient::with_interceptor(
            channels[replica].clone(),
            Professional::new("p", "casusregisseur").claiming(org),
        )
    };

    // A family registered through replica 0.
    let family = "fam-replicas";
    case(0, YOUTH).append_events(append(family, build::no_stream(), build::new_family())).await.unwrap();

    // No lost update: writers on all replicas race with exact expected revisions. Every
    // success must land on the revision it expected; losers learn the actual revision.
    let mut writers = Vec::new();
    for w in 0..9 {
        let mut client = case(w % 3, YOUTH);
        writers.push(tokio::spawn(async move {
            let (mut known, mut landed) = (3u64, Vec::new());
            while landed.len() < 8 {
                let note = build::note("mother", &format!("writer {w}"));
                let id = note.event_id.clone();
                match client.append_events(append(family, exact(known), vec![note])).await {
                    Ok(out) => {
                        let out = out.into_inner();
                        assert_eq!(out.stream_revision, known + 1, "landed elsewhere than expected");
                        known = out.stream_revision;
                        landed.push(id);
                    }
                    Err(e) if e.code() == Code::FailedPrecondition => {
                        let actual = e.message().rsplit("actual revision ").next().and_then(|n| n.trim().parse().ok());
                        known = actual.unwrap_or_else(|| panic!("no actual revision in {:?}", e.message()));
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            landed
        }));
    }
    let mut landed = HashSet::new();
    for w in writers {
        landed.extend(w.await.unwrap());
    }
    assert_eq!(landed.len(), 72);

    // Read the shared store directly: one chain, every landed note once, no gaps.
    let events = store.read_stream(&FamilyId::new(family).unwrap().stream(), 0, 10_000).await.unwrap();
    verify_stream(&events).expect("one valid hash chain across replicas");
    assert_eq!(events.len(), 4 + 72);
    let stored: HashSet<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    assert!(landed.is_subset(&stored));

    // A consent withdrawn on replica 1 stops disclosures on replica 2 at the very next request.
    // Youth care, which registered the family, records the consent; the GI reads under it.
    let consent = |replica: usize| {
        ConsentServiceClient::with_interceptor(
            channels[replica].clone(),
            Professional::new("jh", "casusregisseur").claiming(YOUTH),
        )
    };
    let dossier = |replica: usize| {
        DossierServiceClient::with_interceptor(
            channels[replica].clone(),
            Professional::new("gv", "gezinsvoogd").claiming(GI),
        )
    };
    let grant = pb::GrantConsentRequest {
        family_id: family.into(),
        event_id: build::id(),
        consent_id: "c-mother".into(),
        subject_member_id: "mother".into(),
        categories: vec![pb::InformationCategory::TreatmentNotes as i32],
        recipients: vec![pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(GI.into())) }],
        purpose: pb::Purpose::Care as i32,
        given_by_member_ids: vec!["mother".into()],
        method: Some(pb::ConsentMethod { method: Some(pb::consent_method::Method::SignedFormReference("f".into())) }),
        requested_reason: "afstemming".into(),
        ..Default::default()
    };
    consent(0).grant_consent(grant).await.unwrap();
    let request =
        pb::GetDossierRequest { family_id: family.into(), purpose: pb::Purpose::Care as i32, break_the_glass: None };
    let seen = dossier(2).get_dossier(request.clone()).await.unwrap().into_inner();
    assert_eq!(seen.timeline.len(), 72, "every note, appended through any replica, is visible on replica 2");
    consent(1)
        .withdraw_consent(pb::WithdrawConsentRequest {
            family_id: family.into(),
            event_id: build::id(),
            consent_id: "c-mother".into(),
            withdrawn_by_member_id: "mother".into(),
            reason: String::new(),
            by_guardian: false,
        })
        .await
        .unwrap();
    let err = dossier(2).get_dossier(request).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Three publishers, one chain of signed tree heads: the whole shared log verifies.
    let heads_stream = gezinsdossier_ledger::treehead::stream();
    let mut heads = Vec::new();
    for _ in 0..200 {
        heads = store.read_stream(&heads_stream, 0, 10_000).await.unwrap();
        if heads.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(heads.len() >= 3, "only {} tree heads were published", heads.len());
    drop(replicas);
    let mut all = Vec::new();
    loop {
        let page = store.read_all(all.len() as u64, 1_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    let heads = store.read_stream(&heads_stream, 0, 10_000).await.unwrap();
    let signer = gezinsdossier_ledger::treehead::TreeHeadSigner::from_pkcs8(&std::fs::read(&key).unwrap()).unwrap();
    let report = gezinsdossier_ledger::verify::verify_log(
        signer.public_key(),
        &heads,
        all.into_iter().map(Ok::<_, std::convert::Infallible>),
    )
    .expect("one valid chain of tree heads over the shared log");
    assert_eq!(report.tree_heads, heads.len());
}

/// The change feed across replicas on one PostgreSQL schema: a subscriber on replica A
/// receives what is appended through replica B, and a withdrawal made on B stops
/// deliveries on A before the next item is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_on_one_postgres_replica_follows_appends_and_withdrawals_made_on_another() {
    let Some(schema) = schema().await else { return };
    feed_across_two_replicas(&["--postgres-url", &url(), "--postgres-schema", &schema.name]).await;
    schema.drop_now().await;
}

/// The same on one KurrentDB (the in-process fake).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_on_one_kurrentdb_replica_follows_appends_and_withdrawals_made_on_another() {
    let kurrentdb = gezinsdossier_kurrentdb_fake::FakeKurrentDb::start().await;
    feed_across_two_replicas(&["--kurrentdb-url", &kurrentdb.url()]).await;
}

async fn feed_across_two_replicas(store_args: &[&str]) {
    use gezinsdossier_proto::v1::feed_service_client::FeedServiceClient;
    use pb::case_event::Kind;
    let logs = tempfile::tempdir().unwrap();
    let key = logs.path().join("treehead.key");
    let kek = shared_kek(logs.path());
    let (data_a, data_b) = (logs.path().join("data-a"), logs.path().join("data-b"));
    let replica = |data: &std::path::Path| {
        let mut args = store_args.to_vec();
        args.extend(["--signing-key", key.to_str().unwrap(), "--kek-file", kek.to_str().unwrap()]);
        args.extend(["--data-dir", data.to_str().unwrap()]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let (args_a, args_b) = (replica(&data_a), replica(&data_b));
    let (refs_a, refs_b): (Vec<&str>, Vec<&str>) =
        (args_a.iter().map(String::as_str).collect(), args_b.iter().map(String::as_str).collect());
    let (mut a, endpoint_a) = Binary::start(&refs_a, &logs.path().join("a.log"));
    let (mut b, endpoint_b) = Binary::start(&refs_b, &logs.path().join("b.log"));
    let (on_a, on_b) = (channel(&endpoint_a).await, channel(&endpoint_b).await);
    let as_org =
        |channel: &Channel, org: &str| (channel.clone(), Professional::new("p", "casusregisseur").claiming(org));
    let family = "fam-feed";
    let plan_note = |text: &str| {
        build::event(&["mother"], &[pb::InformationCategory::Plan], Kind::Note(pb::Note { text: text.into() }))
    };
    let (c, p) = as_org(&on_b, YOUTH);
    let mut youth = CaseServiceClient::with_interceptor(c.clone(), p.clone());
    youth.append_events(append(family, build::no_stream(), build::new_family())).await.unwrap();
    youth.append_events(append(family, build::any(), vec![plan_note("eerste")])).await.unwrap();
    let mut consent = ConsentServiceClient::with_interceptor(c, p);
    let grant = pb::GrantConsentRequest {
        family_id: family.into(),
        event_id: build::id(),
        consent_id: "c-feed".into(),
        subject_member_id: "mother".into(),
        categories: vec![pb::InformationCategory::Plan as i32],
        recipients: vec![pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(GI.into())) }],
        purpose: pb::Purpose::Care as i32,
        valid_from: None,
        valid_until: None,
        given_by_member_ids: vec!["mother".into()],
        method: Some(pb::ConsentMethod { method: Some(pb::consent_method::Method::SignedFormReference("f".into())) }),
        requested_reason: "Afstemming".into(),
        given_by_guardian: false,
    };
    consent.grant_consent(grant).await.unwrap();

    let (c, p) = as_org(&on_a, GI);
    let request = pb::SubscribeRequest {
        family_id: family.into(),
        purpose: pb::Purpose::Care as i32,
        resume_token: String::new(),
    };
    let mut feed = FeedServiceClient::with_interceptor(c.clone(), p.clone())
        .subscribe(request.clone())
        .await
        .unwrap()
        .into_inner();
    // The same organisation also follows every family on A: commits made on B reach it
    // through A's router, whose cache of the family is behind.
    let every = pb::SubscribeRequest { family_id: String::new(), ..request.clone() };
    let mut every = FeedServiceClient::with_interceptor(c, p).subscribe(every).await.unwrap().into_inner();
    let next = async |feed: &mut tonic::Streaming<pb::FeedMessage>| {
        tokio::time::timeout(std::time::Duration::from_secs(10), feed.message())
            .await
            .expect("no message")
            .unwrap()
            .unwrap()
    };
    let texts = |m: &pb::FeedMessage| -> Vec<String> {
        m.items
            .iter()
            .filter_map(|i| match i.event.as_ref()?.kind.as_ref()? {
                Kind::Note(n) => Some(n.text.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(texts(&next(&mut feed).await), vec!["eerste".to_string()]);
    youth.append_events(append(family, build::any(), vec![plan_note("tweede")])).await.unwrap();
    assert_eq!(texts(&next(&mut feed).await), vec!["tweede".to_string()]);

    let withdraw = pb::WithdrawConsentRequest {
        family_id: family.into(),
        event_id: build::id(),
        consent_id: "c-feed".into(),
        withdrawn_by_member_id: "mother".into(),
        reason: "Niet meer".into(),
        by_guardian: false,
    };
    consent.withdraw_consent(withdraw).await.unwrap();
    youth.append_events(append(family, build::any(), vec![plan_note("derde")])).await.unwrap();
    let (c, p) = as_org(&on_b, GI);
    let mut gi_case = CaseServiceClient::with_interceptor(c, p);
    gi_case.append_events(append(family, build::any(), vec![plan_note("eigen notitie")])).await.unwrap();
    let mut ended = false;
    loop {
        let m = next(&mut feed).await;
        ended |= m.access_ended;
        assert!(!texts(&m).contains(&"derde".to_string()), "delivered after the withdrawal");
        if texts(&m).contains(&"eigen notitie".to_string()) {
            break;
        }
    }
    assert!(ended, "access ended was said");
    // The every-family stream: "tweede" arrived, and nothing after the withdrawal but the
    // GI's own note.
    let mut seen = Vec::new();
    let mut every_ended = false;
    while !seen.contains(&"eigen notitie".to_string()) {
        let m = next(&mut every).await;
        every_ended |= m.access_ended;
        seen.extend(texts(&m));
    }
    assert!(seen.contains(&"tweede".to_string()) && !seen.contains(&"derde".to_string()), "{seen:?}");
    assert!(every_ended, "access ended was said on the every-family stream");

    // Youth care reads its own plans on A (A's cache holds them), then its privacy officer
    // erases them on B: A's next view has only "erased on D" where they were.
    let own_view = async || {
        let (c, p) = as_org(&on_a, YOUTH);
        let request = pb::GetDossierRequest {
            family_id: family.into(),
            purpose: pb::Purpose::Care as i32,
            break_the_glass: None,
        };
        DossierServiceClient::with_interceptor(c, p).get_dossier(request).await.unwrap().into_inner()
    };
    use crate::corrections::note_texts;
    assert!(note_texts(&own_view().await).contains(&"eerste".to_string()));
    let (c, _) = as_org(&on_b, YOUTH);
    let mut office = gezinsdossier_proto::v1::audit_service_client::AuditServiceClient::with_interceptor(
        c,
        Professional::new("fg", "privacy_officer").claiming(YOUTH),
    );
    let erase = pb::EraseRecordsRequest {
        family_id: family.into(),
        subject_member_id: "mother".into(),
        categories: vec![pb::InformationCategory::Plan as i32],
        ground: pb::ErasureGround::Avg17 as i32,
        requested_by: pb::ErasureRequestedBy::Subject as i32,
    };
    let erased = office.erase_records(erase).await.unwrap().into_inner();
    assert_eq!(erased.events_shredded, 3, "{erased:?}");
    let after = own_view().await;
    assert!(
        !note_texts(&after).iter().any(|t| ["eerste", "tweede", "derde"].contains(&t.as_str())),
        "{:?}",
        note_texts(&after)
    );
    assert_eq!(after.timeline.iter().filter(|i| i.erased_at.is_some()).count(), 3);
    a.kill();
    b.kill();
}
