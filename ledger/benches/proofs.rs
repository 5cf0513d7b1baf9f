//! Proof generation from the in-memory log index at 10 million events: inclusion proofs for
//! random events and consistency proofs between random sizes.
//!
//! `cargo bench -p gezinsdossier-ledger --bench proofs [-- --events 10000000 --proofs 100000]`

use gezinsdossier_ledger::merkle::{MemoryNodes, consistency_proof, inclusion_proof, leaf_hash};
use std::time::Instant;

mod harness;

fn main() {
    let (events, proofs): (u64, u64) = (harness::arg("--events", 10_000_000), harness::arg("--proofs", 100_000));
    let started = Instant::now();
    let mut nodes = MemoryNodes::new();
    for i in 0..events {
        nodes.push(leaf_hash(&i.to_be_bytes()));
    }
    println!("\n### Proofs at {events} events (index built in {:.1} s)\n", started.elapsed().as_secs_f64());
    // A fixed-seed xorshift: reproducible positions without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let time = |f: &mut dyn FnMut() -> usize| {
        let mut lat = Vec::with_capacity(proofs as usize);
        let mut hashes = 0;
        for _ in 0..proofs {
            let t = Instant::now();
            hashes += f();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        (pct(0.5), pct(0.99), hashes as f64 / proofs as f64)
    };
    let (p50, p99, len) = time(&mut || inclusion_proof(&nodes, next() % events, events).expect("proof").len());
    println!("inclusion: p50 {p50:.1} µs, p99 {p99:.1} µs, {len:.1} hashes per proof");
    let (p50, p99, len) = time(&mut || {
        let a = 1 + next() % events;
        let b = a + next() % (events - a + 1);
        consistency_proof(&nodes, a, b).expect("proof").len()
    });
    println!("consistency: p50 {p50:.1} µs, p99 {p99:.1} µs, {len:.1} hashes per proof");
}
