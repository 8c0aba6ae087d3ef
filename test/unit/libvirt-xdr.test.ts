/**
 * libvirt's wire encoding as a peer sees it: XDR values, the shared shapes
 * of the remote protocol (domain reference, typed parameters, remote_error)
 * and the RPC framing. Expected bytes are written out by hand from RFC 4506
 * and libvirt's `remote_protocol.x` / `virnetprotocol.x`, not produced by
 * the encoder under test; hostile input must be an `rpc` FerryError, never
 * a RangeError or an allocation the message does not pay for.
 */
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { array, bool, decode, double, empty, encode, fixedArray, fixedOpaque, hyper, int, opaque, optional, string, struct, uhyper, uint, XdrReader, type Xdr } from '../../src/libvirt/xdr.js';
import { COOKIE_MAX, domainRef, nonnullString, optString, remoteError, STRING_MAX, typedParam, typedParams, type TypedParam } from '../../src/libvirt/wire-types.js';
import { encodeMessage, HEADER_BYTES, MESSAGE_MAX, MessageStatus, MessageType, RpcDecoder, STREAM_CHUNK_MAX, type RpcMessage } from '../../src/libvirt/rpc.js';
import { KEEPALIVE_PROGRAM, PROCEDURE_BY_NUMBER, PROCEDURES, REMOTE_PROGRAM } from '../../src/libvirt/procedures.js';
import { codeOf, refusal } from '../support/refusal.js';
import { Rng } from '../fuzz/rng.js';

/** Bytes from a hex string with spaces between words, e.g. `'00000003 61626300'`. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Decoding `bytes` as `type` is refused with an `rpc` FerryError (not a RangeError, not a silent value). */
function refusedRpc<T>(type: Xdr<T>, bytes: Buffer): FerryError {
  const err = refusal(() => decode(type, bytes));
  expect(err.code).toBe('rpc');
  return err;
}

const UUID = hex('5c4e7a63 8f274b6e 9c1d3a2f 0e8b7d14');

