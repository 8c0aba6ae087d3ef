import { describe, it, expect, vi, afterEach } from 'vitest';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, printError, printResult, renderFields, renderTable, stdOutput, type Output } from '../../src/cli/output.js';
import { ERROR_CODES, FerryError } from '../../src/errors/index.js';

function capture(json: boolean): Output & { outs: string[]; errs: string[] } {
  const outs: string[] = [];
  const errs: string[] = [];
  return { json, out: (t) => outs.push(t), err: (t) => errs.push(t), outs, errs };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('renderTable', () => {
  it('renders like virsh list: leading space, 3-space gaps, dashed rule, trailing newline', () => {
    const text = renderTable(
      ['Id', 'Name', 'State'],
      [
        ['1', 'web', 'running'],
        ['-', 'cache', 'shut off'],
      ],
    );
    expect(text).toBe(
      [
        ' Id   Name    State', //
        '------------------------',
        ' 1    web     running',
        ' -    cache   shut off',
        '',
      ].join('\n'),
    );
  });

  it('widens a column to its longest cell or header, and the rule with it', () => {
    const lines = renderTable(['Id', 'Name'], [['12345', 'a-very-long-domain-name']]).split('\n');
    expect(lines[0]).toBe(' Id      Name');
    expect(lines[2]).toBe(' 12345   a-very-long-domain-name');
    expect(lines[1]).toBe('-'.repeat(5 + 3 + 23 + 3));
  });

  it('starts every column at the same offset in every line', () => {
    const [head, , r1, r2] = renderTable(['Id', 'Name', 'State'], [['7', 'db', 'paused'], ['10', 'xyz', 'running']]).split('\n');
    expect(r1!.indexOf('db')).toBe(head!.indexOf('Name'));
    expect(r2!.indexOf('xyz')).toBe(head!.indexOf('Name'));
    expect(r1!.indexOf('paused')).toBe(head!.indexOf('State'));
    expect(r2!.indexOf('running')).toBe(head!.indexOf('State'));
    expect(head!.indexOf('Id')).toBe(1);
    expect(r2!.indexOf('10')).toBe(1);
  });

  it('has no trailing spaces on any line', () => {
    const text = renderTable(['Id', 'Name', 'State'], [['1', 'a', 'running'], ['-', 'bbbbbbbb', 'shut off']]);
    for (const line of text.split('\n')) expect(line).toBe(line.trimEnd());
  });

  it('renders just the header and rule for no rows', () => {
    expect(renderTable(['Id', 'Name', 'State'], [])).toBe(' Id   Name   State\n' + '-'.repeat(20) + '\n');
  });
});

describe('renderFields', () => {
  it('renders "Key:" padded so that all values start in one column, like virsh dominfo', () => {
    const text = renderFields([
      ['Id', '1'],
      ['Name', 'web'],
      ['Managed save', 'no'],
    ]);
    expect(text).toBe(['Id:           1', 'Name:         web', 'Managed save: no', ''].join('\n'));
  });

  it('keeps values verbatim, including spaces', () => {
    expect(renderFields([['State', 'shut off']])).toBe('State: shut off\n');
  });
});

describe('printError', () => {
  it('prints "error: <message>" to stderr in text mode and returns exit status 1', () => {
    const o = capture(false);
    expect(printError(o, new FerryError('no_domain', "Domain not found: 'x'"))).toBe(EXIT_FAILURE);
    expect(o.errs).toEqual(["error: Domain not found: 'x'"]);
    expect(o.outs).toEqual([]);
  });

  it('prints {"error": {code, number, message}} to stdout in JSON mode', () => {
    const o = capture(true);
    expect(printError(o, new FerryError('operation_timeout', 'too slow'))).toBe(EXIT_FAILURE);
    expect(o.errs).toEqual([]);
    expect(o.outs).toHaveLength(1);
    expect(JSON.parse(o.outs[0]!)).toEqual({ error: { code: 'operation_timeout', number: ERROR_CODES.operation_timeout.number, message: 'too slow' } });
  });

  it('reports an uncoded error as internal_error with its message', () => {
    const o = capture(true);
    printError(o, new Error('something odd'));
    expect(JSON.parse(o.outs[0]!)).toEqual({ error: { code: 'internal_error', number: 1, message: 'something odd' } });
    const t = capture(false);
    printError(t, 'a thrown string');
    expect(t.errs).toEqual(['error: a thrown string']);
  });
});

describe('printResult', () => {
  it('prints the value as JSON in JSON mode without building the human text', () => {
    const o = capture(true);
    let built = false;
    printResult(o, [{ name: 'web', id: 1 }], () => {
      built = true;
      return 'human';
    });
    expect(built).toBe(false);
    expect(JSON.parse(o.outs[0]!)).toEqual([{ name: 'web', id: 1 }]);
  });

  it('prints the human text otherwise, and nothing for empty text', () => {
    const o = capture(false);
    printResult(o, { x: 1 }, () => 'Domain web started\n');
    printResult(o, { x: 1 }, () => '');
    expect(o.outs).toEqual(['Domain web started\n']);
  });
});

describe('stdOutput and exit statuses', () => {
  it('exit statuses follow virsh: 0 ok, 1 failure, 2 usage', () => {
    expect([EXIT_OK, EXIT_FAILURE, EXIT_USAGE]).toEqual([0, 1, 2]);
  });

  it('adds exactly one trailing newline', () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const o = stdOutput(false);
    o.out('a');
    o.out('b\n');
    o.err('e');
    expect(out.mock.calls.map((c) => c[0])).toEqual(['a\n', 'b\n']);
    expect(err.mock.calls.map((c) => c[0])).toEqual(['e\n']);
    expect(o.json).toBe(false);
  });
});
