//! An event's two hashes at once: its chain hash, SHA-256(bytes), and its Merkle leaf hash,
//! SHA-256(0x00 ‖ bytes). The offline verifier needs both for every event, and they are
//! most of its work.
//!
//! Hand-written, and why: with the x86 SHA extensions, one SHA-256 is bound by the latency
//! of its round instructions, each waiting on the one before. Two independent messages
//! interleaved fill those gaps, and take little more time than one. `ring` and `sha2` hash
//! one message at a time, and no maintained crate offers two lanes. Without the
//! extensions, or off x86-64, `ring` computes both, one after the other. Tests hold both
//! paths to `ring`'s digests.

use crate::chain::{EventHash, hash_canonical};
use crate::merkle::{TreeHash, leaf_hash};

/// `(SHA-256(canonical), SHA-256(0x00 ‖ canonical))`.
pub fn chain_and_leaf(canonical: &[u8]) -> (EventHash, TreeHash) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU has the features `two_digests` is compiled for.
        let (chain, leaf) = unsafe { x86::two_digests(Padded::new(&[], canonical), Padded::new(&[0x00], canonical)) };
        return (EventHash::from_bytes(chain), TreeHash(leaf));
    }
    (hash_canonical(canonical), leaf_hash(canonical))
}

/// A message with SHA-256's padding, handed out block by block without copying it whole:
/// `prefix ‖ data ‖ 0x80 ‖ zeros ‖ bit length (u64, big-endian)`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Padded<'a> {
    prefix: &'a [u8],
    data: &'a [u8],
    blocks: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<'a> Padded<'a> {
    fn new(prefix: &'a [u8], data: &'a [u8]) -> Self {
        let len = prefix.len() + data.len();
        Self { prefix, data, blocks: (len + 8) / 64 + 1 }
    }

    /// Block `j` of the padded message: in place when it lies wholly inside `data` (most
    /// blocks do), else put together in `scratch`.
    fn block<'s>(&'s self, j: usize, scratch: &'s mut [u8; 64]) -> &'s [u8; 64] {
        let start = 64 * j;
        let inside = start.checked_sub(self.prefix.len()).and_then(|at| self.data.get(at..at + 64));
        if let Some(block) = inside.and_then(|slice| slice.try_into().ok()) {
            return block;
        }
        *scratch = [0; 64];
        let len = self.prefix.len() + self.data.len();
        copy_overlap(scratch, start, 0, self.prefix);
        copy_overlap(scratch, start, self.prefix.len(), self.data);
        copy_overlap(scratch, start, len, &[0x80]);
        copy_overlap(scratch, start, 64 * self.blocks - 8, &((len as u64) * 8).to_be_bytes());
        scratch
    }
}

