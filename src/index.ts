// promedical: the public API. Re-exports only; docs/api.md documents it.

// ops: backends and layer math
export { initBackend, ensureBackend } from './ops/backend.js';
export { rmsNorm, linear, swiglu, ropeTables, applyRope } from './ops/layers.js';
export { attention, causalMask, MASK_VALUE } from './ops/attention.js';
export { selectiveLogSoftmax } from './ops/logprobs.js';
export { checkpoint } from './ops/recompute.js';
export { lmHeadLogProbs } from './ops/lm_head.js';
export type { LmHeadOptions, LmHeadResult } from './ops/lm_head.js';
export type { LogProbOptions } from './ops/logprobs.js';
export type { BackendInfo, BackendPreference, GemmPreference, InitBackendOptions } from './ops/backend.js';
export { loadNativeBlas, useNativeGemm, nativeGemm, NATIVE_MIN_MACS } from './ops/native_gemm.js';
export type { NativeBlas } from './ops/native_gemm.js';
export { registerWasmKernels, WASM_EXTRA_KERNELS } from './ops/wasm_kernels.js';
export { FUSED_KERNELS } from './ops/fused_kernels.js';

// model: Qwen3, checkpoints, generation, LoRA
export { qwen3Config, qwen3ConfigFromHF, qwen3ConfigToHF, readQwen3Config, parameterCount, ConfigError } from './model/config.js';
export type { Qwen3Config, Qwen3Preset } from './model/config.js';
export { Qwen3ForCausalLM, qwen3TensorShapes, ATTENTION_PROJECTIONS, MLP_PROJECTIONS } from './model/qwen3.js';
export type { ForwardOptions, KVCache, LayerCache, LoraModule, CausalTargets, LastTokens, TargetRows, TargetLogProbOptions, TargetLogProbs } from './model/qwen3.js';
export { loadQwen3, saveQwen3, writeRandomQwen3, CheckpointError } from './model/pretrained.js';
export type { SaveOptions } from './model/pretrained.js';
export { generate, sampleSorted, sampleTokens } from './model/generate.js';
export type { GenerateOptions, SamplingOptions } from './model/generate.js';
export { addLora, mergeLora, loadLora, saveLora, withAdaptersDisabled } from './model/lora.js';
export type { LoraConfig, LoraTarget } from './model/lora.js';
export { ensureTinyQwen3, TINY_QWEN3_DIR, cacheDir } from './model/tiny.js';
export { readSafetensors, writeSafetensors, SafetensorsError, DTYPE_SIZE, MAX_HEADER_BYTES } from './model/safetensors.js';
export type {
  SafetensorsFile,
  SafetensorsDtype,
  SafetensorsErrorCode,
  TensorInfo,
  RawTensor,
  WriteOptions,
} from './model/safetensors.js';
export { float32ToBf16Bits, bf16BitsToFloat32, float32ToF16Bits, f16BitsToFloat32 } from './model/half.js';
export { saveGguf, saveLoraGguf, quantizeQ8_0, readGguf, writeGguf, ggufTensorName, loadLlamaCpp, GgufError, GGUF_VALUE_TYPES, GGUF_FILE_TYPE, GGUF_TOKEN_TYPE, GGUF_DEFAULT_ALIGNMENT } from './model/gguf.js';
export type { GgufDtype, GgufValue, GgufValueType, GgufScalarType, GgufScalar, GgufTensorSource, GgufWriteResult, GgufTokenizer, SaveGgufOptions, GgufTensorInfo, GgufFile, LlamaCppOptions } from './model/gguf.js';

// data: tokenizer and chat
export { ChatTokenizer, loadTokenizer, defaultTokenizerDir, QWEN3_TOKENS, TokenizerError, CHAT_ROLES } from './data/tokenizer.js';
export type { EncodedHead } from './data/tokenizer.js';
export { renderChat } from './data/chat.js';
export type { ChatMessage, ChatTemplateOptions } from './data/chat.js';

// data: records, importers, ECI batches
export { validateRecord, criterionPairs, gradeValue, DataError, TIERS } from './data/schema.js';
export type { RubricRecord, Criterion, ResponseItem, Preference, Tier } from './data/schema.js';
export { readRecords, loadRecords, RecordReader } from './data/records.js';
export type { ReadOptions, SkippedLine } from './data/records.js';
export { FORMATS, AVOID_PREFIX, fromHealthBench, fromKqa, fromKqaNli, fromRar, fromUltraMedical } from './data/importers.js';
export type { RecordFormat } from './data/importers.js';
export { jsonLines, csvRows, textLines } from './data/lines.js';
export { eciInstance, eciBatch, eciPairBatch, criterionBlock, TruncationCounter, ECI_INSTRUCTION } from './data/eci.js';
export type { EciInstance, EciItem, EciOptions, Truncation } from './data/eci.js';
export { padBatch, disposeBatch } from './data/batch.js';
export type { TokenBatch } from './data/batch.js';
export { syntheticRecords } from './data/synthetic.js';

