import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { compileMailbox, type CompiledMailbox } from '../../../src/restrictions/mailbox.ts';
import { decide, planDecision, skipped } from '../../../src/restrictions/decide.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { splitSqlList } from '../../../src/restrictions/sql-list.ts';
import { loadVectors, SPEC_VECTORS_PATH, VECTORS_PATH, type IredapdVector } from '../../helpers/vectors.ts';

const options = resolveOptions('iredapd');
const vectors = loadVectors();

/**
 * Runs one vector through the pure engine with the rows as an SQL store would return them:
 * `equality` is the database's comparison of the stored username with the lower-cased key.
 */
function run(vector: IredapdVector, equality: (stored: string, key: string) => boolean): string {
  const r = vector.request;
  const input = { protocolState: r.protocol_state, sender: r.sender, recipient: r.recipient, saslUsername: r.sasl_username };
  const plan = planDecision(input, options);
  if (typeof plan === 'string') return skipped(plan).action;
  const found = new Map<string, CompiledMailbox>();
  for (const key of plan.keys) {
    const row = vector.mailbox_rows.find((r) => equality(String(r.username), key));
    if (!row) continue;
    const column = (name: string) => splitSqlList(row[name] as string | null, 'iredapd');
    const record = {
      address: key,
      lists: {
        allowedSenders: column('allowedsenders'),
        rejectedSenders: column('rejectedsenders'),
        allowedRecipients: column('allowedrecipients'),
        rejectedRecipients: column('rejectedrecipients'),
      },
    };
    found.set(key, compileMailbox(record, options));
  }
  return decide(plan, (key) => found.get(key), options).action;
}

describe('iredapd preset: every case of vectors-iredapd.json', () => {
  // The spec folder sits beside the repository in development and CI; users' clones lack it.
  if (existsSync(SPEC_VECTORS_PATH)) {
    test('the in-repo copy matches the spec', () => {
      assert.equal(readFileSync(VECTORS_PATH, 'utf8'), readFileSync(SPEC_VECTORS_PATH, 'utf8'));
    });
  }

  test('there are cases to run', () => assert.ok(vectors.length >= 50, `only ${vectors.length} vectors`));

  for (const vector of vectors) {
    test(`${vector.id} (PostgreSQL equality)`, () => {
      const expected = vector.expected_by_store?.postgresql ?? vector.expected_action;
      assert.equal(run(vector, (stored, key) => stored === key), expected, vector.why);
    });
    test(`${vector.id} (MySQL equality)`, () => {
      const expected = vector.expected_by_store?.mysql ?? vector.expected_action;
      assert.equal(run(vector, (stored, key) => stored.toLowerCase() === key), expected, vector.why);
    });
  }
});
