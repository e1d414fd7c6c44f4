//! Cluster key names: the hash and hash tag of a URL, its slot, and the URL index shards.

use crate::time::PerPeriod;
use crate::time::Period;

/// Shards of the URL index: enough that no one key takes every new URL, few enough that
/// `/hits` reads them in one request per node.
pub(crate) const INDEX_SHARDS: u64 = 16;

/// Slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The URL's hash: 64-bit FNV-1a, then MurmurHash3's `fmix64` finalizer. Both are published
/// and tiny, so every HitMe instance (and an operator's one-line script) finds the same keys;
/// the finalizer is there because FNV-1a alone barely mixes the last bytes of a URL into its
/// high bits, which would crowd the index shards (`example.com/1`, `example.com/2`, ...).
pub(crate) fn url_hash(url: &str) -> u64 {
    fmix64(fnv1a64(url.as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash tag of a URL's keys: its hash in 16 lowercase hex digits.
pub fn url_tag(url: &str) -> String {
    format!("{:016x}", url_hash(url))
}

/// The URL index shard of a URL: the top 4 bits of its hash.
pub fn index_shard(url: &str) -> u64 {
    url_hash(url) >> 60
}

/// The cluster slot of a hash tag (CRC16/XMODEM modulo 16384, as Redis computes it).
pub fn slot_of_tag(tag: &str) -> u16 {
    let crc = tag.bytes().fold(0u16, |mut crc, byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    });
    crc % SLOTS as u16
}

/// The cluster slot of a whole key: that of its hash tag (the text between its first `{`
/// and the next `}`, when not empty), or of the key.
pub(crate) fn slot_of_key(key: &str) -> u16 {
    let tag = key.find('{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.find('}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    slot_of_tag(tag.unwrap_or(key))
}

/// Key names in cluster mode.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    pub prefix: String,
}

impl ClusterKeys {
    /// `<prefix>:{<tag>}:all`, or `<prefix>:{<tag>}:<period>:<start>` for a bucket.
    pub fn key(&self, tag: &str, period: Period, start: i64) -> String {
        match period {
            Period::All => format!("{}:{{{tag}}}:all", self.prefix),
            _ => format!("{}:{{{tag}}}:{}:{start}", self.prefix, period.name()),
        }
    }

    /// The counting hashes of a URL with hash tag `tag` in the buckets starting at `starts`.
    pub fn keys(&self, tag: &str, starts: &PerPeriod<i64>) -> PerPeriod<String> {
        starts.map(|period, start| self.key(tag, period, start))
    }

    /// `<prefix>:{<tag>}:unindexed`
    pub fn unindexed(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:unindexed", self.prefix)
    }

    /// `<prefix>:urls:{s<shard>}`
    pub fn index(&self, shard: u64) -> String {
        format!("{}:urls:{{s{shard}}}", self.prefix)
    }

    /// The hash tag of an index shard's key.
    pub(crate) fn index_tag(shard: u64) -> String {
        format!("s{shard}")
    }

    /// The keys one hit at `starts` touches, in the hit script's KEYS order: the counting
    /// hashes, all-time first, then the `unindexed` set.
    pub fn hit_keys(&self, tag: &str, starts: &PerPeriod<i64>) -> [String; 7] {
        let mut counting = self.keys(tag, starts).into_iter().map(|(_, key)| key);
        std::array::from_fn(|_| counting.next().unwrap_or_else(|| self.unindexed(tag)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Calendar, WeekStart};
    use std::collections::BTreeSet;

    #[test]
    fn key_slots_follow_hash_tags_as_redis_computes_them() {
        // The examples of Redis's CLUSTER KEYSLOT documentation.
        assert_eq!(slot_of_key("somekey"), 11058);
        assert_eq!(slot_of_key("foo{hash_tag}"), 2515);
        assert_eq!(slot_of_key("bar{hash_tag}"), 2515);
        // An empty tag is no tag: the whole key counts.
        assert_eq!(slot_of_key("a{}b"), slot_of_tag("a{}b"));
        assert_eq!(slot_of_key("hits:config"), slot_of_tag("hits:config"));
    }

    #[test]
    fn slots_match_redis() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of_tag("123456789"), 0x31C3);
        assert_eq!(slot_of_tag("foo"), 12182);
    }

    #[test]
    fn every_key_of_a_hit_shares_the_urls_tag() {
        let keys = ClusterKeys {
            prefix: "hits".into(),
        };
        let url = "http://www.olark.com/";
        let tag = url_tag(url);
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, format!("{:016x}", url_hash(url)));
        let calendar = Calendar::new(WeekStart::Monday);
        let hit = keys.hit_keys(&tag, &calendar.starts(1_700_010_123_456));
        assert_eq!(
            hit,
            [
                format!("hits:{{{tag}}}:all"),
                format!("hits:{{{tag}}}:month:1698796800000"),
                format!("hits:{{{tag}}}:week:1699833600000"),
                format!("hits:{{{tag}}}:day:1700006400000"),
                format!("hits:{{{tag}}}:hour:1700010000000"),
                format!("hits:{{{tag}}}:minute:1700010120000"),
                format!("hits:{{{tag}}}:unindexed"),
            ]
        );
        assert_eq!(
            keys.index(index_shard(url)),
            format!("hits:urls:{{s{}}}", url_hash(url) >> 60)
        );
    }

    #[test]
    fn the_hash_is_fnv1a_then_fmix64() {
        // Test vectors of the 64-bit FNV-1a hash.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        // fmix64 is a bijection that fixes 0 and spreads one bit over the word.
        assert_eq!(fmix64(0), 0);
        // Cross-checked with an independent implementation (see docs/cluster.md).
        assert_eq!(url_tag("http://www.olark.com/"), "533f41166ce64234");
        assert!(fmix64(1).count_ones() > 16);
    }

    #[test]
    fn index_shards_cover_all_sixteen() {
        let shards: BTreeSet<u64> = (0..2000)
            .map(|i| index_shard(&format!("http://example.com/{i}")))
            .collect();
        assert_eq!(shards, (0..INDEX_SHARDS).collect());
    }
}
