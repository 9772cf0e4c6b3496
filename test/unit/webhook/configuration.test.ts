import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CA_BUNDLE_FIELD_MANAGER, caBundleApply, legacyOwnershipToDrop, WEBHOOK_NAME } from '../../../src/webhook/configuration.ts';

describe('webhook configuration ownership', () => {
  test('the caBundle apply states the caBundle of the one webhook and nothing else', () => {
    const body = caBundleApply('mw', 'PEM');
    assert.deepEqual(body, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'mw' },
      webhooks: [{ name: WEBHOOK_NAME, clientConfig: { caBundle: Buffer.from('PEM').toString('base64') } }],
    });
  });

  const legacy = { manager: 'mailwarden-operator', operation: 'Apply' };
  test('an earlier whole-object apply is given up where the chart also manages the object', () => {
    assert.equal(legacyOwnershipToDrop([{ manager: 'helm', operation: 'Apply' }, legacy], 'mailwarden-operator'), 1);
    assert.equal(legacyOwnershipToDrop([legacy, { manager: 'kubectl-client-side-apply', operation: 'Update' }], 'mailwarden-operator'), 0);
  });

  test('kept where only the operator manages it (it created it: no chart), and absent entries change nothing', () => {
    assert.equal(legacyOwnershipToDrop([legacy, { manager: CA_BUNDLE_FIELD_MANAGER, operation: 'Apply' }], 'mailwarden-operator'), undefined);
    assert.equal(legacyOwnershipToDrop([{ manager: 'helm', operation: 'Apply' }, { manager: CA_BUNDLE_FIELD_MANAGER, operation: 'Apply' }], 'mailwarden-operator'), undefined);
    assert.equal(legacyOwnershipToDrop(undefined, 'mailwarden-operator'), undefined);
    // An Update by the same name is not the whole-object apply.
    assert.equal(legacyOwnershipToDrop([{ manager: 'helm', operation: 'Apply' }, { manager: 'mailwarden-operator', operation: 'Update' }], 'mailwarden-operator'), undefined);
  });
});