// reward: the criteria-injected reward model
export { promedicalScores, promedicalReward, compareResponses } from './reward/scores.js';
export type { CriterionResult, TierScores, RewardWeights } from './reward/scores.js';
export { bradleyTerryLoss, pointwiseLoss } from './reward/losses.js';
export { CriteriaRewardModel } from './reward/model.js';
export type { RewardModelOptions, ScoredResponse } from './reward/model.js';
export { trainRewardModel, rewardPairs } from './reward/trainer.js';
export type { RewardTrainingOptions, RewardPair } from './reward/trainer.js';

// eval
export { pairwiseAccuracy, accuracy, binaryScores, cohensKappa } from './eval/metrics.js';
export type { BinaryScores } from './eval/metrics.js';
export { evaluateJudge, judgeMetrics } from './eval/judge.js';
export type { JudgeMetrics } from './eval/judge.js';
export { bootstrapMean, bootstrapPairedDifference } from './eval/bootstrap.js';
export type { Interval } from './eval/bootstrap.js';
export { policyResponses, evaluatePolicyResponses, evaluateGradedResponses, policyResponse, policyReport, comparePolicies, POLICY_METRICS } from './eval/policy.js';
export type { PolicyReport, PolicyResponse, PolicyMetric, PolicyComparison } from './eval/policy.js';
export { healthbenchScore, healthbenchItems, healthbenchExample, healthbenchStat, healthbenchReport, exampleTags } from './eval/healthbench.js';
export type { HealthBenchItem, HealthBenchStat, HealthBenchExampleScore, HealthBenchReport } from './eval/healthbench.js';
export { writeBenchReport, verdict } from './eval/report.js';
export type { BenchReportInput } from './eval/report.js';
export { evaluateBench, systemResponses, defaultBaseline, benchRecords, benchSummary, BenchError, BENCH_METRICS } from './eval/bench.js';
export type { BenchOptions, BenchSummary, BenchMetric, SystemResponseOptions } from './eval/bench.js';

// train: what every trainer shares
export { AdamW } from './train/adamw.js';
export type { AdamWOptions } from './train/adamw.js';
export { clipByGlobalNorm } from './train/clip.js';
export { lrSchedule } from './train/schedule.js';
export type { ScheduleOptions, ScheduleType } from './train/schedule.js';
export { Rng, EpochSampler } from './data/rng.js';
export type { RngState, EpochPosition } from './data/rng.js';
export { MetricsLog, Progress, curveSummary } from './train/metrics.js';
export { loadPretrained } from './train/pretrained.js';
export type { LoadPretrainedOptions } from './train/pretrained.js';
export type { MetricsRow } from './train/metrics.js';
export { renderChart, renderVegaLite } from './train/chart.js';
export { saveCheckpoint, restoreCheckpoint, latestCheckpoint, listCheckpoints, checkpointsDir, checkRunDir, openRunDir, RunDirError, assertFiniteParameters } from './train/run_state.js';
export type { OpenRunDirOptions } from './train/run_state.js';
export type { TrainerState, CheckpointParts } from './train/run_state.js';
export { TrainingRun, NonFiniteError, InterruptedError, runOptions } from './train/run.js';
export {
  validateConfig, describeField, storedConfig, resumableFields,
  REWARD_CONFIG_DEFAULTS, SFT_CONFIG_DEFAULTS, GRPO_CONFIG_DEFAULTS, GRPO_CLI_DEFAULTS, CLI_DEFAULTS, GRPO_TRL_NAMES, GRPO_LOSS_TYPES, stepsPerGeneration, REWARD_CONFIG_FIELDS, SFT_CONFIG_FIELDS, GRPO_CONFIG_FIELDS, CONFIG_FIELDS, CONFIG_DEFAULTS, PATH_FIELDS,
} from './train/config.js';
export type { TrainingArgs, RewardConfig, SftConfig, GrpoConfig, GrpoLossType, ConfigKind, Field } from './train/config.js';
export { trainSft, sftExample } from './train/sft.js';
export type { SftOptions, SftExample } from './train/sft.js';
export type { TrainingRunOptions, MicroBatch, StepResult } from './train/run.js';

