"""Prompts: the one place a prompt becomes the tensors a model is conditioned on.

``encode`` is the entry point every job uses; see docs/prompts.md for the language.
"""
