/** A small seeded PRNG (mulberry32), so a failing fuzz case can be replayed from its seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
  /** A string of awkward characters: separators, quotes, NUL, path pieces, non-ASCII. */
  nasty(maxLen: number): string {
    const parts = ['../', '..', '/', ',', ',,', "'", '"', '\n', '=', ':', '%00', '\\', ' ', 'é', '😀', '\u2028', '${x}', '<', '>', '&', 'a', 'vda', 'file=', 'json:{', '-'];
    let s = '';
    const n = this.int(0, maxLen);
    while (s.length < n) s += this.pick(parts);
    return s.slice(0, Math.max(n, 0));
  }
}
