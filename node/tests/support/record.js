'use strict';
// The record format's checksums (version 2, docs/idempotency.md), for tests that write
// record bytes by hand to check that any language's writer agrees with the core's.

// CRC-32C (Castagnoli), one bit at a time.
function crc32c(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return (~c) >>> 0;
}

// A record up to its result, with its two checksums appended: CRC-32C of bytes 0-8 and
// 64-end, then of bytes 0-64.
function withChecksums(rec) {
  const sums = Buffer.alloc(8);
  sums.writeUInt32BE(crc32c(Buffer.concat([rec.subarray(0, 8), rec.subarray(64)])), 0);
  sums.writeUInt32BE(crc32c(rec.subarray(0, 64)), 4);
  return Buffer.concat([rec, sums]);
}

module.exports = { crc32c, withChecksums };
