import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedDocs } from '../../src/tools/gen-docs.js';

describe('generated docs', () => {
  for (const doc of generatedDocs()) {
    it(`${doc.path} matches its table (run \`npm run docs\` after changing the table)`, () => {
      expect(readFileSync(doc.path, 'utf8')).toBe(doc.content);
    });
  }
});
