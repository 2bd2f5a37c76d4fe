//! Merkle Tree Hash over SHA-256 as defined by RFC 6962 §2.1 (Certificate Transparency)
//! and restated in RFC 9162 §2.1. Pure functions, no I/O.
//!
//! Why this exact construction: it is what CT logs, Trillian/transparency-dev, Sigsum
//! and Rekor use, so an auditor can check our roots and proofs with off-the-shelf tools.
//! Leaves and interior nodes are hashed with different one-byte prefixes (0x00 / 0x01),
//! so a leaf can never be passed off as an interior node (second-preimage defence).
//!
//! Callers hash event bytes with [`leaf_hash`] once; everything else works on those
//! [`Hash`](type@Hash)es. Proof *generation* takes the whole leaf list (fine for an audit export);
//! [`CompactRange`] computes the root of an arbitrarily long log in O(log n) memory.
//! Proof *verification* follows the RFC 9162 bit-walking algorithms, which need neither
//! recursion nor the leaves.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")` (no prefix, per the RFC).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (the RFC's `k`); needs `n >= 2`.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH(D[n])` over already-computed leaf hashes: the left subtree always holds the
/// largest power of two of the leaves, so the tree never needs rebalancing as it grows.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 `PATH(index, D[n])`: the sibling hashes from the leaf up to the root,
/// bottom first. `None` if `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Some(out)
}

/// RFC 9162 §2.1.3.2: does `proof` show that `leaf` sits at `index` in the tree of
/// `tree_size` leaves whose root is `root`?
///
/// `tree_size` is not itself hashed: a proof binds to it only through the proof's shape,
/// and some sizes share a shape (index 0 in sizes 3 and 4, say). Trust `tree_size` only
/// as the size signed together with `root`, never on its own.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    // `fn`/`sn` walk the leaf's and the last leaf's positions up the tree; where they meet
    // on the right edge, levels with no right sibling are skipped.
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false; // proof longer than the tree is deep
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// RFC 6962 §2.1.2 `PROOF(m, D[n])`: the nodes needed to recompute both the root of the
/// first `m` leaves and the root of all `n`, showing the log only appended. Empty when
/// `m == n`; `None` unless `0 < m <= n`.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    // `whole` is the RFC's flag b: true while D[0:m] is still a left edge of the old tree,
    // whose root the verifier already has, so it is left out of the proof.
    fn subproof(m: usize, d: &[Hash], whole: bool, out: &mut Vec<Hash>) {
        if m == d.len() {
            if !whole {
                out.push(root(d));
            }
            return;
        }
        let k = split(d.len());
        if m <= k {
            subproof(m, &d[..k], whole, out);
            out.push(root(&d[k..]));
        } else {
            subproof(m - k, &d[k..], false, out);
            out.push(root(&d[..k]));
        }
    }
    if m == 0 || m > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(m, leaves, true, &mut out);
    Some(out)
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `n` leaves with root `new_root`
/// extends the tree of `m` leaves with root `old_root`?
///
/// `m == n` holds only with an empty proof and equal roots. `m == 0` is rejected: every
/// tree extends the empty one, so there is nothing to check and no proof is produced for
/// it. As with [`verify_inclusion`], the sizes are trusted only as signed with the roots.
pub fn verify_consistency(
    m: u64,
    n: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old_root == new_root;
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    // When m is a power of two the old tree is a whole left subtree of the new one, so
    // its root starts the walk and the proof omits it (RFC step 2).
    let (start, rest) = if m.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    let (mut fn_, mut sn) = (m - 1, n - 1);
    // Climb to the top of the perfect subtree holding the old tree's last leaf.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // `fr` rebuilds the old root, `sr` the new one, from the same nodes.
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            // A left sibling: part of both trees.
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            // A right sibling: appended after m, so only in the new tree.
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

/// The compact range `[0, size)` of an append-only log: the roots of the perfect
/// subtrees that `size` decomposes into (one per set bit, largest first), which is all
/// that is needed to keep appending and to compute the root. O(log n) memory, amortised
/// O(1) hashes per [`push`](Self::push).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// Perfect-subtree roots, leftmost (largest) first; `frontier.len() == size.count_ones()`.
    frontier: Vec<Hash>,
}

