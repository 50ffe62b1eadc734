// The seeded stream and the epoch sampler: resuming from a saved state or position continues
// exactly as the uninterrupted run; each epoch visits every item once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EpochSampler, Rng } from '../../src/data/rng.js';

test('an Rng restored from its state continues the same stream', () => {
  const a = new Rng(7);
  a.next();
  a.next();
  const b = new Rng('ignored', a.state());
  assert.equal([a.next(), a.int(100), a.next()], [b.next(), b.int(100), b.next()]);
});

test('every epoch is a permutation, epochs differ, and a sampler resumed from its position continues identically', () => {
  const s = new EpochSampler(5, 'k');
  const first = s.take(5);
  const second = s.take(5);
  assert.equal([...first].sort(), [0, 1, 2, 3, 4]);
  assert.equal([...second].sort(), [0, 1, 2, 3, 4]);
  assert.not.equal(first, second);
  const straight = new EpochSampler(5, 'k');
  straight.take(7);
  const saved = straight.position;
  assert.equal(saved, { epoch: 1, index: 2 });
  assert.equal(new EpochSampler(5, 'k', saved).take(6), straight.take(6));
});

test.run();