describe('XDR primitives, byte for byte', () => {
  it.each([
    ['int 1', int, 1, '00000001'],
    ['int -1', int, -1, 'ffffffff'],
    ['int -2147483648', int, -2147483648, '80000000'],
    ['unsigned int 4294967295', uint, 4294967295, 'ffffffff'],
    ['unsigned int 0x20008086', uint, 0x20008086, '20008086'],
    ['hyper -2', hyper, -2, 'ffffffff fffffffe'],
    ['hyper 2^40', hyper, 2 ** 40, '00000100 00000000'],
    ['unsigned hyper 5', uhyper, 5, '00000000 00000005'],
    ['unsigned hyper 2^53-1', uhyper, Number.MAX_SAFE_INTEGER, '001fffff ffffffff'],
    ['double 1.5', double, 1.5, '3ff80000 00000000'],
    ['double -0.25', double, -0.25, 'bfd00000 00000000'],
  ] as const)('%s', (_label, type, value, bytes) => {
    expect(encode(type as Xdr<number>, value).toString('hex')).toBe(hex(bytes).toString('hex'));
    expect(decode(type as Xdr<number>, hex(bytes))).toBe(value);
  });

  it('a bool is an int: 1 for true, any non-zero int reads as true', () => {
    expect(encode(bool, true)).toEqual(hex('00000001'));
    expect(encode(bool, false)).toEqual(hex('00000000'));
    expect(decode(bool, hex('00000002'))).toBe(true);
    expect(decode(bool, hex('ffffffff'))).toBe(true);
    expect(decode(bool, hex('00000000'))).toBe(false);
  });

  it('the string "abc" is 00000003 61626300 (length, bytes, zero padding to four)', () => {
    expect(encode(nonnullString, 'abc')).toEqual(hex('00000003 61626300'));
    expect(decode(nonnullString, hex('00000003 61626300'))).toBe('abc');
  });

  it.each([
    ['', '00000000'],
    ['a', '00000001 61000000'],
    ['abcd', '00000004 61626364'],
    ['abcde', '00000005 61626364 65000000'],
    ['é', '00000002 c3a90000'],
  ])('the string %j is padded to a multiple of four', (s, bytes) => {
    expect(encode(nonnullString, s)).toEqual(hex(bytes));
    expect(decode(nonnullString, hex(bytes))).toBe(s);
  });

  it('an absent optional is 00000000, a present one 00000001 and the value', () => {
    expect(encode(optString, null)).toEqual(hex('00000000'));
    expect(encode(optString, 'ab')).toEqual(hex('00000001 00000002 61620000'));
    expect(decode(optString, hex('00000000'))).toBeNull();
    expect(decode(optString, hex('00000001 00000002 61620000'))).toBe('ab');
  });

  it('variable opaque data is length, bytes and padding; fixed opaque data has no length', () => {
    expect(encode(opaque(16), Buffer.from([1, 2, 3]))).toEqual(hex('00000003 01020300'));
    expect(encode(fixedOpaque(3), Buffer.from([1, 2, 3]))).toEqual(hex('01020300'));
    expect(decode(fixedOpaque(16), UUID)).toEqual(UUID);
  });

  it('a counted array is its count and its elements; a fixed array only its elements', () => {
    expect(encode(array(int, 10), [1, -1])).toEqual(hex('00000002 00000001 ffffffff'));
    expect(encode(array(int, 10), [])).toEqual(hex('00000000'));
    expect(encode(fixedArray(int, 2), [7, 8])).toEqual(hex('00000007 00000008'));
    expect(decode(array(nonnullString, 10), hex('00000002 00000001 61000000 00000000'))).toEqual(['a', '']);
  });

  it('a struct is its fields in declaration order, with nothing between them', () => {
    const t = struct({ b: int, a: nonnullString, c: uhyper });
    expect(encode(t, { a: 'x', b: 2, c: 3 })).toEqual(hex('00000002 00000001 78000000 00000000 00000003'));
    expect(decode(t, hex('00000002 00000001 78000000 00000000 00000003'))).toEqual({ a: 'x', b: 2, c: 3 });
  });

  it('void is no bytes at all', () => {
    expect(encode(empty, {})).toEqual(Buffer.alloc(0));
    expect(decode(empty, Buffer.alloc(0))).toEqual({});
  });
});

describe('XDR round trips', () => {
  const shape = struct({
    name: optString,
    ids: array(int, 100),
    big: uhyper,
    neg: hyper,
    ratio: double,
    flag: bool,
    blob: opaque(1000),
    uuid: fixedOpaque(16),
    nested: optional(struct({ s: nonnullString, n: uint })),
  });

  /** `s` as UTF-8 can carry it (`nasty` may cut a surrogate pair in half). */
  const text = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

  it('values of every kind come back as they went, for random values', () => {
    const rng = new Rng(4242);
    for (let i = 0; i < 200; i++) {
      const v = {
        name: rng.next() < 0.3 ? null : text(rng.nasty(30)),
        ids: Array.from({ length: rng.int(0, 20) }, () => rng.int(-2147483648, 2147483647)),
        big: rng.int(0, Number.MAX_SAFE_INTEGER),
        neg: -rng.int(0, Number.MAX_SAFE_INTEGER),
        ratio: rng.next() * 1e6 - 5e5,
        flag: rng.next() < 0.5,
        blob: rng.bytes(rng.int(0, 37)),
        uuid: rng.bytes(16),
        nested: rng.next() < 0.5 ? null : { s: text(rng.nasty(9)), n: rng.int(0, 4294967295) },
      };
      const bytes = encode(shape, v);
      expect(bytes.length % 4).toBe(0);
      expect(decode(shape, bytes)).toEqual(v);
    }
  });
});