/// Copies the part of `segment` (which starts at message offset `at`) that falls in the
/// block starting at `block_start`.
fn copy_overlap(block: &mut [u8; 64], block_start: usize, at: usize, segment: &[u8]) {
    let from = block_start.max(at);
    let to = (block_start + 64).min(at + segment.len());
    if from < to {
        block[from - block_start..to - block_start].copy_from_slice(&segment[from - at..to - at]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Padded;
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_setzero_si128,
        _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32,
        _mm_storeu_si128,
    };

    /// FIPS 180-4 §4.2.2.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    pub fn available() -> bool {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("ssse3")
            && std::is_x86_feature_detected!("sse4.1")
    }

    /// The SHA-256 state as the SHA instructions hold it: (A,B,E,F) and (C,D,G,H), high
    /// lane first.
    type State = [__m128i; 2];

    /// The digests of `a` and `b`, their common blocks hashed side by side.
    ///
    /// # Safety
    /// The CPU must have SHA, SSSE3 and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn two_digests(a: Padded<'_>, b: Padded<'_>) -> ([u8; 32], [u8; 32]) {
        let initial = [
            _mm_set_epi32(0x6a09e667, 0xbb67ae85u32 as i32, 0x510e527f, 0x9b05688cu32 as i32),
            _mm_set_epi32(0x3c6ef372, 0xa54ff53au32 as i32, 0x1f83d9ab, 0x5be0cd19),
        ];
        let mut states = [initial, initial];
        let (mut scratch_a, mut scratch_b) = ([0u8; 64], [0u8; 64]);
        for j in 0..a.blocks.min(b.blocks) {
            compress(&mut states, [a.block(j, &mut scratch_a), b.block(j, &mut scratch_b)]);
        }
        let [mut state_a, mut state_b] = states;
        for (state, message) in [(&mut state_a, &a), (&mut state_b, &b)] {
            for j in a.blocks.min(b.blocks)..message.blocks {
                let mut one = [*state];
                compress(&mut one, [message.block(j, &mut scratch_a)]);
                *state = one[0];
            }
        }
        (digest(state_a), digest(state_b))
    }

    /// One block into each of `N` states, the lanes' instructions interleaved.
    #[inline]
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    fn compress<const N: usize>(states: &mut [State; N], blocks: [&[u8; 64]; N]) {
        // Reverses the bytes of each 32-bit word: the message words are big-endian.
        let big_endian = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let saved = *states;
        // The last four groups of four message words, W[i-4] at i % 4.
        let mut w = [[_mm_setzero_si128(); 4]; N];
        for i in 0..16 {
            // SAFETY: 4 words at 4*i < 64 lie inside K.
            let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * i).cast()) };
            for lane in 0..N {
                let words = if i < 4 {
                    // SAFETY: 16 bytes at 16*i < 64 lie inside the block.
                    _mm_shuffle_epi8(unsafe { _mm_loadu_si128(blocks[lane].as_ptr().add(16 * i).cast()) }, big_endian)
                } else {
                    let [w4, w3, w2, w1] =
                        [w[lane][i % 4], w[lane][(i + 1) % 4], w[lane][(i + 2) % 4], w[lane][(i + 3) % 4]];
                    let sum = _mm_add_epi32(_mm_sha256msg1_epu32(w4, w3), _mm_alignr_epi8(w1, w2, 4));
                    _mm_sha256msg2_epu32(sum, w1)
                };
                w[lane][i % 4] = words;
                let message = _mm_add_epi32(words, k);
                let [abef, cdgh] = &mut states[lane];
                // Two rounds leave (A,B,E,F) in `cdgh`; two more bring it back to `abef`,
                // and what `cdgh` holds then is the new (C,D,G,H).
                *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, message);
                *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(message, 0x0e));
            }
        }
        for lane in 0..N {
            states[lane][0] = _mm_add_epi32(states[lane][0], saved[lane][0]);
            states[lane][1] = _mm_add_epi32(states[lane][1], saved[lane][1]);
        }
    }

    #[target_feature(enable = "sha,ssse3,sse4.1")]
    fn digest([abef, cdgh]: State) -> [u8; 32] {
        let (mut low, mut high) = ([0u32; 4], [0u32; 4]);
        // SAFETY: each store writes 16 bytes into a 16-byte array.
        unsafe {
            _mm_storeu_si128(low.as_mut_ptr().cast(), abef);
            _mm_storeu_si128(high.as_mut_ptr().cast(), cdgh);
        }
        let [f, e, b, a] = low;
        let [h, g, d, c] = high;
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip([a, b, c, d, e, f, g, h]) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the block and padding edges, against `ring`.
    #[test]
    fn both_hashes_equal_ring_for_every_length_across_the_block_edges() {
        let bytes: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        for len in 0..bytes.len() {
            let data = &bytes[..len];
            let (chain, leaf) = chain_and_leaf(data);
            assert_eq!(chain, hash_canonical(data), "chain hash at length {len}");
            assert_eq!(leaf, leaf_hash(data), "leaf hash at length {len}");
        }
    }

    /// The two-lane path itself, where this CPU has it (CI's machines do), for messages of
    /// different lengths, so that one lane ends a block before the other.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_two_lane_path_equals_ring_when_the_lanes_differ_in_length() {
        if !x86::available() {
            eprintln!("this CPU has no SHA extensions: only the ring path was tested");
            return;
        }
        let bytes = [0x5au8; 300];
        for (a, b) in [(0, 0), (55, 56), (56, 55), (1, 200), (200, 1), (119, 120), (64, 128)] {
            // SAFETY: `available` said yes.
            let (da, db) =
                unsafe { x86::two_digests(Padded::new(&[], &bytes[..a]), Padded::new(&[1, 2], &bytes[..b])) };
            let mut prefixed = vec![1, 2];
            prefixed.extend_from_slice(&bytes[..b]);
            assert_eq!((da, db), (*hash_canonical(&bytes[..a]).as_bytes(), *hash_canonical(&prefixed).as_bytes()));
        }
    }

    #[test]
    fn padding_puts_the_marker_and_the_bit_length_where_sha_256_wants_them() {
        // 55 bytes fit one block with their padding; 56 need a second.
        for (len, blocks) in [(0, 1), (55, 1), (56, 2), (119, 2), (120, 3)] {
            let data = vec![0xab; len];
            let padded = Padded::new(&[], &data);
            assert_eq!(padded.blocks, blocks, "length {len}");
            let all: Vec<u8> = (0..blocks).flat_map(|j| *padded.block(j, &mut [0; 64])).collect();
            assert_eq!(&all[..len], &data[..]);
            assert_eq!(all[len], 0x80);
            assert!(all[len + 1..all.len() - 8].iter().all(|&b| b == 0));
            assert_eq!(all[all.len() - 8..], ((len as u64) * 8).to_be_bytes());
        }
        let prefixed = Padded::new(&[0x00], &[0xff; 63]);
        let (first, second) = (*prefixed.block(0, &mut [0; 64]), *prefixed.block(1, &mut [0; 64]));
        assert_eq!((prefixed.blocks, first[0], first[63], second[0]), (2, 0, 0xff, 0x80));
    }
}
