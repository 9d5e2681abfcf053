"""Show a saved model's features, constraints and certified Lipschitz bound."""

from __future__ import annotations

import argparse
import json

from ._io import load_model

__all__ = ["add_arguments", "run", "describe", "format_certificate"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by lipmono train")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def describe(estimator) -> dict:
    """Return a JSON-serializable description of a fitted estimator."""
    params = estimator.get_params()
    return {
        "estimator": type(estimator).__name__,
        "target": getattr(estimator, "target_name_", None),
        "classes": estimator.classes_.tolist() if hasattr(estimator, "classes_") else None,
        "columns": estimator.schema_.to_dict()["columns"],
        "hidden_layer_sizes": estimator.architecture_["hidden_sizes"],
        "group_size": estimator.architecture_["group_size"],
        "lipschitz": params["lipschitz"],
        "certificate": estimator.certificate_,
        "training": estimator.training_,
    }


def format_certificate(certificate: dict) -> list[str]:
    """Return the certificate as lines of text."""
    lines = [
        f"certified Lipschitz bound ({certificate['norm_pair']}, output: {certificate['output']}):",
        f"  standardized units: {certificate['lipschitz_scaled']:.6g}   "
        f"original units: {certificate['lipschitz_original']:.6g}",
        "  per feature, max |d output / d x| in original units:",
    ]
    width = max(len(name) for name in certificate["per_feature"])
    for name, bound in certificate["per_feature"].items():
        direction = certificate["monotonic"].get(name, "")
        lines.append(f"    {name:<{width}}  {bound:10.4g}  {direction}".rstrip())
    return lines


def run(args) -> int:
    estimator = load_model(args.model)
    description = describe(estimator)
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    print(f"{description['estimator']} (target: {description['target'] or 'unnamed'})")
    if description["classes"] is not None:
        print(f"classes: {description['classes']}")
    print(
        f"hidden layers: {description['hidden_layer_sizes']}, "
        f"group size {description['group_size']}, "
        f"lambda {description['lipschitz']:g}"
    )
    print("columns:")
    for column in description["columns"]:
        levels = (
            f" ({len(column['categories'])} levels, one-hot)"
            if column["kind"] == "categorical"
            else ""
        )
        print(f"  {column['name']}: {column['kind']}{levels}")
    for line in format_certificate(description["certificate"]):
        print(line)
    training = description["training"]
    print(
        f"trained on {training['n_samples']} rows for {training['n_epochs']} epochs "
        f"(best {training['best_epoch']}) in {training['seconds']:.1f} s"
    )
    return 0
