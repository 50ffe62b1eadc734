// curveSummary: the first/last-fifth means of training curves, checked against sums done by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { curveSummary, type MetricsRow } from '../../src/train/metrics.js';

test('curveSummary: means over the first and last fifth of the rows that have each key', () => {
  // Ten steps: loss 10, 9, ..., 1 on every step; kl only on even steps (5 rows); one string row.
  const rows: MetricsRow[] = Array.from({ length: 10 }, (_, i) => ({
    step: i + 1,
    loss: 10 - i,
    ...(i % 2 === 1 ? { kl: (i + 1) / 10 } : {}),
    note: i === 0 ? 'warmup' : null,
  }));
  const s = curveSummary(rows, ['loss', 'kl', 'note', 'absent']);
  // loss: a fifth of 10 rows is 2 -> first (10 + 9) / 2, last (2 + 1) / 2.
  assert.equal(s.loss, { first: 9.5, last: 1.5 });
  // kl: 5 rows (0.2, 0.4, 0.6, 0.8, 1.0) -> a fifth is 1 row each end.
  assert.ok(Math.abs(s.kl.first - 0.2) < 1e-12 && Math.abs(s.kl.last - 1.0) < 1e-12, JSON.stringify(s.kl));
  // No row has note or absent as a number: left out rather than NaN.
  assert.equal(Object.keys(s).sort(), ['kl', 'loss']);
});

test('curveSummary: fewer than five rows still use one row at each end; one row is both', () => {
  const three: MetricsRow[] = [{ step: 1, reward: 0.1 }, { step: 2, reward: 0.5 }, { step: 3, reward: 0.3 }];
  assert.equal(curveSummary(three, ['reward']), { reward: { first: 0.1, last: 0.3 } });
  assert.equal(curveSummary([{ step: 1, reward: 2 }], ['reward']), { reward: { first: 2, last: 2 } });
  assert.equal(curveSummary([], ['reward']), {});
  // Twelve rows: a fifth is floor(12 / 5) = 2 rows.
  const twelve: MetricsRow[] = Array.from({ length: 12 }, (_, i) => ({ step: i + 1, x: i * i }));
  assert.equal(curveSummary(twelve, ['x']).x, { first: (0 + 1) / 2, last: (100 + 121) / 2 });
});

test.run();