describe('XDR bounds: hostile input is an rpc error', () => {
  it('a string longer than its maximum, without reading it', () => {
    const err = refusedRpc(string(3), hex('00000004 61626364'));
    expect(err.message).toContain('longer than the protocol allows');
    // A declared length of 4 GiB in an 8-byte message: refused by the limit, not by allocating.
    refusedRpc(nonnullString, hex('ffffffff 00000000'));
    refusedRpc(nonnullString, Buffer.concat([hex(`${(STRING_MAX + 1).toString(16).padStart(8, '0')}`), Buffer.alloc(8)]));
  });

  it('a string (or opaque data) within its maximum but longer than the message', () => {
    refusedRpc(nonnullString, hex('00000010 61626364'));
    refusedRpc(opaque(COOKIE_MAX), hex('00100000 00000000'));
    // Padding counts: 5 bytes of data need 8 on the wire.
    refusedRpc(nonnullString, hex('00000005 61626364 65'));
  });

  it('a list count larger than its maximum', () => {
    refusedRpc(array(int, 3), hex('00000004 00000001 00000002 00000003 00000004'));
  });

  it('a list count larger than the message could hold is refused before any element is read', () => {
    // 16384 domains allowed, but 12 bytes cannot hold 16000 of anything.
    const err = refusedRpc(array(domainRef, 16384), hex('00003e80 00000000 00000000'));
    expect(err.message).toContain('truncated');
    refusedRpc(typedParams(64), hex('00000040'));
    refusedRpc(array(int, 0xffffffff), hex('ffffffff'));
  });

  it('a truncated body, at every cut', () => {
    const whole = encode(domainRef, { name: 'guest', uuid: UUID, id: 3 });
    for (let cut = 0; cut < whole.length; cut++) refusedRpc(domainRef, whole.subarray(0, cut));
    const call = encode(PROCEDURES.DOMAIN_MIGRATE_PERFORM3_PARAMS.args, {
      dom: { name: 'g', uuid: UUID, id: 1 },
      dconnuri: 'qemu+tcp://h/system',
      params: [{ field: 'bandwidth', value: { type: 'ullong', value: 100 } }],
      cookieIn: Buffer.from('{}'),
      flags: 3,
    });
    for (let cut = 0; cut < call.length; cut++) refusedRpc(PROCEDURES.DOMAIN_MIGRATE_PERFORM3_PARAMS.args, call.subarray(0, cut));
  });

  it('bytes after the body', () => {
    const err = refusedRpc(nonnullString, hex('00000003 61626300 00000000'));
    expect(err.message).toContain('4 unexpected bytes');
    refusedRpc(empty, hex('00'));
  });

  it('an optional marked neither 0 nor 1', () => {
    refusedRpc(optString, hex('00000002 00000000'));
    refusedRpc(optString, hex('ffffffff'));
  });

  it('a fixed opaque value of the wrong size cannot be written', () => {
    expect(codeOf(() => encode(fixedOpaque(16), Buffer.alloc(15)))).toBe('rpc');
    expect(codeOf(() => encode(string(2), 'abc'))).toBe('rpc');
    expect(codeOf(() => encode(array(int, 1), [1, 2]))).toBe('rpc');
  });

  it('a declared length of 2^31 or more in a generic opaque type is refused, not wrapped into a small padding', () => {
    // Every length the protocol table declares is far below 2^31, but the combinators promise the bound for any maximum:
    // the padded length (n + 3) & ~3 must not overflow 32-bit arithmetic into 0 or a negative number.
    const t = struct({ blob: opaque(0xffffffff), a: int, b: int });
    for (const n of ['fffffffd', 'fffffffe', 'ffffffff', '80000000']) refusedRpc(t, hex(`${n} 00000001 00000002`));
  });

  it('random bytes as any procedure argument: a value or an rpc error, nothing else', () => {
    const rng = new Rng(77);
    for (const [, p] of Object.entries(PROCEDURES)) {
      for (let i = 0; i < 40; i++) {
        const body = rng.next() < 0.5 ? rng.bytes(rng.int(0, 64)) : Buffer.concat([hex(rng.pick(['00000001', '00000000', '7fffffff', 'ffffffff', '00000010'])), rng.bytes(rng.int(0, 40))]);
        try {
          decode(p.args as Xdr<unknown>, body);
        } catch (err) {
          expect(err).toBeInstanceOf(FerryError);
          expect((err as FerryError).code).toBe('rpc');
        }
      }
    }
  });

  it('the reader never reads past its buffer', () => {
    const r = new XdrReader(hex('00000001'));
    expect(r.int()).toBe(1);
    expect(r.remaining).toBe(0);
    expect(codeOf(() => r.int())).toBe('rpc');
    expect(codeOf(() => r.uhyper())).toBe('rpc');
    expect(codeOf(() => r.fixed(1))).toBe('rpc');
  });
});

