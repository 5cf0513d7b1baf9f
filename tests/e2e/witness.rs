//! Witnesses end to end: the real `gezinsdossier witness` binary cosigns the real server's
//! checkpoints over HTTP, the server counts a head as published only once cosigned, an
//! auditor pins the cosigned checkpoint with `verify --checkpoint --witness-key`, and the
//! witness refuses a forked checkpoint.

use crate::support::build::{self, any, append};
use crate::support::{Binary, Professional, TestServer, VGGZ};
use gezinsdossier_ledger::checkpoint::{self, Checkpoint};
use gezinsdossier_ledger::merkle::TreeHash;
use gezinsdossier_ledger::note::VerifierKey;
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use gezinsdossier_ledger::witness::AddCheckpoint;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::log_service_client::LogServiceClient;
use gezinsdossier_services::cosigning::WitnessConfig;
use gezinsdossier_services::witness_http::{SubmitError, submit};
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_each_head_and_refuses_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let log_key_file = tmp.path().join("log.key");
    let log_key = TreeHeadSigner::load_or_create(&log_key_file).unwrap();
    let log_vkey = Checkpoint::log_key(checkpoint::DEFAULT_ORIGIN, log_key.public_key()).unwrap().to_string();
    let (_witness, witness_vkey, witness_url) = Binary::witness(
        &[
            "--name",
            "witness.example/w1",
            "--key",
            tmp.path().join("w.key").to_str().unwrap(),
            "--state",
            tmp.path().join("w.sqlite3").to_str().unwrap(),
            "--log",
            &log_vkey,
        ],
        &tmp.path().join("witness.log"),
    );
    let wkey = VerifierKey::parse(&witness_vkey).unwrap();

    let server = TestServer::start_with(|c| {
        c.signing_key = Some(log_key_file.clone());
        c.tree_head_every_events = 3;
        c.tree_head_interval_ms = 50;
        c.witnesses = vec![WitnessConfig { url: witness_url.clone(), vkey: witness_vkey.clone() }];
        c.required_cosignatures = 1;
    })
    .await;
    let mut log = LogServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("fg", "privacy_officer"),
    );
    let published = pb::GetLatestTreeHeadRequest { published_only: true };
    let not_yet = log.get_latest_tree_head(published).await.unwrap_err();
    assert_eq!(not_yet.code(), tonic::Code::NotFound, "{not_yet:?}");

    let mut case = server.case_client(VGGZ, "p", "psychiater").await;
    case.append_events(append("fam-w", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let mut last = 0;
    for round in 0..2 {
        for i in 0..4 {
            let ack = case
                .append_events(append("fam-w", any(), vec![build::note("mother", &format!("{round}-{i}"))]))
                .await
                .unwrap();
            last = *ack.into_inner().global_positions.last().unwrap();
        }
        // Wait (bounded) for a published head that covers the last note.
        let mut head = None;
        for _ in 0..400 {
            if let Ok(h) = log.get_latest_tree_head(published).await {
                let h = h.into_inner();
                if h.size > last {
                    head = Some(h);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let head = head.unwrap_or_else(|| {
            panic!(
                "no cosigned head past {last}; witness log:\n{}",
                std::fs::read_to_string(tmp.path().join("witness.log")).unwrap_or_default()
            )
        });
        assert!(head.published && head.cosignatures == 1 && head.required_cosignatures == 1, "{head:?}");
        let (cosigned, _) =
            checkpoint::open(&head.cosigned_checkpoint, log_key.public_key(), std::slice::from_ref(&wkey))
                .expect("cosigned by the witness");
        assert_eq!((cosigned.size, cosigned.root.to_hex()), (head.size, head.root.clone()));
    }

    // Let the last head be cosigned too, so the witness holds what we read here.
    let mut head = log.get_latest_tree_head(published).await.unwrap().into_inner();
    for _ in 0..400 {
        let newest = log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await.unwrap().into_inner();
        if newest.published && newest.size == head.size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        head = log.get_latest_tree_head(published).await.unwrap().into_inner();
    }

    // The auditor pins the cosigned checkpoint and verifies the data against it.
    let pinned = tmp.path().join("pinned.checkpoint");
    std::fs::write(&pinned, &head.cosigned_checkpoint).unwrap();
    let public_key = hex::encode(log_key.public_key());
    let verify = |witness: &str| {
        Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
            .args(["verify", "--data-dir", server.data_dir.to_str().unwrap(), "--public-key", &public_key])
            .args(["--checkpoint", pinned.to_str().unwrap(), "--witness-key", witness])
            .output()
            .unwrap()
    };
    let ok = verify(&witness_vkey);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // A witness it does not carry a cosignature from is named.
    let other = VerifierKey::new("witness.example/w2", wkey.signature_type, [5; 32]).unwrap().to_string();
    let missing = verify(&other);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("lacks a valid cosignature from witness witness.example/w2")
    );

    // A fork: the log's key signs another root at the size the witness holds. Refused (422),
    // and the witness still holds the honest root.
    let held = head.size;
    let fork = log_key.sign(held, &TreeHash([7; 32]), 0).checkpoint.unwrap();
    let request = AddCheckpoint { old_size: held, proof: Vec::new(), checkpoint: fork };
    match submit(&witness_url, &request, Duration::from_secs(5)).await {
        Err(SubmitError::Refused { status: 422, message }) => assert!(message.contains("422"), "{message}"),
        other => panic!("a fork was not refused: {other:?}"),
    }
    // The honest checkpoint at that size is still accepted: the refusal recorded nothing.
    let honest = AddCheckpoint { old_size: held, proof: Vec::new(), checkpoint: head.checkpoint.clone() };
    submit(&witness_url, &honest, Duration::from_secs(5)).await.expect("the honest head is still cosigned");
}
