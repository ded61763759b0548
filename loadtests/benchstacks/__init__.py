"""The benchmark's comparison stacks (make bench): the way SSE token streams are commonly written.

Each streams the same small JSON token events as llmstream's native API (``event: token``, an ``id``,
``data: {"index": k, "text": ...}``), reads the same request fields (``max_tokens``, ``tokens_per_s``,
``ttft_ms``) and serves ``GET /healthz``. They are written as their documentation shows, with no tuning:
they stand for what llmstream is measured against, not for how fast their servers can go.
"""
