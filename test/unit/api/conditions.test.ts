import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sameConditions, setCondition, type Condition } from '../../../src/api/conditions.ts';

test('sameConditions: conditions as the API server returns them (keys in its own order) equal the ones just computed', () => {
  const fromServer = [
    JSON.parse('{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"m","observedGeneration":1,"reason":"Applied","status":"True","type":"Ready"}') as Condition,
  ];
  const computed = setCondition(fromServer, { type: 'Ready', status: 'True', reason: 'Applied', message: 'm', observedGeneration: 1 }, new Date());
  assert.equal(sameConditions(fromServer, computed), true);
  const changed = setCondition(fromServer, { type: 'Ready', status: 'True', reason: 'Applied', message: 'other', observedGeneration: 1 }, new Date());
  assert.equal(sameConditions(fromServer, changed), false);
  assert.equal(sameConditions(fromServer, setCondition(fromServer, { type: 'Ready', status: 'True', reason: 'Applied', message: 'm', observedGeneration: 2 }, new Date())), false);
});
