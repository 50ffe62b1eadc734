// The commands of `promedical`, each in its own file: parse, validate, call the library.
import { evalBench } from './eval_bench.js';
import { exportGguf } from './export_gguf.js';
import { rubrics } from './rubrics.js';
import { scoreRm } from './score_rm.js';
import { serveRm } from './serve_rm.js';
import { trainGrpoCommand } from './train_grpo.js';
import { trainRm } from './train_rm.js';
import { trainSftCommand } from './train_sft.js';

export const COMMANDS = ['train-rm', 'score-rm', 'serve-rm', 'train-sft', 'train-grpo', 'eval-bench', 'export-gguf', 'rubrics'] as const;
export type Command = (typeof COMMANDS)[number];

export const RUN: Record<Command, { about: string; run: (argv: string[]) => Promise<void> }> = {
  'train-rm': { about: 'train the criteria-injected reward model (the main job)', run: trainRm },
  'score-rm': { about: 'score responses against their criteria with a trained reward model', run: scoreRm },
  'serve-rm': { about: 'serve the reward model over HTTP (/v1/score, OpenRLHF /get_reward, /health, /metrics)', run: serveRm },
  'train-sft': { about: 'supervised fine-tuning: the warm start of a GRPO policy', run: trainSftCommand },
  'train-grpo': { about: 'GRPO guided by the reward model', run: trainGrpoCommand },
  'eval-bench': { about: 'ProMedical-Bench-style evaluation of a policy against a baseline', run: evalBench },
  'export-gguf': { about: 'write a Qwen3 folder or its LoRA adapter as GGUF for llama.cpp', run: exportGguf },
  rubrics: { about: 'the rubric pipeline: prepare, draft (LLM), review (physicians, web page), export records', run: rubrics },
};