describe('shapes of the remote protocol', () => {
  it('remote_nonnull_domain is name, 16 bytes of UUID, id', () => {
    const bytes = hex('00000005 67756573 74000000 5c4e7a63 8f274b6e 9c1d3a2f 0e8b7d14 ffffffff');
    expect(encode(domainRef, { name: 'guest', uuid: UUID, id: -1 })).toEqual(bytes);
    expect(decode(domainRef, bytes)).toEqual({ name: 'guest', uuid: UUID, id: -1 });
  });

  it('a typed parameter of type ullong: field, 4, eight bytes', () => {
    const p: TypedParam = { field: 'bandwidth', value: { type: 'ullong', value: 5 } };
    const bytes = hex('00000009 62616e64 77696474 68000000 00000004 00000000 00000005');
    expect(encode(typedParam, p)).toEqual(bytes);
    expect(decode(typedParam, bytes)).toEqual(p);
  });

  // remote_typed_param_value: a discriminated union keyed by virTypedParameterType.
  it.each([
    ['int', { type: 'int', value: -2 }, '00000001 fffffffe'],
    ['uint', { type: 'uint', value: 4294967295 }, '00000002 ffffffff'],
    ['llong', { type: 'llong', value: -2 }, '00000003 ffffffff fffffffe'],
    ['ullong', { type: 'ullong', value: 2 ** 40 }, '00000004 00000100 00000000'],
    ['double', { type: 'double', value: 1.5 }, '00000005 3ff80000 00000000'],
    ['boolean', { type: 'boolean', value: true }, '00000006 00000001'],
    ['string', { type: 'string', value: 'vda' }, '00000007 00000003 76646100'],
  ] as const)('the typed parameter union, type %s', (_label, value, valueBytes) => {
    const p = { field: 'f', value } as TypedParam;
    const bytes = Buffer.concat([hex('00000001 66000000'), hex(valueBytes)]);
    expect(encode(typedParam, p)).toEqual(bytes);
    expect(decode(typedParam, bytes)).toEqual(p);
  });

  it('a typed parameter list is counted; an unknown type number is an rpc error', () => {
    expect(encode(typedParams(4), [{ field: 'a', value: { type: 'boolean', value: false } }])).toEqual(hex('00000001 00000001 61000000 00000006 00000000'));
    for (const t of ['00000000', '00000008', 'ffffffff']) refusedRpc(typedParam, hex(`00000001 61000000 ${t} 00000000 00000000`));
  });

  it('a typed parameter field is at most 80 bytes (VIR_TYPED_PARAM_FIELD_LENGTH)', () => {
    refusedRpc(typedParam, Buffer.concat([hex('00000051'), Buffer.alloc(84), hex('00000001 00000000')]));
    expect(decode(typedParam, Buffer.concat([hex('00000050'), Buffer.alloc(80, 0x61), hex('00000001 00000007')])).field).toBe('a'.repeat(80));
  });

  it('remote_error: code, domain, message*, level, dom*, str1-3*, int1, int2, net*', () => {
    const bytes = hex(
      '0000002a 0000000a 00000001 00000001 78000000 00000002 00000000 00000000 00000000 00000000 ffffffff 00000000 00000000',
    );
    const e = { code: 42, domain: 10, message: 'x', level: 2, dom: null, str1: null, str2: null, str3: null, int1: -1, int2: 0, net: null };
    expect(encode(remoteError, e)).toEqual(bytes);
    expect(decode(remoteError, bytes)).toEqual(e);
  });

  it('procedure numbers are libvirt’s, and unique', () => {
    expect(PROCEDURES.CONNECT_OPEN.number).toBe(1);
    expect(PROCEDURES.AUTH_LIST.number).toBe(66);
    expect(PROCEDURES.CONNECT_SUPPORTS_FEATURE.number).toBe(60);
    expect(PROCEDURES.CONNECT_LIST_ALL_DOMAINS.number).toBe(273);
    expect(PROCEDURES.DOMAIN_LOOKUP_BY_NAME.number).toBe(23);
    expect(PROCEDURES.DOMAIN_GET_JOB_STATS.number).toBe(298);
    expect(PROCEDURES.DOMAIN_MIGRATE_BEGIN3_PARAMS.number).toBe(302);
    expect(PROCEDURES.DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS.number).toBe(304);
    expect(PROCEDURES.DOMAIN_MIGRATE_CONFIRM3_PARAMS.number).toBe(307);
    expect(PROCEDURE_BY_NUMBER.size).toBe(Object.keys(PROCEDURES).length);
  });

  it('CONNECT_LIST_ALL_DOMAINS answers a counted list of domains and a count', () => {
    const ret = { domains: [{ name: 'a', uuid: UUID, id: 1 }], ret: 1 };
    expect(encode(PROCEDURES.CONNECT_LIST_ALL_DOMAINS.ret, ret)).toEqual(
      hex('00000001 00000001 61000000 5c4e7a63 8f274b6e 9c1d3a2f 0e8b7d14 00000001 00000001'),
    );
    expect(encode(PROCEDURES.CONNECT_LIST_ALL_DOMAINS.args, { needResults: 1, flags: 0x10 })).toEqual(hex('00000001 00000010'));
  });
});