impl CompactRange {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash. Like a binary increment: each trailing 1 bit of the old
    /// size is a subtree of equal size that merges with the new one.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        for _ in 0..self.size.trailing_ones() {
            if let Some(left) = self.frontier.pop() {
                h = node_hash(&left, &h);
            }
        }
        self.frontier.push(h);
        self.size += 1;
    }

    /// Number of leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Equals [`root`] of all leaves pushed so far: folding the subtrees right to left
    /// rebuilds exactly the MTH's largest-power-of-two-on-the-left split.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.frontier.iter().rev();
        match subtrees.next() {
            None => empty_root(),
            Some(last) => subtrees.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Every level of the tree kept in memory (about twice the leaves), so each inclusion
/// proof costs O(log n) instead of the O(n) of [`inclusion_proof`]. An odd last node is
/// carried up unchanged, which builds exactly the RFC 6962 tree (left subtrees are the
/// largest powers of two).
#[derive(Debug, Clone)]
pub struct ProofTree {
    levels: Vec<Vec<Hash>>,
}

impl ProofTree {
    pub fn new(leaves: Vec<Hash>) -> ProofTree {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [only] => *only,
                    _ => empty_root(),
                })
                .collect();
            levels.push(above);
        }
        ProofTree { levels }
    }

    pub fn size(&self) -> usize {
        self.levels.first().map(Vec::len).unwrap_or(0)
    }

    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => empty_root(),
        }
    }

    /// The RFC 6962 audit path of leaf `index`, bottom first.
    pub fn inclusion_proof(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.size() {
            return None;
        }
        let mut out = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len().saturating_sub(1)] {
            let sibling = i ^ 1;
            // A carried-up last node has no sibling at this level.
            if sibling < level.len() {
                out.push(level[sibling]);
            }
            i /= 2;
        }
        Some(out)
    }
}

