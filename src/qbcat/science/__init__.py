"""Science products from sweep datasets: enhancement and backflow statistics (``analysis``),
convergence checks (``convergence``), periodic steady states (``steady``), the paper's claims and
their verdicts (``claims``). See docs/architecture.md.
"""
