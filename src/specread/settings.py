"""specread's settings: one typed, frozen tree, its defaults and presets read from one data file.

``specread/data/settings.toml`` holds every default and named preset; the
dataclasses below read their defaults from it, so a default is written once.
The tree is plain, picklable data: worker processes and Ray actors build
identical readers from it, and an output's job record stores it.

* :class:`OcrSettings`: the OCR engine (detector side, backend, precision...);
  :func:`preset` gives a named one (``accurate``, ``fast``).
* :class:`VlmSettings`: the optional VLM reader.
* :class:`ReaderConfig`: which reader, which scorer and model folder, the second
  pass, the priors fallback and the OCR cache, with an :class:`OcrSettings` and a
  :class:`VlmSettings` inside.
* :class:`ServiceSettings`: the HTTP service (pool, limits, timeouts), with a
  :class:`ReaderConfig` and a :class:`FetchPolicy` (what an image URL fetch may do) inside.

Example:
    >>> from specread.settings import ReaderConfig, preset
    >>> config = ReaderConfig(ocr=preset("fast"), retry_side=1600)
    >>> config.ocr.backend, config.ocr.det_side
    ('openvino', 960)
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Literal

from specread.affects import AFFECTS, ANSWER, KERNELS, PAGE, SPEED, SUBTREE, setting

__all__ = [
    "BODY_IDLE_TIMEOUT",
    "IMAGE_LIMITS",
    "PRESETS",
    "WORKER_PARENT_POLL_S",
    "FetchPolicy",
    "ImageLimits",
    "JointSettings",
    "OcrSettings",
    "ReaderConfig",
    "Resolver",
    "ServiceSettings",
    "VlmSettings",
    "preset",
]

_FILE: dict[str, Any] = tomllib.loads((files("specread.data") / "settings.toml").read_text(encoding="utf-8"))
_OCR, _READER, _VLM, _JOINT = _FILE["ocr"], _FILE["reader"], _FILE["vlm"], _FILE["joint"]
_SERVICE, _FETCH, _IMAGES = _FILE["service"], _FILE["fetch"], _FILE["images"]


@dataclass(frozen=True)
class ImageLimits:
    """What reading one image file may cost (see :func:`specread.io.images.read_image_bytes`).

    Attributes:
        max_bytes: larger files are refused by their size, before any byte is read.
        read_timeout: seconds one read may take before it is that image's failure (0: no deadline).
    """

    max_bytes: int = setting(SPEED, int(_IMAGES["max_mb"] * 1024 * 1024))
    read_timeout: float = setting(SPEED, _IMAGES["read_timeout"])


IMAGE_LIMITS = ImageLimits()
"""The limits every image read uses unless its caller passes others."""

WORKER_PARENT_POLL_S: float = _FILE["workers"]["parent_poll_s"]
"""Seconds between a pool worker's checks that its parent lives (:mod:`specread.lifeline`)."""


@dataclass(frozen=True)
class OcrSettings:
    """How the OCR engine reads (see :class:`specread.ocr.rapid.RapidOcrEngine`, which checks the values).

    Attributes:
        engine: engine name (:data:`specread.ocr.engine.ENGINES`).
        det_side: longest side given to the text detector, in pixels.
        max_side: pictures are reduced to this before OCR (and decoded no larger).
        use_cls: run the 180-degree orientation classifier.
        min_score: drop lines the recogniser is less sure of.
        rec_batch: text lines per recogniser call.
        rec_width_step: pad recogniser batch widths to a multiple of this.
        rec_max_columns: cap on lines x padded width per recogniser call (0: none).
        rec_padding: ``"line"`` (each line at its own padded width, so the lines of many
            pictures share calls: :mod:`specread.ocr.lines`) or ``"batch"`` (RapidOCR's own).
        det_pad: pad detector inputs to multiples of this, so pictures of similar size share
            detector calls (a GPU's batches; 0: no padding, only equal shapes share).
        charset: ``"all"`` or ``"latin"`` (OpenVINO only).
        backend: ``"onnxruntime"`` or ``"openvino"``.
        precision: ``"f32"``, or ``"bf16"`` (OpenVINO, where the CPU has it).
        threads: intra-op inference threads per engine.
        kernel_cache: compiled input shapes OpenVINO keeps.
        batch_images: pictures a worker reads together, their lines in shared recogniser calls.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (:mod:`specread.ocr.devices`).

    Fields are tagged with what they affect (:mod:`specread.affects`), grouped page, kernels, speed.
    """

    engine: str = setting(PAGE, _OCR["engine"])
    det_side: int = setting(PAGE, _OCR["det_side"])
    max_side: int = setting(PAGE, _OCR["max_side"])
    use_cls: bool = setting(PAGE, _OCR["use_cls"])
    min_score: float = setting(PAGE, _OCR["min_score"])
    rec_batch: int = setting(KERNELS, _OCR["rec_batch"])
    rec_width_step: int = setting(KERNELS, _OCR["rec_width_step"])
    rec_max_columns: int = setting(KERNELS, _OCR["rec_max_columns"])
    rec_padding: str = setting(KERNELS, _OCR["rec_padding"])
    det_pad: int = setting(KERNELS, _OCR["det_pad"])
    charset: str = setting(KERNELS, _OCR["charset"])
    backend: str = setting(KERNELS, _OCR["backend"])
    precision: str = setting(KERNELS, _OCR["precision"])
    threads: int = setting(SPEED, _OCR["threads"])
    kernel_cache: int = setting(SPEED, _OCR["kernel_cache"])
    batch_images: int = setting(SPEED, _OCR["batch_images"])
    device: str = setting(SPEED, _OCR["device"])


