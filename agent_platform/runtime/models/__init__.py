"""Embedded chat models: they run in-process, offline, with no API key.

Import the concrete classes from their modules; `gemma` pulls in torch/transformers only when a
Gemma model is first used.
"""

from agent_platform.runtime.models.extractive import NO_ANSWER, ExtractiveAnswerer

__all__ = ["NO_ANSWER", "ExtractiveAnswerer"]
