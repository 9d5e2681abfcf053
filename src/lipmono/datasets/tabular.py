"""Loaders for the tabular benchmarks of the monotonic-network literature.

Each loader reads files from a data folder that the caller names (one sub-folder
per data set, for example ``<data_dir>/compas/train_compas.csv``) and returns a
:class:`TabularSplit`: the fixed train/test split used by the papers, the target,
and one monotonicity constraint per feature in scikit-learn's ``monotonic_cst``
convention (1 increasing, -1 decreasing, 0 unconstrained). Nothing is downloaded.

The preprocessing follows the published loaders (Liu et al. 2020, "Certified
Monotonic Neural Networks"; Nolte et al. 2023, "Expressive Monotonic Neural
Networks"; the COMET splits of Sivaraman et al. 2020), including their quirks
where a published number depends on them; each loader's docstring lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = [
    "TabularSplit",
    "load_auto_mpg",
    "load_blogfeedback",
    "load_compas",
    "load_heart_disease",
    "load_loan_defaulter",
    "BLOGFEEDBACK_MONOTONE_COLUMNS",
    "LOAN_FEATURE_COUNT",
]

#: 0-based columns of the UCI BlogFeedback table that are monotone increasing
#: (UCI attributes A51-A54 and A56-A59).
BLOGFEEDBACK_MONOTONE_COLUMNS = (50, 51, 52, 53, 55, 56, 57, 58)

#: Number of feature columns in Liu et al.'s LoanDefaulter ``preprocessed.csv``
#: (after the index column; the label follows them).
LOAN_FEATURE_COUNT = 28

_COMPAS_MONOTONE = ("priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count")
_AUTO_DECREASING = ("Displacement", "Horsepower", "Weight")
_HEART_INCREASING = ("trestbps", "chol")
_LOAN_GRADES = {"A": 7, "B": 6, "C": 5, "D": 4, "E": 3, "F": 2, "G": 1}
_LOAN_EMP_LENGTH = {
    "< 1 year": 1, "1 year": 2, "2 years": 3, "3 years": 4, "4 years": 5, "5 years": 6,
    "6 years": 7, "7 years": 8, "8 years": 9, "9 years": 10, "10+ years": 11,
}
# Seed of the shuffle in Liu et al.'s COMPAS and LoanDefaulter loaders.
_LIU_SHUFFLE_SEED = 78712


@dataclass(frozen=True)
class TabularSplit:
    """A fixed train/test split with its target and monotonicity constraints.

    Attributes
    ----------
    name : str
        Data set name, for example ``"compas"``.
    task : {"classification", "regression"}
        Binary classification (targets 0/1) or regression.
    X_train, X_test : pandas.DataFrame
        Features, shapes ``(n_train, n_features)`` and ``(n_test, n_features)``,
        with the same columns in the same order.
    y_train, y_test : pandas.Series
        Targets, shapes ``(n_train,)`` and ``(n_test,)``.
    monotonic_cst : list of int
        One entry per column of ``X_train``: 1 increasing, -1 decreasing, 0 free.
    notes : str
        Preprocessing facts a reader of the results needs (source of the split,
        quirks kept from the published loaders).
    """

    name: str
    task: str
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    monotonic_cst: list[int]
    notes: str = ""

    @property
    def feature_names(self) -> list[str]:
        """Column names of the features, in order."""
        return [str(c) for c in self.X_train.columns]


def _require_file(data_dir, subdir: str, filename: str, hint: str) -> Path:
    path = Path(data_dir) / subdir / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {path}. Put {hint} there "
            f"(see {Path(data_dir) / subdir / 'SOURCE.md'} for the provenance), "
            "or pass the folder that contains it as data_dir"
        )
    return path


def _require_columns(frame: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the columns {missing}; it has {list(frame.columns)}. "
            "Check that the file is the one its SOURCE.md describes"
        )


def _constraints(columns, directions: dict[str, int]) -> list[int]:
    return [int(directions.get(str(c), 0)) for c in columns]


def _split_xy(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[target]), frame[target]


def load_compas(data_dir) -> TabularSplit:
    """Load COMPAS two-year recidivism with Liu et al.'s fixed split.

    Reads ``compas/train_compas.csv`` (4937 rows) and ``compas/test_compas.csv``
    (1235 rows): 13 features, min-max scaled over train and test by the
    published loader, and the 0/1 target ``ground_truth``. Monotone increasing
    in ``priors_count``, ``juv_fel_count``, ``juv_misd_count`` and
    ``juv_other_count``.

    Parameters
    ----------
    data_dir : str or path-like
        Folder that contains the ``compas`` sub-folder.

    Returns
    -------
    TabularSplit
    """
    frames = []
    for filename in ("train_compas.csv", "test_compas.csv"):
        path = _require_file(data_dir, "compas", filename, f"the preprocessed {filename}")
        frame = pd.read_csv(path)
        _require_columns(frame, [*_COMPAS_MONOTONE, "ground_truth"], path)
        frames.append(_split_xy(frame, "ground_truth"))
    (X_train, y_train), (X_test, y_test) = frames
    return TabularSplit(
        "compas", "classification", X_train, X_test, y_train.astype(int), y_test.astype(int),
        _constraints(X_train.columns, dict.fromkeys(_COMPAS_MONOTONE, 1)),
        notes="Liu et al.'s split (np.random.seed(78712) shuffle, first 80% train); "
        "features min-max scaled over train and test by the published loader.",
    )


def _load_comet(data_dir, subdir: str, target: str, hint: str):
    frames = []
    for filename in ("comet_train_data.csv", "comet_test_data.csv"):
        path = _require_file(data_dir, subdir, filename, hint.format(filename=filename))
        # The first, unnamed column is the original row index, not a feature.
        frame = pd.read_csv(path, index_col=0)
        if target not in frame.columns:
            _require_columns(frame, [target], path)
        incomplete = list(frame.columns[frame.isna().any()])
        if incomplete:
            raise DataError(f"{path} has missing values in the columns {incomplete}")
        frames.append(_split_xy(frame, target))
    return frames


def load_auto_mpg(data_dir) -> TabularSplit:
    """Load Auto-MPG with COMET's fixed split (314 train, 78 test rows).

    Reads ``auto_mpg/comet_train_data.csv`` and ``comet_test_data.csv``: seven
    raw features (the six rows with unknown horsepower are already removed) and
    the target ``MPG`` in miles per gallon. Monotone decreasing in
    ``Displacement``, ``Horsepower`` and ``Weight``. Features are returned
    unscaled; standardize them with training statistics.

    Parameters
    ----------
    data_dir : str or path-like
        Folder that contains the ``auto_mpg`` sub-folder.

    Returns
    -------
    TabularSplit
    """
    (X_train, y_train), (X_test, y_test) = _load_comet(
        data_dir, "auto_mpg", "MPG", "COMET's {filename} (examples/Auto-MPG)"
    )
    _require_columns(X_train, _AUTO_DECREASING, Path(data_dir) / "auto_mpg")
    return TabularSplit(
        "auto_mpg", "regression", X_train.astype(float), X_test.astype(float),
        y_train.astype(float), y_test.astype(float),
        _constraints(X_train.columns, dict.fromkeys(_AUTO_DECREASING, -1)),
        notes="COMET's fixed split, used by COMET and Runje et al.; Nolte et al. "
        "used three random 80/20 splits of the 392 complete rows instead.",
    )


def load_heart_disease(data_dir) -> TabularSplit:
    """Load the Cleveland Heart Disease data with COMET's split (242 train, 61 test).

    Reads ``heart_disease/comet_train_data.csv`` and ``comet_test_data.csv``: 13
    raw features and the 0/1 ``target``. Monotone increasing in ``trestbps``
    (resting blood pressure) and ``chol`` (cholesterol). The unnamed row-index
    column is dropped, although Nolte et al.'s script used it as a feature.

    Parameters
    ----------
    data_dir : str or path-like
        Folder that contains the ``heart_disease`` sub-folder.

    Returns
    -------
    TabularSplit
    """
    (X_train, y_train), (X_test, y_test) = _load_comet(
        data_dir, "heart_disease", "target", "COMET's {filename} (examples/Heart)"
    )
    _require_columns(X_train, _HEART_INCREASING, Path(data_dir) / "heart_disease")
    return TabularSplit(
        "heart_disease", "classification", X_train.astype(float), X_test.astype(float),
        y_train.astype(int), y_test.astype(int),
        _constraints(X_train.columns, dict.fromkeys(_HEART_INCREASING, 1)),
        notes="COMET's fixed split; the row-index column is not used as a feature.",
    )


def _read_blog_csv(path: Path, published_quirks: bool) -> pd.DataFrame:
    # The published loader reads with pandas' default header, so the first data row
    # of each file becomes the header and is lost.
    frame = pd.read_csv(path, header=0 if published_quirks else None)
    if frame.shape[1] != 281:
        raise DataError(
            f"{path} has {frame.shape[1]} columns, expected 281 (280 features and the target)"
        )
    frame.columns = range(281)
    return frame


def load_blogfeedback(data_dir, *, published_quirks: bool = True) -> TabularSplit:
    """Load BlogFeedback as preprocessed by Liu et al.'s loader.

    Reads ``blogfeedback/train.csv.gz`` (the UCI training file) and
    ``test.csv.gz`` (the 60 UCI test days, concatenated in file-name order) and
    applies the published steps:

    1. the target is column 280, the number of comments in the next 24 hours;
    2. rows whose target is above the 90th percentile of train and test pooled
       are dropped;
    3. features are min-max scaled over train and test pooled, constant columns
       are dropped and the eight monotone columns
       (:data:`BLOGFEEDBACK_MONOTONE_COLUMNS`, all increasing) move to the front;
    4. the target is min-max scaled to [0, 1] over train and test pooled.

    With ``published_quirks=True`` two details of the published loader are kept,
    because the published RMSE is measured on the target they produce. The first
    row of each file is read as a header and lost, and the target is cast to
    ``uint8``, so counts above 255 wrap around. This leaves 47,302 train and
    7,027 test rows. Steps 2-4 look at the test targets and features, as the
    published loader does.

    The published test file is not the one here: the papers report 54,270 rows
    in total, this file gives 54,329, so published numbers compare only
    approximately.

    Parameters
    ----------
    data_dir : str or path-like
        Folder that contains the ``blogfeedback`` sub-folder.
    published_quirks : bool, default=True
        Keep the header-row loss and the ``uint8`` wrap-around described above.

    Returns
    -------
    TabularSplit
        Feature columns are named ``f<UCI column>``, for example ``f50``.
    """
    hint = "{} from BlogFeedback.zip (see SOURCE.md for how to rebuild it)"
    train = _read_blog_csv(
        _require_file(data_dir, "blogfeedback", "train.csv.gz", hint.format("train.csv.gz")),
        published_quirks,
    )
    test = _read_blog_csv(
        _require_file(data_dir, "blogfeedback", "test.csv.gz", hint.format("test.csv.gz")),
        published_quirks,
    )
    n_train = len(train)
    pooled = pd.concat([train, test], ignore_index=True)
    X = pooled.iloc[:, :280].to_numpy(dtype=np.float64)
    y = pooled.iloc[:, 280].to_numpy()
    y = y.astype(np.uint8).astype(np.float64) if published_quirks else y.astype(np.float64)

    keep = y <= np.percentile(y, 90)
    is_train = np.arange(len(y)) < n_train
    X, y, is_train = X[keep], y[keep], is_train[keep]

    low, high = X.min(axis=0), X.max(axis=0)
    varying = high > low
    X = (X - low) / np.where(varying, high - low, 1.0)
    y = (y - y.min()) / (y.max() - y.min())

    monotone = list(BLOGFEEDBACK_MONOTONE_COLUMNS)
    others = [c for c in range(280) if c not in monotone and varying[c]]
    order = monotone + others
    frame = pd.DataFrame(X[:, order], columns=[f"f{c}" for c in order])
    cst = [1] * len(monotone) + [0] * len(others)
    target = pd.Series(y, name="comments")
    return TabularSplit(
        "blogfeedback", "regression",
        frame[is_train].reset_index(drop=True), frame[~is_train].reset_index(drop=True),
        target[is_train].reset_index(drop=True), target[~is_train].reset_index(drop=True),
        cst,
        notes="Liu et al.'s preprocessing on the UCI files; the test file differs slightly "
        "from the papers' (54,329 rows in total here, 54,270 published).",
    )


def load_loan_defaulter(data_dir) -> TabularSplit:
    """Load LoanDefaulter (Lending Club) from Liu et al.'s ``preprocessed.csv``.

    Expects ``loan_defaulter/preprocessed.csv``: an index column, then 28
    feature columns and the 0/1 label, with ``grade`` given as a letter A-G and
    ``emp_length`` as text such as ``"< 1 year"`` or ``"10+ years"``. The
    published loader's steps are reproduced:

    1. ``grade`` A..G becomes 7..1 and moves to the second column;
       ``emp_length`` becomes 1..11;
    2. the index column is dropped;
    3. ``n_train = int(0.8 * n)`` is fixed, then the rows are shuffled with
       ``np.random.seed(78712)``;
    4. rows with a missing value in columns 1 or 2 are dropped, *after*
       ``n_train`` was computed, so the first ``n_train`` remaining rows are the
       train part and the test part loses every dropped row;
    5. features are min-max scaled over train and test pooled;
    6. columns 0, 2 and 3 become ``1 - x``, so all five monotone features
       (columns 0-4) are increasing in the result.

    The returned ``monotonic_cst`` is therefore ``[1, 1, 1, 1, 1, 0, ...]``: in the
    original units grade, employment length and annual income are decreasing
    and bankruptcies and debt-to-income increasing.

    Parameters
    ----------
    data_dir : str or path-like
        Folder that contains the ``loan_defaulter`` sub-folder.

    Returns
    -------
    TabularSplit
    """
    path = _require_file(
        data_dir, "loan_defaulter", "preprocessed.csv",
        "Liu et al.'s preprocessed.csv (git blob f8f6b303fc918e7c748c8cbd2748eba1118081b7)",
    )
    frame = pd.read_csv(path)
    expected = 1 + LOAN_FEATURE_COUNT + 1
    if frame.shape[1] != expected:
        raise DataError(
            f"{path} has {frame.shape[1]} columns, expected {expected} "
            f"(an index column, {LOAN_FEATURE_COUNT} features and the label)"
        )
    _require_columns(frame, ["grade", "emp_length"], path)
    unknown = sorted(set(frame["grade"].dropna()) - set(_LOAN_GRADES))
    if unknown:
        raise DataError(
            f"{path}: column 'grade' has values {unknown[:5]}; expected letters A-G. "
            "Check that the file is Liu et al.'s preprocessed.csv"
        )
    lengths = frame["emp_length"].dropna()
    unknown = sorted(set(lengths) - set(_LOAN_EMP_LENGTH))
    if unknown:
        raise DataError(
            f"{path}: column 'emp_length' has values {unknown[:5]}; "
            f"expected one of {list(_LOAN_EMP_LENGTH)}"
        )

    frame["grade"] = frame["grade"].map(_LOAN_GRADES)
    frame["emp_length"] = frame["emp_length"].map(_LOAN_EMP_LENGTH)
    grade = frame.pop("grade")
    frame.insert(1, "grade", grade)
    frame = frame.iloc[:, 1:]

    n_train = int(0.8 * len(frame))
    data = frame.to_numpy(dtype=np.float64)
    np.random.seed(_LIU_SHUFFLE_SEED)
    np.random.shuffle(data)
    data = data[~np.isnan(data[:, 1]) & ~np.isnan(data[:, 2])]
    is_train = np.arange(len(data)) < n_train
    if np.isnan(data).any():
        columns = list(frame.columns[np.isnan(data).any(axis=0)])
        raise DataError(f"{path} has missing values in {columns} outside columns 1 and 2")

    X, y = data[:, :LOAN_FEATURE_COUNT], data[:, LOAN_FEATURE_COUNT]
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{path}: the label column must be 0 or 1, got {np.unique(y)[:5]}")
    low, high = X.min(axis=0), X.max(axis=0)
    X = (X - low) / np.where(high > low, high - low, 1.0)
    X[:, [0, 2, 3]] = 1.0 - X[:, [0, 2, 3]]

    features = pd.DataFrame(X, columns=list(frame.columns[:LOAN_FEATURE_COUNT]))
    labels = pd.Series(y.astype(int), name=str(frame.columns[LOAN_FEATURE_COUNT]))
    cst = [1] * 5 + [0] * (LOAN_FEATURE_COUNT - 5)
    return TabularSplit(
        "loan_defaulter", "classification",
        features[is_train].reset_index(drop=True), features[~is_train].reset_index(drop=True),
        labels[is_train].reset_index(drop=True), labels[~is_train].reset_index(drop=True),
        cst,
        notes="Liu et al.'s preprocessing; columns 0, 2 and 3 are flipped (1 - x).",
    )
