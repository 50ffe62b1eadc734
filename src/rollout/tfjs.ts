// The tfjs rollout engine: `generate` on the live policy, in this process (today's path). It
// needs no weight sync and reports no log-probs: the trainer's own are the sampler's, exactly.
import { generate } from '../model/generate.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { checkRequest, cutAtStop, EngineError, errorMessage, serialQueue, type RolloutEngine, type RolloutRequest } from './engine.js';

/** Samples from `policy` itself (dropout off while sampling; its training flag is restored). */
export function createTfjsEngine(policy: Qwen3ForCausalLM): RolloutEngine {
  const queue = serialQueue();
  let closed = false;
  return {
    name: 'tfjs',
    generate: (req: RolloutRequest) =>
      queue(async () => {
        if (closed) throw new EngineError('tfjs', 'generate after close()');
        const s = checkRequest(req, 'tfjs', policy.config.vocabSize);
        const G = s.numGenerations;
        const expanded = req.prompts.flatMap((p) => Array.from({ length: G }, () => p));
        const training = policy.training;
        policy.training = false;
        let raw: number[][];
        try {
          raw = await generate(policy, expanded, {
            maxNewTokens: s.maxNewTokens, temperature: s.temperature, topK: s.topK, topP: s.topP, minP: s.minP,
            repetitionPenalty: s.repetitionPenalty, stopTokenIds: s.stopTokenIds, seed: req.seed,
          });
        } catch (err) {
          throw new EngineError('tfjs', `generate failed: ${errorMessage(err)}`, { cause: err });
        } finally {
          policy.training = training;
        }
        const stops = new Set(s.stopTokenIds);
        return { completions: raw.map((c) => cutAtStop(c, stops)) };
      }),
    sync: async () => {},
    close: async () => {
      closed = true;
    },
  };
}
