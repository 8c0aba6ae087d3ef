/**
 * XDR (RFC 4506) as data: each wire type is a small value with a reader and
 * a writer, and structures are built from them, so the procedure table in
 * `procedures.ts` declares shapes once and every encoder and decoder follows
 * from it (the way go-libvirt generates its client from the `.x` file).
 *
 * Why our own codec and not `@stellar/js-xdr`: that library defines types
 * through a builder DSL of its own with class instances per value and
 * BigInt-only hypers, so each call would be converted twice; libvirt's
 * protocol needs eight primitive kinds, a pointer and one union, and a
 * small typed combinator set gives TypeScript the value types of every
 * argument and reply for free, at the library's speed or better
 * (bench/xdr-codec.ts, figures in docs/libvirt-protocol.md). Decoding is bounded everywhere: a
 * length beyond the declared maximum or beyond the message is an `rpc`
 * error, never an allocation.
 */
import { FerryError } from '../errors/index.js';

/** `n` rounded up to a multiple of four (arithmetic, not bitwise: lengths may exceed 2^31). */
function padTo4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/** Reads XDR values from one message body. */
export class XdrReader {
  private offset = 0;

  constructor(private readonly buf: Buffer) {}

  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) throw new FerryError('rpc', `truncated message: ${what} needs ${n} bytes, ${this.remaining} left`);
  }

  int(): number {
    this.need(4, 'an int');
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'an unsigned int');
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  hyper(): number {
    this.need(8, 'a hyper');
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return Number(v);
  }

  uhyper(): number {
    this.need(8, 'an unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return Number(v);
  }

  double(): number {
    this.need(8, 'a double');
    const v = this.buf.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  /**
   * `n` bytes and their padding to a multiple of four. A view into the
   * message, not a copy: message buffers are never reused or written to.
   */
  fixed(n: number): Buffer {
    const padded = padTo4(n);
    this.need(padded, `${n} bytes of opaque data`);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += padded;
    return v;
  }

  /** A length-prefixed UTF-8 string of at most `max` bytes, decoded in place (no copy of its bytes). */
  utf8(max: number): string {
    const n = this.uint();
    if (n > max) throw new FerryError('rpc', `a string of ${n} bytes is longer than the protocol allows (${max})`);
    const padded = padTo4(n);
    this.need(padded, `${n} bytes of string`);
    const v = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += padded;
    return v;
  }

  /** A length-prefixed byte string of at most `max` bytes. */
  variable(max: number, what: string): Buffer {
    const n = this.uint();
    if (n > max) throw new FerryError('rpc', `${what} of ${n} bytes is longer than the protocol allows (${max})`);
    return this.fixed(n);
  }
}

/** Writes XDR values into a growing buffer. */
export class XdrWriter {
  private buf: Buffer;
  private offset = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private room(n: number): void {
    if (this.offset + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.offset + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.offset);
    this.buf = next;
  }

  int(v: number): void {
    this.room(4);
    this.buf.writeInt32BE(v | 0, this.offset);
    this.offset += 4;
  }

  uint(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.offset);
    this.offset += 4;
  }

  hyper(v: number): void {
    this.room(8);
    this.buf.writeBigInt64BE(BigInt(Math.trunc(v)), this.offset);
    this.offset += 8;
  }

  uhyper(v: number): void {
    this.room(8);
    const big = BigInt(Math.trunc(Math.max(0, v)));
    this.buf.writeBigUInt64BE(big > 0xffffffffffffffffn ? 0xffffffffffffffffn : big, this.offset);
    this.offset += 8;
  }

  double(v: number): void {
    this.room(8);
    this.buf.writeDoubleBE(v, this.offset);
    this.offset += 8;
  }

  /** Bytes followed by zero padding to a multiple of four. */
  fixed(b: Buffer): void {
    const padded = padTo4(b.length);
    this.room(padded);
    b.copy(this.buf, this.offset);
    this.buf.fill(0, this.offset + b.length, this.offset + padded);
    this.offset += padded;
  }

  /** A length-prefixed UTF-8 string, encoded straight into the buffer. */
  utf8(v: string, max: number): void {
    const n = Buffer.byteLength(v, 'utf8');
    if (n > max) throw new FerryError('rpc', `a string of ${n} bytes is longer than the protocol allows (${max})`);
    const padded = padTo4(n);
    this.room(4 + padded);
    this.buf.writeUInt32BE(n, this.offset);
    this.buf.write(v, this.offset + 4, n, 'utf8');
    this.buf.fill(0, this.offset + 4 + n, this.offset + 4 + padded);
    this.offset += 4 + padded;
  }

  variable(b: Buffer, max: number, what: string): void {
    if (b.length > max) throw new FerryError('rpc', `${what} of ${b.length} bytes is longer than the protocol allows (${max})`);
    this.uint(b.length);
    this.fixed(b);
  }

  /** The bytes written so far. */
  bytes(): Buffer {
    return this.buf.subarray(0, this.offset);
  }
}

/** One XDR type: how a value of `T` is read and written. */
export interface Xdr<T> {
  readonly kind: string;
  read(r: XdrReader): T;
  write(w: XdrWriter, v: T): void;
}

