import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EMPTY_LISTS } from '../../../src/restrictions/lists.ts';
import { mailboxKey } from '../../../src/stores/common.ts';
import { SqlStoreSettingsSchema } from '../../../src/api/store-settings.ts';
import {
  columnsToWrite,
  entriesToWrite,
  lookupKeys,
  MYSQL_DIALECT,
  observedLists,
  POSTGRES_DIALECT,
  recordsFromRows,
  rowChanges,
  SqlStatements,
} from '../../../src/stores/sql-common.ts';
import { StoreError } from '../../../src/stores/store.ts';

const defaults = SqlStoreSettingsSchema.parse({});

function row(username: string, a: string | null = '', b: string | null = '', c: string | null = '', d: string | null = '') {
  return { mw_username: username, mw_allowed_senders: a, mw_rejected_senders: b, mw_allowed_recipients: c, mw_rejected_recipients: d };
}

describe('SqlStatements', () => {
  test('PostgreSQL: quoted identifiers, numbered placeholders, one IN for all keys', () => {
    const s = new SqlStatements(POSTGRES_DIALECT, defaults);
    assert.equal(
      s.lookup(2),
      'SELECT "username" AS "mw_username", "allowedsenders" AS "mw_allowed_senders", "rejectedsenders" AS "mw_rejected_senders", ' +
        '"allowedrecipients" AS "mw_allowed_recipients", "rejectedrecipients" AS "mw_rejected_recipients" FROM "mailbox" WHERE "username" IN ($1, $2)',
    );
    assert.equal(
      s.update(),
      'UPDATE "mailbox" SET "allowedsenders" = $1, "rejectedsenders" = $2, "allowedrecipients" = $3, "rejectedrecipients" = $4 WHERE "username" = $5',
    );
    assert.match(s.selectForUpdate(), /WHERE "username" = \$1 FOR UPDATE$/);
  });

  test('MySQL: backquoted identifiers and ? placeholders', () => {
    const s = new SqlStatements(MYSQL_DIALECT, defaults);
    assert.match(s.lookup(3), /FROM `mailbox` WHERE `username` IN \(\?, \?, \?\)$/);
    assert.match(s.update(), /^UPDATE `mailbox` SET `allowedsenders` = \?, .* WHERE `username` = \?$/);
    assert.equal(s.update(['rejectedSenders', 'rejectedRecipients']), 'UPDATE `mailbox` SET `rejectedsenders` = ?, `rejectedrecipients` = ? WHERE `username` = ?');
  });

  test('renamed, schema-qualified table and columns', () => {
    const settings = SqlStoreSettingsSchema.parse({ table: 'vmail.users', columns: { username: 'email', allowedSenders: 'wl_from' } });
    const s = new SqlStatements(POSTGRES_DIALECT, settings);
    assert.match(s.lookup(1), /"email" AS "mw_username", "wl_from" AS "mw_allowed_senders", .* FROM "vmail"\."users" WHERE "email" IN \(\$1\)$/);
  });

  test('quote characters in identifiers are doubled', () => {
    assert.equal(POSTGRES_DIALECT.quoteIdent('a"b'), '"a""b"');
    assert.equal(MYSQL_DIALECT.quoteIdent('a`b'), '`a``b`');
  });
});

describe('lookupKeys', () => {
  test('lower-cased, without duplicates, empty or NUL-holding keys left out', () => {
    assert.deepEqual(lookupKeys(['Bob@Example.com', 'bob@example.com', '', 'a\u0000b@x.test', "o'neil@x.test"]), [
      'bob@example.com',
      "o'neil@x.test",
    ]);
  });
});