/// Lowercase hex, for display and storage.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// Parses exactly 64 hex digits (either case); anything else is `None`.
pub fn from_hex(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The eight leaf inputs of the CT reference implementation's tests (also used by
    /// Go's transparency-dev/merkle).
    const INPUTS: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// Roots of the first 1..=8 of `INPUTS`, cross-checked with Python's hashlib.
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

    fn ref_leaves() -> Vec<Hash> {
        INPUTS.iter().map(|d| leaf_hash(d)).collect()
    }

    fn hexes(v: &[Hash]) -> Vec<String> {
        v.iter().map(to_hex).collect()
    }

    /// Distinct synthetic leaves for the exhaustive tests.
    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn flip(h: &Hash) -> Hash {
        let mut h = *h;
        h[31] ^= 1;
        h
    }

    #[test]
    fn reference_vectors() {
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = ref_leaves();
        for (i, want) in ROOTS.iter().enumerate() {
            assert_eq!(to_hex(&root(&l[..=i])), *want, "size {}", i + 1);
        }
        // Inclusion and consistency proofs, also cross-checked with Python.
        let path = |i, n| hexes(&inclusion_proof(&l[..n], i).unwrap());
        assert_eq!(
            path(0, 8),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        assert_eq!(
            path(5, 8),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        assert_eq!(
            path(2, 3),
            ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]
        );
        let cons = |m, n| hexes(&consistency_proof(&l[..n], m).unwrap());
        assert_eq!(cons(1, 8), path(0, 8));
        assert_eq!(
            cons(6, 8),
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        assert_eq!(
            cons(2, 5),
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]
        );
        assert_eq!(
            cons(3, 7),
            [
                "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
                "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
            ]
        );
        assert!(cons(4, 4).is_empty());
    }

    #[test]
    fn out_of_range_arguments() {
        let l = leaves(5);
        assert_eq!(inclusion_proof(&l, 5), None);
        assert_eq!(inclusion_proof(&[], 0), None);
        assert_eq!(consistency_proof(&l, 0), None);
        assert_eq!(consistency_proof(&l, 6), None);
        let r = root(&l);
        assert!(!verify_inclusion(&l[0], 0, 0, &[], &empty_root()));
        assert!(!verify_consistency(0, 5, &empty_root(), &r, &[]));
        assert!(!verify_consistency(0, 0, &empty_root(), &empty_root(), &[]));
        assert!(!verify_consistency(0, 5, &r, &r, &[r]));
        assert!(!verify_consistency(5, 4, &r, &r, &[]));
        assert!(verify_consistency(5, 5, &r, &r, &[]));
        assert!(!verify_consistency(5, 5, &r, &flip(&r), &[]));
        assert!(!verify_consistency(5, 5, &r, &r, &[r]));
    }

    /// Shape of PATH(m, n) straight from the RFC 6962 recursion: for each sibling, bottom
    /// first, whether it is on the left. The verifier hashes a proof the same way for two
    /// (index, size) pairs exactly when their shapes match, so this is the oracle for
    /// which altered indices and sizes must be rejected.
    fn path_shape(m: u64, n: u64) -> Vec<bool> {
        if n <= 1 {
            return vec![];
        }
        let k = split(n as usize) as u64;
        let (mut s, left) = if m < k {
            (path_shape(m, k), false)
        } else {
            (path_shape(m - k, n - k), true)
        };
        s.push(left);
        s
    }

    #[test]
    fn inclusion_round_trip_and_tamper() {
        let mut size_aliases = 0;
        for n in 1..=64usize {
            let l = leaves(n);
            let r = root(&l);
            let nn = n as u64;
            for i in 0..n {
                let ii = i as u64;
                let p = inclusion_proof(&l, i).unwrap();
                assert!(verify_inclusion(&l[i], ii, nn, &p, &r), "n={n} i={i}");
                assert!(!verify_inclusion(&flip(&l[i]), ii, nn, &p, &r));
                assert!(!verify_inclusion(&l[i], ii, nn, &p, &flip(&r)));
                for j in 0..n + 2 {
                    if j != i {
                        assert!(
                            !verify_inclusion(&l[i], j as u64, nn, &p, &r),
                            "n={n} i={i} j={j}"
                        );
                    }
                }
                for s in 0..=nn + 64 {
                    if s != nn {
                        let want = ii < s && path_shape(ii, s) == path_shape(ii, nn);
                        size_aliases += usize::from(want);
                        assert_eq!(
                            verify_inclusion(&l[i], ii, s, &p, &r),
                            want,
                            "n={n} i={i} s={s}"
                        );
                    }
                }
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k] = flip(&bad[k]);
                    assert!(!verify_inclusion(&l[i], ii, nn, &bad, &r));
                    if k + 1 < p.len() {
                        bad = p.clone();
                        bad.swap(k, k + 1);
                        assert!(!verify_inclusion(&l[i], ii, nn, &bad, &r));
                    }
                }
                if let Some((_, shorter)) = p.split_last() {
                    assert!(!verify_inclusion(&l[i], ii, nn, shorter, &r));
                }
                let mut longer = p.clone();
                longer.push(r);
                assert!(!verify_inclusion(&l[i], ii, nn, &longer, &r));
            }
        }
        // Aliasing sizes exist (see verify_inclusion's doc), but are the exception.
        assert!(size_aliases > 0);
    }

    /// Shape of PROOF(m, n) from the RFC 6962 recursion: 'S' when the proof starts with
    /// an explicit old subtree root, then per node 'L' (left sibling, in both trees) or
    /// 'R' (right sibling, only in the new tree). Same role as `path_shape`.
    fn consistency_shape(m: u64, n: u64, whole: bool) -> String {
        if m == n {
            return if whole { String::new() } else { "S".into() };
        }
        let k = split(n as usize) as u64;
        if m <= k {
            consistency_shape(m, k, whole) + "R"
        } else {
            consistency_shape(m - k, n - k, false) + "L"
        }
    }

    #[test]
    fn consistency_round_trip_and_tamper() {
        for n in 1..=64usize {
            let l = leaves(n);
            let new = root(&l);
            let nn = n as u64;
            for m in 1..=n {
                let old = root(&l[..m]);
                let mm = m as u64;
                let p = consistency_proof(&l, m).unwrap();
                assert!(verify_consistency(mm, nn, &old, &new, &p), "m={m} n={n}");
                assert!(!verify_consistency(mm, nn, &flip(&old), &new, &p));
                assert!(!verify_consistency(mm, nn, &old, &flip(&new), &p));
                let shape = consistency_shape(mm, nn, true);
                let altered = (0..=nn + 1)
                    .map(|a| (a, nn))
                    .chain((0..=nn + 64).map(|b| (mm, b)));
                for (m2, n2) in altered {
                    if (m2, n2) != (mm, nn) {
                        let want = 0 < m2 && m2 <= n2 && consistency_shape(m2, n2, true) == shape;
                        assert_eq!(
                            verify_consistency(m2, n2, &old, &new, &p),
                            want,
                            "m={m} n={n} -> {m2},{n2}"
                        );
                    }
                }
                if m < n {
                    assert!(!verify_consistency(mm, nn, &old, &new, &[]));
                    assert!(!verify_consistency(mm, nn, &new, &old, &p));
                }
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k] = flip(&bad[k]);
                    assert!(
                        !verify_consistency(mm, nn, &old, &new, &bad),
                        "m={m} n={n} k={k}"
                    );
                    if k + 1 < p.len() {
                        bad = p.clone();
                        bad.swap(k, k + 1);
                        assert!(!verify_consistency(mm, nn, &old, &new, &bad));
                    }
                }
                if let Some((_, shorter)) = p.split_last() {
                    assert!(!verify_consistency(mm, nn, &old, &new, shorter));
                }
                let mut longer = p.clone();
                longer.push(new);
                assert!(!verify_consistency(mm, nn, &old, &new, &longer));
            }
        }
    }

    #[test]
    fn compact_range_matches_root() {
        let l = leaves(300);
        let mut c = CompactRange::new();
        assert_eq!(c.root(), empty_root());
        for n in 1..=300 {
            c.push(l[n - 1]);
            assert_eq!(c.size(), n as u64);
            assert_eq!(c.root(), root(&l[..n]), "n={n}");
            assert_eq!(c.frontier.len(), n.count_ones() as usize);
        }
        let mut c = CompactRange::new();
        for l in ref_leaves() {
            c.push(l);
        }
        assert_eq!(to_hex(&c.root()), ROOTS[7]);
    }

    #[test]
    fn hex_round_trip() {
        let h = root(&ref_leaves());
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex(&ROOTS[7].to_uppercase()), Some(h));
        assert_eq!(from_hex(&ROOTS[7][..62]), None);
        assert_eq!(from_hex(&format!("{}00", ROOTS[7])), None);
        assert_eq!(from_hex(&format!("{}zz", &ROOTS[7][..62])), None);
        assert_eq!(from_hex(""), None);
    }

    #[test]
    fn the_level_tree_gives_the_same_roots_and_proofs() {
        for n in 0..=70usize {
            let leaves: Vec<Hash> = (0..n)
                .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
                .collect();
            let tree = ProofTree::new(leaves.clone());
            assert_eq!(tree.root(), root(&leaves), "root of {n}");
            for i in 0..n {
                assert_eq!(
                    tree.inclusion_proof(i),
                    inclusion_proof(&leaves, i),
                    "proof {i} of {n}"
                );
            }
            assert_eq!(tree.inclusion_proof(n), None);
        }
    }
}
