// The bench report's verdicts (the report written end to end is checked in bench.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verdict } from '../../src/eval/report.js';

test('verdict reads the paired interval', () => {
  assert.is(verdict({ mean: 0.1, low: 0.02, high: 0.2, std: 0.05 }), 'higher (interval above 0)');
  assert.is(verdict({ mean: -0.1, low: -0.2, high: -0.01, std: 0.05 }), 'lower (interval below 0)');
  assert.is(verdict({ mean: 0.05, low: -0.02, high: 0.1, std: 0.05 }), 'no clear difference (interval spans 0)');
  assert.is(verdict({ mean: 0, low: 0, high: 0, std: 0 }), 'no difference (equal on every prompt)');
});

test.run();
