//! The tamper-evident log end to end: the real binary publishes signed tree heads while it
//! serves; `gezinsdossier verify` checks a copy of its data directory offline with only the
//! public key, and names the tampering it finds.

use crate::support::build::{self, any, append};
use crate::support::{Binary, Professional, VGGZ};
use gezinsdossier_ledger::store::sqlite::LogFile;
use gezinsdossier_ledger::treehead;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gezinsdossier")).args(args).output().expect("run gezinsdossier")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_passes_a_copy_of_the_data_and_catches_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, endpoint) = Binary::start(
        &["--data-dir", data.to_str().unwrap(), "--tree-head-every-events", "5", "--tree-head-interval-ms", "50"],
        &tmp.path().join("server.log"),
    );
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let mut client = CaseServiceClient::with_interceptor(channel, Professional::new("p", "psychiater").claiming(VGGZ));
    for f in 0..3 {
        let family = format!("fam-v{f}");
        client.append_events(append(&family, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
        for i in 0..8 {
            client.append_events(append(&family, any(), vec![build::note("mother", &format!("{i}"))])).await.unwrap();
        }
    }
    // Wait (bounded) until the publisher has signed the log; reading takes no lock.
    let mut heads = 0;
    for _ in 0..200 {
        heads = LogFile::open(&data).unwrap().stream(&treehead::stream()).unwrap().len();
        if heads >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(heads >= 2, "the server published {heads} tree heads");
    server.kill();

    let key = cli(&["public-key", "--signing-key", data.join("treehead.key").to_str().unwrap()]);
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");

    let copy = tmp.path().join("copy");
    copy_dir(&data, &copy);
    let pinned = tmp.path().join("pinned.checkpoint");
    let ok = cli(&[
        "verify",
        "--data-dir",
        copy.to_str().unwrap(),
        "--public-key",
        &key,
        "--save-checkpoint",
        pinned.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.starts_with("OK: ") && stdout.contains("signed tree heads verified"), "{stdout}");
    // 3 families of a member and 8 notes, all sealed, none shredded.
    assert!(stdout.contains("27 payloads encrypted, 0 of them shredded"), "{stdout}");

    // The auditor's routine: the checkpoint kept from the last audit pins the next one.
    let kept = std::fs::read_to_string(&pinned).unwrap();
    assert!(kept.starts_with("gezinsdossier.example/local\n"), "{kept}");
    let pinned_size: u64 = kept.lines().nth(1).unwrap().parse().unwrap();
    let against = |dir: &Path| {
        cli(&[
            "verify",
            "--data-dir",
            dir.to_str().unwrap(),
            "--public-key",
            &key,
            "--checkpoint",
            pinned.to_str().unwrap(),
        ])
    };
    let again = against(&data);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains(&format!("extends the pinned checkpoint of gezinsdossier.example/local at size {pinned_size}"))
    );
    // The same checks from a flat export of the log (faster than the SQLite file).
    let export = tmp.path().join("log.export");
    let exported = cli(&["export-log", "--data-dir", data.to_str().unwrap(), "--out", export.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let args = [
        "verify",
        "--export",
        export.to_str().unwrap(),
        "--public-key",
        &key,
        "--checkpoint",
        pinned.to_str().unwrap(),
    ];
    let flat = cli(&args);
    let flat_out = String::from_utf8_lossy(&flat.stdout);
    assert!(flat.status.success(), "{}", String::from_utf8_lossy(&flat.stderr));
    let data_out = String::from_utf8_lossy(&again.stdout);
    let root = |out: &str| out.split("root ").nth(1).and_then(|r| r.split(' ').next()).map(str::to_owned);
    assert!(flat_out.starts_with("OK: ") && root(&flat_out) == root(&data_out), "{flat_out} vs {data_out}");
    // A copy cut back to its first signed head, everything after it deleted, passes on its
    // own but not against the pinned checkpoint.
    let cut = tmp.path().join("cut");
    copy_dir(&data, &cut);
    let heads = LogFile::open(&cut).unwrap().stream(&treehead::stream()).unwrap();
    let first_head = heads[0].position;
    rusqlite::Connection::open(cut.join("events.sqlite3"))
        .unwrap()
        .execute("DELETE FROM events WHERE position > ?1", [first_head as i64])
        .unwrap();
    assert!(cli(&["verify", "--data-dir", cut.to_str().unwrap(), "--public-key", &key]).status.success());
    let rolled_back = against(&cut);
    let stderr = String::from_utf8_lossy(&rolled_back.stderr);
    assert!(!rolled_back.status.success());
    assert!(
        stderr.contains(&format!("holds {} events, fewer than the {pinned_size}", first_head + 1))
            && stderr.contains("rolled back"),
        "{stderr}"
    );

    let conn = rusqlite::Connection::open(copy.join("events.sqlite3")).unwrap();
    let mut payload: Vec<u8> =
        conn.query_row("SELECT payload FROM events WHERE position = 0", [], |r| r.get(0)).unwrap();
    *payload.last_mut().unwrap() ^= 1;
    conn.execute("UPDATE events SET payload = ?1 WHERE position = 0", [payload]).unwrap();
    drop(conn);
    let bad = cli(&["verify", "--data-dir", copy.to_str().unwrap(), "--public-key", &key]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("TAMPERED") && stderr.contains("stream family-fam-v0 revision 0"), "{stderr}");

    // A key that is not the service's does not verify its heads.
    let other = "00".repeat(32);
    assert!(!cli(&["verify", "--data-dir", data.to_str().unwrap(), "--public-key", &other]).status.success());
}

/// The README tour: `gezinsdossier demo` runs one family through the real server and ends
/// with the verifier passing the data and catching a tampered copy.
#[test]
fn the_demo_tour_runs_and_catches_its_own_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["demo", "--dir", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "-- dossier as youth care",
        "-- dossier as GI (gezinsvoogd), purpose child protection",
        "flagged for review: true",
        "Sanne's report",
        "EMERGENCY: Melding",
        "-- verify (public key",
        "signed tree heads verified",
        "-- verify the copy: TAMPERED: at global position",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // The diagnosis is v-ggz's alone: neither other organisation's view shows its intake.
    assert!(!stdout.lines().any(|l| l.contains("Intake") && !l.contains("[own record]")), "{stdout}");
    assert!(dir.path().join("rapport-sanne.html").exists());
}

/// Proofs over gRPC: an auditor checks, with only the public key, that an event is in the
/// signed log and that a later head extends an earlier one.
#[tokio::test]
async fn inclusion_and_consistency_proofs_verify_against_signed_heads() {
    use gezinsdossier_ledger::merkle::TreeHash;
    use gezinsdossier_ledger::merkle::verify::{verify_consistency, verify_inclusion};
    use gezinsdossier_ledger::treehead::{SignedTreeHead, TreeHeadSigner};
    use gezinsdossier_proto::v1 as pb;
    use gezinsdossier_proto::v1::log_service_client::LogServiceClient;

    let server = crate::support::TestServer::start_with(|c| {
        c.tree_head_every_events = 5;
        c.tree_head_interval_ms = 50;
    })
    .await;
    let mut case = server.case_client(VGGZ, "p", "psychiater").await;
    let mut log = LogServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("fg", "privacy_officer"),
    );
    let head_of_at_least = async |log: &mut LogServiceClient<_>, size: u64| -> pb::TreeHead {
        for _ in 0..200 {
            if let Ok(h) = log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await {
                let h = h.into_inner();
                if h.size >= size {
                    return h;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no tree head of size {size}");
    };
    case.append_events(append("fam-p", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    // Heads are published into the log as well, so a case event's position comes from its
    // append acknowledgement, never from counting.
    let mut note_positions = Vec::new();
    for i in 0..6 {
        let ack = case.append_events(append("fam-p", any(), vec![build::note("mother", &i.to_string())])).await;
        note_positions.extend(ack.unwrap().into_inner().global_positions);
    }
    let vggz_note = note_positions[2];
    let first = head_of_at_least(&mut log, note_positions[5] + 1).await;
    let key = TreeHeadSigner::load_or_create(&server.data_dir.join("treehead.key")).unwrap();
    let signed = |h: &pb::TreeHead| SignedTreeHead {
        size: h.size,
        root: h.root.clone(),
        timestamp_micros: h.timestamp_micros,
        key_id: h.key_id.clone(),
        signature: h.signature.clone(),
        checkpoint: Some(h.checkpoint.clone()),
    };
    signed(&first).verify(key.public_key()).expect("head and its checkpoint signed by the server's key");
    let (checkpoint, _) = gezinsdossier_ledger::checkpoint::open(&first.checkpoint, key.public_key(), &[]).unwrap();
    assert_eq!((checkpoint.size, checkpoint.root.to_hex()), (first.size, first.root.clone()));

    let proof = log
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            position: vggz_note,
            tree_size: first.size,
            include_event_bytes: true,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<TreeHash> = proof.hashes.iter().map(|h| TreeHash::try_from_slice(h).unwrap()).collect();
    let root = TreeHash::from_hex(&first.root).unwrap();
    assert_eq!(proof.root, first.root);
    verify_inclusion(&proof.canonical_event, vggz_note, first.size, &path, &root)
        .expect("the note is in the signed tree");
    assert!(path.len() <= 64 - first.size.leading_zeros() as usize);
    let mut altered = proof.canonical_event.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(verify_inclusion(&altered, vggz_note, first.size, &path, &root).is_err());

    // A tree larger than the log is out of range, and says how far the log goes.
    let beyond = log
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            position: 0,
            tree_size: 1_000_000_000,
            include_event_bytes: false,
        })
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::OutOfRange, "{beyond:?}");
    assert!(beyond.message().contains("fewer than 1000000000 events"), "{}", beyond.message());

    for i in 0..6 {
        case.append_events(append("fam-p", any(), vec![build::note("mother", &format!("later {i}"))])).await.unwrap();
    }
    let second = head_of_at_least(&mut log, first.size + 6).await;
    let consistency = log
        .get_consistency_proof(pb::GetConsistencyProofRequest { first_size: first.size, second_size: second.size })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<TreeHash> = consistency.hashes.iter().map(|h| TreeHash::try_from_slice(h).unwrap()).collect();
    verify_consistency(first.size, &root, second.size, &TreeHash::from_hex(&second.root).unwrap(), &path)
        .expect("the later head extends the earlier one");

    // A disclosure to youth care under the mother's consent; then the audit row and the
    // mother's report line each carry a proof that verifies against the signed head.
    let mut consent = server.consent_client(VGGZ, "p", "psychiater").await;
    let youth_org = crate::support::YOUTH_CARE;
    consent
        .grant_consent(pb::GrantConsentRequest {
            family_id: "fam-p".into(),
            event_id: build::id(),
            consent_id: "c1".into(),
            subject_member_id: "mother".into(),
            categories: vec![pb::InformationCategory::TreatmentNotes as i32],
            recipients: vec![pb::Recipient {
                recipient: Some(pb::recipient::Recipient::OrganisationId(youth_org.into())),
            }],
            purpose: pb::Purpose::Care as i32,
            given_by_member_ids: vec!["mother".into()],
            method: Some(pb::ConsentMethod {
                method: Some(pb::consent_method::Method::SignedFormReference("f".into())),
            }),
            requested_reason: "afstemming".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut youth = server.dossier_client(youth_org, "jh", "casusregisseur").await;
    let care =
        pb::GetDossierRequest { family_id: "fam-p".into(), purpose: pb::Purpose::Care as i32, break_the_glass: None };
    youth.get_dossier(care).await.unwrap();
    let mut audit = gezinsdossier_proto::v1::audit_service_client::AuditServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("fg", "privacy_officer"),
    );
    let query = |proofs: bool| pb::QueryAccessLogRequest {
        family_id: "fam-p".into(),
        include_proofs: proofs,
        ..Default::default()
    };
    let position = audit
        .query_access_log(query(false))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .global_position;
    // Wait for a signed head covering the disclosure.
    head_of_at_least(&mut log, position + 1).await;
    let check = async |log: &mut LogServiceClient<_>,
                       position: u64,
                       leaf_hex: &str,
                       path: &[Vec<u8>],
                       head: &pb::TreeHead| {
        let path: Vec<TreeHash> = path.iter().map(|h| TreeHash::try_from_slice(h).unwrap()).collect();
        assert!(!path.is_empty(), "a proof is attached");
        // The access-log event is youth care's own (it asked): it may have the bytes.
        let request = pb::GetInclusionProofRequest { position, tree_size: head.size, include_event_bytes: true };
        let full = log.get_inclusion_proof(request).await.unwrap().into_inner();
        assert_eq!(gezinsdossier_ledger::merkle::leaf_hash(&full.canonical_event).to_hex(), leaf_hex);
        assert_eq!(full.leaf_hash, leaf_hex);
        verify_inclusion(&full.canonical_event, position, head.size, &path, &TreeHash::from_hex(&head.root).unwrap())
            .expect("the attached proof verifies against the signed head");
    };
    let row = audit.query_access_log(query(true)).await.unwrap().into_inner().message().await.unwrap().unwrap();
    let head = row.tree_head.clone().expect("rows carry the signed head");
    let mut youth_log = LogServiceClient::with_interceptor(
        server.channel(Some(youth_org)).await,
        Professional::new("jh", "casusregisseur"),
    );
    check(&mut youth_log, row.global_position, &row.leaf_hash, &row.inclusion_proof, &head).await;
    let mut portal = gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("portal", "psychiater").member_authenticated_by("digid_substantieel"),
    );
    let ask = pb::GetAccessReportRequest {
        family_id: "fam-p".into(),
        subject_member_id: "mother".into(),
        requested_by_member_id: "mother".into(),
        language: 0,
        include_line_bytes: false,
    };
    let report = portal.get_access_report(ask).await.unwrap().into_inner();
    let head = report.tree_head.clone().expect("the report carries the signed head");
    signed(&head).verify(key.public_key()).unwrap();
    let line = &report.entries[0];
    assert!(!line.refused);
    check(&mut youth_log, line.position, &line.leaf_hash, &line.inclusion_proof, &head).await;

    let err = log
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            position: vggz_note,
            tree_size: 1_000_000,
            include_event_bytes: false,
        })
        .await
        .unwrap_err();
    // Beyond the log: not worth a retry.
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    // Hashes are for every registered organisation; the bytes of VGGZ's event are not
    // youth care's to read.
    youth_log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await.unwrap();
    let hashes_only =
        pb::GetInclusionProofRequest { position: vggz_note, tree_size: first.size, include_event_bytes: false };
    let proof = youth_log.get_inclusion_proof(hashes_only).await.unwrap().into_inner();
    assert!(proof.canonical_event.is_empty() && proof.leaf_hash.len() == 64, "{proof:?}");
    let bytes = pb::GetInclusionProofRequest { include_event_bytes: true, ..hashes_only };
    assert_eq!(youth_log.get_inclusion_proof(bytes).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    // The refusal comes before any proof work: a tree beyond the log is refused as such, not
    // answered with how far the log goes.
    let beyond = pb::GetInclusionProofRequest { tree_size: 1_000_000, ..bytes };
    assert_eq!(youth_log.get_inclusion_proof(beyond).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    server.stop().await;
}

/// Operators make the shared signing key for a Secret before the first replica starts; it
/// must be private, match `public-key`, and never be overwritten by a second run.
#[test]
fn a_new_signing_key_is_private_matches_public_key_and_is_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("treehead.key");
    let run =
        |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier")).args(args).output().unwrap();
    let made = run(&["keys", "new-signing-key", file.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let shown = run(&["public-key", "--signing-key", file.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&made.stdout), String::from_utf8_lossy(&shown.stdout));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&file).unwrap();
    let again = run(&["keys", "new-signing-key", file.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read(&file).unwrap(), before);
}
