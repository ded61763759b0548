"""Quart blueprints: the HTTP face of llmstream."""
