//! RFC 6962 known-answer vectors, and our prover cross-checked by `ct-merkle`'s verifier.
//!
//! Vectors: transparency-dev/merkle, `proof/verify_test.go` at commit
//! 02194e9afb6c1d95b5381350007963aa70fff472 (the Certificate Transparency test tree of 8
//! leaves; inclusion vectors there number leaves from 1, here from 0).

use gezinsdossier_ledger::merkle::verify::{verify_consistency, verify_inclusion};
use gezinsdossier_ledger::merkle::{
    CompactRange, MemoryNodes, TreeHash, consistency_proof, inclusion_proof, leaf_hash, root,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn h(hex: &str) -> TreeHash {
    TreeHash::from_hex(hex).unwrap()
}

fn leaves() -> Vec<Vec<u8>> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|l| hex::decode(l).unwrap())
        .collect()
}

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, proof)
fn inclusion_vectors() -> Vec<(u64, u64, Vec<TreeHash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (2, 3, vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (old size, new size, proof)
fn consistency_vectors() -> Vec<(u64, u64, Vec<TreeHash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn tree() -> MemoryNodes {
    let mut nodes = MemoryNodes::new();
    for leaf in leaves() {
        nodes.push(leaf_hash(&leaf));
    }
    nodes
}

#[test]
fn the_empty_tree_and_every_prefix_root_match_the_vectors() {
    let nodes = tree();
    assert_eq!(root(&nodes, 0).unwrap(), h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    let mut range = CompactRange::new();
    for (i, leaf) in leaves().iter().enumerate() {
        range.push(leaf_hash(leaf));
        assert_eq!(root(&nodes, i as u64 + 1).unwrap(), h(ROOTS[i]), "root of {} leaves", i + 1);
        assert_eq!(range.root(), h(ROOTS[i]), "compact range root of {} leaves", i + 1);
    }
}

#[test]
fn inclusion_proofs_match_the_vectors_and_verify() {
    let nodes = tree();
    let leaves = leaves();
    for (index, size, expected) in inclusion_vectors() {
        let proof = inclusion_proof(&nodes, index, size).unwrap();
        assert_eq!(proof, expected, "leaf {index} of {size}");
        let root = h(ROOTS[size as usize - 1]);
        verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
        // Corruptions are caught: a flipped bit, a wrong index, a wrong leaf, a short proof.
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i].0[0] ^= 8;
            assert!(verify_inclusion(&leaves[index as usize], index, size, &bad, &root).is_err());
        }
        if size > 1 {
            assert!(verify_inclusion(&leaves[index as usize], (index + 1) % size, size, &proof, &root).is_err());
            assert!(verify_inclusion(b"WrongLeaf", index, size, &proof, &root).is_err());
            assert!(verify_inclusion(&leaves[index as usize], index, size, &proof[..proof.len() - 1], &root).is_err());
        }
    }
}

#[test]
fn consistency_proofs_match_the_vectors_and_verify() {
    let nodes = tree();
    for (old, new, expected) in consistency_vectors() {
        let proof = consistency_proof(&nodes, old, new).unwrap();
        assert_eq!(proof, expected, "{old} -> {new}");
        let (old_root, new_root) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, &old_root, new, &new_root, &proof).unwrap();
        if old < new {
            assert!(verify_consistency(old, &new_root, new, &old_root, &proof).is_err(), "swapped roots");
            let mut bad = proof.clone();
            bad[0].0[0] ^= 16;
            assert!(verify_consistency(old, &old_root, new, &new_root, &bad).is_err(), "flipped bit");
            assert!(verify_consistency(old, &old_root, new, &new_root, &[]).is_err(), "empty proof");
        }
    }
    assert!(consistency_proof(&nodes, 0, 3).is_err());
    assert!(consistency_proof(&nodes, 4, 3).is_err());
}

proptest! {
    #![proptest_config(Config { cases: 128, rng_seed: RngSeed::Fixed(6962), failure_persistence: None, ..Config::default() })]

    /// Our prover against ct-merkle's verifier, for trees of any shape.
    #[test]
    fn every_proof_we_make_verifies_independently(size in 1u64..600, a in any::<u64>(), b in any::<u64>()) {
        let data: Vec<Vec<u8>> = (0..size).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut nodes = MemoryNodes::new();
        let mut range = CompactRange::new();
        let mut roots = Vec::new();
        for leaf in &data {
            nodes.push(leaf_hash(leaf));
            range.push(leaf_hash(leaf));
            roots.push(range.root());
        }
        let index = a % size;
        let at = index + 1 + b % (size - index);
        let proof = inclusion_proof(&nodes, index, at).unwrap();
        prop_assert!(proof.len() <= 64 - (at.leading_zeros() as usize) + 1);
        prop_assert_eq!(root(&nodes, at).unwrap(), roots[at as usize - 1]);
        prop_assert!(verify_inclusion(&data[index as usize], index, at, &proof, &roots[at as usize - 1]).is_ok());
        let old = 1 + a % size;
        let new = old + b % (size - old + 1);
        let proof = consistency_proof(&nodes, old, new).unwrap();
        prop_assert!(verify_consistency(old, &roots[old as usize - 1], new, &roots[new as usize - 1], &proof).is_ok());
    }
}
