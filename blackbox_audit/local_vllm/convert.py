"""Convert a GGUF checkpoint to an fp32 Hugging Face folder that vLLM's CPU build can serve.

Run by the vLLM venv's python (it needs torch, transformers, gguf), never imported by the
package: vLLM 0.32.0 on CPU cannot load GGUF itself, transformers can.

    python convert.py --gguf model.gguf --out DIR --family smollm2|gemma3|qwen2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# Gemma 3's own chat template, text only: the system message is prepended to the first
# user turn, and an assistant turn is a "model" turn. Contents are rendered verbatim
# (trimmed) so that `continue_final_message` can cut the rendering right after the final
# message's content, before its <end_of_turn>.
GEMMA3_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {%- for item in message['content'] if item['type'] == 'text' -%}
            {{ item['text'] | trim }}
        {%- endfor -%}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\\n' }}
{%- endif -%}
"""

GEMMA3_END_OF_TURN = "<end_of_turn>"


def convert(gguf: Path, out: Path, family: str) -> None:
    """Dequantize `gguf` to fp32 and save model, tokenizer and generation config to `out`."""
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantized already. The GGUF quantizer left on the model makes
    # save_pretrained refuse (GgufHfQuantizer.is_serializable() is False), and its config
    # entry would be written to config.json, where vLLM would look for a GGUF file.
    model.hf_quantizer = None
    del model.config.quantization_config
    if family == "gemma3":
        # Gemma emits garbage without a leading <bos>; the GGUF tokenizer does not add it.
        tokenizer.add_bos_token = True
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
        # Stop chat replies at the end of the model's turn, as the instruct release does.
        end_of_turn = tokenizer.convert_tokens_to_ids(GEMMA3_END_OF_TURN)
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    elif not tokenizer.chat_template:
        raise SystemExit(f"{gguf.name}: the GGUF has no chat template")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if family == "gemma3":
        check_gemma3(out)


def check_gemma3(out: Path) -> None:
    """Fail the conversion unless the saved tokenizer adds <bos> and the template renders."""
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("Hello").input_ids
    if ids[:1] != [tokenizer.bos_token_id] or ids[1:2] == [tokenizer.bos_token_id]:
        raise SystemExit(f"saved Gemma tokenizer does not add exactly one <bos>: {ids}")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "The cat"},
    ]
    # vLLM passes contents as lists of parts ("openai" format) to templates that accept them.
    as_parts = [{**message, "content": [{"type": "text", "text": message["content"]}]} for message in messages]
    expected = "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nThe cat"
    for chat in (messages, as_parts):
        rendered = tokenizer.apply_chat_template(chat, tokenize=False, continue_final_message=True)
        if rendered != expected:
            raise SystemExit(f"Gemma chat template renders {rendered!r}, expected {expected!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--family", choices=["smollm2", "gemma3", "qwen2"], required=True)
    args = parser.parse_args()
    convert(args.gguf.resolve(), args.out, args.family)


if __name__ == "__main__":
    main()
