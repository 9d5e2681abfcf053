"""Tests of the tabular benchmark loaders on the real files and on generated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lipmono.datasets import (
    LOAN_FEATURE_COUNT,
    TabularSplit,
    load_auto_mpg,
    load_blogfeedback,
    load_compas,
    load_heart_disease,
    load_loan_defaulter,
)
from lipmono.errors import DataError

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "compas").is_dir(), reason=f"benchmark data not found in {DATA_DIR}"
)


def check_split(split: TabularSplit) -> None:
    assert list(split.X_train.columns) == list(split.X_test.columns)
    assert len(split.monotonic_cst) == split.X_train.shape[1]
    assert set(split.monotonic_cst) <= {-1, 0, 1}
    assert len(split.y_train) == len(split.X_train)
    assert len(split.y_test) == len(split.X_test)
    assert np.isfinite(split.X_train.to_numpy(dtype=float)).all()
    assert np.isfinite(split.X_test.to_numpy(dtype=float)).all()
    if split.task == "classification":
        assert set(np.unique(split.y_train)) == {0, 1}


@needs_data
def test_compas_published_split():
    split = load_compas(DATA_DIR)
    check_split(split)
    assert split.X_train.shape == (4937, 13)
    assert split.X_test.shape == (1235, 13)
    assert split.monotonic_cst == [1, 1, 1, 1] + [0] * 9
    assert split.feature_names[:4] == [
        "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count",
    ]


@needs_data
def test_auto_mpg_comet_split():
    split = load_auto_mpg(DATA_DIR)
    check_split(split)
    assert split.X_train.shape == (314, 7)
    assert split.X_test.shape == (78, 7)
    directions = dict(zip(split.feature_names, split.monotonic_cst, strict=True))
    assert directions["Displacement"] == -1
    assert directions["Horsepower"] == -1
    assert directions["Weight"] == -1
    assert directions["Model Year"] == 0
    assert split.y_train.iloc[0] == 18.0


@needs_data
def test_auto_mpg_matches_standardized_copy():
    # The standardized copy of the same split must equal (x - mean_train) / std_train.
    split = load_auto_mpg(DATA_DIR)
    copy = pd.read_csv(DATA_DIR / "auto_mpg" / "test_auto.csv")
    mean, std = split.X_train.mean(), split.X_train.std(ddof=1)
    standardized = (split.X_test - mean) / std
    np.testing.assert_allclose(standardized.to_numpy(), copy.iloc[:, :7].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(split.y_test.to_numpy(), copy["ground_truth"].to_numpy())


@needs_data
def test_heart_drops_index_column():
    split = load_heart_disease(DATA_DIR)
    check_split(split)
    assert split.X_train.shape == (242, 13)
    assert split.X_test.shape == (61, 13)
    assert "Unnamed: 0" not in split.feature_names
    assert split.feature_names[0] == "age"
    directions = dict(zip(split.feature_names, split.monotonic_cst, strict=True))
    assert directions == {**dict.fromkeys(split.feature_names, 0), "trestbps": 1, "chol": 1}


@needs_data
def test_blogfeedback_published_row_counts():
    split = load_blogfeedback(DATA_DIR)
    check_split(split)
    assert len(split.X_train) == 47302
    assert len(split.X_test) == 7027
    assert split.feature_names[:8] == ["f50", "f51", "f52", "f53", "f55", "f56", "f57", "f58"]
    assert split.monotonic_cst == [1] * 8 + [0] * (split.X_train.shape[1] - 8)
    pooled_y = pd.concat([split.y_train, split.y_test])
    assert pooled_y.min() == 0.0
    assert pooled_y.max() == 1.0
    pooled_X = pd.concat([split.X_train, split.X_test])
    assert (pooled_X.max() > pooled_X.min()).all()


@needs_data
def test_blogfeedback_without_quirks_keeps_rows():
    split = load_blogfeedback(DATA_DIR, published_quirks=False)
    check_split(split)
    # Without the header loss both files keep their first row, and without the
    # uint8 wrap the 90th-percentile cut removes different rows.
    assert len(split.X_train) + len(split.X_test) != 47302 + 7027


@pytest.mark.parametrize(
    "loader, folder, filename",
    [
        (load_compas, "compas", "train_compas.csv"),
        (load_auto_mpg, "auto_mpg", "comet_train_data.csv"),
        (load_heart_disease, "heart_disease", "comet_train_data.csv"),
        (load_blogfeedback, "blogfeedback", "train.csv.gz"),
        (load_loan_defaulter, "loan_defaulter", "preprocessed.csv"),
    ],
)
def test_missing_file_names_path(tmp_path, loader, folder, filename):
    expected = str(tmp_path / folder / filename)
    with pytest.raises(FileNotFoundError, match=f"not found: {expected}. Put "):
        loader(tmp_path)


def test_compas_missing_column_raises(tmp_path):
    (tmp_path / "compas").mkdir()
    for name in ("train_compas.csv", "test_compas.csv"):
        pd.DataFrame({"priors_count": [0.1], "age": [0.2]}).to_csv(
            tmp_path / "compas" / name, index=False
        )
    with pytest.raises(DataError, match=r"lacks the columns \['juv_fel_count'"):
        load_compas(tmp_path)


def test_blogfeedback_wrong_width_raises(tmp_path):
    (tmp_path / "blogfeedback").mkdir()
    for name in ("train.csv.gz", "test.csv.gz"):
        pd.DataFrame(np.zeros((3, 10))).to_csv(tmp_path / "blogfeedback" / name, index=False)
    with pytest.raises(DataError, match="has 10 columns, expected 281"):
        load_blogfeedback(tmp_path)


def make_loan_file(folder: Path, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Write a small ``preprocessed.csv`` in the published column layout.

    After the loader moves ``grade`` to the front, the first five features are
    grade, pub_rec_bankruptcies, emp_length, annual_inc and dti. ``row_id`` holds
    the original row number so tests can follow rows through the shuffle.
    """
    rng = np.random.default_rng(seed)
    columns = {
        "pub_rec_bankruptcies": rng.integers(0, 3, n_rows).astype(float),
        "emp_length": rng.choice(["< 1 year", "1 year", "5 years", "10+ years"], n_rows),
        "annual_inc": rng.uniform(2e4, 2e5, n_rows),
        "dti": rng.uniform(0, 40, n_rows),
        "row_id": np.arange(n_rows, dtype=float),
    }
    for i in range(LOAN_FEATURE_COUNT - 6):
        columns[f"x{i}"] = rng.normal(size=n_rows)
    columns["grade"] = np.array(list("ABCDEFG"))[np.arange(n_rows) % 7]
    columns["loan_status"] = rng.integers(0, 2, n_rows)
    frame = pd.DataFrame(columns)
    (folder / "loan_defaulter").mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "loan_defaulter" / "preprocessed.csv")
    return frame


