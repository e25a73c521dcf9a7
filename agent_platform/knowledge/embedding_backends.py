"""Runtimes that run the same sentence-transformers model: torch, ONNX Runtime, OpenVINO.

Every backend turns texts into unit-norm float32 vectors of one model. The non-torch backends run
a graph exported offline from the shipped weights on first use (transformer, mean pooling and L2
normalisation, as sentence-transformers computes them) and cached under `export_dir`, keyed by the
model and the weights' digest, so a second load reads the cached file and exports nothing. The
exporters are called directly (torch.onnx, onnxruntime.quantization, openvino.convert_model):
Optimum, which sentence-transformers' own `backend=` needs, downgrades transformers 5.x.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

from agent_platform.settings import EmbeddingBackend

BACKENDS: tuple[EmbeddingBackend, ...] = ("torch", "onnx", "onnx-int8", "openvino")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


def embedding_space(model_name: str, backend: str) -> str:
    """The identity of the vectors a (model, backend) pair makes, as caches and indexes record it.

    torch keeps the bare model name, so vectors recorded before backends existed stay valid.
    """
    return model_name if backend == "torch" else f"{model_name}@{backend}"


class Encoder(Protocol):
    """Texts in, unit-norm float32 vectors out (one row per text, in order)."""

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray: ...

    def threads(self) -> int:
        """Intra-op threads as the runtime reports them (0: the runtime's own default)."""
        ...


class TorchEncoder:
    """sentence-transformers on torch: the reference the other backends are measured against."""

    def __init__(self, model: SentenceTransformer) -> None:
        self._model = model

    def threads(self) -> int:
        import torch

        return int(torch.get_num_threads())

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        return self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)


class _GraphEncoder:
    """Tokenises like sentence-transformers (length-sorted batches) and runs an exported graph."""

    def __init__(self, tokenizer: Any, max_seq_length: int, input_names: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._max_seq_length = max_seq_length
        self._input_names = list(input_names)
        # a fast tokenizer set to truncate/pad raises "Already borrowed" if two threads call it
        self._tokenizer_lock = threading.Lock()

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            positions = order[start : start + batch_size]
            with self._tokenizer_lock:
                tokens = self._tokenizer(
                    [texts[p] for p in positions],
                    padding=True,
                    truncation="longest_first",
                    max_length=self._max_seq_length,
                    return_tensors="np",
                )
            feeds = {
                name: np.asarray(tokens[name], dtype=np.int64)
                if name in tokens
                else np.zeros_like(tokens["input_ids"], dtype=np.int64)
                for name in self._input_names
            }
            vectors = self._run(feeds)
            if out.shape[1] == 0:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[positions] = vectors
        return out


class OnnxEncoder(_GraphEncoder):
    """ONNX Runtime on CPU; `session.run` is safe to call from several threads."""

    def __init__(self, path: Path, tokenizer: Any, max_seq_length: int, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in self._session.get_inputs()]
        super().__init__(tokenizer, max_seq_length, names)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)

    def threads(self) -> int:
        return int(self._session.get_session_options().intra_op_num_threads)


class OpenVinoEncoder(_GraphEncoder):
    """OpenVINO on CPU; one infer request per call, so threads never share one."""

    def __init__(self, path: Path, tokenizer: Any, max_seq_length: int, threads: int = 0) -> None:
        import openvino as ov

        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = ov.Core().compile_model(str(path), "CPU", config)
        names = [next(iter(i.get_names())) for i in self._compiled.inputs]
        super().__init__(tokenizer, max_seq_length, names)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        result = self._compiled.create_infer_request().infer(feeds)
        return np.asarray(result[self._compiled.output(0)], dtype=np.float32)

    def threads(self) -> int:
        return int(self._compiled.get_property("INFERENCE_NUM_THREADS"))