// rollout: engines that sample GRPO completions (tfjs, llama.cpp, OpenAI-compatible servers)
export { createRolloutEngine, EngineError } from './rollout/engine.js';
export type { RolloutRequest, EngineCompletions, RolloutEngine, RolloutEngineKind, RolloutEngineOptions, EngineErrorDetails } from './rollout/engine.js';
export { createTfjsEngine } from './rollout/tfjs.js';
export { createLlamaCppEngine } from './rollout/llama_cpp.js';
export type { LlamaCppEngineOptions } from './rollout/llama_cpp.js';
export { createOpenAIEngine } from './rollout/openai.js';
export type { OpenAIEngineOptions } from './rollout/openai.js';

// grpo: the policy-optimisation math (the trainer comes next)
export { groupAdvantages, fracZeroStd, combineRewards } from './grpo/advantages.js';
export type { AdvantageOptions } from './grpo/advantages.js';
export { rewardAdvantages, zeroStdGroups } from './grpo/advantages.js';
export type { RewardAdvantageOptions, RewardAggregation, RewardScale } from './grpo/advantages.js';
export { grpoLoss, grpoLossTerms, klEstimate, LOSS_TYPES } from './grpo/loss.js';
export type { GrpoMetricTensors } from './grpo/loss.js';
export type { LossType } from './grpo/loss.js';
export { importanceSamplingCorrection, importanceSamplingTerms, samplingMetrics, IMPORTANCE_SAMPLING_MODES } from './grpo/importance_sampling.js';
export type { ImportanceSamplingMode, ImportanceSamplingOptions, ImportanceSamplingMetrics } from './grpo/importance_sampling.js';
export { rollout, completionMasks } from './grpo/rollouts.js';
export type { Rollouts, RolloutOptions } from './grpo/rollouts.js';
export { trainGrpo, mixReference } from './grpo/trainer.js';
export { rubricReward, rubricRewardTerms, overlongPenalty } from './grpo/rewards.js';
export type { GrpoOptions, GrpoPrompt, RewardFunction } from './grpo/trainer.js';
export type { GrpoInputs, GrpoLossOptions, GrpoMetrics, KlKind } from './grpo/loss.js';

// serve: the reward-model HTTP server
export { createRewardServer } from './serve/server.js';
export type { RewardServer, RewardServerOptions, ScoreResult, ScoredCriterion } from './serve/server.js';
export { RewardBatcher } from './serve/batcher.js';
export type { BatcherOptions, Row as BatcherRow } from './serve/batcher.js';
export { ApiError } from './serve/protocol.js';
export { MetricsRegistry } from './serve/metrics.js';

// rubrics: the human-in-the-loop rubric pipeline (prepare -> draft -> review -> export)
export type { Candidate, PreparedItem, DraftItem } from './rubrics/items.js';
export { createChatClient, askJson, ChatError, ReplyError, Aborted } from './rubrics/chat_client.js';
export type { ChatClient, ChatClientOptions, ChatRequest, ChatReply, ReplySchema } from './rubrics/chat_client.js';
export { Deduplicator, dedupe, normalise, shingleSet, jaccard, DEFAULT_THRESHOLD } from './rubrics/dedup.js';
export type { Duplicate, DedupOptions } from './rubrics/dedup.js';
export { prepareInstructions, readInstructions, parseEndpoints, checkDifficulty } from './rubrics/prepare.js';
export type { PrepareOptions, PrepareSummary, Instruction, FilteredItem, Endpoint } from './rubrics/prepare.js';
export { draftRubrics, checkDraft, checkGrades, readPrepared } from './rubrics/draft.js';
export type { DraftOptions, DraftSummary } from './rubrics/draft.js';
export { StageInterrupted, SettingsError, WORK_FILES } from './rubrics/stage.js';
export type { Failure } from './rubrics/stage.js';
export { Journal, readJournal, foldJournal } from './rubrics/journal.js';
export type { JournalEntry, DecisionEntry, GradeEntry, DoneEntry, Action, ItemState, Folded } from './rubrics/journal.js';
export { roundReport, raterAgreement } from './rubrics/review_report.js';
export type { RoundReport, Rates, Kappa, PairAgreement } from './rubrics/review_report.js';
export { createReviewServer } from './rubrics/review_server.js';
export type { ReviewServer, ReviewServerOptions } from './rubrics/review_server.js';
export { exportItems, mergeReviews, writeExport } from './rubrics/export.js';
export type { ExportOptions, ExportResult, ExportSummary } from './rubrics/export.js';
export { readDrafts, rounds } from './rubrics/review_work.js';
