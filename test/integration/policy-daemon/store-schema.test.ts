// A daemon pointed at a store whose schema lacks the configured columns (a current iRedMail: 1.4.0
// dropped the four vmail.mailbox list columns) says so once at start and is not ready, instead
// of answering every request with the failure action while looking healthy. Real PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPostgres, type SqlServer } from '../../harness/containers.ts';
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { eventually } from '../../helpers/eventually.ts';

describe('policy daemon on a store without the configured columns (real PostgreSQL)', () => {
  let db: SqlServer;
  let daemon: DaemonProcess;

  before(async () => {
    db = await startPostgres();
    // What iRedMail 1.4.0's upgrade script does.
    for (const column of ['allowedsenders', 'rejectedsenders', 'allowedrecipients', 'rejectedrecipients']) {
      await db.query(`ALTER TABLE mailbox DROP COLUMN ${column}`);
    }
    daemon = await startDaemon(['--store', db.url], { MAILWARDEN_STORE_PASSWORD: db.password });
  });
  after(async () => {
    await daemon?.stop();
    await db?.stop();
  });

  test('not ready, and one error line names the missing column and points to the amavisd store', async () => {
    const readyz = async () => (await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`)).status;
    const errors = () => daemon.logs.filter((l) => l.level === 'error');
    await eventually('an error line', () => errors().length > 0, 5_000);
    assert.equal(await readyz(), 503);
    assert.equal(errors().length, 1, JSON.stringify(errors()));
    assert.match(String(errors()[0]?.msg), /not ready: .*table mailbox has no column allowedsenders \(columns\.allowedSenders\).*amavisd/);
  });
});