/** The value type of an XDR type. */
export type XdrValue<X> = X extends Xdr<infer T> ? T : never;

export const int: Xdr<number> = { kind: 'int', read: (r) => r.int(), write: (w, v) => w.int(v) };
export const uint: Xdr<number> = { kind: 'unsigned int', read: (r) => r.uint(), write: (w, v) => w.uint(v) };
export const hyper: Xdr<number> = { kind: 'hyper', read: (r) => r.hyper(), write: (w, v) => w.hyper(v) };
export const uhyper: Xdr<number> = { kind: 'unsigned hyper', read: (r) => r.uhyper(), write: (w, v) => w.uhyper(v) };
export const double: Xdr<number> = { kind: 'double', read: (r) => r.double(), write: (w, v) => w.double(v) };
/** libvirt sends booleans as ints; any non-zero value is true. */
export const bool: Xdr<boolean> = { kind: 'bool', read: (r) => r.int() !== 0, write: (w, v) => w.int(v ? 1 : 0) };
/** A body with nothing in it. */
export const empty: Xdr<Record<string, never>> = { kind: 'void', read: () => ({}), write: () => undefined };

/** A UTF-8 string of at most `max` bytes. */
export function string(max: number): Xdr<string> {
  return {
    kind: 'string',
    read: (r) => r.utf8(max),
    write: (w, v) => w.utf8(v, max),
  };
}

/** Variable-length opaque bytes of at most `max` bytes. */
export function opaque(max: number): Xdr<Buffer> {
  return { kind: 'opaque', read: (r) => r.variable(max, 'opaque data'), write: (w, v) => w.variable(v, max, 'opaque data') };
}

/** Exactly `n` opaque bytes. */
export function fixedOpaque(n: number): Xdr<Buffer> {
  return {
    kind: `opaque[${n}]`,
    read: (r) => r.fixed(n),
    write: (w, v) => {
      if (v.length !== n) throw new FerryError('rpc', `expected exactly ${n} bytes, not ${v.length}`);
      w.fixed(v);
    },
  };
}

/** A counted array of at most `max` elements. */
export function array<T>(of: Xdr<T>, max: number): Xdr<T[]> {
  return {
    kind: `${of.kind}<${max}>`,
    read: (r) => {
      const n = r.uint();
      if (n > max) throw new FerryError('rpc', `a list of ${n} elements is longer than the protocol allows (${max})`);
      // Every element takes at least four bytes: a count larger than the message cannot be real.
      if (n * 4 > r.remaining) throw new FerryError('rpc', `truncated message: a list of ${n} elements in ${r.remaining} bytes`);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(of.read(r));
      return out;
    },
    write: (w, v) => {
      if (v.length > max) throw new FerryError('rpc', `a list of ${v.length} elements is longer than the protocol allows (${max})`);
      w.uint(v.length);
      for (const e of v) of.write(w, e);
    },
  };
}

/** Exactly `n` elements, no count on the wire. */
export function fixedArray<T>(of: Xdr<T>, n: number): Xdr<T[]> {
  return {
    kind: `${of.kind}[${n}]`,
    read: (r) => Array.from({ length: n }, () => of.read(r)),
    write: (w, v) => {
      if (v.length !== n) throw new FerryError('rpc', `expected exactly ${n} elements, not ${v.length}`);
      for (const e of v) of.write(w, e);
    },
  };
}

/** An XDR pointer: absent (`null`) or one value. */
export function optional<T>(of: Xdr<T>): Xdr<T | null> {
  return {
    kind: `${of.kind}*`,
    read: (r) => {
      const present = r.uint();
      if (present > 1) throw new FerryError('rpc', `an optional value is marked ${present}, not 0 or 1`);
      return present === 1 ? of.read(r) : null;
    },
    write: (w, v) => {
      w.uint(v === null || v === undefined ? 0 : 1);
      if (v !== null && v !== undefined) of.write(w, v);
    },
  };
}

type Fields = Record<string, Xdr<any>>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A structure: its fields on the wire in the order they are declared here. */
export function struct<F extends Fields>(fields: F): Xdr<{ [K in keyof F]: XdrValue<F[K]> }> {
  const entries = Object.entries(fields);
  return {
    kind: 'struct',
    read: (r) => {
      const out: Record<string, unknown> = {};
      for (const [name, t] of entries) out[name] = t.read(r);
      return out as { [K in keyof F]: XdrValue<F[K]> };
    },
    write: (w, v) => {
      for (const [name, t] of entries) t.write(w, (v as Record<string, unknown>)[name]);
    },
  };
}

/** Encodes `value` as a complete body. */
export function encode<T>(type: Xdr<T>, value: T): Buffer {
  const w = new XdrWriter();
  type.write(w, value);
  return w.bytes();
}

/** Decodes a complete body; bytes left over mean the peer and we disagree on the shape. */
export function decode<T>(type: Xdr<T>, body: Buffer): T {
  const r = new XdrReader(body);
  const v = type.read(r);
  if (r.remaining !== 0) throw new FerryError('rpc', `${r.remaining} unexpected bytes after the message body`);
  return v;
}
