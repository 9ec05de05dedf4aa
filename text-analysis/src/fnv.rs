//! 64-bit FNV-1a: stable across processes, platforms and versions (instances sharing a cache
//! must agree on hashes), and much cheaper than SipHash for the short keys hashed here.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv1a::default();
    hasher.write(bytes);
    hasher.finish()
}

/// FNV-1a of several parts, each followed by a separator byte so ("ab","c") and ("a","bc") differ.
pub fn fnv1a_parts(parts: &[&[u8]]) -> u64 {
    let mut hasher = Fnv1a::default();
    for part in parts {
        hasher.write(part);
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// FNV-1a as a [`Hasher`]: bytes written in several calls hash as if written at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    // Byte-wise like `write`: the default would go through `to_ne_bytes`, the same bytes anyway.
    fn write_u8(&mut self, byte: u8) {
        self.write(&[byte]);
    }
}

/// Builds [`Fnv1a`] hashers for maps and sets.
pub type FnvBuildHasher = BuildHasherDefault<Fnv1a>;
pub type FnvHashMap<K, V> = HashMap<K, V, FnvBuildHasher>;
pub type FnvHashSet<T> = HashSet<T, FnvBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn split_writes_equal_one_write_and_parts_are_separated() {
        let mut hasher = Fnv1a::default();
        hasher.write(b"foo");
        hasher.write(b"bar");
        assert_eq!(hasher.finish(), fnv1a(b"foobar"));
        assert_ne!(fnv1a_parts(&[b"ab", b"c"]), fnv1a_parts(&[b"a", b"bc"]));
        assert_eq!(fnv1a_parts(&[b"ab"]), fnv1a(b"ab\xff"));
    }

    #[test]
    fn works_as_a_map_hasher() {
        let mut map: FnvHashMap<&str, u32> = FnvHashMap::default();
        map.insert("slot", 1);
        assert_eq!(map.get("slot"), Some(&1));
        assert_eq!(map.get("slots"), None);
    }
}
