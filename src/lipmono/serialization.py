"""Model files: one safetensors file holding the weights and JSON metadata.

Layout of a model file (any name; ``.safetensors`` is a good extension, and any
safetensors reader can open it)::

    8 bytes     little-endian length H of the header
    H bytes     JSON header: tensor names, dtypes, shapes, offsets, and
                "__metadata__": {"lipmono": "<JSON document below>"}
    rest        raw tensor bytes

The JSON document contains:

* ``format`` (``"lipmono-model"``) and ``format_version``;
* the estimator class and its parameters;
* the table schema: feature names and order, categorical levels;
* the architecture: encoded constraints, layer sizes, chain, group size, lambda;
* the input and target scalers, the classes, the certificate, training metadata;
* ``sha256``, a digest of the tensor bytes.

Loading checks each of these and raises :class:`~lipmono.errors.ModelFileError` on a truncated
or corrupted file, a newer format version, weights that do not match the
metadata, or a file that is not a lipmono model. Nothing is ever unpickled.

Writes go to a temporary file in the destination folder, which is then renamed
over the destination (:func:`os.replace`), so an interrupted write never leaves a
half-written file. Training checkpoints (:mod:`lipmono.training`) use the same
container with ``format`` ``"lipmono-checkpoint"``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch

from .errors import ModelFileError
from .files import atomic_write_bytes

__all__ = [
    "FORMAT_VERSION",
    "write_container",
    "read_container",
    "atomic_write_bytes",
    "save",
    "load",
]

#: Version of the model file layout; files with a larger version are rejected.
FORMAT_VERSION = 1

_METADATA_KEY = "lipmono"
# A header larger than this is not a model header; reject it before reading it.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def write_container(path, tensors: dict[str, torch.Tensor], document: dict) -> None:
    """Write ``tensors`` and the JSON ``document`` to ``path`` atomically.

    ``document`` gets a ``sha256`` entry: the digest of the tensor bytes, which
    :func:`read_container` checks.
    """
    from safetensors.torch import save as save_safetensors

    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in tensors.items()}
    # The digest covers the data section, which does not depend on the metadata.
    probe = save_safetensors(tensors)
    document = {**document, "sha256": hashlib.sha256(_split(probe, "<memory>")[1]).hexdigest()}
    data = save_safetensors(tensors, metadata={_METADATA_KEY: json.dumps(document)})
    atomic_write_bytes(path, data)


def _split(data: bytes, where: str) -> tuple[dict, bytes]:
    """Return the parsed safetensors header and the data section of ``data``."""
    if len(data) < 8:
        raise ModelFileError(
            f"{where} is not a lipmono model file: it has only {len(data)} bytes "
            "(empty or truncated)"
        )
    (length,) = struct.unpack("<Q", data[:8])
    if length > _MAX_HEADER_BYTES or 8 + length > len(data):
        raise ModelFileError(
            f"{where} is not a lipmono model file, or it is truncated: its header claims "
            f"{length} bytes but the file has {len(data)}"
        )
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"{where} is not a lipmono model file: its header is not valid JSON"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{where} is not a lipmono model file: its header is not an object")
    return header, data[8 + length :]


def read_container(
    path, expected_format: str = "lipmono-model"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`write_container`; return ``(tensors, document)``.

    Raises :class:`ModelFileError` when the file is not a lipmono file of
    ``expected_format``, comes from a newer format version, or fails its checksum.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{str(path)!r} is a folder, not a model file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {str(path)!r} not found") from None
    header, body = _split(data, repr(str(path)))
    document = _document(header, path, expected_format)
    digest = hashlib.sha256(body).hexdigest()
    if digest != document.get("sha256"):
        raise ModelFileError(
            f"{str(path)!r} is corrupted: the checksum of its weights does not match its "
            "metadata (the file was truncated or edited); save the model again"
        )
    try:
        tensors = load_safetensors(data)
    except SafetensorError as error:
        raise ModelFileError(f"{str(path)!r} is corrupted: {error}") from None
    return tensors, document


def _document(header: dict, path: Path, expected_format: str) -> dict:
    metadata = header.get("__metadata__") or {}
    text = metadata.get(_METADATA_KEY) if isinstance(metadata, dict) else None
    if text is None:
        raise ModelFileError(
            f"{str(path)!r} is a safetensors file but not a lipmono {expected_format} "
            "(it has no lipmono metadata)"
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{str(path)!r} has invalid lipmono metadata: {error}") from None
    if not isinstance(document, dict) or document.get("format") != expected_format:
        found = document.get("format") if isinstance(document, dict) else None
        raise ModelFileError(f"{str(path)!r} is not a {expected_format} file (format {found!r})")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{str(path)!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses format version {version}, newer than this lipmono reads "
            f"(version {FORMAT_VERSION}); upgrade lipmono to load it"
        )
    return document


def save(estimator, path) -> None:
    """Save a fitted lipmono estimator to ``path`` (see the module docstring for the layout)."""
    tensors, document = estimator._export_state()
    write_container(
        path, tensors, {"format": "lipmono-model", "format_version": FORMAT_VERSION, **document}
    )


def load(path):
    """Load an estimator saved by :func:`save` or ``estimator.save``.

    Returns a fitted :class:`~lipmono.MonotonicRegressor` or
    :class:`~lipmono.MonotonicClassifier` whose predictions equal the saved one's.
    """
    from .estimators import ESTIMATOR_CLASSES

    tensors, document = read_container(path)
    name = document.get("estimator")
    cls = ESTIMATOR_CLASSES.get(name)
    if cls is None:
        raise ModelFileError(
            f"{str(path)!r} names an unknown estimator {name!r}; "
            f"known: {', '.join(sorted(ESTIMATOR_CLASSES))}"
        )
    try:
        return cls._from_state(tensors, document)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
        raise ModelFileError(
            f"{str(path)!r} does not hold a consistent model: {type(error).__name__}: {error}"
        ) from None
