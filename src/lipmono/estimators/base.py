"""Shared machinery of the scikit-learn estimators: validation, fitting, export, state.

The data path is one way: table -> :class:`~lipmono.schema.TableSchema` (encoded,
unscaled float features) -> :class:`~lipmono.schema.Standardizer` -> a
:class:`~lipmono.MonotonicMLP` on standardized features -> a positive output map.
Every computation runs in float64.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .. import __version__
from ..affine import OutputAffine, Standardize
from ..errors import DataError, ModelFileError, ParameterError
from ..layers import check_budget
from ..models import MonotonicMLP
from ..schema import Standardizer, TableSchema, is_dataframe, validate_table
from ..streaming import DEFAULT_MAX_LEVELS, StreamingBatches, TableConverter
from ..training import TrainingConfig, resolve_device, tensor_batches, train
from .certificate import build_certificate

__all__ = ["ParameterError", "MonotonicEstimatorBase"]

logger = logging.getLogger(__name__)

DTYPE = torch.float64
_NORMS = ("l1", "linf", "l2", "l1->l1")
_PREDICT_CHUNK = 65536


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_hidden(hidden_layer_sizes, group_size: int) -> list[int]:
    sizes = (
        [hidden_layer_sizes]
        if isinstance(hidden_layer_sizes, numbers.Integral)
        else hidden_layer_sizes
    )
    try:
        sizes = list(sizes)
    except TypeError:
        raise ParameterError(
            "hidden_layer_sizes must be an integer or a sequence of integers, "
            f"got {hidden_layer_sizes!r}"
        ) from None
    if not sizes:
        raise ParameterError("hidden_layer_sizes must name at least one hidden layer, got ()")
    sizes = [_check_int(size, f"hidden_layer_sizes[{i}]", 1) for i, size in enumerate(sizes)]
    for i, size in enumerate(sizes):
        if size % group_size:
            raise ParameterError(
                f"hidden_layer_sizes[{i}]={size} is not divisible by group_size={group_size}; "
                f"GroupSort sorts groups of {group_size} units, so use a multiple of {group_size}"
            )
    return sizes


def _jsonable(value):
    """Return the parameter ``value`` as JSON data, tagging dicts and tuples to keep their type."""
    if isinstance(value, dict):
        return {"__dict__": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return None  # A RandomState, for example, is not stored.


def _from_jsonable(value):
    if isinstance(value, dict) and "__dict__" in value:
        return {_from_jsonable(k): _from_jsonable(v) for k, v in value["__dict__"]}
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_from_jsonable(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


class MonotonicEstimatorBase(BaseEstimator):
    """Fitting, prediction plumbing, export and state shared by both estimators.

    Subclasses define ``_prepare_target(y)``, which returns the training target
    tensor and the number of network outputs, ``_loss`` and ``_output_kind``.
    """

    def __init__(
        self,
        monotonic_cst=None,
        *,
        lipschitz=1.0,
        hidden_layer_sizes=(64, 64),
        group_size=2,
        norm="l1",
        learning_rate=1e-3,
        batch_size=256,
        max_iter=200,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        verbose=False,
        device="auto",
    ):
        self.monotonic_cst = monotonic_cst
        self.lipschitz = lipschitz
        self.hidden_layer_sizes = hidden_layer_sizes
        self.group_size = group_size
        self.norm = norm
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ validation

    def _check_params(self) -> dict:
        """Validate the parameters; return the network architecture they define."""
        lipschitz = check_budget(self.lipschitz)
        group_size = _check_int(self.group_size, "group_size", 1)
        hidden = _check_hidden(self.hidden_layer_sizes, group_size)
        if self.norm not in _NORMS:
            raise ParameterError(f"norm must be one of {', '.join(_NORMS)}; got {self.norm!r}")
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.max_iter, "max_iter", 1)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        for name in ("learning_rate", "tol"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.learning_rate > 0:
            raise ParameterError(f"learning_rate must be positive, got {self.learning_rate!r}")
        fraction = self.validation_fraction
        if not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise ParameterError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        return {
            "hidden_sizes": hidden,
            "group_size": group_size,
            "norm": self.norm,
            "lipschitz": lipschitz,
        }

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, *, checkpoint_path=None, resume=False, checkpoint_every=None):
        """Fit the network to ``X`` and ``y``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (N, n_features)
            Inputs. Categorical DataFrame columns are one-hot encoded.
        y : array-like of shape (N,)
            Target.
        checkpoint_path : str or path, optional
            Write a checkpoint there after every epoch.
        resume : bool, default=False
            Continue from ``checkpoint_path`` if it exists (same data and
            parameters required; ``max_iter`` may grow).
        checkpoint_every : int, optional
            Also write the checkpoint after every this many batches within an
            epoch, so a resumed run continues mid-epoch.

        Returns
        -------
        self
        """
        architecture = self._check_params()
        self._check_resume(resume)
        schema, Z, target, constraints = self._prepare(X, y, architecture)
        scaler = Standardizer.fit(Z)
        # NOTE: the CUDA path (device='auto' with a GPU, or 'cuda') has not been run by the tests.
        device = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build_module(architecture).to(device)
            Zs = torch.as_tensor((Z - scaler.mean) / scaler.scale, dtype=DTYPE, device=device)
            target = target.to(device)
            train_index, val_index = self._split(len(Zs), target, seed)
            validation = None if val_index is None else (Zs[val_index], target[val_index])
            batch_size = min(int(self.batch_size), len(train_index))
            batches = tensor_batches(Zs[train_index], target[train_index], batch_size, seed)
            result = train(
                model,
                self._loss,
                batches,
                self._training_config(seed, device, checkpoint_path, checkpoint_every),
                validation=validation,
                resume=resume,
                fingerprint=self._fingerprint(Z, target, seed),
            )

        name = getattr(y, "name", None)
        self._set_fitted(
            schema, name if isinstance(name, str) else None, constraints, scaler, architecture,
            device, model, result,
            sizes=(int(len(Zs)), int(len(train_index)), 0 if val_index is None else len(val_index)),
            seed=seed,
        )
        return self

    def fit_stream(
        self,
        source,
        target: str,
        *,
        features=None,
        file_format=None,
        max_levels: int = DEFAULT_MAX_LEVELS,
        checkpoint_path=None,
        resume=False,
        checkpoint_every=None,
    ):
        """Fit the network to Parquet or CSV data read in batches, for data larger than memory.

        One pass over the data fits the input scaler and the category levels,
        then every epoch reads the training rows again in batches of
        ``batch_size``. Under torchrun the batches are shared out over the ranks
        (see :class:`lipmono.streaming.StreamingBatches`). The fitted estimator
        is the same kind of object as after :meth:`fit`: :meth:`save` writes the
        same model file format.

        Parameters
        ----------
        source : str, Path, sequence of them, or pyarrow.dataset.Dataset
            A file, a folder of files (read recursively) or a list of files.
        target : str
            Name of the target column.
        features : sequence of str, optional
            Feature columns, in model order; defaults to every column but ``target``.
            String and dictionary columns are one-hot encoded, the rest read as numbers.
        file_format : {"parquet", "csv"}, optional
            Defaults to the format that the file names end in.
        max_levels : int, default=10000
            Largest number of distinct values accepted in a categorical column.
        checkpoint_path, resume
            As in :meth:`fit`.
        checkpoint_every : int, optional
            Also write the checkpoint after every this many batches within an epoch.

        Returns
        -------
        self

        Notes
        -----
        With ``early_stopping``, the validation set is the last fragments
        (Parquet row groups, or CSV files) in file order that hold at least
        ``validation_fraction`` of the rows (:func:`~.streamed.split_validation`).
        It is read into memory once. Data in a single fragment gets no
        validation set, and early stopping then watches the training loss.
        """
        from . import streamed

        architecture = self._check_params()
        self._check_resume(resume)
        dataset, names, stats, schema, scaler = streamed.open_and_describe(
            self, source, target, features, file_format, max_levels
        )
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        transform, n_outputs = self._stream_target(dataset, target, stats)
        constraints = schema.encode_constraints(self.monotonic_cst, named=True)
        self._check_constraints(constraints)
        architecture.update(
            in_features=len(schema.encoded_names),
            out_features=n_outputs,
            monotonic_cst=constraints.tolist(),
        )
        device = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        converter = TableConverter(schema, scaler, target=target, target_transform=transform)
        fraction = self.validation_fraction if self.early_stopping else None
        training_data, validation_fragments, n_validation = streamed.split_validation(
            dataset, fraction
        )
        if self.early_stopping and not validation_fragments:
            logger.warning(
                "the data is a single fragment, so it has no validation set; early "
                "stopping watches the training loss (write several row groups or files)"
            )
        n_train = stats.n_rows - n_validation
        batches = StreamingBatches(
            training_data,
            converter.columns,
            min(int(self.batch_size), n_train),
            converter=converter,
            n_rows=n_train,
            seed=seed,
        )
        params = {
            k: repr(_jsonable(v))
            for k, v in self.get_params().items()
            if k not in ("max_iter", "verbose", "device")
        }
        fingerprint = streamed.stream_fingerprint(stats, converter.columns, params, seed)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build_module(architecture).to(device)
            validation = (
                streamed.read_validation(validation_fragments, converter, device)
                if validation_fragments
                else None
            )
            result = train(
                model,
                self._loss,
                batches,
                self._training_config(seed, device, checkpoint_path, checkpoint_every),
                validation=validation,
                resume=resume,
                fingerprint=fingerprint,
            )

        self._set_fitted(
            schema, target, constraints, scaler, architecture, device, model, result,
            sizes=(stats.n_rows, n_train, n_validation), seed=seed,
        )
        return self

    def _check_resume(self, resume: bool) -> None:
        if resume and not isinstance(self.random_state, numbers.Integral):
            raise ParameterError(
                f"resume=True needs an integer random_state, got {self.random_state!r}: the "
                "resumed run must draw the same initialization, split and batch order"
            )

    def _set_fitted(
        self, schema, target_name, constraints, scaler, architecture, device, model, result,
        *, sizes: tuple[int, int, int], seed: int,
    ) -> None:
        """Store the fitted attributes shared by :meth:`fit` and :meth:`fit_stream`."""
        n_samples, n_train, n_validation = sizes
        self.schema_ = schema
        self.target_name_ = target_name
        self.encoded_feature_names_ = schema.encoded_names
        self.encoded_monotonic_cst_ = constraints
        self.input_scaler_ = scaler
        self.architecture_ = architecture
        self.device_ = device
        self.model_ = model
        self.history_ = result.history
        self.n_iter_ = result.n_epochs
        self.best_epoch_ = result.best_epoch
        self.training_ = {
            "n_samples": int(n_samples),
            "n_train": int(n_train),
            "n_validation": int(n_validation),
            "n_epochs": result.n_epochs,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "seconds": result.seconds,
            "seed": seed,
            "torch_version": torch.__version__,
            "lipmono_version": __version__,
        }
        self.certificate_ = self._certificate()

    def _prepare(self, X, y, architecture: dict):
        """Validate and encode the data; complete ``architecture`` with the data's sizes."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        table = validate_table(self, X, reset=True)
        target, n_outputs = self._prepare_target(y, table.shape[0])
        schema = TableSchema.infer(table)
        Z = schema.encode(table)
        constraints = schema.encode_constraints(
            self.monotonic_cst, named=hasattr(self, "feature_names_in_")
        )
        self._check_constraints(constraints)
        architecture.update(
            in_features=Z.shape[1], out_features=n_outputs, monotonic_cst=constraints.tolist()
        )
        return schema, Z, target, constraints

    def _training_config(
        self, seed: int, device, checkpoint_path, checkpoint_every=None
    ) -> TrainingConfig:
        return TrainingConfig(
            learning_rate=float(self.learning_rate),
            max_epochs=int(self.max_iter),
            early_stopping=bool(self.early_stopping),
            n_iter_no_change=int(self.n_iter_no_change),
            tol=float(self.tol),
            seed=seed,
            verbose=bool(self.verbose),
            device=str(device),
            checkpoint_path=None if checkpoint_path is None else str(checkpoint_path),
            checkpoint_every=checkpoint_every,
        )

    def _check_constraints(self, constraints: np.ndarray) -> None:
        """Hook for subclasses that restrict constraints (multiclass)."""

    def _split(self, n: int, target, seed: int):
        """Return training and validation row indices (validation None without early stopping)."""
        index = np.arange(n)
        n_val = int(np.ceil(self.validation_fraction * n))
        if not self.early_stopping or n_val < 1 or n - n_val < 1:
            return torch.as_tensor(index), None
        stratify = self._stratify(target)
        try:
            train_index, val_index = train_test_split(
                index, test_size=n_val, random_state=seed, stratify=stratify
            )
        except ValueError:
            # Some class has too few members to stratify; split without it.
            train_index, val_index = train_test_split(index, test_size=n_val, random_state=seed)
        return torch.as_tensor(np.sort(train_index)), torch.as_tensor(np.sort(val_index))

    def _stratify(self, target):
        return None

    def _stream_target_numeric(self, target: str) -> list[str]:
        """Hook: the target, if the statistics pass should fit its mean and scale."""
        return []

    def _fingerprint(self, Z: np.ndarray, target, seed: int) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(Z).tobytes())
        digest.update(target.detach().cpu().numpy().tobytes())
        params = {
            k: v for k, v in self.get_params().items() if k not in ("max_iter", "verbose", "device")
        }
        digest.update(repr(sorted((k, repr(_jsonable(v))) for k, v in params.items())).encode())
        digest.update(str(seed).encode())
        return digest.hexdigest()

    def _output_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the positive scale and the shift applied to the network's outputs."""
        n = self.architecture_["out_features"]
        return np.ones(n), np.zeros(n)

    def _certificate(self) -> dict:
        scale, _ = self._output_scale()
        return build_certificate(
            self.model_,
            norm=self.architecture_["norm"],
            input_scale=self.input_scaler_.scale,
            output_scale=scale,
            names=self.encoded_feature_names_,
            output=self._output_kind(),
        )

    # ------------------------------------------------------------------ inference

    def encode(self, X) -> np.ndarray:
        """Return ``X`` validated and one-hot encoded, not standardized.

        Returns
        -------
        ndarray of shape (N, n_encoded), float64
            Columns in the order of ``encoded_feature_names_``.
        """
        check_is_fitted(self)
        if self.schema_.categorical and not is_dataframe(X):
            raise DataError(
                f"this model one-hot encodes the categorical column(s) "
                f"{', '.join(self.schema_.categorical)}, so it needs a pandas DataFrame with "
                f"the columns {', '.join(self.schema_.feature_names)}, not {type(X).__name__}"
            )
        return self.schema_.encode(validate_table(self, X, reset=False))

    def to_torch(self) -> nn.Sequential:
        """Return the whole model as a torch module, in eval mode, on the CPU.

        ``Sequential(Standardize(mean, scale), model, OutputAffine(scale, shift))`` maps
        encoded, unscaled float64 features of shape ``(N, n_encoded)`` (see
        :meth:`encode`) to the raw output ``(N, n_outputs)``: the logit(s) of a
        classifier, the prediction in target units of a regressor. The network is
        a copy, so changing it leaves the estimator as it is.
        """
        check_is_fitted(self)
        return self._pipeline(copy.deepcopy(self.model_)).cpu().eval()

    def _pipeline(self, model: nn.Module) -> nn.Sequential:
        scale, shift = self._output_scale()
        mean, input_scale = self.input_scaler_.mean, self.input_scaler_.scale
        standardize = _float64_affine(Standardize(mean, input_scale), mean=mean, scale=input_scale)
        output = _float64_affine(OutputAffine(scale, shift), scale=scale, shift=shift)
        return nn.Sequential(standardize, model, output).to(next(model.parameters()).device).eval()

    def _raw_output(self, X) -> np.ndarray:
        """Return the output of :meth:`to_torch` on ``X``, shape ``(N, n_outputs)``."""
        Z = self.encode(X)
        pipeline = self._pipeline(self.model_)
        device = next(self.model_.parameters()).device
        chunks = []
        with torch.no_grad():
            for start in range(0, Z.shape[0], _PREDICT_CHUNK):
                batch = torch.as_tensor(
                    Z[start : start + _PREDICT_CHUNK], dtype=DTYPE, device=device
                )
                chunks.append(pipeline(batch).cpu().numpy())
        return (
            np.concatenate(chunks, axis=0)
            if chunks
            else np.zeros((0, self.architecture_["out_features"]))
        )

    # ------------------------------------------------------------------ files and state

    def save(self, path) -> None:
        """Save the fitted model to ``path`` as one file (see :mod:`lipmono.serialization`)."""
        from ..serialization import save

        check_is_fitted(self)
        save(self, path)

    def _export_state(self) -> tuple[dict, dict]:
        tensors = {name: value for name, value in self.model_.state_dict().items()}
        document = {
            "estimator": type(self).__name__,
            "lipmono_version": __version__,
            "params": {k: _jsonable(v) for k, v in self.get_params().items()},
            "schema": self.schema_.to_dict(),
            "feature_names_in": (
                [str(n) for n in self.feature_names_in_]
                if hasattr(self, "feature_names_in_")
                else None
            ),
            "n_features_in": int(self.n_features_in_),
            "architecture": self.architecture_,
            "input_scaler": self.input_scaler_.to_dict(),
            "certificate": self.certificate_,
            "history": self.history_,
            "n_iter": int(self.n_iter_),
            "best_epoch": int(self.best_epoch_),
            "training": self.training_,
            "target_name": self.target_name_,
            **self._export_extra(),
        }
        return tensors, document

    def _export_extra(self) -> dict:
        return {}

    def _restore_extra(self, document: dict) -> None:
        """Hook: set the subclass's fitted attributes from a loaded document."""

    @classmethod
    def _from_state(cls, tensors: dict, document: dict):
        params = {k: _from_jsonable(v) for k, v in document["params"].items()}
        estimator = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
        estimator.schema_ = TableSchema.from_dict(document["schema"])
        estimator.encoded_feature_names_ = estimator.schema_.encoded_names
        estimator.n_features_in_ = int(document["n_features_in"])
        if document.get("feature_names_in") is not None:
            estimator.feature_names_in_ = np.asarray(document["feature_names_in"], dtype=object)
        architecture = dict(document["architecture"])
        estimator.architecture_ = architecture
        estimator.encoded_monotonic_cst_ = np.asarray(architecture["monotonic_cst"], dtype=np.int64)
        estimator.input_scaler_ = Standardizer.from_dict(document["input_scaler"])
        if len(estimator.encoded_feature_names_) != architecture["in_features"]:
            raise ModelFileError(
                f"the schema encodes {len(estimator.encoded_feature_names_)} features but the "
                f"network takes {architecture['in_features']}"
            )
        estimator.device_ = torch.device("cpu")
        estimator.model_ = _load_module(architecture, tensors)
        estimator.history_ = list(document["history"])
        estimator.n_iter_ = int(document["n_iter"])
        estimator.best_epoch_ = int(document["best_epoch"])
        estimator.training_ = dict(document["training"])
        estimator.target_name_ = document.get("target_name")
        estimator._restore_extra(document)
        # The certificate is recomputed from the weights, never taken from the metadata.
        estimator.certificate_ = estimator._certificate()
        stored = document["certificate"]["lipschitz_scaled"]
        if not np.isclose(stored, estimator.certificate_["lipschitz_scaled"], rtol=1e-9, atol=0):
            raise ModelFileError(
                f"the certified bound in the metadata ({stored!r}) differs from the one the "
                f"weights give ({estimator.certificate_['lipschitz_scaled']!r}); "
                "the file was edited, so save the model again"
            )
        return estimator

    def __getstate__(self):
        # Pickling a parametrized torch module raises an error, so the state holds the
        # weights as numpy arrays and the module is rebuilt from the architecture.
        state = super().__getstate__()
        if "model_" in state:
            state = dict(state)
            state["model_"] = {k: v.cpu().numpy() for k, v in self.model_.state_dict().items()}
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), dict):
            state = dict(state)
            tensors = {k: torch.as_tensor(v) for k, v in state["model_"].items()}
            device = (
                resolve_device(state["device_"])
                if torch.cuda.is_available()
                else torch.device("cpu")
            )
            state["model_"] = _load_module(state["architecture_"], tensors).to(device)
            state["device_"] = device
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags


def _build_module(architecture: dict) -> nn.Module:
    return MonotonicMLP(
        architecture["in_features"],
        architecture["hidden_sizes"],
        architecture["out_features"],
        monotonic_cst=np.asarray(architecture["monotonic_cst"], dtype=np.int64),
        lipschitz=architecture["lipschitz"],
        norm=architecture["norm"],
        group_size=architecture["group_size"],
    ).to(DTYPE)


def _load_module(architecture: dict, tensors: dict) -> nn.Module:
    model = _build_module(architecture)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"the weights do not match the architecture in the metadata: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for name, value in expected.items():
        if tuple(tensors[name].shape) != tuple(value.shape) or tensors[name].dtype != value.dtype:
            raise ModelFileError(
                f"the weight {name!r} has shape {tuple(tensors[name].shape)} and dtype "
                f"{tensors[name].dtype}, but the metadata requires {tuple(value.shape)} and "
                f"{value.dtype}"
            )
    model.load_state_dict(tensors)
    if not torch.equal(
        model.monotonic_cst,
        torch.as_tensor(architecture["monotonic_cst"], dtype=DTYPE)
        .reshape(-1, 1)
        .expand_as(model.monotonic_cst),
    ):
        raise ModelFileError("the constraints stored with the weights differ from the metadata")
    return model.eval()


def _float64_affine(module: nn.Module, **buffers) -> nn.Module:
    # Standardize and OutputAffine store buffers in torch's default dtype (float32);
    # the values are copied again in float64 so no precision is lost.
    module = module.to(DTYPE)
    with torch.no_grad():
        for name, values in buffers.items():
            getattr(module, name).copy_(torch.as_tensor(np.asarray(values, dtype=np.float64)))
    return module
