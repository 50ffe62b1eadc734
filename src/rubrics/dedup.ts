// Near-duplicate instructions: MinHash over word shingles of the normalised text, with LSH bands
// to find candidate pairs, each confirmed by the exact Jaccard similarity of the two shingle sets.
//
// Normalised: NFKC, lower case, punctuation and symbols dropped, whitespace collapsed. Shingles:
// runs of SHINGLE_WORDS words (a text shorter than that is one shingle). 100 seeded hash
// functions, cut into b bands of r rows: two texts of Jaccard s share a band with probability
// 1 - (1 - s^r)^b. r is the largest that still finds a pair right at the threshold with
// probability >= 0.9995 (at 0.8: 20 bands of 5, 0.9996 at 0.8, 0.47 at 0.5, 0.02 at 0.3); more
// rows would miss pairs, fewer would only add candidates. Each candidate pair is confirmed by
// the exact Jaccard. A band is kept as one 32-bit hash of its rows (a collision only adds a
// candidate), so memory grows by b numbers per kept item. Items are taken in input
// order: the first of a group is kept, and a later one that reaches the threshold against a kept
// item is its duplicate (the most similar kept item, the earliest on a tie).
import { Rng } from '../data/rng.js';

export const SHINGLE_WORDS = 3;
export const DEFAULT_THRESHOLD = 0.8;
const PERMUTATIONS = 100;
/** Least probability of finding a pair whose Jaccard is right at the threshold. */
const LSH_RECALL = 0.9995;

export interface Duplicate {
  id: string;
  /** The kept item it duplicates. */
  duplicate_of: string;
  /** Exact Jaccard similarity of the two shingle sets, rounded to 4 decimals. */
  jaccard: number;
}

export interface DedupOptions {
  /** Jaccard similarity at or above which a later item is a duplicate (default 0.8). */
  threshold?: number;
  /** Seeds the hash functions (default 0); the result is the same for the same seed. */
  seed?: number;
}

/** NFKC, lower case, punctuation and symbols to spaces, whitespace collapsed. */
export function normalise(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[\p{P}\p{S}]+/gu, ' ').replace(/\s+/g, ' ').trim();
}

/** FNV-1a over UTF-16 code units: a 32-bit hash of a shingle. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** MurmurHash3's finaliser: a bijective 32-bit mix. */
function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The sorted, distinct shingle hashes of a text. */
export function shingleSet(text: string): Uint32Array {
  const words = normalise(text).split(' ').filter(Boolean);
  const hashes = new Set<number>();
  if (words.length <= SHINGLE_WORDS) hashes.add(fnv1a(words.join(' ')));
  else for (let i = 0; i + SHINGLE_WORDS <= words.length; i++) hashes.add(fnv1a(words.slice(i, i + SHINGLE_WORDS).join(' ')));
  return Uint32Array.from(hashes).sort();
}

/** Exact Jaccard similarity of two sorted sets. */
export function jaccard(a: Uint32Array, b: Uint32Array): number {
  let i = 0, j = 0, both = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      both++;
      i++;
      j++;
    } else if (a[i] < b[j]) i++;
    else j++;
  }
  const union = a.length + b.length - both;
  return union === 0 ? 1 : both / union;
}

/** Finds near-duplicates one item at a time, against the items it kept so far. */
export class Deduplicator {
  readonly threshold: number;
  /** The LSH shape for this threshold. */
  readonly bands: number;
  readonly rows: number;
  private readonly salts: Uint32Array;
  private readonly kept: { id: string; shingles: Uint32Array }[] = [];
  /** Per band: band hash -> the kept items with it (one index, or a list when several). */
  private readonly buckets: Map<number, number | number[]>[];

  constructor(opts: DedupOptions = {}) {
    this.threshold = opts.threshold ?? DEFAULT_THRESHOLD;
    if (!(this.threshold > 0 && this.threshold <= 1)) throw new RangeError(`dedup threshold must be in (0, 1], got ${this.threshold}`);
    this.rows = 1;
    for (let r = PERMUTATIONS; r > 1; r--) {
      if (1 - (1 - this.threshold ** r) ** Math.floor(PERMUTATIONS / r) >= LSH_RECALL) {
        this.rows = r;
        break;
      }
    }
    this.bands = Math.floor(PERMUTATIONS / this.rows);
    this.buckets = Array.from({ length: this.bands }, () => new Map());
    const rng = new Rng(`minhash:${opts.seed ?? 0}`);
    this.salts = Uint32Array.from({ length: PERMUTATIONS }, () => Math.floor(rng.next() * 2 ** 32));
  }

  /** The MinHash signature's bands, each hashed to 32 bits. */
  private bandKeys(shingles: Uint32Array): Uint32Array {
    const sig = new Uint32Array(PERMUTATIONS).fill(0xffffffff);
    for (const h of shingles) {
      for (let p = 0; p < PERMUTATIONS; p++) {
        const v = fmix32(h ^ this.salts[p]);
        if (v < sig[p]) sig[p] = v;
      }
    }
    const keys = new Uint32Array(this.bands);
    for (let b = 0; b < this.bands; b++) {
      let k = 0x811c9dc5;
      for (let r = 0; r < this.rows; r++) k = fmix32(Math.imul(k ^ sig[b * this.rows + r], 0x01000193));
      keys[b] = k;
    }
    return keys;
  }

  /** The kept item `text` duplicates, or null (and then it is kept). */
  add(id: string, text: string): Duplicate | null {
    const shingles = shingleSet(text);
    const keys = this.bandKeys(shingles);
    const seen = new Set<number>();
    let best: { index: number; jaccard: number } | null = null;
    for (let b = 0; b < this.bands; b++) {
      const hit = this.buckets[b].get(keys[b]);
      for (const index of hit === undefined ? [] : typeof hit === 'number' ? [hit] : hit) {
        if (seen.has(index)) continue;
        seen.add(index);
        const j = jaccard(shingles, this.kept[index].shingles);
        if (j >= this.threshold && (!best || j > best.jaccard || (j === best.jaccard && index < best.index))) best = { index, jaccard: j };
      }
    }
    if (best) return { id, duplicate_of: this.kept[best.index].id, jaccard: Math.round(best.jaccard * 1e4) / 1e4 };
    const index = this.kept.push({ id, shingles }) - 1;
    for (let b = 0; b < this.bands; b++) {
      const hit = this.buckets[b].get(keys[b]);
      if (hit === undefined) this.buckets[b].set(keys[b], index);
      else if (typeof hit === 'number') this.buckets[b].set(keys[b], [hit, index]);
      else hit.push(index);
    }
    return null;
  }
}

/** The items kept (first of each group, in input order) and the duplicates dropped. */
export function dedupe<T extends { id: string }>(items: readonly T[], textOf: (item: T) => string, opts: DedupOptions = {}): { kept: T[]; duplicates: Duplicate[] } {
  const d = new Deduplicator(opts);
  const kept: T[] = [];
  const duplicates: Duplicate[] = [];
  for (const item of items) {
    const dup = d.add(item.id, textOf(item));
    if (dup) duplicates.push(dup);
    else kept.push(item);
  }
  return { kept, duplicates };
}
