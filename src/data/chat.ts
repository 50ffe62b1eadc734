// Chat rendering with the checkpoint's own Jinja chat_template (as transformers'
// apply_chat_template does), so prompts match what the model saw in training.
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string; // 'system' | 'user' | 'assistant' | 'tool'
  content: string;
  /** Assistant reasoning; Qwen3's template wraps it in <think>...</think>. */
  reasoning_content?: string;
}

export interface ChatTemplateOptions {
  /** Append the header of the assistant turn the model should write next. Default false. */
  addGenerationPrompt?: boolean;
  /** Qwen3: false appends an empty <think></think> block (non-thinking mode). Left undefined,
   * the template's own default applies (thinking on). */
  enableThinking?: boolean;
  /** Tool (function) descriptions, passed through to the template. */
  tools?: unknown[];
  /** Any further variables the template reads. */
  variables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

/** Renders `messages` with a Jinja chat template. */
export function renderChat(template: string, messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
  let tpl = compiled.get(template);
  if (!tpl) {
    tpl = new Template(template);
    compiled.set(template, tpl);
  }
  const vars: Record<string, unknown> = {
    ...opts.variables,
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
  };
  if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
  if (opts.tools !== undefined) vars.tools = opts.tools;
  return tpl.render(vars);
}
