//! The change feed over real gRPC: live delivery filtered like the dossier, each message a
//! disclosure committed before it arrives, withdrawal mid-stream, resume tokens bound to
//! their organisation, and nothing delivered when the disclosure cannot be committed.

use crate::consent_dossier::{FAMILY, family, grant};
use crate::support::build::{self, any, append};
use crate::support::{GI, Professional, TestServer, YOUTH_CARE};
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_ledger::store::faulty::Fault;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::feed_service_client::FeedServiceClient;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use std::time::Duration;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Feed = FeedServiceClient<InterceptedService<Channel, Professional>>;

pub(crate) async fn feed(server: &TestServer, org: &str) -> Feed {
    // Like a dossier, a catch-up message holds everything since the token.
    FeedServiceClient::with_interceptor(server.channel(Some(org)).await, server.professional(org, "p-1", "gezinsvoogd"))
        .max_decoding_message_size(usize::MAX)
}

pub(crate) fn subscribe(token: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest { family_id: FAMILY.into(), purpose: pb::Purpose::Care as i32, resume_token: token.into() }
}

pub(crate) async fn next(stream: &mut tonic::Streaming<pb::FeedMessage>) -> Result<pb::FeedMessage, tonic::Status> {
    match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => panic!("the feed ended"),
        Ok(Err(status)) => Err(status),
        Err(_) => panic!("no feed message within 10 s"),
    }
}

fn texts(m: &pb::FeedMessage) -> Vec<String> {
    m.items
        .iter()
        .filter_map(|i| match i.event.as_ref()?.kind.as_ref()? {
            Kind::Note(n) => Some(n.text.clone()),
            Kind::PlanAgreed(p) => Some(p.summary.clone()),
            _ => None,
        })
        .collect()
}

/// The family, with the mother's consent that the GI may see her plans; the consent and
/// case clients of youth care, which wrote both.
async fn family_with_plan_consent(server: &TestServer) -> (crate::support::ConsentClient, crate::support::CaseClient) {
    family(server).await;
    let mut consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    consent.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    (consent, server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await)
}

fn withdraw_plan_consent() -> pb::WithdrawConsentRequest {
    pb::WithdrawConsentRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        consent_id: "c-plan".into(),
        withdrawn_by_member_id: "mother".into(),
        reason: "Niet meer".into(),
        by_guardian: false,
    }
}

fn note(category: C, text: &str) -> pb::CaseEvent {
    build::event(&["mother"], &[category], Kind::Note(pb::Note { text: text.into() }))
}