describe('RPC framing', () => {
  const CONNECT_OPEN_FRAME = hex(
    // length 56, program 0x20008086, version 1, procedure 1, type CALL, serial 1, status OK
    '00000038 20008086 00000001 00000001 00000000 00000001 00000000' +
      // remote_connect_open_args: name = "qemu:///system" (optional, present), flags = 0
      '00000001 0000000e 71656d75 3a2f2f2f 73797374 656d0000 00000000',
  );

  it('a CONNECT_OPEN call frame, byte for byte', () => {
    const body = encode(PROCEDURES.CONNECT_OPEN.args, { name: 'qemu:///system', flags: 0 });
    const frame = encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: MessageType.call, serial: 1, status: MessageStatus.ok }, body);
    expect(frame.toString('hex')).toBe(CONNECT_OPEN_FRAME.toString('hex'));
    const [m, ...rest] = new RpcDecoder().push(CONNECT_OPEN_FRAME);
    expect(rest).toEqual([]);
    expect(m!.header).toEqual({ program: 0x20008086, version: 1, procedure: 1, type: 0, serial: 1, status: 0 });
    expect(decode(PROCEDURES.CONNECT_OPEN.args, m!.body)).toEqual({ name: 'qemu:///system', flags: 0 });
  });

  it('a keepalive PING is a header only: program "keep", procedure 1, type MESSAGE', () => {
    expect(encodeMessage({ program: KEEPALIVE_PROGRAM, version: 1, procedure: 1, type: MessageType.message, serial: 0, status: 0 })).toEqual(
      hex('0000001c 6b656570 00000001 00000001 00000002 00000000 00000000'),
    );
  });

  it('header fields are read as libvirt types them (serial unsigned, procedure and status signed)', () => {
    const [m] = new RpcDecoder().push(hex('0000001c ffffffff ffffffff ffffffff 00000003 ffffffff ffffffff'));
    expect(m!.header).toEqual({ program: 0xffffffff, version: 0xffffffff, procedure: -1, type: 3, serial: 0xffffffff, status: -1 });
    expect(m!.body.length).toBe(0);
  });

  it('frames split at every byte boundary and at random chunk boundaries decode to the same messages', () => {
    const frames = [
      CONNECT_OPEN_FRAME,
      hex('0000001c 6b656570 00000001 00000001 00000002 00000000 00000000'),
      encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 304, type: 3, serial: 9, status: 2 }, Buffer.alloc(1000, 0xab)),
      encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 23, type: 0, serial: 10, status: 0 }, encode(nonnullString, 'vm')),
    ];
    const all = Buffer.concat(frames);
    const expected = new RpcDecoder().push(all);
    expect(expected.map((m) => m.header.serial)).toEqual([1, 0, 9, 10]);
    expect(expected[2]!.body).toEqual(Buffer.alloc(1000, 0xab));

    const dec1 = new RpcDecoder();
    const oneByOne: RpcMessage[] = [];
    for (let i = 0; i < all.length; i++) oneByOne.push(...dec1.push(all.subarray(i, i + 1)));
    expect(oneByOne).toEqual(expected);
    expect(dec1.pendingBytes).toBe(0);

    const rng = new Rng(31337);
    for (let round = 0; round < 50; round++) {
      const dec = new RpcDecoder();
      const got: RpcMessage[] = [];
      for (let at = 0; at < all.length; ) {
        const n = rng.int(1, 200);
        got.push(...dec.push(Buffer.from(all.subarray(at, at + n))));
        at += n;
      }
      expect(got).toEqual(expected);
    }
  });

  it('holds an incomplete frame and reports its bytes as pending', () => {
    const dec = new RpcDecoder();
    expect(dec.push(CONNECT_OPEN_FRAME.subarray(0, 30))).toEqual([]);
    expect(dec.pendingBytes).toBe(30);
    expect(dec.push(CONNECT_OPEN_FRAME.subarray(30))).toHaveLength(1);
    expect(dec.pendingBytes).toBe(0);
  });

  it('refuses a declared length below 28 (a header cannot fit), as soon as the length is known', () => {
    for (const len of [0, 1, 4, 5, 27]) {
      const dec = new RpcDecoder();
      const err = refusal(() => dec.push(hex(len.toString(16).padStart(8, '0'))));
      expect(err.code).toBe('rpc');
    }
    // The length field itself in two pieces.
    const dec = new RpcDecoder();
    expect(dec.push(hex('0000'))).toEqual([]);
    expect(codeOf(() => dec.push(hex('0005')))).toBe('rpc');
  });

  it('accepts exactly 28 (an empty body)', () => {
    const [m] = new RpcDecoder().push(hex('0000001c 20008086 00000001 00000002 00000000 00000005 00000000'));
    expect(m!.header.procedure).toBe(2);
    expect(m!.body.length).toBe(0);
  });

  it('refuses a declared length above 32 MiB before buffering it; 32 MiB itself is allowed', () => {
    const over = new RpcDecoder();
    expect(codeOf(() => over.push(hex((MESSAGE_MAX + 1).toString(16).padStart(8, '0'))))).toBe('rpc');
    expect(codeOf(() => new RpcDecoder().push(hex('ffffffff')))).toBe('rpc');
    expect(MESSAGE_MAX).toBe(32 * 1024 * 1024);
    const at = new RpcDecoder();
    expect(at.push(hex('02000000 20008086'))).toEqual([]);
    expect(at.pendingBytes).toBe(8);
  });

  it('will not encode a frame over 32 MiB', () => {
    expect(codeOf(() => encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: 0, serial: 1, status: 0 }, Buffer.alloc(MESSAGE_MAX - 28 + 1)))).toBe('rpc');
    expect(encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: 0, serial: 1, status: 0 }, Buffer.alloc(MESSAGE_MAX - 28)).length).toBe(MESSAGE_MAX);
  });

  it('a stream chunk is at most libvirt’s legacy payload limit, 262120 bytes', () => {
    expect(STREAM_CHUNK_MAX).toBe(262120);
    expect(STREAM_CHUNK_MAX + HEADER_BYTES).toBe(262144);
  });
});