def weights_digest(model_dir: Path) -> str:
    """A short digest of the model's files (names, sizes, modification times): a re-shipped or
    edited model gets a fresh export instead of a stale one."""
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _export_onnx(model: SentenceTransformer, target: Path) -> None:
    import torch

    modules = list(model)
    pooling = modules[1] if len(modules) > 1 else None
    mode = getattr(pooling, "pooling_mode_mean_tokens", None) or (
        getattr(pooling, "pooling_mode", None) == "mean"
    )
    if not mode:
        raise ValueError("only mean-pooling sentence-transformers models can be exported")
    transformer: Any = modules[0].auto_model
    transformer.eval()

    class Pooled(torch.nn.Module):
        """Transformer, attention-masked mean pooling and L2 normalisation in one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    sample = model.tokenizer(["an example sentence", "a second one"], return_tensors="pt")
    args = tuple(sample.get(name, torch.zeros_like(sample["input_ids"])) for name in _INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS} | {"embedding": {0: "batch"}}
    # the tracer warns about shape-dependent branches of the attention mask; the exported graph
    # is checked against torch on padded batches of mixed lengths (tests, benchmark)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled().eval(),
            args,
            str(target),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # one scale per output channel: mean cosine to torch 0.993 instead of 0.963 per tensor
    quiet = logging.getLogger()  # quantize_dynamic advises pre-processing on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        quiet.setLevel(level)


def _convert_openvino(source: Path, target: Path) -> None:
    import openvino as ov

    # fp32 weights on disk: the default fp16 compression would move vectors away from torch's
    ov.save_model(ov.convert_model(str(source)), str(target), compress_to_fp16=False)


# re-entrant: exporting onnx-int8 or openvino first exports the onnx graph they start from,
# under the same lock (a plain Lock deadlocked a fresh export directory whose first backend
# was not onnx)
_EXPORT_LOCK = threading.RLock()


class ExportedModels:
    """The cache of exported graphs of one model under `<export_dir>/<model>-<digest>/`.

    `path(backend)` exports what is missing, in a temporary directory renamed into place, so a
    process that dies mid-export leaves nothing a later load would trust. `exports` counts the
    files this instance produced (a cached load produces none).
    """

    FILES: ClassVar[dict[str, str]] = {
        "onnx": "model.onnx",
        "onnx-int8": "model-int8.onnx",
        "openvino": "openvino.xml",
    }

    def __init__(self, export_dir: Path, model_name: str, model_dir: Path) -> None:
        safe = model_name.replace("/", "--")
        self.root = export_dir / f"{safe}-{weights_digest(model_dir)}"
        self.model_dir = model_dir
        self.exports = 0
        self._model: SentenceTransformer | None = None

    def sentence_transformer(self) -> SentenceTransformer:
        if self._model is None:
            from agent_platform.knowledge.embedder import load_sentence_transformer

            self._model = load_sentence_transformer(self.model_dir)
        return self._model

    def path(self, backend: EmbeddingBackend) -> Path:
        if backend == "torch":
            raise ValueError("torch runs the weights directly; nothing is exported")
        target = self.root / self.FILES[backend]
        if target.is_file():
            return target
        with _EXPORT_LOCK:
            if target.is_file():
                return target
            source = self.path("onnx") if backend != "onnx" else None
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".export-"))
            try:
                staged = staging / target.name
                if backend == "onnx":
                    _export_onnx(self.sentence_transformer(), staged)
                elif backend == "onnx-int8":
                    assert source is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
                    _quantize_int8(source, staged)
                else:
                    assert source is not None  # nosec B101  # narrows a type for mypy; the invariant holds by construction
                    _convert_openvino(source, staged)
                for produced in sorted(staging.iterdir(), key=lambda p: p == staged):
                    produced.replace(self.root / produced.name)  # the named file goes last
                self.exports += 1
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target


def model_facts(model_dir: Path) -> tuple[int, int]:
    """(max sequence length, embedding dimension) from the model's sentence-transformers files."""
    sbert = json.loads((model_dir / "sentence_bert_config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    return int(sbert["max_seq_length"]), int(pooling["word_embedding_dimension"])


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)  # nosec B615  # a local directory (offline, no hub download)


def pin_torch_threads(threads: int) -> None:
    """torch's intra-op threads for the whole process (torch has no per-model setting); 0
    leaves torch's default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def graph_encoder(
    backend: EmbeddingBackend,
    models: ExportedModels,
    tokenizer: Any,
    max_seq_length: int,
    threads: int = 0,
) -> Encoder:
    path = models.path(backend)
    if backend == "openvino":
        return OpenVinoEncoder(path, tokenizer, max_seq_length, threads)
    return OnnxEncoder(path, tokenizer, max_seq_length, threads)
