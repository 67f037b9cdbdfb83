"""The HTTP API of `xiezhu serve`: app, models, tokens and the per-bureau feed."""
