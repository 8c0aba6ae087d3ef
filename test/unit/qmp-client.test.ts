import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { LineSplitter } from '../../src/qemu/line-splitter.js';
import { QmpClient, QmpCommandError, type QmpEvent } from '../../src/qemu/qmp-client.js';
import { rejection } from '../support/refusal.js';

const GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'test' }, capabilities: ['oob'] },
};

interface Cmd {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

/** A scripted QMP server on a real unix socket. */
class FakeQmp {
  readonly server: Server;
  readonly commands: Cmd[] = [];
  sockets: Socket[] = [];
  greet = true;
  /** Answers a command; the default returns {} for everything. */
  handler: (cmd: Cmd, sock: Socket) => void = (cmd, sock) => this.reply(sock, cmd, {});

  constructor(readonly path: string) {
    this.server = createServer((sock) => {
      this.sockets.push(sock);
      if (this.greet) sock.write(`${JSON.stringify(GREETING)}\r\n`);
      const splitter = new LineSplitter(1 << 20);
      sock.on('data', (d: Buffer) => {
        for (const line of splitter.push(d)) {
          const cmd = JSON.parse(line) as Cmd;
          this.commands.push(cmd);
          if (cmd.execute === 'qmp_capabilities') this.reply(sock, cmd, {});
          else this.handler(cmd, sock);
        }
      });
      sock.on('error', () => undefined);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  reply(sock: Socket, cmd: Cmd, ret: unknown): void {
    sock.write(`${JSON.stringify({ return: ret, id: cmd.id })}\r\n`);
  }

  event(name: string, data: Record<string, unknown> = {}): void {
    for (const s of this.sockets) {
      s.write(`${JSON.stringify({ timestamp: { seconds: 1, microseconds: 2 }, event: name, data })}\r\n`);
    }
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let dir: string;
let fake: FakeQmp;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-qmp-'));
  fake = new FakeQmp(join(dir, 'qmp.sock'));
  await fake.listen();
});

afterEach(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('QmpClient', () => {
  it('reads the greeting and negotiates capabilities', async () => {
    const qmp = await QmpClient.connect(fake.path);
    expect(qmp.greeting.QMP.version.qemu.major).toBe(7);
    expect(fake.commands.map((c) => c.execute)).toEqual(['qmp_capabilities']);
    expect(typeof fake.commands[0]?.id).toBe('string');
    qmp.close();
  });

  it('sends arguments and resolves with the return value', async () => {
    fake.handler = (cmd, sock) => fake.reply(sock, cmd, { echo: cmd.arguments });
    const qmp = await QmpClient.connect(fake.path);
    await expect(qmp.execute('query-thing', { a: 1, s: 'x,y' })).resolves.toEqual({ echo: { a: 1, s: 'x,y' } });
    qmp.close();
  });

  it('matches concurrent replies by id, whatever their order', async () => {
    const held: Array<[Cmd, Socket]> = [];
    fake.handler = (cmd, sock) => {
      held.push([cmd, sock]);
      if (held.length === 3) {
        for (const [c, s] of [...held].reverse()) fake.reply(s, c, { name: c.execute });
      }
    };
    const qmp = await QmpClient.connect(fake.path);
    const results = await Promise.all([qmp.execute('a'), qmp.execute('b'), qmp.execute('c')]);
    expect(results).toEqual([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const ids = fake.commands.slice(1).map((c) => c.id);
    expect(new Set(ids).size).toBe(3);
    qmp.close();
  });

  it('turns QMP errors into FerryErrors keeping the error class', async () => {
    fake.handler = (cmd, sock) =>
      sock.write(`${JSON.stringify({ error: { class: 'DeviceNotFound', desc: "Device 'x' not found" }, id: cmd.id })}\n`);
    const qmp = await QmpClient.connect(fake.path);
    const err = await rejection(qmp.execute('device_del', { id: 'x' }));
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err.code).toBe('operation_failed');
    expect(err.message).toBe("QEMU refused device_del: Device 'x' not found");
    expect((err as QmpCommandError).qmpClass).toBe('DeviceNotFound');
    qmp.close();
  });

  it('times out a command and ignores its late reply', async () => {
    let late: [Cmd, Socket] | undefined;
    fake.handler = (cmd, sock) => {
      if (cmd.execute === 'slow') late = [cmd, sock];
      else fake.reply(sock, cmd, { name: cmd.execute });
    };
    const qmp = await QmpClient.connect(fake.path);
    const err = await rejection(qmp.execute('slow', undefined, { timeoutMs: 50 }));
    expect(err.code).toBe('operation_timeout');
    expect(late).toBeDefined();
    if (late) fake.reply(late[1], late[0], { name: 'slow-late' });
    await expect(qmp.execute('fast')).resolves.toEqual({ name: 'fast' });
    qmp.close();
  });

  it('delivers events to listeners, waitForEvent and the iterator', async () => {
    const qmp = await QmpClient.connect(fake.path);
    const seen: QmpEvent[] = [];
    qmp.on('event', (ev) => seen.push(ev));
    const iter = qmp.events();
    const waited = qmp.waitForEvent('MIGRATION', (ev) => ev.data.status === 'completed', 2000);
    fake.event('STOP');
    fake.event('MIGRATION', { status: 'active' });
    fake.event('MIGRATION', { status: 'completed' });
    const ev = await waited;
    expect(ev.data).toEqual({ status: 'completed' });
    expect(ev.timestamp).toEqual({ seconds: 1, microseconds: 2 });
    expect(seen.map((e) => e.event)).toEqual(['STOP', 'MIGRATION', 'MIGRATION']);
    const first = await iter.next();
    expect(first.value?.event).toBe('STOP');
    const second = await iter.next();
    expect(second.value?.data).toEqual({ status: 'active' });
    await iter.return?.();
    qmp.close();
  });

  it('ends the event iterator when the connection closes', async () => {
    const qmp = await QmpClient.connect(fake.path);
    const got: string[] = [];
    const loop = (async () => {
      for await (const ev of qmp.events()) got.push(ev.event);
    })();
    fake.event('RESUME');
    await new Promise((r) => setTimeout(r, 20));
    for (const s of fake.sockets) s.destroy();
    await loop;
    expect(got).toEqual(['RESUME']);
  });

  it('times out waitForEvent', async () => {
    const qmp = await QmpClient.connect(fake.path);
    const err = await rejection(qmp.waitForEvent('SHUTDOWN', undefined, 30));
    expect(err.code).toBe('operation_timeout');
    qmp.close();
  });

  it('rejects pending work and emits close when the peer goes away', async () => {
    fake.handler = () => undefined;
    const qmp = await QmpClient.connect(fake.path);
    const closed = new Promise<FerryError | undefined>((resolve) => qmp.once('close', resolve));
    const pending = qmp.execute('never', undefined, { timeoutMs: Infinity });
    const waiting = qmp.waitForEvent('SHUTDOWN');
    await new Promise((r) => setTimeout(r, 20));
    for (const s of fake.sockets) s.end();
    expect((await rejection(pending)).code).toBe('operation_failed');
    expect((await rejection(waiting)).message).toContain('closed');
    expect(await closed).toBeUndefined();
    expect(qmp.closed).toBe(true);
    expect((await rejection(qmp.execute('after'))).code).toBe('operation_failed');
  });

  it('handles messages split across chunks and several in one chunk', async () => {
    fake.handler = (cmd, sock) => {
      const ev = JSON.stringify({ event: 'X', data: { s: 'é€😀' }, timestamp: { seconds: 0, microseconds: 0 } });
      const rep = JSON.stringify({ return: { s: 'ünïcode 😀' }, id: cmd.id });
      const bytes = Buffer.from(`${ev}\r\n${ev}\n${rep}\r\n`, 'utf8');
      // One byte at a time, splitting every multi-byte character.
      let i = 0;
      const tick = (): void => {
        if (i >= bytes.length) return;
        sock.write(bytes.subarray(i, i + 1));
        i++;
        setImmediate(tick);
      };
      tick();
    };
    const qmp = await QmpClient.connect(fake.path);
    const events: QmpEvent[] = [];
    qmp.on('event', (e) => events.push(e));
    await expect(qmp.execute('q')).resolves.toEqual({ s: 'ünïcode 😀' });
    expect(events.map((e) => e.data.s)).toEqual(['é€😀', 'é€😀']);

    // Now everything in a single write: greeting-style batching.
    fake.handler = (cmd, sock) => {
      sock.write(
        `${JSON.stringify({ event: 'A', data: {} })}\n${JSON.stringify({ event: 'B', data: {} })}\n${JSON.stringify({ return: 7, id: cmd.id })}\n`,
      );
    };
    await expect(qmp.execute('q2')).resolves.toBe(7);
    expect(events.map((e) => e.event).slice(-2)).toEqual(['A', 'B']);
    qmp.close();
  });

  it('closes the connection on an over-long message', async () => {
    fake.handler = (_cmd, sock) => sock.write('x'.repeat(5000));
    const qmp = await QmpClient.connect(fake.path, { maxLineBytes: 1024 });
    const closed = new Promise<FerryError | undefined>((resolve) => qmp.once('close', resolve));
    const err = await rejection(qmp.execute('big'));
    expect(err.message).toContain('longer than 1024');
    expect((await closed)?.code).toBe('rpc');
  });

  it('times out a connect without greeting', async () => {
    fake.greet = false;
    const err = await rejection(QmpClient.connect(fake.path, { timeoutMs: 100 }));
    expect(err.code).toBe('operation_timeout');
  });

  it('refuses a peer that does not speak QMP', async () => {
    fake.greet = false;
    const p = QmpClient.connect(fake.path, { timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 30));
    fake.sockets[0]?.write('{"hello": 1}\n');
    expect((await rejection(p)).code).toBe('rpc');
  });

  it('fails to connect to a missing socket', async () => {
    const err = await rejection(QmpClient.connect(join(dir, 'nope.sock')));
    expect(err.code).toBe('operation_failed');
    expect(err.message).toContain('nope.sock');
  });

  it('close() rejects pending commands and keeps the peer untouched', async () => {
    fake.handler = () => undefined;
    const qmp = await QmpClient.connect(fake.path);
    const p = qmp.execute('hang', undefined, { timeoutMs: Infinity });
    qmp.close();
    expect((await rejection(p)).code).toBe('operation_failed');
  });
});

describe('LineSplitter', () => {
  it('splits on LF and CRLF, drops empty lines, keeps partial data', () => {
    const s = new LineSplitter(100);
    expect(s.push(Buffer.from('ab'))).toEqual([]);
    expect(s.push(Buffer.from('c\r\n\r\nde\nf'))).toEqual(['abc', 'de']);
    expect(s.push(Buffer.from('\n'))).toEqual(['f']);
  });

  it('enforces the cap across chunks', () => {
    const s = new LineSplitter(4);
    s.push(Buffer.from('abc'));
    expect(() => s.push(Buffer.from('de'))).toThrow(FerryError);
  });
});