PRESETS: tuple[str, ...] = tuple(_FILE["presets"])
"""Names of the OCR presets in ``settings.toml``; the first is the default."""


def preset(name: str) -> OcrSettings:
    """The named OCR preset: the ``[ocr]`` defaults with the preset's values over them.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in _FILE["presets"]:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return OcrSettings(**_FILE["presets"][name])


@dataclass(frozen=True)
class VlmSettings:
    """The VLM reader (``reader="vlm"`` or ``"hybrid"``; the ``vlm`` extra).

    Attributes:
        model: a model folder or hub id ("" for none).
        threshold: hybrid: rows whose OCR confidence is under this go to the VLM (above 1: every row).
        batch_size: prompts per ``generate`` call.
        batch_images: images per ``read_many`` call in the batch runner.
        max_new_tokens: answer length cap.
        hints: hybrid: put the OCR candidates in the prompt.
        max_hints: at most this many candidates per entity.
        prompt_template: a template file ({entity}, {units}, {hints}); "" for the model's or the default.
        device: ``"cuda"``, ``"cpu"``...; "" lets the backend choose.
        dtype: torch dtype name; "" lets the backend choose.
        trust_remote_code: allow the model's own code (hub models that need it).
        revision: model revision; "" for the default.
    """

    model: str = setting(ANSWER, _VLM["model"])
    threshold: float = setting(ANSWER, _VLM["threshold"])
    batch_size: int = setting(KERNELS, _VLM["batch_size"])
    batch_images: int = setting(KERNELS, _VLM["batch_images"])
    max_new_tokens: int = setting(ANSWER, _VLM["max_new_tokens"])
    hints: bool = setting(ANSWER, _VLM["hints"])
    max_hints: int = setting(ANSWER, _VLM["max_hints"])
    prompt_template: str = setting(ANSWER, _VLM["prompt_template"])
    device: str = setting(SPEED, _VLM["device"])
    dtype: str = setting(KERNELS, _VLM["dtype"])
    trust_remote_code: bool = setting(ANSWER, _VLM["trust_remote_code"])
    revision: str = setting(ANSWER, _VLM["revision"])

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_images < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size, batch_images and max_new_tokens must be at least 1")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a number; got {self.threshold}")


@dataclass(frozen=True)
class JointSettings:
    """The whole-image assignment's costs (:mod:`specread.rank.joint`), log-terms added to its score.

    Attributes:
        enabled: read an image's entities of one unit dimension together (False: one at a time).
        mention_cost: one printed size (a mention, or its twin in another unit) for two roles.
        value_cost: one size printed twice, for two roles.
        none_logp: the score of "not printed" for a role nobody asked.
        pair_weight: weight of the training labels' odds of how two roles' sizes compare.
        share_weight: exponent of each role's candidate shares (sharper or flatter).
        marginal: answer each role's most probable value rather than the best joint assignment.
        top_k: candidates per role that the assignment considers.
    """

    enabled: bool = setting(ANSWER, _JOINT["enabled"])
    mention_cost: float = setting(ANSWER, _JOINT["mention_cost"])
    value_cost: float = setting(ANSWER, _JOINT["value_cost"])
    none_logp: float = setting(ANSWER, _JOINT["none_logp"])
    pair_weight: float = setting(ANSWER, _JOINT["pair_weight"])
    share_weight: float = setting(ANSWER, _JOINT["share_weight"])
    marginal: bool = setting(ANSWER, _JOINT["marginal"])
    top_k: int = setting(ANSWER, _JOINT["top_k"])

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"joint top_k must be at least 1; got {self.top_k}")
        if min(self.mention_cost, self.value_cost, self.pair_weight, self.share_weight) < 0:
            raise ValueError("joint costs and weights must not be negative")


@dataclass(frozen=True)
class ReaderConfig:
    """Everything needed to build a reader, as plain data.

    Attributes:
        reader: ``"ocr"``, or ``"vlm"`` / ``"hybrid"`` (see :mod:`specread.vlm`).
        scorer: ``"ranker"`` (learned) or ``"rules"``.
        ocr: the OCR engine's settings.
        retry_side: when an asked entity gets no candidate from the page, OCR the image
            again with the text detector at this side and answer that entity from the
            second page; 0 never does.
        use_priors_fallback: answer from training-label priors when nothing is read.
        min_precision: answer only rows whose confidence reached this precision on the model
            folder's held-out answers, per entity (:meth:`~specread.rank.calibrate.Calibration.threshold`);
            an entity that never reached it is left blank. 0 answers everything (the challenge's F1
            rewards answering every row).
        min_confidence: answer only rows at this confidence or above, whatever the entity (0: all).
        cache_dir: OCR cache folder; ``None`` disables the cache; ``"default"`` uses
            ``$SPECREAD_CACHE`` or the user cache folder.
        vlm: the VLM reader's settings.
        joint: how an image's entities of one unit dimension are read together.
        model: the model folder (ranker and priors) written by ``specread train``; ``""`` uses
            ``$SPECREAD_MODEL`` or the packaged model (:func:`specread.rank.model.load_model`).
            A ranker trained on pages read with other OCR settings is refused when the reader is built.

    Raises:
        ValueError: a second-pass side not above the first pass's or above ``max_side``.
    """

    reader: str = setting(ANSWER, _READER["reader"])
    scorer: str = setting(ANSWER, _READER["scorer"])
    ocr: OcrSettings = field(default_factory=OcrSettings, metadata=SUBTREE)
    retry_side: int = setting(ANSWER, _READER["retry_side"])
    use_priors_fallback: bool = setting(ANSWER, _READER["use_priors_fallback"])
    min_precision: float = setting(ANSWER, _READER["min_precision"])
    min_confidence: float = setting(ANSWER, _READER["min_confidence"])
    cache_dir: str | None = setting(SPEED, _READER["cache_dir"])
    vlm: VlmSettings = field(default_factory=VlmSettings, metadata=SUBTREE)
    model: str = setting(ANSWER, _READER["model"])
    joint: JointSettings = field(default_factory=JointSettings, metadata=SUBTREE)

    def __post_init__(self) -> None:
        for name in ("min_precision", "min_confidence"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be at least 0 (off) and under 1; got {getattr(self, name)}")
        if self.min_precision and self.min_confidence:
            raise ValueError("give min_precision or min_confidence, not both")
        if self.retry_side and not self.ocr.det_side < self.retry_side <= self.ocr.max_side:
            raise ValueError(
                f"retry_side must be 0 (off) or a detector side above the first pass's ({self.ocr.det_side}) "
                f"and at most max_side ({self.ocr.max_side}); got {self.retry_side}"
            )


# -- the service (``specread serve``) ----------------------------------------------------------------------------------
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``async (host, port) -> [ip, ...]``: how host names become addresses (injectable for tests)."""

