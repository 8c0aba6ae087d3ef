import { describe, it, expect } from 'vitest';
import { Command } from 'commander';
import { COMMAND_MODULES, VALUE_OPTIONS, buildProgram, commandOf, mapStack } from '../../src/cli/program.js';
import { CliContext } from '../../src/cli/context.js';

const argv = (...args: string[]) => ['node', 'ferry', ...args];

describe('COMMAND_MODULES (which module registers which commands)', () => {
  it('names exactly the commands each module registers', async () => {
    for (const m of COMMAND_MODULES) {
      const p = new Command('ferry');
      (await m.load())(p, new CliContext(p));
      expect(p.commands.map((c) => c.name())).toEqual(m.commands);
    }
  });

  it('names each command once', () => {
    const all = COMMAND_MODULES.flatMap((m) => m.commands);
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('buildProgram', () => {
  it('registers every command without a command line, in the table order', async () => {
    const { program } = await buildProgram();
    expect(program.commands.map((c) => c.name())).toEqual(COMMAND_MODULES.flatMap((m) => m.commands));
  });

  it('registers only the module of the command named', async () => {
    const { program } = await buildProgram(argv('-c', 'ferry:///system', 'list', '--all'));
    expect(program.commands.map((c) => c.name())).toEqual(COMMAND_MODULES.find((m) => m.commands.includes('list'))!.commands);
  });

  it('registers everything for help and for an unknown command', async () => {
    const every = COMMAND_MODULES.flatMap((m) => m.commands).length;
    for (const a of [argv(), argv('--help'), argv('help', 'migrate'), argv('lst')]) {
      expect((await buildProgram(a)).program.commands.length).toBe(every);
    }
  });
});

describe('commandOf', () => {
  it('knows exactly the global options that take a value, as the program defines them', async () => {
    const { program } = await buildProgram();
    const takingValue = program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.short, o.long].filter((f): f is string => !!f));
    expect(new Set(takingValue)).toEqual(VALUE_OPTIONS);
  });

  it('skips the global options and their values', () => {
    expect(commandOf(argv('list'))).toBe('list');
    expect(commandOf(argv('-c', 'list', 'uri'))).toBe('uri');
    expect(commandOf(argv('--connect', 'x', '--json', '-k', '5', '-K', '3', 'migrate', 'a', 'b'))).toBe('migrate');
    expect(commandOf(argv('--connect=x', 'dominfo', 'd'))).toBe('dominfo');
    expect(commandOf(argv('--', 'list'))).toBe('list');
    expect(commandOf(argv('--json'))).toBeUndefined();
    expect(commandOf(argv())).toBeUndefined();
  });
});

describe('mapStack', () => {
  it('leaves frames of files without a source map alone', () => {
    const stack = 'Error: x\n    at f (/nonexistent/a.js:1:2)\n    at node:internal/x:3:4';
    expect(mapStack(stack)).toBe(stack);
  });
});