#[tokio::test]
async fn the_feed_delivers_what_the_dossier_would_show_each_message_a_disclosure_first() {
    let server = TestServer::start().await;
    let (mut consent, mut youth) = family_with_plan_consent(&server).await;

    let mut stream = feed(&server, GI).await.subscribe(subscribe("")).await.unwrap().into_inner();
    // First what is visible now (nothing yet: the gezinsplan also concerns the child, whom
    // the consent does not cover), with a token.
    let first = next(&mut stream).await.unwrap();
    assert!(texts(&first).is_empty(), "{:?}", texts(&first));
    assert!(!first.resume_token.is_empty());

    // Live: a plan note arrives; a treatment note (not covered) never does. The disclosure
    // is in the access log before the message is received, marked as a feed delivery.
    youth.append_events(append(FAMILY, any(), vec![note(C::TreatmentNotes, "geheim")])).await.unwrap();
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Nieuwe afspraak")])).await.unwrap();
    let live = next(&mut stream).await.unwrap();
    assert_eq!(texts(&live), vec!["Nieuwe afspraak".to_string()]);
    let log = server.access_log(FAMILY).await;
    assert!(
        log.iter()
            .any(|e| matches!(e, AccessLogEvent::Disclosed(d) if d.via_feed && d.requester.organisation_id == GI))
    );
    let token = live.resume_token.clone();

    // Withdrawal mid-stream: access ended is said (never what), and nothing of the mother's
    // plan is delivered after it; the GI's own note still is.
    consent.withdraw_consent(withdraw_plan_consent()).await.unwrap();
    let ended = next(&mut stream).await.unwrap();
    assert!(ended.access_ended && ended.items.is_empty(), "{ended:?}");
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Na intrekking")])).await.unwrap();
    let mut gi_case = server.case_client(GI, "gv-3", "gezinsvoogd").await;
    gi_case.append_events(append(FAMILY, any(), vec![note(C::Plan, "Eigen notitie GI")])).await.unwrap();
    let mut after = next(&mut stream).await.unwrap();
    while after.items.is_empty() {
        after = next(&mut stream).await.unwrap();
    }
    assert_eq!(texts(&after), vec!["Eigen notitie GI".to_string()], "nothing of the withdrawn consent");
    drop(stream);

    // Resume: from the token, only what came after it (the own note, not the plan note);
    // another organisation's token is refused and the refusal recorded.
    let mut resumed = feed(&server, GI).await.subscribe(subscribe(&token)).await.unwrap().into_inner();
    let again = next(&mut resumed).await.unwrap();
    assert!(!texts(&again).contains(&"Nieuwe afspraak".to_string()), "{:?}", texts(&again));
    assert!(texts(&again).contains(&"Eigen notitie GI".to_string()), "{:?}", texts(&again));
    let err = feed(&server, YOUTH_CARE).await.subscribe(subscribe(&token)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(server.access_log(FAMILY).await.iter().any(|e| matches!(e,
        AccessLogEvent::FunctionRefused(f) if f.function.as_str() == "subscribe_feed")));
    let err = feed(&server, GI).await.subscribe(subscribe("zz")).await.unwrap_err();
    assert!(err.message().starts_with("resume_token:"), "{}", err.message());

    // The mother's report shows the delivery as such: no professional asked.
    let report = server.member_report(FAMILY, "mother", "mother").await;
    assert!(report.entries.iter().any(|e| e.via_feed && !e.refused), "{:?}", report.entries);
    assert!(report.html.contains("ontvangen via de feed"));
    // Shutting down ends the open feed (it does not hold the server up).
    server.stop().await;
    assert_eq!(resumed.message().await.unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn nothing_is_delivered_when_the_disclosure_cannot_be_committed() {
    let server = TestServer::start().await;
    let (_consent, mut youth) = family_with_plan_consent(&server).await;
    let mut stream = feed(&server, GI).await.subscribe(subscribe("")).await.unwrap().into_inner();
    next(&mut stream).await.unwrap();
    server.store.fail_appends("disclosures-", Fault::BeforeWrite);
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Mag niet weglekken")])).await.unwrap();
    let err = next(&mut stream).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    server.store.clear();
    server.stop().await;
}

/// A subscriber that stops reading holds only its own bounded buffer; once it has been
/// full too long, the stream ends with RESOURCE_EXHAUSTED, and the last token received
/// resumes without loss.
#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_and_resumes_without_loss() {
    let server = TestServer::start_with(|c| c.feed_slow_consumer_ms = 300).await;
    family(&server).await;
    let mut gi_case = server.case_client(GI, "gv-3", "gezinsvoogd").await;
    gi_case.append_events(append(FAMILY, any(), vec![note(C::Plan, "Eerste eigen notitie")])).await.unwrap();
    let mut stream = feed(&server, GI).await.subscribe(subscribe("")).await.unwrap().into_inner();
    // The GI's own notes are delivered to it (own records); each is one message. Large
    // ones fill the transport's windows too, so the server's buffer fills.
    let text = "x".repeat(64 * 1024);
    let mut written = Vec::new();
    for i in 0..150 {
        let event = note(C::Plan, &format!("{i} {text}"));
        written.push(event.event_id.clone());
        gi_case.append_events(append(FAMILY, any(), vec![event])).await.unwrap();
        // One message per commit: the follower wakes between appends.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut seen = std::collections::HashSet::new();
    let mut token = String::new();
    let status = loop {
        let Ok(read) = tokio::time::timeout(Duration::from_secs(10), stream.message()).await else {
            panic!("no status after {} of {} items", seen.len(), written.len())
        };
        match read {
            Ok(Some(m)) => {
                seen.extend(m.items.iter().map(|i| i.event_id.clone()));
                token = m.resume_token;
            }
            Ok(None) => panic!("ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(seen.len() < written.len(), "it really fell behind");
    let mut resumed = feed(&server, GI).await.subscribe(subscribe(&token)).await.unwrap().into_inner();
    while seen.len() < written.len() {
        let m = next(&mut resumed).await.unwrap();
        seen.extend(m.items.iter().map(|i| i.event_id.clone()));
    }
    assert!(written.iter().all(|id| seen.contains(id)), "nothing lost");
    server.stop().await;
}

/// AVG art. 19 through the feed: a correction reaches the earlier recipient's feed as the
/// corrected item and a notice; a retraction as a notice, and the content is gone.
#[tokio::test]
async fn corrections_and_retractions_reach_the_recipients_feed_with_their_notices() {
    let server = TestServer::start().await;
    let (_consent, mut youth) = family_with_plan_consent(&server).await;
    let original = note(C::Plan, "Afspraak op dinsdag");
    let original_id = original.event_id.clone();
    youth.append_events(append(FAMILY, any(), vec![original])).await.unwrap();
    let mut stream = feed(&server, GI).await.subscribe(subscribe("")).await.unwrap().into_inner();
    assert_eq!(texts(&next(&mut stream).await.unwrap()), vec!["Afspraak op dinsdag".to_string()]);

    let correction = |replacement: Option<&str>| {
        build::event(
            &["mother"],
            &[C::Plan],
            Kind::Correction(pb::Correction {
                corrects_event_id: original_id.clone(),
                reason: "Verkeerde dag".into(),
                replacement: replacement.map(|text| pb::CorrectedContent {
                    kind: Some(pb::corrected_content::Kind::Note(pb::Note { text: text.into() })),
                }),
            }),
        )
    };
    youth.append_events(append(FAMILY, any(), vec![correction(Some("Afspraak op woensdag"))])).await.unwrap();
    let mut texts_seen = Vec::new();
    let mut kinds = Vec::new();
    while !(texts_seen.contains(&"Afspraak op woensdag".to_string())
        && kinds.contains(&(pb::NoticeKind::Correction as i32)))
    {
        let m = next(&mut stream).await.unwrap();
        texts_seen.extend(texts(&m));
        kinds.extend(m.notices.iter().map(|n| n.kind));
        assert!(m.notices.iter().all(|n| n.about_event_id == original_id && n.recipient_organisation_id == GI));
    }
    youth.append_events(append(FAMILY, any(), vec![correction(None)])).await.unwrap();
    loop {
        let m = next(&mut stream).await.unwrap();
        assert!(texts(&m).is_empty(), "nothing of a retracted item: {:?}", texts(&m));
        if m.notices.iter().any(|n| n.kind == pb::NoticeKind::Retraction as i32) {
            assert_eq!(m.retracted_event_ids, vec![original_id.clone()], "the retraction said as such");
            break;
        }
        assert!(m.retracted_event_ids.is_empty());
    }
    server.stop().await;
}

/// Resume after a kill -9 of the real binary: the token from before the crash, given to
/// the restarted server, delivers everything after it; nothing acknowledged is lost, and
/// repeats are recognisable by event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_resumes_after_the_server_was_killed() {
    use crate::support::{Binary, VGGZ};
    use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let args = ["--data-dir", dir.to_str().unwrap()];
    let start = || Binary::start(&args, &dir.with_extension("log"));
    let connect = async |endpoint: &str, org: &str| {
        crate::support::wait_for_health(endpoint.to_owned(), None).await;
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned()).unwrap().connect().await.unwrap();
        (channel, Professional::new("p", "psychiater").claiming(org))
    };
    let (mut server, endpoint) = start();
    let (channel, vggz) = connect(&endpoint, VGGZ).await;
    let mut case = CaseServiceClient::with_interceptor(channel.clone(), vggz.clone());
    case.append_events(append(FAMILY, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let mut stream =
        FeedServiceClient::with_interceptor(channel, vggz.clone()).subscribe(subscribe("")).await.unwrap().into_inner();
    let token = next(&mut stream).await.unwrap().resume_token;
    let mut written = Vec::new();
    for i in 0..5 {
        let event = note(C::Plan, &format!("voor de crash {i}"));
        written.push(event.event_id.clone());
        case.append_events(append(FAMILY, any(), vec![event])).await.unwrap();
    }
    server.kill();

    let (_server, endpoint) = start();
    let (channel, vggz) = connect(&endpoint, VGGZ).await;
    let mut resumed =
        FeedServiceClient::with_interceptor(channel, vggz).subscribe(subscribe(&token)).await.unwrap().into_inner();
    let mut seen = std::collections::HashSet::new();
    while !written.iter().all(|id| seen.contains(id)) {
        let m = next(&mut resumed).await.unwrap();
        seen.extend(m.items.iter().map(|i| i.event_id.clone()));
    }
}

fn subscribe_every(token: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest { family_id: String::new(), resume_token: token.into(), ..subscribe("") }
}

/// Reads until `done` holds of everything received, skipping token-only messages; returns
/// the messages that were about a family.
async fn read_until(
    stream: &mut tonic::Streaming<pb::FeedMessage>,
    done: impl Fn(&[pb::FeedMessage]) -> bool,
) -> Vec<pb::FeedMessage> {
    let mut got = Vec::new();
    while !done(&got) {
        let m = next(stream).await.unwrap();
        assert!(!m.resume_token.is_empty(), "every message carries a token");
        if !m.family_id.is_empty() {
            got.push(m);
        }
    }
    got
}

fn all_texts(messages: &[pb::FeedMessage]) -> Vec<String> {
    messages.iter().flat_map(texts).collect()
}

/// One subscription for every family: it starts at the log's head, delivers each family's
/// changes filtered like that family's dossier, says when access ends, picks up a family
/// that gives it a basis later, and never mentions a family where it has none (nor records
/// anything there).
#[tokio::test]
async fn one_subscription_follows_every_family_with_a_basis_and_no_other() {
    let server = TestServer::start().await;
    let (mut consent, mut youth) = family_with_plan_consent(&server).await;
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Van voor het abonnement")])).await.unwrap();
    let other = "fam-zonder-grondslag";
    youth.append_events(append(other, build::no_stream(), vec![build::parent("mother")])).await.unwrap();

    let mut stream = feed(&server, GI).await.subscribe(subscribe_every("")).await.unwrap().into_inner();
    let first = next(&mut stream).await.unwrap();
    assert!(first.family_id.is_empty() && first.items.is_empty() && !first.resume_token.is_empty(), "{first:?}");

    youth.append_events(append(other, any(), vec![note(C::Plan, "Niet voor de GI")])).await.unwrap();
    youth.append_events(append(FAMILY, any(), vec![note(C::TreatmentNotes, "geheim")])).await.unwrap();
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Live in het gezin")])).await.unwrap();
    let got = read_until(&mut stream, |m| all_texts(m).contains(&"Live in het gezin".to_string())).await;
    assert_eq!(all_texts(&got), vec!["Live in het gezin".to_string()], "from now, filtered like the dossier");
    assert!(got.iter().all(|m| m.family_id == FAMILY && !m.disclosure_event_id.is_empty()), "{got:?}");

    // A family that gives the GI a basis after the subscription began.
    let later = "fam-later";
    youth.append_events(append(later, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let mut basis = grant("c-later", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"]);
    basis.family_id = later.into();
    consent.grant_consent(basis).await.unwrap();
    youth.append_events(append(later, any(), vec![note(C::Plan, "Nieuw gezin")])).await.unwrap();
    let got = read_until(&mut stream, |m| all_texts(m).contains(&"Nieuw gezin".to_string())).await;
    assert!(got.iter().all(|m| m.family_id == later), "{got:?}");

    // Withdrawal: access ended is said for that family, and nothing more of it arrives.
    consent.withdraw_consent(withdraw_plan_consent()).await.unwrap();
    let got = read_until(&mut stream, |m| m.iter().any(|m| m.access_ended)).await;
    assert!(got.iter().all(|m| m.family_id == FAMILY && m.items.is_empty()), "{got:?}");
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Na intrekking")])).await.unwrap();
    youth.append_events(append(later, any(), vec![note(C::Plan, "Daarna in het nieuwe gezin")])).await.unwrap();
    let got = read_until(&mut stream, |m| all_texts(m).contains(&"Daarna in het nieuwe gezin".to_string())).await;
    assert!(!all_texts(&got).contains(&"Na intrekking".to_string()), "{got:?}");

    // The family without a basis: no refusal, no disclosure, nothing of it in the feed.
    assert!(server.access_log(other).await.is_empty(), "{:?}", server.access_log(other).await);
    server.stop().await;
}

/// A token of a subscription to every family resumes it (on a new connection) with what
/// came after it; it cannot be used for one family, nor by another organisation.
#[tokio::test]
async fn an_every_family_token_resumes_after_itself_and_only_as_issued() {
    let server = TestServer::start().await;
    let (_consent, mut youth) = family_with_plan_consent(&server).await;
    let mut stream = feed(&server, GI).await.subscribe(subscribe_every("")).await.unwrap().into_inner();
    next(&mut stream).await.unwrap();
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Voor het token")])).await.unwrap();
    let got = read_until(&mut stream, |m| !m.is_empty()).await;
    let token = got.last().unwrap().resume_token.clone();
    drop(stream);
    for text in ["Na het token 1", "Na het token 2"] {
        youth.append_events(append(FAMILY, any(), vec![note(C::Plan, text)])).await.unwrap();
    }
    let mut resumed = feed(&server, GI).await.subscribe(subscribe_every(&token)).await.unwrap().into_inner();
    let got = read_until(&mut resumed, |m| all_texts(m).contains(&"Na het token 2".to_string())).await;
    let texts = all_texts(&got);
    assert!(
        texts.contains(&"Na het token 1".to_string()) && !texts.contains(&"Voor het token".to_string()),
        "{texts:?}"
    );

    let err = feed(&server, GI).await.subscribe(subscribe(&token)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("resume_token:"), "{}", err.message());
    let err = feed(&server, YOUTH_CARE).await.subscribe(subscribe_every(&token)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    server.stop().await;
}

/// A catch-up larger than a client accepts in one message (4 MiB by default) arrives in
/// parts under one disclosure; only the last part moves the token on.
#[tokio::test]
async fn a_large_catch_up_arrives_in_parts_under_one_disclosure() {
    let server = TestServer::start_with(|c| c.shutdown_grace_ms = 300).await;
    let (_consent, mut youth) = family_with_plan_consent(&server).await;
    let mut gi_case = server.case_client(GI, "gv-3", "gezinsvoogd").await;
    let text = "x".repeat(64 * 1024);
    let mut written = std::collections::HashSet::new();
    for i in 0..80 {
        let event = note(C::Plan, &format!("{i} {text}"));
        written.insert(event.event_id.clone());
        // Half the GI's own, half disclosed to it.
        let client = if i % 2 == 0 { &mut gi_case } else { &mut youth };
        client.append_events(append(FAMILY, any(), vec![event])).await.unwrap();
    }
    // A client with the default message limit.
    let mut client = FeedServiceClient::with_interceptor(
        server.channel(Some(GI)).await,
        server.professional(GI, "p-1", "gezinsvoogd"),
    );
    let mut stream = client.subscribe(subscribe("")).await.unwrap().into_inner();
    let mut parts = Vec::new();
    loop {
        let m = next(&mut stream).await.unwrap();
        let more = m.more_follows;
        parts.push(m);
        if !more {
            break;
        }
    }
    assert!(parts.len() >= 5, "{} parts", parts.len());
    let disclosure = &parts[0].disclosure_event_id;
    assert!(!disclosure.is_empty() && parts.iter().all(|p| &p.disclosure_event_id == disclosure));
    assert!(parts[..parts.len() - 1].iter().all(|p| p.resume_token == parts[0].resume_token));
    assert_ne!(parts.last().unwrap().resume_token, parts[0].resume_token);
    let seen: std::collections::HashSet<String> =
        parts.iter().flat_map(|p| p.items.iter().map(|i| i.event_id.clone())).collect();
    assert!(written.is_subset(&seen), "every item arrived");
    // Resuming from an earlier part repeats the batch: at least once, never a loss.
    let mut again = client.subscribe(subscribe(&parts[0].resume_token)).await.unwrap().into_inner();
    let m = next(&mut again).await.unwrap();
    assert!(m.more_follows && !m.items.is_empty());
    // That subscriber now stops reading, with megabytes in flight: the shutdown waits out
    // its grace period, not the subscriber.
    let stopped = tokio::time::timeout(Duration::from_secs(30), server.stop()).await;
    assert!(stopped.is_ok(), "a subscriber that stopped reading held the shutdown up");
    drop(again);
}

/// While the log moves with nothing for it, a subscriber to every family is still sent a
/// fresh token now and then (at most every 5 s), so that resuming does not re-read what
/// concerned nobody here; resuming from it goes on from there.
#[tokio::test]
async fn an_every_family_subscriber_is_sent_fresh_tokens_while_nothing_concerns_it() {
    let server = TestServer::start().await;
    let (_consent, mut youth) = family_with_plan_consent(&server).await;
    let mut stream = feed(&server, GI).await.subscribe(subscribe_every("")).await.unwrap().into_inner();
    let first = next(&mut stream).await.unwrap().resume_token;
    let other = "fam-niet-voor-de-gi";
    youth.append_events(append(other, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let mut attempts = 0;
    let checkpoint = loop {
        attempts += 1;
        assert!(attempts <= 40, "no fresh token in 20 s while the log moved");
        youth.append_events(append(other, any(), vec![note(C::Plan, "niet voor de GI")])).await.unwrap();
        let Ok(read) = tokio::time::timeout(Duration::from_millis(500), stream.message()).await else { continue };
        let m = read.unwrap().expect("the feed ended");
        assert!(m.family_id.is_empty() && m.items.is_empty() && m.notices.is_empty(), "only a token: {m:?}");
        break m.resume_token;
    };
    assert_ne!(checkpoint, first, "the token moved on");
    youth.append_events(append(FAMILY, any(), vec![note(C::Plan, "Na het nieuwe token")])).await.unwrap();
    let mut resumed = feed(&server, GI).await.subscribe(subscribe_every(&checkpoint)).await.unwrap().into_inner();
    let got = read_until(&mut resumed, |m| all_texts(m).contains(&"Na het nieuwe token".to_string())).await;
    assert!(got.iter().all(|m| m.family_id == FAMILY), "{got:?}");
    server.stop().await;
}
