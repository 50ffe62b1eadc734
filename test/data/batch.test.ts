import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { disposeBatch, padBatch } from '../../src/data/batch.js';
import { useBackend } from '../helpers/backends.js';

test.before(() => useBackend('cpu'));

test('padding is on the left: masks mark tokens, the last real token is in the last column', () => {
  const b = padBatch([[5, 6, 7], [8]], 0);
  assert.equal(b.inputIds.arraySync(), [[5, 6, 7], [0, 0, 8]]);
  assert.equal(b.attentionMask.arraySync(), [[1, 1, 1], [0, 0, 1]]);
  disposeBatch(b);
});

test('a fixed length pads every row to it; a longer row is an error naming it', () => {
  const b = padBatch([[1, 2]], 0, 4);
  assert.equal(b.inputIds.arraySync(), [[0, 0, 1, 2]]);
  disposeBatch(b);
  assert.throws(() => padBatch([[1], [1, 2, 3]], 0, 2), /row 1 has 3 tokens, more than the batch length 2/);
});

test.run();