describe('recordsFromRows', () => {
  test('a row found by a case-insensitive collation belongs to the requested key (E09 on MySQL)', () => {
    const records = recordsFromRows(['bob@example.com'], [row('Bob@Example.com', '', '@.')], 'iredapd');
    assert.deepEqual(records.get('bob@example.com'), {
      address: 'bob@example.com',
      lists: { allowedSenders: null, rejectedSenders: ['@.'], allowedRecipients: null, rejectedRecipients: null },
    });
  });

  test('a row that only a collation equates (accents, trailing blank) is not taken for the key', () => {
    const records = recordsFromRows(['jose@x.test'], [row('josé@x.test'), row('jose@x.test ')], 'default');
    assert.equal(records.size, 0);
  });

  test('the lower-case row wins when two rows differ only in case', () => {
    const records = recordsFromRows(['bob@x.test'], [row('Bob@x.test', '@a.test'), row('bob@x.test', '@b.test')], 'default');
    assert.deepEqual(records.get('bob@x.test')?.lists.allowedSenders, ['@b.test']);
  });

  test('lists split per semantics; NULL and empty are unset', () => {
    const r = row('a@x.test', null, '', ' @A.test , ,@b.test', ' ');
    const byDefault = recordsFromRows(['a@x.test'], [r], 'default').get('a@x.test');
    assert.deepEqual(byDefault?.lists, { allowedSenders: null, rejectedSenders: null, allowedRecipients: ['@a.test', '@b.test'], rejectedRecipients: null });
    const preset = recordsFromRows(['a@x.test'], [r], 'iredapd').get('a@x.test');
    assert.deepEqual(preset?.lists, { allowedSenders: null, rejectedSenders: null, allowedRecipients: ['@a.test', '', '@b.test'], rejectedRecipients: [''] });
  });

  test('rows for keys not requested are ignored', () => {
    assert.equal(recordsFromRows(['a@x.test'], [row('b@x.test')], 'default').size, 0);
  });
});

describe('writes', () => {
  test('columns are the canonical comma-joined text', () => {
    const cols = columnsToWrite({ ...EMPTY_LISTS, allowedSenders: [' @A.test', '@b.test '], rejectedSenders: ['@.'] });
    assert.deepEqual(cols, { allowedSenders: '@a.test,@b.test', rejectedSenders: '@.', allowedRecipients: '', rejectedRecipients: '' });
  });

  const refused: [string, string][] = [
    ['an empty entry', ' '],
    ['a comma', 'a@x.test,b@x.test'],
    ['NUL', 'a\u0000@x.test'],
  ];
  for (const [name, entry] of refused) {
    test(`an entry with ${name} is refused as InvalidValue`, () => {
      assert.throws(
        () => columnsToWrite({ ...EMPTY_LISTS, rejectedRecipients: [entry] }),
        (err: unknown) => err instanceof StoreError && err.kind === 'InvalidValue' && err.message.startsWith('rejectedRecipients'),
      );
    });
  }

  test('quotes, backslashes, wildcards and non-ASCII local parts are ordinary text; a domain is stored in ASCII form', () => {
    const entries = [`o'neil@x.test`, 'a"b@x.test', 'a\\b@x.test', '%@x.test', '_@x.test', '*@x.test', '(a)@x.test'];
    assert.equal(columnsToWrite({ ...EMPTY_LISTS, allowedSenders: [...entries, 'jösé@exämple.test', '@.Bücher.example'] }).allowedSenders, [...entries, 'jösé@xn--exmple-cua.test', '@.xn--bcher-kva.example'].join(','));
  });

  test('a write changes only lists whose entries differ, and keeps the stored text of entries that stay', () => {
    const entries = entriesToWrite({ ...EMPTY_LISTS, allowedSenders: ['@a.test'], rejectedSenders: ['@.', '@New.test'] });
    // Spacing, capitals, repeats and blank pieces mean nothing: no write; NULL equals empty.
    assert.deepEqual(rowChanges(row('a@x.test', ' @A.test ,@a.test,', ' @.,@new.test', '', null), entries), { changed: [], columns: {} });
    assert.deepEqual(rowChanges(row('a@x.test', '@A.test', ' @. ,@gone.test', '', '@b.test'), entries), {
      changed: ['rejectedSenders', 'rejectedRecipients'],
      columns: { rejectedSenders: ' @. ,@new.test', rejectedRecipients: '' },
    });
  });

  test('observe reports the default split, unset as empty', () => {
    assert.deepEqual(observedLists(row('a@x.test', null, ' @A.test,,', '', '@.')), {
      allowedSenders: [],
      rejectedSenders: ['@a.test'],
      allowedRecipients: [],
      rejectedRecipients: ['@.'],
    });
  });

  test('mailbox keys are trimmed and lower-cased; empty or NUL is refused', () => {
    assert.equal(mailboxKey(' Bob@Example.COM '), 'bob@example.com');
    assert.equal(mailboxKey('Anna@Bücher.example'), 'anna@xn--bcher-kva.example');
    for (const bad of ['', '  ', 'a\u0000@x.test']) {
      assert.throws(() => mailboxKey(bad), (err: unknown) => err instanceof StoreError && err.kind === 'InvalidValue');
    }
  });
});
