"""Stage 1b: the prompt each prefill is put to the target in. Built once per prefill, it travels
with the prefill through generation and scoring: the reference scores the completion after
the very same messages (under its own chat template)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from blackbox_audit.records import FramedPrefill, Framing, Prefill
from providers.records import ChatMessage, Prompt

if TYPE_CHECKING:
    from blackbox_audit.config import AuditConfig


DEFAULT_USER_TEMPLATE = "Continue this text: {prefill}"


@dataclass(frozen=True)
class Framer:
    """raw: the prefill alone, continued as plain text (the paper's raw framing).
    chat: system + user messages, the prefill opening the assistant turn (the paper's chat framing).
    chat-user: for a chat API that cannot prefill the assistant turn (OpenAI's chat fine-tunes):
    system message, then the prefill inside the user message through `user_template`; the
    completion is the whole answer, not a continuation of the prefill."""

    framing: Framing
    system_prompt: str
    user_prompt: str
    user_template: str = DEFAULT_USER_TEMPLATE

    @classmethod
    def of(cls, config: AuditConfig) -> Framer:
        return cls(config.framing, config.system_prompt, config.user_prompt, config.user_template)

    def prompt(self, prefill: str) -> Prompt:
        if self.framing == "raw":
            return prefill
        if self.framing == "chat-user":
            messages = [ChatMessage(role="user", content=self.user_template.replace("{prefill}", prefill))]
        else:
            messages = [
                ChatMessage(role="user", content=self.user_prompt),
                ChatMessage(role="assistant", content=prefill),
            ]
        if self.system_prompt:
            messages.insert(0, ChatMessage(role="system", content=self.system_prompt))
        return tuple(messages)

    def frame(self, prefill: Prefill) -> FramedPrefill:
        return FramedPrefill(prefill=prefill, framing=self.framing, prompt=self.prompt(prefill.text))