def test_loan_defaulter_generated_file(tmp_path):
    frame = make_loan_file(tmp_path, 50)
    frame.loc[[3, 7], "emp_length"] = np.nan
    frame.to_csv(tmp_path / "loan_defaulter" / "preprocessed.csv")
    split = load_loan_defaulter(tmp_path)
    check_split(split)

    assert split.X_train.shape[1] == LOAN_FEATURE_COUNT
    assert split.feature_names[:5] == [
        "grade", "pub_rec_bankruptcies", "emp_length", "annual_inc", "dti",
    ]
    assert split.monotonic_cst == [1] * 5 + [0] * (LOAN_FEATURE_COUNT - 5)
    # n_train = int(0.8 * 50) is fixed before the two incomplete rows are dropped.
    assert len(split.X_train) == 40
    assert len(split.X_test) == 8
    pooled = pd.concat([split.X_train, split.X_test])
    assert pooled.min().min() >= 0.0
    assert pooled.max().max() <= 1.0


def test_loan_defaulter_order_and_flips(tmp_path):
    n_rows = 40
    frame = make_loan_file(tmp_path, n_rows, seed=1)
    split = load_loan_defaulter(tmp_path)
    pooled = pd.concat([split.X_train, split.X_test], ignore_index=True)
    row = np.rint(pooled["row_id"].to_numpy() * (n_rows - 1)).astype(int)

    # np.random.shuffle moves rows the same way whatever they contain.
    expected_order = np.arange(n_rows)
    np.random.seed(78712)
    np.random.shuffle(expected_order)
    np.testing.assert_array_equal(row, expected_order)

    def scaled(values):
        values = np.asarray(values, dtype=float)
        return (values - values.min()) / (values.max() - values.min())

    grade_number = frame["grade"].map(dict(zip("ABCDEFG", range(7, 0, -1), strict=True)))
    np.testing.assert_allclose(pooled["grade"], 1 - scaled(grade_number)[row])
    np.testing.assert_allclose(pooled["annual_inc"], 1 - scaled(frame["annual_inc"])[row])
    years = frame["emp_length"].map({"< 1 year": 1, "1 year": 2, "5 years": 6, "10+ years": 11})
    np.testing.assert_allclose(pooled["emp_length"], 1 - scaled(years)[row])
    np.testing.assert_allclose(pooled["dti"], scaled(frame["dti"])[row])
    np.testing.assert_allclose(
        pooled["pub_rec_bankruptcies"], scaled(frame["pub_rec_bankruptcies"])[row]
    )
    labels = pd.concat([split.y_train, split.y_test], ignore_index=True)
    np.testing.assert_array_equal(labels, frame["loan_status"].to_numpy()[row])


def test_loan_defaulter_unknown_grade_raises(tmp_path):
    frame = make_loan_file(tmp_path, 20)
    frame.loc[0, "grade"] = "Z"
    frame.to_csv(tmp_path / "loan_defaulter" / "preprocessed.csv")
    with pytest.raises(DataError, match=r"column 'grade' has values \['Z'\]"):
        load_loan_defaulter(tmp_path)


def test_loan_defaulter_wrong_width_raises(tmp_path):
    (tmp_path / "loan_defaulter").mkdir()
    pd.DataFrame({"grade": ["A"], "emp_length": ["1 year"]}).to_csv(
        tmp_path / "loan_defaulter" / "preprocessed.csv"
    )
    with pytest.raises(DataError, match="has 3 columns, expected 30"):
        load_loan_defaulter(tmp_path)
