"""Figures: the paper's figures and the product maps (``plots``, which owns the shared style and
``save_figure``), the convergence and steady-state check figures (``checks``).
See docs/architecture.md.
"""