BODY_IDLE_TIMEOUT: float = _SERVICE["body_idle_timeout"]
"""Longest wait for the next piece of a request body (or ``body_timeout``, if shorter)."""


@dataclass(frozen=True)
class FetchPolicy:
    """What a URL fetch may do (see :func:`specread.service.fetch.fetch_image`): plain data, defaults in the TOML.

    Which addresses these values let a fetch reach is decided by
    :func:`specread.service.fetch.address_allowed`, beside the code that connects.

    Attributes:
        allow_private: allow private, loopback, link-local and other non-global
            addresses (for an operator whose images live on an internal host).
        allowed_networks: networks (CIDR strings) allowed even when
            ``allow_private`` is off, e.g. one internal image host.
        max_bytes: most bytes read from the body.
        timeout: seconds for the whole fetch, redirects included.
        connect_timeout: seconds to open one connection.
        max_redirects: redirects followed before giving up.
    """

    allow_private: bool = setting(SPEED, _FETCH["allow_private"])
    allowed_networks: tuple[str, ...] = setting(SPEED, tuple(_FETCH["allowed_networks"]))
    max_bytes: int = setting(SPEED, _FETCH["max_bytes"])
    timeout: float = setting(SPEED, _FETCH["timeout"])
    connect_timeout: float = setting(SPEED, _FETCH["connect_timeout"])
    max_redirects: int = setting(SPEED, _FETCH["max_redirects"])

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.timeout <= 0 or self.connect_timeout <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes, timeout and connect_timeout must be positive; max_redirects >= 0")
        for net in self.allowed_networks:
            ipaddress.ip_network(net, strict=False)  # fail at start-up, not mid-request


