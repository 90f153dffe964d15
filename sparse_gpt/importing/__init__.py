"""Importing OpenAI's released circuit_sparsity checkpoints (docs/import.md)."""
