"""Accuracy benchmark against published monotonic-network results and tree models."""