def _service_reader() -> ReaderConfig:
    return ReaderConfig() if _SERVICE["ocr_cache"] else ReaderConfig(cache_dir=None)


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the service is configured with, fixed at start-up.

    Attributes:
        reader: how each worker builds its reader (scorer, engine, OCR cache).
            The default is ``ReaderConfig(cache_dir=None)``: no OCR cache, which
            would grow without bound and tell a client, by timing, whether an
            image was read before; give a ``cache_dir`` only where clients are trusted.
        workers: OCR pool size (processes or threads).
        executor: ``"process"`` (one process per worker: true parallelism) or
            ``"thread"`` (one process; for tests and tiny deployments).
        max_upload_bytes: largest accepted image, uploaded or fetched.
        max_pending: most requests queued for or inside the pool before 503.
        max_queued_bytes: most request-body and image bytes held at once, counted as they
            arrive (uploads being read, their decoded copies, queued images); over it, 503.
        fetch: URL fetch policy; default: public addresses only, capped at
            ``max_upload_bytes``.
        warmup: load the OCR models in every worker before accepting requests.
        resolver: host-name resolver for URL fetches (the system one if None).
            Code, not data: left out of comparisons and ``repr``, and a settings
            object holding one pickles only if the resolver does.
        header_timeout: seconds a client has to send a request's headers (from
            connecting, or from the end of the previous response); under
            :func:`specread.service.app.serve` only.
        body_timeout: seconds a request body may take in all; no single wait for
            the next piece may exceed ``min(body_timeout, BODY_IDLE_TIMEOUT)`` (15) seconds.
        max_connections: requests served at once, all clients together; one over it gets
            503. Idle connections do not count (under :func:`specread.service.app.serve`).
        max_client_connections: connections one client address (the peer; a trusted
            proxy is exempt) may carry requests on at once; a request on a later one gets 503,
            except ``/healthz`` (under :func:`specread.service.app.serve`).
        max_client_requests: requests in flight from one client address (after trusted
            ``X-Forwarded-For``), from its headers to its answer; over it, 503 (``/healthz`` exempt).
        forwarded_allow_ips: proxy addresses or networks (or ``"*"``) whose
            ``X-Forwarded-For``/``-Proto`` headers are trusted; empty: none.
    """

    reader: ReaderConfig = field(default_factory=_service_reader, metadata=SUBTREE)
    workers: int = setting(SPEED, _SERVICE["workers"])
    executor: Literal["process", "thread"] = setting(SPEED, _SERVICE["executor"])
    max_upload_bytes: int = setting(SPEED, _SERVICE["max_upload_bytes"])
    max_pending: int = setting(SPEED, _SERVICE["max_pending"])
    max_queued_bytes: int = setting(SPEED, _SERVICE["max_queued_bytes"])
    fetch: FetchPolicy | None = field(default=None, metadata=SUBTREE)
    warmup: bool = setting(SPEED, _SERVICE["warmup"])
    resolver: Resolver | None = field(default=None, compare=False, repr=False, metadata={AFFECTS: SPEED})
    header_timeout: float = setting(SPEED, _SERVICE["header_timeout"])
    body_timeout: float = setting(SPEED, _SERVICE["body_timeout"])
    max_connections: int = setting(SPEED, _SERVICE["max_connections"])
    max_client_connections: int = setting(SPEED, _SERVICE["max_client_connections"])
    max_client_requests: int = setting(SPEED, _SERVICE["max_client_requests"])
    forwarded_allow_ips: tuple[str, ...] = setting(SPEED, tuple(_SERVICE["forwarded_allow_ips"]))

    def __post_init__(self) -> None:
        counts = ("workers", "max_pending", "max_upload_bytes", "max_queued_bytes", "max_connections")
        counts += ("max_client_connections", "max_client_requests")
        low = [name for name in counts if getattr(self, name) < 1]
        if low:
            raise ValueError(f"{', '.join(low)} must be at least 1")
        if self.executor not in ("process", "thread"):
            raise ValueError(f"unknown executor {self.executor!r}; choose one of: process, thread")
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
        if isinstance(self.forwarded_allow_ips, str):
            raise ValueError("forwarded_allow_ips must be a tuple of addresses, not one string")
        for ip in self.forwarded_allow_ips:
            try:
                if ip != "*":
                    ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {ip!r} is not an IP address, a network or '*'") from None

    def trusted_proxy(self, address: str) -> bool:
        """Whether ``address`` is in ``forwarded_allow_ips``: a proxy, whose clients are told apart by their headers."""
        if "*" in self.forwarded_allow_ips:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.forwarded_allow_ips)

    @property
    def body_idle_timeout(self) -> float:
        """Longest wait for the next piece of a request body."""
        return min(self.body_timeout, BODY_IDLE_TIMEOUT)

    @property
    def fetch_policy(self) -> FetchPolicy:
        return self.fetch or FetchPolicy(max_bytes=self.max_upload_bytes)
